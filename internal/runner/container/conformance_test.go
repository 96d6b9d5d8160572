package container_test

import (
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/itemapi"
)

// The runner conformance suite with containers (podman): the local
// runner's attempt loop over the container launcher, as MANAGER_RUNNER=podman
// builds it.
func TestConformance(t *testing.T) {
	runnertest.RunConformanceTests(t, func(t *testing.T) runnertest.Harness {
		rg := newRig(t, nil)
		r, err := local.New(local.Config{Queue: rg.queue, StateDir: t.TempDir(), MaxAttempts: 3,
			BackoffBase: 20 * time.Second, NoSync: true}, rg.l)
		if err != nil {
			t.Fatal(err)
		}
		return runnertest.Harness{
			Runner: r,
			Item: func(name string, b runnertest.Behaviour) *itemapi.Item {
				data := `{"printEnv":true}`
				switch b {
				case runnertest.Fail:
					data = `{"exit":1}`
				case runnertest.Block:
					data = `{"waitFor":"/runs/never"}`
				}
				return itemapi.NewItem(name, []byte(data))
			},
			Env: func(t *testing.T, j runner.Job) (map[string]string, runner.EnvSpec) {
				return runnertest.EnvFromLog(t, r.LogPath(j.Item)), runner.EnvSpec{
					Queue: rg.queue, Job: j.Name, Attempt: 1, Step: 1, Steps: 1,
					ItemFile: runner.ItemFile, OutputDir: runner.OutputDir,
					Base: map[string]string{"PROBE_LOG": "/runs/probe.log"},
				}
			},
		}
	})
}
