// Package itemqcmd is the itemq command: a root command with one
// subcommand per concern (jobs, job, submit, cancel, retry, logs, outputs,
// get-output, top against a manager; items against an ambassador; blob
// against buckets), built with cobra. cmd/itemq/main.go is one call to
// Main.
//
// Exit codes: 0 done; 1 failed (a retry may work); 2 bad usage, a bad
// URL, or no such object or job; submit --wait: 3 the job failed, 4 it
// was cancelled.
package itemqcmd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// Binary is the command's name.
const Binary = "itemq"

// usageError is a bad command line (exit 2).
type usageError struct{ error }

// Main runs the itemq command with args (without the program name) and
// returns its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := Binary
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return 2
	case cmd == root || cmd == nil || !cmd.Runnable():
		return 2 // an unknown command or flag
	}
	var jo jobOutcome
	if errors.As(err, &jo) {
		return jo.code
	}
	switch itemapi.ReasonOf(err) {
	case itemapi.ReasonNotFound, itemapi.ReasonBadRequest, itemapi.ReasonUnauthorized, itemapi.ReasonForbidden,
		itemapi.ReasonConflict, itemapi.ReasonMethodNotAllowed, itemapi.ReasonTooLarge:
		return 2 // an answer from the manager that trying again will not change
	}
	if code, ok := exitCodeOf(err); ok && ctx.Err() == nil {
		return code
	}
	return 1
}

// NewRoot returns the root command with every subcommand.
func NewRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           Binary,
		Short:         "itemq: work queues of independent items",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("a command is needed (see itemq --help)")}
		},
	}
	root.SetVersionTemplate(version.String(Binary) + "\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var c conn
	c.flags(root)
	root.AddCommand(newBlob(), newItems())
	root.AddCommand(newJobCommands(&c)...)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func rangeArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(min, max)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
