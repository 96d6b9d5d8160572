// Command itemq-script is the script-parameterized executor: it processes
// the work item named by $WORK_ITEM_FILE with the user's command (given
// after "--" or in SCRIPT). See docs/executors.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/executor/script"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := executor.Main(ctx, "itemq-script", os.Args[1:], os.Environ(), os.Stdout, os.Stderr, script.New)
	stop()
	os.Exit(code)
}
