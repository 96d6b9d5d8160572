// Command demo is `make demo`; see internal/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/demo"
)

func main() {
	o := demo.Options{Out: os.Stdout}
	flag.StringVar(&o.Dir, "dir", "demo", "the demo's directory")
	flag.StringVar(&o.Bin, "bin", "bin", "where the itemq binaries are")
	flag.IntVar(&o.Videos, "videos", 6, "sample videos to make when the videos directory is empty")
	flag.BoolVar(&o.Watch, "watch", false, "keep running and process videos added to the directory")
	flag.Parse()
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		o.TTY = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, o); err != nil && !(o.Watch && ctx.Err() != nil) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
