package managercmd

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/blobsource"
	"github.com/itemq/itemq/internal/source/dirsource"
	"github.com/itemq/itemq/internal/source/kafkasource"
	"github.com/itemq/itemq/internal/source/redissource"
	"github.com/itemq/itemq/itemapi"
)

// openSource opens MANAGER_SOURCE: an ambassador's URL (http, https), or a
// source run inside the manager:
//
//	dir:///path?pattern=*.mp4&settle=2s        the directory driver (query keys are DIR_* settings)
//	s3://bucket?endpoint=…, gs://, azblob://,   the bucket driver (the whole URL is BUCKET_URL)
//	  file:///dir, mem://name
//	kafka://host:9092,host2:9092/topic1,topic2?group=g   the Kafka driver (query keys are KAFKA_* settings)
//	redis://[user:pass@]host:6379/0?stream=jobs&group=itemq   the Redis driver (rediss:// for TLS; stream= and
//	  list= name the streams and lists; other query keys are REDIS_* settings)
//
// Settings not in the URL come from the manager's environment (DIR_*,
// BUCKET_*, KAFKA_*, and the providers' credentials).
// It returns the source and a function that closes it.
func openSource(ctx context.Context, raw string, environ []string, cfg *Config, log *slog.Logger) (manager.Source, func(), error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("MANAGER_SOURCE %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		c, err := itemapi.NewClient(raw, itemapi.WithLogger(log), itemapi.WithPollInterval(cfg.Resync))
		if err != nil {
			return nil, nil, fmt.Errorf("MANAGER_SOURCE: %w", err)
		}
		return c, func() {}, nil
	case "dir":
		if u.Host != "" && u.Host != "localhost" {
			return nil, nil, fmt.Errorf("MANAGER_SOURCE %q: a dir URL has no host: dir:///absolute/path", raw)
		}
		env := append(append([]string(nil), environ...), "DIR_ROOT="+u.Path)
		return inProcess(ctx, cfg, append(env, queryEnv(u, "DIR_")...), log, dirsource.Open)
	case "s3", "gs", "azblob", "file", "mem":
		return inProcess(ctx, cfg, append(append([]string(nil), environ...), "BUCKET_URL="+raw), log, blobsource.Open)
	case "kafka":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return nil, nil, fmt.Errorf("MANAGER_SOURCE %q: want kafka://host:port[,host:port…]/topic[,topic…]?group=NAME", raw)
		}
		env := append(append([]string(nil), environ...), "KAFKA_BROKERS="+u.Host, "KAFKA_TOPICS="+strings.Trim(u.Path, "/"))
		return inProcess(ctx, cfg, append(env, queryEnv(u, "KAFKA_")...), log, kafkasource.Open)
	case "redis", "rediss":
		q := u.Query()
		for short, long := range map[string]string{"stream": "streams", "list": "lists"} {
			if v, ok := q[short]; ok {
				q[long] = append(q[long], v...)
				delete(q, short)
			}
		}
		if u.Host == "" || (q.Get("streams") == "" && q.Get("lists") == "") {
			return nil, nil, fmt.Errorf("MANAGER_SOURCE %q: want redis[s]://[user:password@]host:port[/db]?stream=NAME[&group=NAME] (or list=NAME)", raw)
		}
		env := append(append([]string(nil), environ...), "REDIS_ADDRS="+u.Host, "REDIS_STREAMS="+strings.Join(q["streams"], ","),
			"REDIS_LISTS="+strings.Join(q["lists"], ","))
		delete(q, "streams")
		delete(q, "lists")
		if db := strings.Trim(u.Path, "/"); db != "" {
			env = append(env, "REDIS_DB="+db)
		}
		if u.User != nil {
			pw, _ := u.User.Password()
			env = append(env, "REDIS_USERNAME="+u.User.Username(), "REDIS_PASSWORD="+pw)
		}
		if u.Scheme == "rediss" {
			env = append(env, "REDIS_TLS=true")
		}
		rest := *u
		rest.RawQuery = q.Encode()
		return inProcess(ctx, cfg, append(env, queryEnv(&rest, "REDIS_")...), log, redissource.Open)
	}
	return nil, nil, fmt.Errorf("MANAGER_SOURCE %q: unsupported scheme %q (want http, https, dir, s3, gs, azblob, file, mem, kafka, redis or rediss)", raw, u.Scheme)
}

func inProcess(ctx context.Context, cfg *Config, env []string, log *slog.Logger, open func(context.Context, []string, *slog.Logger) (*source.Source, error)) (manager.Source, func(), error) {
	src, err := open(ctx, env, log)
	if err != nil {
		return nil, nil, err
	}
	return &manager.InProcess{Src: src, PollInterval: cfg.Resync, Log: log}, func() { src.Close() }, nil
}

// queryEnv turns ?pattern=x&on_done=move into DIR_PATTERN=x, DIR_ON_DONE=move.
func queryEnv(u *url.URL, prefix string) []string {
	var out []string
	for k, vs := range u.Query() {
		if len(vs) == 0 {
			continue
		}
		out = append(out, prefix+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+vs[len(vs)-1])
	}
	return out
}
