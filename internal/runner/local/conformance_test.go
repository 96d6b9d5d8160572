package local_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/testutil"
)

func TestConformance(t *testing.T) {
	bin := testutil.Binary(t, "internal/runner/container/testdata/probe")
	runnertest.RunConformanceTests(t, func(t *testing.T) runnertest.Harness {
		work := t.TempDir()
		r, err := local.New(local.Config{
			Queue: "conf", StateDir: t.TempDir(), WorkDir: work, MaxAttempts: 3,
			BackoffBase: 20 * time.Second, NoSync: true,
		}, &local.ProcessLauncher{
			Steps: [][]string{{bin}}, Grace: time.Second,
			Env: []string{"OUTPUT_URL=file:///results", "SECRET=s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return runnertest.Harness{
			Runner: r,
			Item:   runnertest.ProbeItem,
			Env: func(t *testing.T, j runner.Job) (map[string]string, runner.EnvSpec) {
				got := runnertest.EnvFromLog(t, r.LogPath(j.Item))
				// The attempt's private directory is random: it must be
				// one of this job's under WorkDir.
				dir := filepath.Dir(got["WORK_ITEM_FILE"])
				if filepath.Dir(dir) != work || !strings.HasPrefix(filepath.Base(dir), j.Name+"-") {
					t.Errorf("WORK_ITEM_FILE %q is not in an attempt directory of %s under %s", got["WORK_ITEM_FILE"], j.Name, work)
				}
				return got, runner.EnvSpec{
					Queue: "conf", Job: j.Name, Attempt: 1, Step: 1, Steps: 1,
					ItemFile: filepath.Join(dir, "item.json"), OutputDir: filepath.Join(dir, "out"),
					Base: map[string]string{"OUTPUT_URL": "file:///results", "SECRET": "s"},
				}
			},
		}
	})
}
