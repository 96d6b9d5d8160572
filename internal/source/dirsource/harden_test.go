package dirsource

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/itemapi"
)

// TestArchiveKeepsEveryCopy: a file that reappears under a name already in
// the archive (picked up early while being written, then again) is
// archived beside the earlier copy, never over it.
func TestArchiveKeepsEveryCopy(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "archive")
	for _, tc := range []struct {
		name, doneDir string
		env           []string
	}{
		{"inside", "", nil},
		{"outside", filepath.Join(elsewhere, "ok"), []string{"DIR_DONE_DIR=" + filepath.Join(elsewhere, "ok"), "DIR_FAILED_DIR=" + filepath.Join(elsewhere, "bad")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, root := newDriver(t, "", append([]string{"DIR_SETTLE=0", "DIR_POLL_INTERVAL=20ms"}, tc.env...)...)
			doneDir := tc.doneDir
			if doneDir == "" {
				doneDir = filepath.Join(root, ".done")
			}
			ctx := context.Background()
			contents := []string{"partial", "complete", "third"}
			for _, c := range contents {
				write(t, root, "in/a.json", c)
				waitListed(t, d, "in/a.json")
				if err := d.Ack(ctx, "in/a.json", itemapi.Succeeded); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			entries, err := os.ReadDir(filepath.Join(doneDir, "in"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(doneDir, "in", e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(b))
				if !strings.HasPrefix(e.Name(), "a.json") {
					t.Errorf("archived as %q", e.Name())
				}
			}
			slices.Sort(got)
			want := slices.Clone(contents)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("archive holds %q, want every copy %q", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(doneDir, "in", "a.json")); string(b) != "partial" {
				t.Fatalf("the first copy keeps the plain name; it holds %q", b)
			}
		})
	}
}

// syncBuffer is a log sink safe for the driver's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func refusedCount(t *testing.T, d *Driver, reason string) float64 {
	t.Helper()
	return testutil.ToFloat64(d.refused.counter.WithLabelValues(reason))
}

// TestRefusedFilesAreLoggedOnceAndCounted: files the API cannot serve
// (a backslash or invalid UTF-8 in the name; with DIR_DATA=json, larger
// than the item data limit) are not listed, and each is logged once and
// counted once, however many scans see it.
func TestRefusedFilesAreLoggedOnceAndCounted(t *testing.T) {
	root := t.TempDir()
	writeOld(t, root, "ok.json", `{"a":1}`)
	writeOld(t, root, `back\slash.json`, `{}`)
	writeOld(t, root, "bad-\xff-utf8.json", `{}`)
	big := `{"p":"` + strings.Repeat("x", itemapi.MaxDataBytes) + `"}` // the 2 MiB file of the issue, nearly
	writeOld(t, root, "big.json", big)
	var logs syncBuffer
	var cfg Config
	if err := config.Parse(&cfg, []string{"DIR_ROOT=" + root, "DIR_SETTLE=0", "DIR_POLL_INTERVAL=10ms", "DIR_DATA=json"}); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitListed(t, d, "ok.json")
	waitRescan(t, d)
	waitRescan(t, d)
	if got := listed(t, d); !slices.Equal(got, []string{"ok.json"}) {
		t.Fatalf("listed %q", got)
	}
	if n := refusedCount(t, d, refusedName); n != 2 {
		t.Errorf("itemq_dir_refused_files_total{reason=name} = %v, want 2", n)
	}
	if n := refusedCount(t, d, refusedTooLarge); n != 1 {
		t.Errorf("itemq_dir_refused_files_total{reason=too_large} = %v, want 1", n)
	}
	out := logs.String()
	for reason, want := range map[string]int{`"reason":"name"`: 2, `"reason":"too_large"`: 1} {
		if c := strings.Count(out, reason); c != want {
			t.Errorf("%s logged %d times, want %d (each file once):\n%s", reason, c, want, out)
		}
	}
	for _, want := range []string{`slash.json"`, `xff-utf8.json"`, `"big.json"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not name %s:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "DIR_MAX_DATA_BYTES") {
		t.Errorf("the too-large refusal does not say which limit:\n%s", out)
	}
	// A file within the limit that grows past it leaves the listing.
	writeOld(t, root, "ok.json", big)
	waitListed(t, d)
	// Serving a file that grew between scans is a TooLarge, not a 500.
	if _, err := d.readJSON(d.ref.Load().r, "big.json"); !itemapi.IsTooLarge(err) {
		t.Errorf("readJSON of a too-large file: %v", err)
	}
}

// TestDataLimitSettings: the size settings cannot exceed the one item data
// limit, and default to it.
func TestDataLimitSettings(t *testing.T) {
	var cfg Config
	if err := config.Parse(&cfg, []string{"DIR_ROOT=/x"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil || cfg.MaxDataBytes != itemapi.MaxDataBytes || cfg.MaxSubmitBytes != itemapi.MaxDataBytes {
		t.Fatalf("defaults: %v %d %d", err, cfg.MaxDataBytes, cfg.MaxSubmitBytes)
	}
	for _, kv := range []string{"DIR_MAX_DATA_BYTES=16777216", "DIR_MAX_SUBMIT_BYTES=1048576"} {
		var cfg Config
		if err := config.Parse(&cfg, []string{"DIR_ROOT=/x", kv}); err != nil {
			t.Fatal(err)
		}
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), strings.Split(kv, "=")[0]) {
			t.Errorf("%s: %v, want an error naming it", kv, err)
		}
	}
}
