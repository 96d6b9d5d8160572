// Command worker is a pool worker for the pool's tests: it runs its
// arguments (an executor's argv) for each attempt it leases from
// $ITEMQ_POOL_URL, as executor.Main does in an executor image.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/itemq/itemq/internal/runner/pool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := pool.WorkerConfigFromEnv(os.Environ(), os.Args[1:])
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := pool.Work(ctx, cfg); err != nil {
		cfg.Log.Error("worker failed", "err", err)
		os.Exit(1)
	}
}
