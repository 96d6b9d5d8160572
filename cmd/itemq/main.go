// Command itemq is the command for people: `itemq blob get|put|ls|rm` on
// bucket URLs today (see docs/executors.md); jobs, submit, cancel and the
// rest join it as subcommands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/cli/itemqcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := itemqcmd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
