package managercmd

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
)

func TestParseSteps(t *testing.T) {
	for _, c := range []struct {
		command, steps string
		want           [][]string
		err            string
	}{
		{command: "bin/itemq-thumbnail", want: [][]string{{"bin/itemq-thumbnail"}}},
		{command: `["bin/itemq-script","--","./my script.sh"]`, want: [][]string{{"bin/itemq-script", "--", "./my script.sh"}}},
		{command: "bin/itemq-script -- ./x.sh", want: [][]string{{"bin/itemq-script", "--", "./x.sh"}}},
		{steps: `[["bin/itemq-thumbnail"], "bin/itemq-script -- ./stamp.sh"]`, want: [][]string{{"bin/itemq-thumbnail"}, {"bin/itemq-script", "--", "./stamp.sh"}}},
		{command: "a", steps: `["b"]`, err: "not both"},
		{steps: `[]`, err: "MANAGER_STEPS"},
		{steps: `[[]]`, err: "MANAGER_STEPS[0]"},
		{steps: `nope`, err: "MANAGER_STEPS"},
		{command: `[1,2]`, err: "MANAGER_COMMAND"},
		{command: "   ", err: "empty command"},
	} {
		got, err := parseSteps(c.command, c.steps)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseSteps(%q, %q) error = %v, want %q", c.command, c.steps, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseSteps(%q, %q) = %q, %v; want %q", c.command, c.steps, got, err, c.want)
		}
	}
}

func TestConfigAndExecutorEnv(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "job.env")
	os.WriteFile(envFile, []byte("# comment\nexport THUMB_WIDTH=640\nOUTPUT_URL='file:///from-file'\n\nQUOTED=\"a b\"\n"), 0o600)
	environ := []string{
		"PATH=/usr/bin", "HOME=/root", "AWS_REGION=eu-west-1",
		"MANAGER_SOURCE=dir:///tmp", "MANAGER_COMMAND=true", "MANAGER_STATE_DIR=/tmp/s",
		"MANAGER_JOB_ENV_OUTPUT_URL=s3://out?region=eu-west-1", "MANAGER_JOB_ENV_FILE=" + envFile,
		"DIR_SETTLE=1s", "ITEMQ_LOG_LEVEL=debug", "BUCKET_URL=x", "KAFKA_BROKERS=y", "REDIS_PASSWORD=secret",
	}
	c, err := loadConfig(environ)
	if err != nil {
		t.Fatal(err)
	}
	env := c.executorEnv(environ)
	for _, want := range []string{"PATH=/usr/bin", "AWS_REGION=eu-west-1", "OUTPUT_URL=s3://out?region=eu-west-1", "THUMB_WIDTH=640", "QUOTED=a b"} {
		if !slices.Contains(env, want) {
			t.Errorf("executor env lacks %q: %q", want, env)
		}
	}
	for _, kv := range env {
		for _, p := range []string{"MANAGER_", "DIR_", "ITEMQ_", "BUCKET_", "KAFKA_", "REDIS_"} {
			if strings.HasPrefix(kv, p) {
				t.Errorf("executor env has the manager's %q", kv)
			}
		}
	}
	if c.MaxActive < 1 || c.Queue != "default" || c.Resync.Seconds() != 30 {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range [][]string{
		{"MANAGER_QUEUE=Not_A_Label"},
		{"MANAGER_MAX_ATTEMPTS=0"},
		{"MANAGER_TARGET_UTILIZATION=1.5"},
		{"MANAGER_TARGET_WAIT=-1s"},
		{"MANAGER_POOL_OWNER=cm"}, // without the pool on Kubernetes
		{"MANAGER_TARGET_WAIT=1"}, // no unit
		{"MANAGER_MIN_ACTIVE=9", "MANAGER_MAX_ACTIVE=2"},
		{"MANAGER_RESYNC=soon"},
		{"MANAGER_PRIORITY_LOW_SHARE=1.5"},
		{"MANAGER_FAIR_KEY_CAP=2"}, // without MANAGER_FAIR_KEY
		{"MANAGER_FAIR_WEIGHTS=a=2"},
		{"MANAGER_FAIR_KEY=tenant", "MANAGER_FAIR_WEIGHTS=a=0"},
		{"MANAGER_FAIR_KEY=tenant", "MANAGER_FAIR_WEIGHTS=a"},
	} {
		if _, err := loadConfig(append(slices.Clone(environ), bad...)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if c, err := loadConfig(append(slices.Clone(environ), "MANAGER_TARGET_WAIT=1500ms")); err != nil || c.TargetWait != 1500*time.Millisecond {
		t.Errorf("MANAGER_TARGET_WAIT=1500ms: %v %v", c.TargetWait, err)
	}
	c, err = loadConfig(append(slices.Clone(environ), "MANAGER_FAIR_KEY=tenant", "MANAGER_FAIR_WEIGHTS=gold=3, free=0.5"))
	if err != nil || c.weights["gold"] != 3 || c.weights["free"] != 0.5 {
		t.Errorf("weights: %v %v", c.weights, err)
	}
	if _, err := loadConfig([]string{"MANAGER_COMMAND=x"}); err == nil || !strings.Contains(err.Error(), "MANAGER_SOURCE is required") {
		t.Errorf("missing source: %v", err)
	}
	// Commands are resolved at start-up: relative to the working directory
	// (attempts run elsewhere), on PATH, or an error naming the command.
	c, err = loadConfig(append(slices.Clone(environ), "MANAGER_COMMAND=./config_test.go x", "MANAGER_RUNNER=local"))
	if err == nil || !strings.Contains(err.Error(), "./config_test.go") {
		t.Errorf("a non-executable file was accepted as the command: %v", err)
	}
	c, err = loadConfig(append(slices.Clone(environ), `MANAGER_STEPS=[["true"], "sh -c exit"]`, "MANAGER_COMMAND="))
	if err != nil || !filepath.IsAbs(c.steps[0][0]) || !filepath.IsAbs(c.steps[1][0]) || c.steps[1][1] != "-c" {
		t.Errorf("steps not resolved: %q, %v", c.steps, err)
	}
	if _, err := loadConfig(append(slices.Clone(environ), "MANAGER_COMMAND=no-such-executor-anywhere")); err == nil || !strings.Contains(err.Error(), "no-such-executor-anywhere") {
		t.Errorf("a missing command was accepted: %v", err)
	}
}

func TestOpenSourceURLs(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	c := &Config{Resync: 1}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.mp4"), nil, 0o644)
	src, closeSrc, err := openSource(ctx, "dir://"+dir+"?pattern=*.mp4&settle=0s", nil, c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	// The query's settings reached the driver: a.mp4 is listed at once
	// (settle 0s), b.txt is not (pattern).
	os.WriteFile(filepath.Join(dir, "b.txt"), nil, 0o644)
	testutil.Eventually(t, 10*time.Second, "a.mp4 listed", func() error {
		names, err := src.List(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"a.mp4"}) {
			return fmt.Errorf("listed %q", names)
		}
		return nil
	})
	if _, _, err := openSource(ctx, "mem://q", nil, c, log); err != nil {
		t.Errorf("mem:// source: %v", err)
	}
	for raw, want := range map[string]string{
		"ftp://x":        "unsupported scheme",
		"kafka://b:9092": "want kafka://",
		"redis://r:6379": "want redis",
		"dir://host/x":   "no host",
	} {
		_, cl, err := openSource(ctx, raw, nil, c, log)
		if err == nil {
			cl()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("openSource(%q) = %v, want %q", raw, err, want)
		}
	}
	if got := queryEnv(mustURL(t, "dir:///x?pattern=*.mp4&on-done=keep"), "DIR_"); !slices.Contains(got, "DIR_PATTERN=*.mp4") || !slices.Contains(got, "DIR_ON_DONE=keep") {
		t.Errorf("queryEnv = %q", got)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// redis:// runs the Redis driver in the manager: the URL's user, password,
// database and query (stream=, group=, other REDIS_* keys) reach it.
func TestOpenRedisSource(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{Username: "u", Password: "p@ss%",
		Config: []string{"user default off", "user u on >p@ss% ~* &* +@all"}})
	ctx := context.Background()
	opts := srv.Options()
	opts.DB = 2
	db2 := redis.NewClient(opts)
	defer db2.Close()
	id, err := db2.XAdd(ctx, &redis.XAddArgs{Stream: "jobs", Values: []string{"data", `{"n":1}`}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("u", "p@ss%"), Host: srv.Addr, Path: "/2",
		RawQuery: "stream=jobs&group=g1&json_field=data&consumer=m0"}
	raw := u.String()
	src, closeSrc, err := openSource(ctx, raw, nil, &Config{Resync: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeSrc()
	testutil.Eventually(t, 10*time.Second, "entry listed", func() error {
		names, err := src.List(ctx)
		if err != nil {
			return err
		}
		if !slices.Equal(names, []string{"jobs/" + id}) {
			return fmt.Errorf("listed %q", names)
		}
		return nil
	})
	if gs, err := db2.XInfoGroups(ctx, "jobs").Result(); err != nil || len(gs) != 1 || gs[0].Name != "g1" {
		t.Fatalf("groups: %v %v", gs, err)
	}
}

// Executors get EXECUTOR_INPUT_ALLOW: MANAGER_INPUT_ALLOW plus the
// in-process source's own location; an explicit job variable wins.
func TestExecutorInputAllow(t *testing.T) {
	base := []string{"MANAGER_COMMAND=true", "MANAGER_STATE_DIR=/tmp/s"}
	for _, c := range []struct {
		env  []string
		want string // "" means unset
	}{
		{[]string{"MANAGER_SOURCE=dir:///data/videos?pattern=*.mp4"}, "file:///data/videos/"},
		{[]string{"MANAGER_SOURCE=dir:///data/videos/", "MANAGER_INPUT_ALLOW=https://cdn.example.com/"}, "https://cdn.example.com/,file:///data/videos/"},
		{[]string{"MANAGER_SOURCE=s3://media?region=eu-west-1", "BUCKET_PREFIX=incoming/"}, "s3://media/incoming/?region=eu-west-1"},
		{[]string{"MANAGER_SOURCE=s3://media?region=eu-west-1", "BUCKET_PREFIX=cam-"}, "s3://media?region=eu-west-1"},
		{[]string{"MANAGER_SOURCE=file:///srv/in", "BUCKET_PREFIX=a/b/c"}, "file:///srv/in/a/b/"},
		{[]string{"MANAGER_SOURCE=http://127.0.0.1:8080"}, ""},
		{[]string{"MANAGER_SOURCE=http://127.0.0.1:8080", "MANAGER_INPUT_ALLOW=file:///data/"}, "file:///data/"},
		{[]string{"MANAGER_SOURCE=kafka://127.0.0.1:9092/jobs"}, ""},
		{[]string{"MANAGER_SOURCE=dir:///data", "MANAGER_INPUT_ALLOW=*, file:///x/"}, "*"},
		{[]string{"MANAGER_SOURCE=dir:///data", "MANAGER_JOB_ENV_EXECUTOR_INPUT_ALLOW=file:///other/"}, "file:///other/"},
	} {
		cfg, err := loadConfig(append(slices.Clone(base), c.env...))
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		got, set := cfg.jobEnv["EXECUTOR_INPUT_ALLOW"]
		if got != c.want || set != (c.want != "") {
			t.Errorf("%q: EXECUTOR_INPUT_ALLOW = %q (set %v), want %q", c.env, got, set, c.want)
		}
	}
}

// A wrong MANAGER_INPUT_ALLOW is refused at start, with the setting and
// the entry named (before, every executor refused it: every item that
// named an input was dead-lettered).
func TestInputAllowCheckedAtStart(t *testing.T) {
	base := []string{"MANAGER_SOURCE=http://127.0.0.1:8080", "MANAGER_COMMAND=true", "MANAGER_STATE_DIR=/tmp/s"}
	for _, c := range []struct{ env, want string }{
		{"MANAGER_INPUT_ALLOW=ftp://files.example.com/", `MANAGER_INPUT_ALLOW (or MANAGER_JOB_ENV_EXECUTOR_INPUT_ALLOW): EXECUTOR_INPUT_ALLOW: "ftp://files.example.com/": unsupported scheme`},
		{"MANAGER_INPUT_ALLOW=data/videos", `"data/videos": unsupported scheme`},
		{"MANAGER_INPUT_ALLOW=https:///pub", `"https:///pub": no host`},
		{"MANAGER_JOB_ENV_EXECUTOR_INPUT_ALLOW=s3:///in", `"s3:///in": no bucket`},
	} {
		_, err := loadConfig(append(slices.Clone(base), c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.env, err, c.want)
		}
	}
}

// A manager listening beyond loopback needs a token, or an explicit
// MANAGER_ALLOW_UNAUTHENTICATED=true.
func TestTokenBeyondLoopback(t *testing.T) {
	base := []string{"MANAGER_SOURCE=dir:///tmp", "MANAGER_COMMAND=true", "MANAGER_STATE_DIR=/tmp/s"}
	for _, c := range []struct {
		env []string
		ok  bool
	}{
		{nil, true}, // the default, 127.0.0.1:8081
		{[]string{"MANAGER_ADDR=localhost:9"}, true},
		{[]string{"MANAGER_ADDR=[::1]:9"}, true},
		{[]string{"MANAGER_ADDR=0.0.0.0:8081"}, false},
		{[]string{"MANAGER_ADDR=:8081"}, false},
		{[]string{"MANAGER_ADDR=10.1.2.3:8081"}, false},
		{[]string{"MANAGER_ADDR=0.0.0.0:8081", "MANAGER_TOKEN=t"}, true},
		{[]string{"MANAGER_ADDR=0.0.0.0:8081", "MANAGER_ALLOW_UNAUTHENTICATED=true"}, true},
	} {
		_, err := loadConfig(append(slices.Clone(base), c.env...))
		if (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok=%v", c.env, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "MANAGER_ALLOW_UNAUTHENTICATED") {
			t.Errorf("%q: the error does not say how to proceed: %v", c.env, err)
		}
	}
}

// On Kubernetes the Jobs run on the cluster's nodes: MANAGER_MAX_ACTIVE
// does not default to the manager's CPU count there.
func TestMaxActiveDefault(t *testing.T) {
	base := []string{"MANAGER_SOURCE=dir:///tmp", "MANAGER_COMMAND=true", "MANAGER_STATE_DIR=/tmp/s"}
	for _, c := range []struct {
		env  []string
		want int
	}{
		{nil, runtime.NumCPU()},
		{[]string{"MANAGER_RUNNER=kubernetes"}, DefaultKubeMaxActive},
		{[]string{"MANAGER_RUNNER=kubernetes", "MANAGER_MAX_ACTIVE=7"}, 7},
	} {
		cfg, err := loadConfig(append(slices.Clone(base), c.env...))
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		if cfg.MaxActive != c.want {
			t.Errorf("%q: MANAGER_MAX_ACTIVE %d, want %d", c.env, cfg.MaxActive, c.want)
		}
	}
}
