// Package cli is what itemq's long-running binaries share in main: --version
// and --help, a context cancelled by SIGINT/SIGTERM, and exit codes (0; 2
// for usage and configuration errors; 1 for other failures).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/version"
)

// RunFunc is a binary's whole life (Mat Ryer's run function).
type RunFunc func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error

// Main runs run as the process and exits with its exit code.
func Main(binary string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(binary, err, os.Stderr))
}

// ExitCode reports err on w and returns the process's exit code.
func ExitCode(binary string, err error, w io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(w, "%s: %v\n", binary, err)
	if errors.Is(err, config.ErrInvalid) {
		return 2
	}
	return 1
}

// Args answers --version and --help (done is then true); any other
// argument is a usage error, since configuration comes from the environment.
func Args(binary string, args []string, stdout io.Writer, help string) (done bool, err error) {
	for _, a := range args {
		switch a {
		case "--version", "-version", "version":
			fmt.Fprintln(stdout, version.String(binary))
			return true, nil
		case "-h", "--help", "help":
			fmt.Fprintf(stdout, "usage: %s [--version]\n\n%s\n", binary, help)
			return true, nil
		default:
			return false, config.Invalid(fmt.Errorf("unknown argument %q (configuration comes from the environment)", a))
		}
	}
	return false, nil
}
