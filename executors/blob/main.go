// Command itemq-blob is the executors' bucket helper (they start
// `itemq-blob serve` for s3://, gs://, azblob://, file:// and mem:// URLs,
// so that they need not link the cloud SDKs themselves) and a small
// get/put/ls tool for scripts. See docs/executors.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/executor/blobcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := blobcmd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
