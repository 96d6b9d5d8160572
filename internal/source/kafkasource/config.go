package kafkasource

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/itemq/itemq/internal/config"
)

// Config is the Kafka ambassador's configuration, read from KAFKA_*
// environment variables (see docs/kafka.md for the table).
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `env:"KAFKA_BROKERS"`
	// Topics are consumed in the group; their messages are the items.
	Topics []string `env:"KAFKA_TOPICS"`
	// Group is the consumer group; its committed offsets are the progress.
	Group string `env:"KAFKA_GROUP"`

	SASLMechanism string `env:"KAFKA_SASL_MECHANISM"` // "", plain, scram-sha-256, scram-sha-512
	SASLUser      string `env:"KAFKA_SASL_USER"`
	SASLPassword  string `env:"KAFKA_SASL_PASSWORD"`

	TLS                   bool   `env:"KAFKA_TLS"`
	TLSCAFile             string `env:"KAFKA_TLS_CA_FILE"`
	TLSCertFile           string `env:"KAFKA_TLS_CERT_FILE"`
	TLSKeyFile            string `env:"KAFKA_TLS_KEY_FILE"`
	TLSInsecureSkipVerify bool   `env:"KAFKA_TLS_INSECURE_SKIP_VERIFY"`

	// MaxPending bounds each partition's window: the messages from the
	// lowest one not yet acknowledged to the newest one consumed.
	MaxPending int `env:"KAFKA_MAX_PENDING" envDefault:"1000"`
	// DeadLetterTopic receives the messages acknowledged with
	// outcome=failed (none when empty).
	DeadLetterTopic string `env:"KAFKA_DEAD_LETTER_TOPIC"`
	// SubmitTopic enables POST /v1/items: the body is produced here.
	SubmitTopic string `env:"KAFKA_SUBMIT_TOPIC"`
	// CommitInterval is how often the acknowledged prefix of each
	// partition is committed (also on revoke and on shutdown).
	CommitInterval time.Duration `env:"KAFKA_COMMIT_INTERVAL" envDefault:"1s"`
	// SessionTimeout is the group session timeout: how long the group
	// waits for a member that stopped heartbeating (crashed) before its
	// partitions go to the others.
	SessionTimeout time.Duration `env:"KAFKA_SESSION_TIMEOUT" envDefault:"45s"`
	// InstanceID, when set, makes this ambassador a static member of the
	// group (KIP-345): restarted with the same id (the pod name), it takes
	// its partitions back at once instead of after KAFKA_SESSION_TIMEOUT.
	// Two running ambassadors must never share one.
	InstanceID string `env:"KAFKA_INSTANCE_ID"`
	// ClientID names this client in the brokers' logs and metrics.
	ClientID string `env:"KAFKA_CLIENT_ID" envDefault:"itemq-kafka"`
}

// SASL mechanisms KAFKA_SASL_MECHANISM accepts.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

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

func (c *Config) normalize() {
	clean := func(in []string) []string {
		var out []string
		for _, s := range in {
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	c.Brokers = clean(c.Brokers)
	c.Topics = clean(c.Topics)
	c.Group = strings.TrimSpace(c.Group)
	c.SASLMechanism = strings.ToLower(strings.TrimSpace(c.SASLMechanism))
	c.DeadLetterTopic = strings.TrimSpace(c.DeadLetterTopic)
	c.SubmitTopic = strings.TrimSpace(c.SubmitTopic)
}

// Validate checks the configuration and reports every problem at once, one
// per variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Brokers) == 0 {
		bad("KAFKA_BROKERS is required: a comma-separated list of host:port seed brokers")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			bad("KAFKA_BROKERS: %q is not host:port", b)
		}
	}
	if len(c.Topics) == 0 {
		bad("KAFKA_TOPICS is required: a comma-separated list of topics whose messages are the items")
	}
	for _, t := range c.Topics {
		if err := validTopic(t); err != nil {
			bad("KAFKA_TOPICS: %v", err)
		}
	}
	if c.Group == "" {
		bad("KAFKA_GROUP is required: the consumer group whose committed offsets record progress")
	}
	if c.DeadLetterTopic != "" {
		if err := validTopic(c.DeadLetterTopic); err != nil {
			bad("KAFKA_DEAD_LETTER_TOPIC: %v", err)
		} else if slices.Contains(c.Topics, c.DeadLetterTopic) {
			bad("KAFKA_DEAD_LETTER_TOPIC=%s is also in KAFKA_TOPICS: failed messages would come back as items", c.DeadLetterTopic)
		}
	}
	if c.SubmitTopic != "" {
		if err := validTopic(c.SubmitTopic); err != nil {
			bad("KAFKA_SUBMIT_TOPIC: %v", err)
		}
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			bad("KAFKA_SASL_USER/KAFKA_SASL_PASSWORD are set but KAFKA_SASL_MECHANISM is not (want %s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUser == "" || c.SASLPassword == "" {
			bad("KAFKA_SASL_MECHANISM=%s needs KAFKA_SASL_USER and KAFKA_SASL_PASSWORD", c.SASLMechanism)
		}
	default:
		bad("KAFKA_SASL_MECHANISM=%q: want %s, %s or %s", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together (a client certificate and its key)")
	}
	for _, f := range []struct{ name, path string }{
		{"KAFKA_TLS_CA_FILE", c.TLSCAFile}, {"KAFKA_TLS_CERT_FILE", c.TLSCertFile}, {"KAFKA_TLS_KEY_FILE", c.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if c.MaxPending <= 0 {
		bad("KAFKA_MAX_PENDING=%d: must be at least 1", c.MaxPending)
	}
	if c.CommitInterval <= 0 {
		bad("KAFKA_COMMIT_INTERVAL=%v: must be positive (e.g. 1s)", c.CommitInterval)
	}
	if c.SessionTimeout <= 0 {
		bad("KAFKA_SESSION_TIMEOUT=%v: must be positive (e.g. 45s)", c.SessionTimeout)
	}
	if len(errs) > 0 {
		return config.Invalid(fmt.Errorf("configuration: %w", errors.Join(errs...)))
	}
	return nil
}

// validTopic applies Kafka's rules for topic names: 1 to 249 characters of
// [a-zA-Z0-9._-], not "." or "..".
func validTopic(t string) error {
	if t == "" || len(t) > 249 {
		return fmt.Errorf("topic %q: a topic name has 1 to 249 characters", t)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic %q is not a valid name", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q: only letters, digits, '.', '_' and '-' are allowed", t)
		}
	}
	return nil
}

// useTLS is whether connections use TLS: KAFKA_TLS, or any TLS file given.
func (c *Config) useTLS() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSInsecureSkipVerify
}

// connOpts are the kgo options for reaching the brokers: seeds, client id,
// TLS and SASL.
func (c *Config) connOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID)}
	if c.useTLS() {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, config.Invalid(err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.saslMechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	return config.ClientTLS("KAFKA_", c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSInsecureSkipVerify)
}

func (c *Config) saslMechanism() sasl.Mechanism {
	switch c.SASLMechanism {
	case SASLPlain:
		return plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}
