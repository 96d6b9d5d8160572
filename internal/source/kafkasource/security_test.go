package kafkasource

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// selfSigned makes a CA-less self-signed certificate for 127.0.0.1 and
// writes it (PEM) to a file that serves as KAFKA_TLS_CA_FILE.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, ca
}

func TestSASLAndTLS(t *testing.T) {
	srvTLS, caFile := selfSigned(t)
	c := newCluster(t, kfake.TLS(srvTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-secret"),
		kfake.Superuser("PLAIN", "plain-user", "plain-secret"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "s512-secret"))
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(b)
	c.clients(t, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism()))
	topic := c.topic(t, "sec", 1)
	names := c.produce(t, &kgo.Record{Topic: topic, Value: []byte(`{"secure":true}`)})

	for _, m := range []struct{ mech, user, pass string }{
		{SASLPlain, "plain-user", "plain-secret"},
		{SASLScramSHA256, "admin", "admin-secret"},
		{SASLScramSHA512, "scram512", "s512-secret"},
	} {
		t.Run(m.mech, func(t *testing.T) {
			cfg := c.config(topic)
			cfg.TLSCAFile = caFile
			cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = m.mech, m.user, m.pass
			d := open(t, cfg)
			eventually(t, "listed over TLS with SASL "+m.mech, func() error {
				if got := listed(t, d); len(got) != 1 || got[0] != names[0] {
					return fmt.Errorf("listed %v", got)
				}
				return nil
			})
			if err := d.Ready(t.Context()); err != nil {
				t.Fatalf("Ready: %v", err)
			}
		})
	}

	// A wrong password or an unknown CA: not ready, nothing listed.
	for name, mut := range map[string]func(*Config){
		"bad password": func(c *Config) { c.SASLPassword = "wrong" },
		"unknown CA":   func(c *Config) { c.TLSCAFile = "" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := c.config(topic)
			cfg.TLSCAFile = caFile
			cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = SASLScramSHA256, "admin", "admin-secret"
			cfg.TLS = true
			mut(&cfg)
			d := open(t, cfg, kgo.RetryTimeout(time.Second))
			if err := d.Ready(t.Context()); err == nil {
				t.Fatal("Ready succeeded")
			}
		})
	}
}
