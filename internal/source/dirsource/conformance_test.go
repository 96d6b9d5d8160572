package dirsource_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/dirsource"
	"github.com/itemq/itemq/internal/source/sourcetest"
	"github.com/itemq/itemq/itemapi"
)

// backend changes the directory the way a user would: plain writes and
// removals, no renames.
type backend struct{ root string }

func (b backend) Put(_ context.Context, _ *testing.T, name string, data []byte) (string, error) {
	p := filepath.Join(b.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return name, os.WriteFile(p, data, 0o644)
}

func (b backend) Remove(_ context.Context, _ *testing.T, name string) error {
	return os.Remove(filepath.Join(b.root, filepath.FromSlash(name)))
}

func conformance(t *testing.T, env ...string) {
	var root string
	mk := func(ctx context.Context, t *testing.T) (source.Driver, sourcetest.Backend, error) {
		root = t.TempDir()
		var cfg dirsource.Config
		environ := append([]string{"DIR_ROOT=" + root, "DIR_DATA=json", "DIR_SUBMIT=true", "DIR_SETTLE=20ms"}, env...)
		if err := config.Parse(&cfg, environ); err != nil {
			return nil, nil, err
		}
		d, err := dirsource.New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, nil, err
		}
		t.Cleanup(func() { d.Close() })
		return d, backend{root}, nil
	}
	archived := func(_ context.Context, _ *testing.T, name string, outcome itemapi.Outcome) error {
		dir := ".done"
		if outcome == itemapi.Failed {
			dir = ".failed"
		}
		p := filepath.Join(root, dir, filepath.FromSlash(name))
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("acknowledged file not archived with its relative path: %w", err)
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(name))); !os.IsNotExist(err) {
			return fmt.Errorf("acknowledged file still in place: %v", err)
		}
		return nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{
		Watch: true, Submit: true, Ack: true, AckRemoves: true, Archived: archived, Redrive: true,
	})
}

// TestConformance: fsnotify and the periodic rescan (long interval, so
// that the events do the work).
func TestConformance(t *testing.T) {
	conformance(t, "DIR_WATCH=true", "DIR_POLL_INTERVAL=1h")
}

// TestConformancePollOnly: no fsnotify, as on NFS: the rescan does it all.
func TestConformancePollOnly(t *testing.T) {
	conformance(t, "DIR_WATCH=false", "DIR_POLL_INTERVAL=20ms")
}
