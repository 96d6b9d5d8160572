// Command itemq-thumbnail is the video thumbnail executor: it extracts
// thumbnails from the input video of the work item named by
// $WORK_ITEM_FILE with ffmpeg. See docs/executors.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/executor/thumbnail"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := executor.Main(ctx, "itemq-thumbnail", os.Args[1:], os.Environ(), os.Stdout, os.Stderr, thumbnail.New)
	stop()
	os.Exit(code)
}
