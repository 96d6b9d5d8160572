package kube_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// Cancel and retry on the control plane: a running pod is stopped (the Job
// suspended, its pod deleted), the job ends cancelled and is dead-lettered;
// retried, the item gets a new Job and runs again; the attempts are read
// from the pods.
func TestIntegrationCancelAndRetry(t *testing.T) {
	rg := startRig(t, rigOptions{template: testTemplate(map[string]string{kubetest.AnnotationHold: "true"}, false)})
	ctx := context.Background()
	rg.put("held")
	testutil.Eventually(t, time.Minute, "running", func() error {
		if st, _ := rg.m.Status("held"); st.State != itemapi.StateRunning {
			return fmt.Errorf("state %q", st.State)
		}
		return nil
	})
	first := takeCensus(t, rg.client, rg.ns).jobs["held"][0].UID
	start := time.Now()
	if done, err := rg.m.Cancel(ctx, "held"); err != nil || !done {
		t.Fatalf("Cancel: %v %v", done, err)
	}
	rg.waitOutcomes(time.Minute, itemapi.Failed, "held")
	if st, _ := rg.m.Status("held"); st.State != itemapi.StateCancelled {
		t.Fatalf("after the cancel: %+v", st)
	}
	t.Logf("cancel → cancelled and acknowledged in %v", time.Since(start))
	testutil.Eventually(t, time.Minute, "the pod is gone", func() error {
		if cs := takeCensus(t, rg.client, rg.ns); cs.podsByHash[runner.ItemHash("held")] != 0 {
			return fmt.Errorf("%d pods", cs.podsByHash[runner.ItemHash("held")])
		}
		return nil
	})

	// Retried: a new Job, running again.
	if _, done, err := rg.m.Retry(ctx, "held"); err != nil || !done {
		t.Fatalf("Retry: %v %v", done, err)
	}
	testutil.Eventually(t, 2*time.Minute, "a new Job runs", func() error {
		js := takeCensus(t, rg.client, rg.ns).jobs["held"]
		if len(js) != 1 || js[0].UID == first {
			return errors.New("no new Job yet")
		}
		if st, _ := rg.m.Status("held"); st.State != itemapi.StateRunning {
			return fmt.Errorf("state %q", st.State)
		}
		return nil
	})
	h, err := rg.m.History(ctx, "held")
	if err != nil || len(h) != 1 || h[0].StartedAt.IsZero() || h[0].Where == "" {
		t.Fatalf("history of the new Job: %+v %v", h, err)
	}
	if _, err := rg.m.Cancel(ctx, "held"); err != nil {
		t.Fatal(err)
	}
}
