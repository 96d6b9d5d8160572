package kafkasource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/config"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]string{"KAFKA_BROKERS= a:9092, b:9093 ,", "KAFKA_TOPICS=x,y", "KAFKA_GROUP=g"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Brokers, ",") != "a:9092,b:9093" || strings.Join(cfg.Topics, ",") != "x,y" {
		t.Fatalf("brokers %q topics %q", cfg.Brokers, cfg.Topics)
	}
	if cfg.MaxPending != 1000 || cfg.CommitInterval != time.Second || cfg.SessionTimeout != 45*time.Second || cfg.useTLS() {
		t.Fatalf("defaults: %+v", cfg)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = ParseConfig([]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_TLS_CA_FILE=" + ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.connOpts(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}

	for _, c := range []struct {
		env  []string
		want []string
	}{
		{nil, []string{"KAFKA_BROKERS is required", "KAFKA_TOPICS is required", "KAFKA_GROUP is required"}},
		{[]string{"KAFKA_BROKERS=nohost", "KAFKA_TOPICS=bad/topic", "KAFKA_GROUP=g"}, []string{`"nohost" is not host:port`, `only letters`}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_SASL_MECHANISM=gssapi"}, []string{`KAFKA_SASL_MECHANISM="gssapi"`}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"}, []string{"needs KAFKA_SASL_USER and KAFKA_SASL_PASSWORD"}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_SASL_USER=u"}, []string{"KAFKA_SASL_MECHANISM is not"}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_TLS_CERT_FILE=/c"}, []string{"go together", "KAFKA_TLS_CERT_FILE: stat /c"}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_MAX_PENDING=0", "KAFKA_COMMIT_INTERVAL=0s"}, []string{"KAFKA_MAX_PENDING=0", "KAFKA_COMMIT_INTERVAL=0s"}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x,dl", "KAFKA_GROUP=g", "KAFKA_DEAD_LETTER_TOPIC=dl"}, []string{"also in KAFKA_TOPICS"}},
		{[]string{"KAFKA_BROKERS=a:1", "KAFKA_TOPICS=x", "KAFKA_GROUP=g", "KAFKA_MAX_PENDING=many"}, []string{"KAFKA_MAX_PENDING", "many"}},
	} {
		_, err := ParseConfig(c.env)
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("%q: %v, want a config.ErrInvalid", c.env, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%q: error %q does not say %q", c.env, err, w)
			}
		}
	}
}
