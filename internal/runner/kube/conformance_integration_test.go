package kube_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// The runner conformance suite on the test control plane. KWOK plays the
// kubelet and sees only pod metadata, so an item's behaviour is carried by
// its name: hack/kwok/stages.yaml makes the pods of items named
// "conformance.fail.*" exit 1 and keeps those of "conformance.block.*"
// running; every other pod exits 0.
func TestIntegrationConformance(t *testing.T) {
	runnertest.RunConformanceTests(t, func(t *testing.T) runnertest.Harness {
		cp := kubetest.Get(t)
		ns := cp.Namespace(t)
		client := cp.Client(t)
		env := map[string]string{"OUTPUT_URL": "mem://", "PROBE": "conformance"}
		r, err := kube.New(client, kube.Config{Queue: "conformance", Namespace: ns,
			Template: testTemplate(nil, false), MaxAttempts: 3, Env: env,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
		if err != nil {
			t.Fatal(err)
		}
		return runnertest.Harness{
			Runner: r,
			Item: func(name string, b runnertest.Behaviour) *itemapi.Item {
				switch b {
				case runnertest.Fail:
					name = "conformance.fail." + name
				case runnertest.Block:
					name = "conformance.block." + name
				}
				return itemapi.NewItem(name, []byte(`{"conformance":true}`))
			},
			// A pod's environment is its spec: read the Job's.
			Env: func(t *testing.T, j runner.Job) (map[string]string, runner.EnvSpec) {
				job, err := client.BatchV1().Jobs(ns).Get(context.Background(), j.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for _, e := range job.Spec.Template.Spec.Containers[0].Env {
					if e.ValueFrom == nil {
						got[e.Name] = e.Value
					}
				}
				return got, runner.EnvSpec{Queue: "conformance", Job: j.Name, Step: 1, Steps: 1,
					ItemFile: runner.ItemFile, OutputDir: runner.OutputDir, Base: env}
			},
			RunningTimeout: 90 * time.Second,
		}
	})
}
