package managercmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/inputallow"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/pool"
	"github.com/itemq/itemq/itemapi"
)

// Config is the manager's configuration, from MANAGER_* variables (and the
// shared ITEMQ_LOG_*). The README's table documents each.
type Config struct {
	Queue  string `env:"MANAGER_QUEUE" envDefault:"default"`
	Source string `env:"MANAGER_SOURCE"`
	Runner string `env:"MANAGER_RUNNER" envDefault:"local"`

	// Execution: "jobs" (a process, container or Job per item) or "pool"
	// (long-running workers take item after item; docs/pool.md).
	Execution    string        `env:"MANAGER_EXECUTION" envDefault:"jobs"`
	PoolToken    string        `env:"MANAGER_POOL_TOKEN"`
	PoolURL      string        `env:"MANAGER_POOL_URL"`
	PoolLeaseTTL time.Duration `env:"MANAGER_POOL_LEASE_TTL" envDefault:"15s"`
	PoolOwner    string        `env:"MANAGER_POOL_OWNER"`

	Command    string `env:"MANAGER_COMMAND"`
	Steps      string `env:"MANAGER_STEPS"`
	JobEnvFile string `env:"MANAGER_JOB_ENV_FILE"`

	MaxActive         int           `env:"MANAGER_MAX_ACTIVE"`
	MinActive         int           `env:"MANAGER_MIN_ACTIVE" envDefault:"1"`
	TargetUtilization float64       `env:"MANAGER_TARGET_UTILIZATION" envDefault:"0.9"`
	DrainTime         time.Duration `env:"MANAGER_DRAIN_TIME" envDefault:"5s"`
	ScaleDownDelay    time.Duration `env:"MANAGER_SCALE_DOWN_DELAY"` // default 30s, 1s with the pool, 4s with the pool and a target wait (manager.Config)
	TargetWait        time.Duration `env:"MANAGER_TARGET_WAIT"`
	CreateRate        float64       `env:"MANAGER_CREATE_RATE" envDefault:"0"`
	CreateBurst       int           `env:"MANAGER_CREATE_BURST" envDefault:"100"`
	DispatchWorkers   int           `env:"MANAGER_DISPATCH_WORKERS" envDefault:"8"`

	// Fair dispatch (docs/manager.md#fair-dispatch).
	PriorityField string  `env:"MANAGER_PRIORITY_FIELD"`
	PriorityShare float64 `env:"MANAGER_PRIORITY_LOW_SHARE" envDefault:"0.1"`
	FairKey       string  `env:"MANAGER_FAIR_KEY"`
	FairWeights   string  `env:"MANAGER_FAIR_WEIGHTS"`
	FairKeyCap    int     `env:"MANAGER_FAIR_KEY_CAP" envDefault:"0"`

	MaxAttempts     int           `env:"MANAGER_MAX_ATTEMPTS" envDefault:"3"`
	RetryBackoff    time.Duration `env:"MANAGER_RETRY_BACKOFF" envDefault:"1s"`
	RetryBackoffMax time.Duration `env:"MANAGER_RETRY_BACKOFF_MAX" envDefault:"1m"`
	JobTimeout      time.Duration `env:"MANAGER_JOB_TIMEOUT" envDefault:"0s"`
	Grace           time.Duration `env:"MANAGER_GRACE" envDefault:"10s"`

	StateDir    string        `env:"MANAGER_STATE_DIR"`
	StateFsync  bool          `env:"MANAGER_STATE_FSYNC" envDefault:"true"`
	WorkDir     string        `env:"MANAGER_WORK_DIR"`
	LogMaxBytes int64         `env:"MANAGER_JOB_LOG_MAX_BYTES" envDefault:"1048576"`
	Resync      time.Duration `env:"MANAGER_RESYNC" envDefault:"30s"`
	Retention   time.Duration `env:"MANAGER_RETENTION" envDefault:"168h"`

	Addr  string `env:"MANAGER_ADDR" envDefault:"127.0.0.1:8081"`
	Token string `env:"MANAGER_TOKEN"`
	// AllowUnauthenticated lets a manager listen beyond loopback without
	// MANAGER_TOKEN (anyone who reaches it may submit, cancel and retry).
	AllowUnauthenticated bool `env:"MANAGER_ALLOW_UNAUTHENTICATED" envDefault:"false"`
	// InputAllow: where executors may read an item's data.url and
	// data.path, besides the in-process source's own location (passed to
	// every executor as EXECUTOR_INPUT_ALLOW; docs/security.md).
	InputAllow string `env:"MANAGER_INPUT_ALLOW"`
	ReadToken  string `env:"MANAGER_READ_TOKEN"`
	// Dashboard serves the web UI at / and /ui/ on MANAGER_ADDR.
	Dashboard bool `env:"MANAGER_DASHBOARD" envDefault:"true"`
	// IdempotencyTTL: how long an Idempotency-Key of POST /v1/jobs is
	// remembered (records in MANAGER_STATE_DIR).
	IdempotencyTTL time.Duration `env:"MANAGER_IDEMPOTENCY_TTL" envDefault:"24h"`

	// Completion webhooks (docs/manager.md#webhooks).
	WebhookURL        string        `env:"MANAGER_WEBHOOK_URL"`
	WebhookSecret     string        `env:"MANAGER_WEBHOOK_SECRET"`
	WebhookTimeout    time.Duration `env:"MANAGER_WEBHOOK_TIMEOUT" envDefault:"10s"`
	WebhookWorkers    int           `env:"MANAGER_WEBHOOK_WORKERS" envDefault:"8"`
	WebhookMaxPending int           `env:"MANAGER_WEBHOOK_MAX_PENDING" envDefault:"100000"`
	WebhookReplay     time.Duration `env:"MANAGER_WEBHOOK_REPLAY" envDefault:"1h"`
	WebhookBackoffMax time.Duration `env:"MANAGER_WEBHOOK_BACKOFF_MAX" envDefault:"5m"`
	MaxSubmitBytes    int64         `env:"MANAGER_MAX_SUBMIT_BYTES"`
	// Server bounds the status API's connections (ITEMQ_READ_TIMEOUT…).
	Server httpapi.ServerConfig

	// Kube: MANAGER_JOB_TEMPLATE, MANAGER_NAMESPACE, MANAGER_JOB_TTL,
	// MANAGER_KUBE_QPS/BURST, MANAGER_LEADER_ELECT… (kube.go).
	Kube KubeConfig
	// Container: MANAGER_IMAGE, MANAGER_CONTAINER_* (container.go).
	Container ContainerConfig

	LogLevel  string `env:"ITEMQ_LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"ITEMQ_LOG_FORMAT" envDefault:"json"`

	// Derived.
	steps   [][]string
	jobEnv  map[string]string
	weights map[string]float64
}

// DefaultKubeMaxActive is MANAGER_MAX_ACTIVE's default with the
// Kubernetes runner (docs/kubernetes.md, "How many Jobs at once").
const DefaultKubeMaxActive = 100

// JobEnvPrefix marks the manager's variables that go to every executor,
// without the prefix.
const JobEnvPrefix = "MANAGER_JOB_ENV_"

func loadConfig(environ []string) (*Config, error) {
	var c Config
	if err := config.Parse(&c, environ); err != nil {
		return nil, err
	}
	if err := c.validate(environ); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return &c, nil
}

func (c *Config) validate(environ []string) error {
	if err := runner.ValidateQueueName(c.Queue); err != nil {
		return fmt.Errorf("MANAGER_QUEUE: %w", err)
	}
	if c.Source == "" {
		return fmt.Errorf("MANAGER_SOURCE is required: an ambassador URL (http://127.0.0.1:8080) or an in-process source (dir:///path?pattern=*.mp4)")
	}
	if c.MaxActive == 0 {
		c.MaxActive = runtime.NumCPU()
		if c.Runner == "kubernetes" {
			// The Jobs run on the cluster's nodes, not the manager's: the
			// manager's CPU count says nothing of them. KEDA ScaledJob's
			// default maxReplicaCount; set it from the cluster (docs).
			c.MaxActive = DefaultKubeMaxActive
		}
	}
	switch {
	case c.MaxActive < 0:
		return fmt.Errorf("MANAGER_MAX_ACTIVE=%d: must be positive", c.MaxActive)
	case c.MinActive < 0 || c.MinActive > c.MaxActive:
		return fmt.Errorf("MANAGER_MIN_ACTIVE=%d: must be between 0 and MANAGER_MAX_ACTIVE (%d)", c.MinActive, c.MaxActive)
	case c.TargetUtilization <= 0 || c.TargetUtilization > 1:
		return fmt.Errorf("MANAGER_TARGET_UTILIZATION=%v: must be in (0, 1]", c.TargetUtilization)
	case c.TargetWait < 0:
		return fmt.Errorf("MANAGER_TARGET_WAIT=%v: must be ≥ 0 (0: size for MANAGER_TARGET_UTILIZATION)", c.TargetWait)
	case c.MaxAttempts < 1:
		return fmt.Errorf("MANAGER_MAX_ATTEMPTS=%d: must be at least 1", c.MaxAttempts)
	case c.CreateRate < 0:
		return fmt.Errorf("MANAGER_CREATE_RATE=%v: must be ≥ 0 (0: no limit)", c.CreateRate)
	case c.Resync <= 0:
		return fmt.Errorf("MANAGER_RESYNC=%v: must be positive", c.Resync)
	case c.Server.Validate() != nil:
		return c.Server.Validate()
	case c.MaxSubmitBytes < 0 || c.MaxSubmitBytes > itemapi.MaxDataBytes:
		return fmt.Errorf("MANAGER_MAX_SUBMIT_BYTES=%d: must be at most %d, the item data limit every executor accepts (0: that limit)", c.MaxSubmitBytes, itemapi.MaxDataBytes)
	case c.WebhookURL != "" && !strings.HasPrefix(c.WebhookURL, "http://") && !strings.HasPrefix(c.WebhookURL, "https://"):
		return fmt.Errorf("MANAGER_WEBHOOK_URL=%q: want an http:// or https:// URL", c.WebhookURL)
	case c.WebhookURL != "" && (c.WebhookTimeout <= 0 || c.WebhookWorkers < 1 || c.WebhookMaxPending < 1 || c.WebhookReplay < 0 || c.WebhookBackoffMax <= 0):
		return fmt.Errorf("MANAGER_WEBHOOK_TIMEOUT, _BACKOFF_MAX must be positive, _WORKERS and _MAX_PENDING at least 1, _REPLAY ≥ 0")
	case c.WebhookSecret != "" && c.WebhookURL == "":
		return fmt.Errorf("MANAGER_WEBHOOK_SECRET is set but MANAGER_WEBHOOK_URL is not")
	case c.IdempotencyTTL <= 0:
		return fmt.Errorf("MANAGER_IDEMPOTENCY_TTL=%v: must be positive", c.IdempotencyTTL)
	case c.ReadToken != "" && c.Token == "":
		return fmt.Errorf("MANAGER_READ_TOKEN is set but MANAGER_TOKEN is not: anyone could change what viewers need a token to see; set MANAGER_TOKEN too")
	case c.PriorityShare < 0 || c.PriorityShare > 1:
		return fmt.Errorf("MANAGER_PRIORITY_LOW_SHARE=%v: must be in [0, 1] (0: strict priority)", c.PriorityShare)
	case c.FairKeyCap < 0:
		return fmt.Errorf("MANAGER_FAIR_KEY_CAP=%d: must be ≥ 0 (0: no cap)", c.FairKeyCap)
	case c.FairWeights != "" && c.FairKey == "":
		return fmt.Errorf("MANAGER_FAIR_WEIGHTS is set but MANAGER_FAIR_KEY is not: the weights are of that key's values")
	case c.FairKeyCap > 0 && c.FairKey == "":
		return fmt.Errorf("MANAGER_FAIR_KEY_CAP is set but MANAGER_FAIR_KEY is not: the cap is per value of that key")
	case c.Execution != "jobs" && c.Execution != "pool":
		return fmt.Errorf("MANAGER_EXECUTION=%q: want jobs (a process, container or Job per item) or pool (long-running workers; docs/pool.md)", c.Execution)
	case c.Execution == "pool" && c.Runner != "local" && c.Runner != "kubernetes":
		return fmt.Errorf("MANAGER_EXECUTION=pool works with MANAGER_RUNNER=local or kubernetes, not %s", c.Runner)
	case c.Execution == "pool" && len(c.PoolToken) < pool.MinTokenLen:
		return fmt.Errorf("MANAGER_EXECUTION=pool needs MANAGER_POOL_TOKEN, at least %d characters: the workers' bearer token (they are handed items and the executors' environment)", pool.MinTokenLen)
	case c.Execution == "pool" && c.Runner == "kubernetes" && c.PoolURL == "":
		return fmt.Errorf("MANAGER_EXECUTION=pool on Kubernetes needs MANAGER_POOL_URL: the manager's address as its worker pods reach it (e.g. http://itemq-manager.<namespace>.svc:8081)")
	case c.Execution == "pool" && c.PoolURL != "" && !strings.HasPrefix(c.PoolURL, "http://") && !strings.HasPrefix(c.PoolURL, "https://"):
		return fmt.Errorf("MANAGER_POOL_URL=%q: want an http:// or https:// URL", c.PoolURL)
	case c.PoolOwner != "" && (c.Execution != "pool" || c.Runner != "kubernetes"):
		return fmt.Errorf("MANAGER_POOL_OWNER is for MANAGER_EXECUTION=pool with MANAGER_RUNNER=kubernetes: the ConfigMap that owns the workers' Deployment")
	case c.PoolOwner != "" && len(validation.IsDNS1123Subdomain(c.PoolOwner)) > 0:
		return fmt.Errorf("MANAGER_POOL_OWNER=%q: not a ConfigMap name (%s)", c.PoolOwner, strings.Join(validation.IsDNS1123Subdomain(c.PoolOwner), "; "))
	case c.Execution == "pool" && c.PoolLeaseTTL < time.Second:
		return fmt.Errorf("MANAGER_POOL_LEASE_TTL=%v: at least 1s", c.PoolLeaseTTL)
	case c.DispatchWorkers < 1:
		return fmt.Errorf("MANAGER_DISPATCH_WORKERS=%d: must be at least 1", c.DispatchWorkers)
	case c.Token == "" && !c.AllowUnauthenticated && !loopbackAddr(c.Addr):
		return fmt.Errorf("MANAGER_ADDR=%s listens beyond this machine's loopback but MANAGER_TOKEN is not set: anyone who reaches it could submit jobs (whose executors read what the items name), cancel and retry. Set MANAGER_TOKEN, listen on 127.0.0.1, or set MANAGER_ALLOW_UNAUTHENTICATED=true if a proxy in front of it authenticates (docs/security.md)", c.Addr)
	}
	if c.StateDir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return fmt.Errorf("MANAGER_STATE_DIR is not set and there is no home directory: %w", err)
			}
			base = filepath.Join(home, ".local", "state")
		}
		c.StateDir = filepath.Join(base, "itemq", c.Queue)
	}
	steps, err := parseSteps(c.Command, c.Steps)
	if err != nil {
		return err
	}
	c.steps = steps
	if c.Execution == "pool" {
		if err := pool.Validate(steps); err != nil {
			return err
		}
	}
	if c.weights, err = manager.ParseWeights(c.FairWeights); err != nil {
		return fmt.Errorf("MANAGER_FAIR_WEIGHTS: %w", err)
	}
	if c.Runner == "local" {
		// Attempts run in their own directories: resolve commands now,
		// against the manager's working directory and PATH, so that
		// MANAGER_COMMAND=bin/itemq-thumbnail works and a missing executor
		// stops the manager at once instead of failing every item.
		for i, argv := range c.steps {
			p, err := resolveCommand(argv[0])
			if err != nil {
				return fmt.Errorf("MANAGER_COMMAND/MANAGER_STEPS: %w", err)
			}
			c.steps[i] = append([]string{p}, argv[1:]...)
		}
	}
	c.jobEnv = config.WithPrefix(environ, JobEnvPrefix)
	if c.JobEnvFile != "" {
		fileEnv, err := readEnvFile(c.JobEnvFile)
		if err != nil {
			return err
		}
		for k, v := range fileEnv {
			if _, set := c.jobEnv[k]; !set { // MANAGER_JOB_ENV_* wins over the file
				c.jobEnv[k] = v
			}
		}
	}
	if _, set := c.jobEnv[runner.InputAllowEnv]; !set {
		allow, err := inputAllow(c.InputAllow, c.Source, environ)
		if err != nil {
			return err
		}
		if allow != "" {
			c.jobEnv[runner.InputAllowEnv] = allow
		}
	}
	// Checked here, not only by each executor: a wrong value would
	// otherwise dead-letter every item that names an input.
	if v, set := c.jobEnv[runner.InputAllowEnv]; set {
		if _, err := inputallow.Parse(v); err != nil {
			return fmt.Errorf("MANAGER_INPUT_ALLOW (or %s%s): %w", JobEnvPrefix, runner.InputAllowEnv, err)
		}
	}
	return nil
}

// loopbackAddr: addr (host:port) listens on a loopback address only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// inputAllow is EXECUTOR_INPUT_ALLOW for every executor: MANAGER_INPUT_ALLOW
// and the in-process source's own location (a dir:// source's directory, a
// bucket source's bucket and BUCKET_PREFIX). An ambassador's location is not
// known here: set MANAGER_INPUT_ALLOW to it.
func inputAllow(explicit, source string, environ []string) (string, error) {
	var out []string
	for _, e := range strings.Split(explicit, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if slices.Contains(out, "*") {
		return "*", nil
	}
	u, err := url.Parse(source)
	if err != nil {
		return "", nil // reported where the source is opened
	}
	switch u.Scheme {
	case "dir":
		if u.Path != "" {
			root := path.Clean(u.Path)
			if root != "/" {
				root += "/"
			}
			out = append(out, (&url.URL{Scheme: "file", Path: root}).String())
		}
	case "s3", "gs", "azblob", "file", "mem":
		prefix := config.WithPrefix(environ, "BUCKET_")["PREFIX"]
		// The prefix as a directory: "in/" allows in/…, "in-" the bucket's
		// root directory.
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			prefix = prefix[:i+1]
		} else {
			prefix = ""
		}
		own := source
		if prefix != "" {
			if own, err = itemapi.JoinObjectURL(source, prefix); err != nil {
				return "", fmt.Errorf("MANAGER_SOURCE with BUCKET_PREFIX=%q: %w", prefix, err)
			}
		}
		out = append(out, own)
	}
	return strings.Join(out, ","), nil
}

// parseSteps reads MANAGER_COMMAND (one argv) or MANAGER_STEPS (several).
// An argv is a JSON array of strings, or words separated by spaces (no
// quoting: use the JSON form for arguments with spaces). MANAGER_STEPS is a
// JSON array whose elements are argvs in either form.
func parseSteps(command, steps string) ([][]string, error) {
	switch {
	case command != "" && steps != "":
		return nil, fmt.Errorf("set MANAGER_COMMAND or MANAGER_STEPS, not both")
	case command != "":
		argv, err := parseArgv(command)
		if err != nil {
			return nil, fmt.Errorf("MANAGER_COMMAND: %w", err)
		}
		return [][]string{argv}, nil
	case steps != "":
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(steps), &raw); err != nil || len(raw) == 0 {
			return nil, fmt.Errorf(`MANAGER_STEPS: want a JSON array of commands, e.g. [["bin/itemq-thumbnail"], "bin/itemq-script -- ./stamp.sh"]`)
		}
		var out [][]string
		for i, r := range raw {
			var s string
			if json.Unmarshal(r, &s) == nil {
				argv, err := parseArgv(s)
				if err != nil {
					return nil, fmt.Errorf("MANAGER_STEPS[%d]: %w", i, err)
				}
				out = append(out, argv)
				continue
			}
			var argv []string
			if err := json.Unmarshal(r, &argv); err != nil || len(argv) == 0 || strings.TrimSpace(argv[0]) == "" ||
				slices.ContainsFunc(argv, func(a string) bool { return strings.ContainsRune(a, 0) }) {
				return nil, fmt.Errorf("MANAGER_STEPS[%d]: want a command string or a non-empty array of strings (no NUL bytes)", i)
			}
			out = append(out, argv)
		}
		return out, nil
	}
	return nil, nil
}

func parseArgv(s string) ([]string, error) {
	if strings.ContainsRune(s, 0) {
		return nil, fmt.Errorf("a NUL byte (no program can be started with it)")
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, fmt.Errorf("not a JSON array of strings: %w", err)
		}
		if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
			return nil, fmt.Errorf("empty command")
		}
		if slices.ContainsFunc(argv, func(a string) bool { return strings.ContainsRune(a, 0) }) {
			return nil, fmt.Errorf("a NUL byte (no program can be started with it)")
		}
		return argv, nil
	}
	argv := strings.Fields(s)
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return argv, nil
}

// resolveCommand finds an executable as a shell would (a name without "/"
// on PATH, else relative to the working directory) and makes it absolute.
func resolveCommand(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", name, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", name, err)
	}
	return abs, nil
}

// readEnvFile reads KEY=VALUE lines; blank lines and lines starting with #
// are skipped; an optional "export " prefix and matching quotes around the
// value are removed. Nothing is expanded.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("MANAGER_JOB_ENV_FILE: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsFunc(k, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return nil, fmt.Errorf("MANAGER_JOB_ENV_FILE %s:%d: want KEY=VALUE (a key without blanks or control characters)", path, n)
		}
		v = strings.TrimSpace(v)
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("MANAGER_JOB_ENV_FILE %s:%d: a NUL byte in the value of %s (no process environment can hold it)", path, n, k)
		}
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("MANAGER_JOB_ENV_FILE %s: %w", path, err)
	}
	return out, nil
}

// executorEnv is the environment of local executors: the manager's own,
// without the manager's and ambassadors' settings, plus the job env.
func (c *Config) executorEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MANAGER_") || strings.HasPrefix(k, "ITEMQ_") || strings.HasPrefix(k, "DIR_") ||
			strings.HasPrefix(k, "BUCKET_") || strings.HasPrefix(k, "KAFKA_") || strings.HasPrefix(k, "REDIS_") {
			continue
		}
		if _, override := c.jobEnv[k]; override {
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(c.jobEnv))
	for k := range c.jobEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+c.jobEnv[k])
	}
	return out
}
