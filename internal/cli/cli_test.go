package cli_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/itemq/itemq/internal/cli"
	"github.com/itemq/itemq/internal/config"
)

func TestArgsAndExitCodes(t *testing.T) {
	var out strings.Builder
	if done, err := cli.Args("itemq-x", []string{"--version"}, &out, ""); !done || err != nil || !strings.HasPrefix(out.String(), "itemq-x ") {
		t.Fatalf("--version: %v %v %q", done, err, out.String())
	}
	out.Reset()
	if done, err := cli.Args("itemq-x", []string{"-h"}, &out, "Configured by X_*."); !done || err != nil || !strings.Contains(out.String(), "Configured by X_*.") {
		t.Fatalf("-h: %v %v %q", done, err, out.String())
	}
	done, err := cli.Args("itemq-x", []string{"--port=1"}, &out, "")
	if done || err == nil || cli.ExitCode("itemq-x", err, &out) != 2 {
		t.Fatalf("unknown argument: %v %v", done, err)
	}
	if done, err := cli.Args("itemq-x", nil, &out, ""); done || err != nil {
		t.Fatalf("no arguments: %v %v", done, err)
	}
	out.Reset()
	if c := cli.ExitCode("itemq-x", errors.New("boom"), &out); c != 1 || out.String() != "itemq-x: boom\n" {
		t.Fatalf("failure: %d %q", c, out.String())
	}
	if c := cli.ExitCode("itemq-x", config.Invalid(errors.New("bad")), &out); c != 2 {
		t.Fatalf("invalid configuration: %d", c)
	}
	if c := cli.ExitCode("itemq-x", nil, &out); c != 0 {
		t.Fatalf("success: %d", c)
	}
}
