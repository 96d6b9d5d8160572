// Package managertest holds what tests of the manager's HTTP faces share.
package managertest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
)

// FuzzManager runs, until the end of the test, a manager of queue "fuzz"
// over mem (submissions up to 4,096 bytes) whose runner holds two finished
// jobs: "done" (succeeded) and "dead" (failed after 3 attempts).
func FuzzManager(tb testing.TB, mem *memsource.Driver) *manager.Manager {
	now := time.Now()
	held := &runnertest.Held{Records: []runner.Job{
		{Item: "done", Name: runner.JobName("fuzz", "done"), Phase: runner.PhaseSucceeded, Attempts: 1, StartedAt: now, FinishedAt: now},
		{Item: "dead", Name: runner.JobName("fuzz", "dead"), Phase: runner.PhaseFailed, Attempts: 3, StartedAt: now, FinishedAt: now},
	}}
	m := manager.New(manager.Config{Queue: "fuzz", MaxActive: 2, Log: slog.New(slog.DiscardHandler),
		Fair: manager.Fair{PriorityField: "meta.prio", KeyField: "tenant", KeyCap: 1}},
		&manager.InProcess{Src: source.New(mem, source.WithMaxSubmitBytes(4096))}, held)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return m
}
