package redissource

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/config"
)

// Config is the Redis ambassador's configuration, read from REDIS_*
// environment variables (see docs/redis.md for the table).
type Config struct {
	// Addrs are the server's host:port: one for a standalone server, the
	// Sentinels with MasterName, or the seed nodes of a Cluster.
	Addrs []string `env:"REDIS_ADDRS" envDefault:"127.0.0.1:6379"`
	// MasterName, when set, makes Addrs the Sentinels of this master.
	MasterName string `env:"REDIS_MASTER_NAME"`
	// Cluster forces Cluster mode with a single seed address (it is chosen
	// anyway with several Addrs and no MasterName).
	Cluster          bool   `env:"REDIS_CLUSTER"`
	DB               int    `env:"REDIS_DB"`
	Username         string `env:"REDIS_USERNAME"`
	Password         string `env:"REDIS_PASSWORD"`
	SentinelPassword string `env:"REDIS_SENTINEL_PASSWORD"`

	TLS                   bool   `env:"REDIS_TLS"`
	TLSCAFile             string `env:"REDIS_TLS_CA_FILE"`
	TLSCertFile           string `env:"REDIS_TLS_CERT_FILE"`
	TLSKeyFile            string `env:"REDIS_TLS_KEY_FILE"`
	TLSInsecureSkipVerify bool   `env:"REDIS_TLS_INSECURE_SKIP_VERIFY"`

	// Streams are read in the consumer group Group; their entries are items.
	Streams []string `env:"REDIS_STREAMS"`
	// Lists are consumed with the reliable-queue pattern; their values are items.
	Lists []string `env:"REDIS_LISTS"`
	// Group is the streams' consumer group.
	Group string `env:"REDIS_GROUP" envDefault:"itemq"`
	// Consumer names this ambassador in the group and its lists'
	// processing lists; it must be stable across restarts (default: the
	// host name, which is the pod name on Kubernetes).
	Consumer string `env:"REDIS_CONSUMER"`
	// Start is where a new group starts: "0" (every entry already in the
	// stream) or "$" (only entries added from now on).
	Start string `env:"REDIS_START" envDefault:"0"`
	// Create creates missing streams and groups; when false, a missing one
	// fails readiness.
	Create bool `env:"REDIS_CREATE" envDefault:"true"`
	// ClaimIdle: pending entries of other consumers idle this long are
	// taken over (XAUTOCLAIM); this ambassador refreshes its own entries
	// well within it.
	ClaimIdle time.Duration `env:"REDIS_CLAIM_IDLE" envDefault:"1m"`
	// MaxPending bounds the items held (read, not yet acknowledged), over
	// all streams and lists: nothing more is read while it is full.
	MaxPending int `env:"REDIS_MAX_PENDING" envDefault:"1000"`
	// JSONField names a stream field holding the item data as a JSON object.
	JSONField string `env:"REDIS_JSON_FIELD"`
	// MaxItemBytes bounds one entry or value; larger ones are dead-lettered.
	MaxItemBytes int `env:"REDIS_MAX_ITEM_BYTES" envDefault:"1048576"`
	// DeadLetterSuffix names each stream's or list's dead-letter key: the
	// key followed by this suffix.
	DeadLetterSuffix string `env:"REDIS_DEAD_LETTER_SUFFIX" envDefault:":dead"`
	// Submit enables POST /v1/items: XADD to the first stream (or RPUSH to
	// the first list when there are no streams).
	Submit bool `env:"REDIS_SUBMIT" envDefault:"true"`
	// Block is how long one blocking read waits before it checks again.
	Block time.Duration `env:"REDIS_BLOCK" envDefault:"2s"`
}

// ParseConfig reads the configuration from an environment and validates it.
// Its errors are config.Invalid (the binary exits with code 2).
func ParseConfig(environ []string) (Config, error) {
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		return cfg, err
	}
	cfg.normalize()
	return cfg, cfg.Validate()
}

func clean(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *Config) normalize() {
	c.Addrs = clean(c.Addrs)
	c.Streams = clean(c.Streams)
	c.Lists = clean(c.Lists)
	c.Group = strings.TrimSpace(c.Group)
	c.Consumer = strings.TrimSpace(c.Consumer)
	c.Start = strings.TrimSpace(c.Start)
	if c.Consumer == "" {
		if h, err := os.Hostname(); err == nil {
			c.Consumer = h
		}
	}
}

// Validate checks the configuration and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Addrs) == 0 {
		bad("REDIS_ADDRS is required: host:port of the server (or the Sentinels, or Cluster seeds)")
	}
	for _, a := range c.Addrs {
		if i := strings.LastIndexByte(a, ':'); i <= 0 || i == len(a)-1 {
			bad("REDIS_ADDRS: %q is not host:port", a)
		}
	}
	if len(c.Streams) == 0 && len(c.Lists) == 0 {
		bad("REDIS_STREAMS or REDIS_LISTS is required: the keys whose entries or values are the items")
	}
	for _, s := range c.Streams {
		if slices.Contains(c.Lists, s) {
			bad("%q is in both REDIS_STREAMS and REDIS_LISTS", s)
		}
	}
	if c.DeadLetterSuffix == "" {
		bad("REDIS_DEAD_LETTER_SUFFIX must not be empty: the dead letters would go back to their own key")
	}
	for _, k := range append(slices.Clone(c.Streams), c.Lists...) {
		if slices.Contains(c.Streams, k+c.DeadLetterSuffix) || slices.Contains(c.Lists, k+c.DeadLetterSuffix) {
			bad("%s%s is both a dead-letter key and a consumed key", k, c.DeadLetterSuffix)
		}
	}
	if len(c.Streams) > 0 && c.Group == "" {
		bad("REDIS_GROUP must not be empty")
	}
	if c.Consumer == "" {
		bad("REDIS_CONSUMER is required (the host name is unknown)")
	}
	if c.Start != "0" && c.Start != "$" {
		bad("REDIS_START=%q: want 0 (every entry) or $ (new entries only)", c.Start)
	}
	if c.ClaimIdle < time.Second {
		bad("REDIS_CLAIM_IDLE=%v: must be at least 1s", c.ClaimIdle)
	}
	if c.MaxPending <= 0 {
		bad("REDIS_MAX_PENDING=%d: must be at least 1", c.MaxPending)
	}
	if c.MaxItemBytes <= 0 {
		bad("REDIS_MAX_ITEM_BYTES=%d: must be positive", c.MaxItemBytes)
	}
	if c.Block < 10*time.Millisecond {
		bad("REDIS_BLOCK=%v: must be at least 10ms", c.Block)
	}
	if c.DB < 0 {
		bad("REDIS_DB=%d: must not be negative", c.DB)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (a client certificate and its key)")
	}
	for _, f := range []struct{ name, path string }{
		{"REDIS_TLS_CA_FILE", c.TLSCAFile}, {"REDIS_TLS_CERT_FILE", c.TLSCertFile}, {"REDIS_TLS_KEY_FILE", c.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if len(errs) > 0 {
		return config.Invalid(fmt.Errorf("configuration: %w", errors.Join(errs...)))
	}
	return nil
}

func (c *Config) useTLS() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSInsecureSkipVerify
}

// options are the go-redis options: a standalone, Sentinel (failover) or
// Cluster client by the addresses and REDIS_MASTER_NAME.
func (c *Config) options() (*redis.UniversalOptions, error) {
	o := &redis.UniversalOptions{
		Addrs:            c.Addrs,
		MasterName:       c.MasterName,
		IsClusterMode:    c.Cluster,
		DB:               c.DB,
		Username:         c.Username,
		Password:         c.Password,
		SentinelPassword: c.SentinelPassword,
		ClientName:       "itemq-" + c.Consumer,
		// Blocking reads hold a connection each (one per key).
		PoolSize:              max(20, 2*(len(c.Streams)+len(c.Lists))+10),
		DialTimeout:           5 * time.Second,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		ContextTimeoutEnabled: true,
	}
	if c.useTLS() {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, config.Invalid(err)
		}
		o.TLSConfig = tc
	}
	return o, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	return config.ClientTLS("REDIS_", c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSInsecureSkipVerify)
}
