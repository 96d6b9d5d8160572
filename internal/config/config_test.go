package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/config"
)

type sample struct {
	Settle time.Duration `env:"DIR_SETTLE" envDefault:"2s"`
	Max    int           `env:"DIR_MAX" envDefault:"3"`
	Name   string        `env:"DIR_NAME"`
}

func TestParseNamesTheVariable(t *testing.T) {
	var c sample
	err := config.Parse(&c, []string{"DIR_SETTLE=soon", "DIR_MAX=many"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`DIR_SETTLE="soon"`, `DIR_MAX="many"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "Settle") {
		t.Errorf("error %q names the Go field", err)
	}
	c = sample{}
	if err := config.Parse(&c, []string{"DIR_NAME=x", "OTHER=y"}); err != nil || c.Settle != 2*time.Second || c.Max != 3 || c.Name != "x" {
		t.Fatalf("defaults and values: %+v, %v", c, err)
	}
	if got := config.WithPrefix([]string{"MANAGER_JOB_ENV_OUTPUT_URL=s3://x?a=b", "MANAGER_JOB_ENV_=skip", "PATH=/bin"}, "MANAGER_JOB_ENV_"); len(got) != 1 || got["OUTPUT_URL"] != "s3://x?a=b" {
		t.Fatalf("WithPrefix = %v", got)
	}
}
