package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// kubectl describe job tells the item's story: the manager records Events
// on the Jobs it creates, whose attempts fail, that it dead-letters,
// cancels and acknowledges. (KWOK's stages: "conformance.fail.*" pods exit
// 1, "conformance.block.*" pods keep running.)
func TestIntegrationEvents(t *testing.T) {
	rg := startRig(t, rigOptions{runnerCfg: func(c *kube.Config) { c.MaxAttempts = 2 }})
	const good, bad, stuck = "good", "conformance.fail.bad", "conformance.block.stuck"
	rg.put(good, bad, stuck)
	rg.waitOutcomes(time.Minute, itemapi.Succeeded, good)
	testutil.Eventually(t, time.Minute, stuck+" running", func() error {
		if st, _ := rg.m.Status(stuck); st.State != itemapi.StateRunning {
			return fmt.Errorf("%s is %s", stuck, st.State)
		}
		return nil
	})
	if _, err := rg.m.Cancel(context.Background(), stuck); err != nil {
		t.Fatal(err)
	}
	rg.waitOutcomes(time.Minute, itemapi.Failed, stuck) // memsource archives cancelled items with the failed ones
	rg.waitOutcomes(2*time.Minute, itemapi.Failed, bad) // the Job controller waits 10 s between attempts
	want := map[string][]string{
		good:  {"Created", "Acknowledged"},
		bad:   {"Created", "AttemptFailed", "DeadLettered"},
		stuck: {"Created", "Cancelled", "Acknowledged"},
	}
	testutil.Eventually(t, time.Minute, "the Events", func() error {
		for item, reasons := range want {
			got := jobEvents(t, rg, item)
			for _, r := range reasons {
				if !slices.Contains(got, r) {
					return fmt.Errorf("%s: events %v, want %v", item, got, reasons)
				}
			}
		}
		return nil
	})
}

// jobEvents lists the reasons of the manager's Events on item's Job.
func jobEvents(t *testing.T, rg *rig, item string) []string {
	t.Helper()
	evs, err := rg.client.CoreV1().Events(rg.ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Job,involvedObject.name=" + runner.JobName("q", item),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Source.Component == "itemq-manager" {
			out = append(out, e.Reason)
			if !strings.Contains(e.Message, item) {
				t.Errorf("event %s on %s does not name the item: %q", e.Reason, item, e.Message)
			}
		}
	}
	return out
}

// Kueue: a queue's Jobs created suspended (as Kueue's admission webhook
// makes them, here by the template's spec.suspend) count as pending, not
// running and not cancelled, hold their slot, and run when resumed (as
// Kueue does when it admits them).
func TestIntegrationSuspendedJobsWaitForAdmission(t *testing.T) {
	tmpl := testTemplate(nil, false)
	tmpl.Labels = map[string]string{"kueue.x-k8s.io/queue-name": "user-queue"}
	tmpl.Spec.Suspend = ptr.To(true)
	rg := startRig(t, rigOptions{template: tmpl, queueCfg: func(c *manager.Config) { c.MaxActive, c.MinActive = 2, 2 }})
	items := []string{"k1", "k2", "k3"}
	rg.put(items...)
	name := runner.JobName("q", "k1")
	testutil.Eventually(t, time.Minute, "two suspended Jobs", func() error {
		jobs, err := rg.client.BatchV1().Jobs(rg.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(jobs.Items) != 2 {
			return fmt.Errorf("%d jobs, %v", len(jobs.Items), err)
		}
		for _, j := range jobs.Items {
			if !ptr.Deref(j.Spec.Suspend, false) || j.Labels["kueue.x-k8s.io/queue-name"] != "user-queue" {
				return fmt.Errorf("job %s: suspend %v, labels %v", j.Name, j.Spec.Suspend, j.Labels)
			}
		}
		return nil
	})
	time.Sleep(3 * time.Second) // long enough for a wrong state to show
	for _, it := range items {
		st, _ := rg.m.Status(it)
		if st.State != itemapi.StatePending {
			t.Errorf("%s is %s while its Job waits for admission, want pending", it, st.State)
		}
	}
	pods, err := rg.client.CoreV1().Pods(rg.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("%d pods of suspended Jobs, %v", len(pods.Items), err)
	}
	if sc := rg.m.Scaling(); sc.Pending != 2 || sc.Running != 0 {
		t.Errorf("scaling while Kueue has not admitted the Jobs: %d pending, %d running; want 2, 0", sc.Pending, sc.Running)
	}
	// Admit every Job as Kueue would: resume it.
	resume := func() error {
		jobs, err := rg.client.BatchV1().Jobs(rg.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, j := range jobs.Items {
			if ptr.Deref(j.Spec.Suspend, false) {
				if _, err := rg.client.BatchV1().Jobs(rg.ns).Patch(context.Background(), j.Name, types.MergePatchType,
					[]byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	testutil.Eventually(t, 2*time.Minute, "every item done once admitted", func() error {
		if err := resume(); err != nil {
			return err
		}
		for _, it := range items {
			if o, ok := rg.mem.Outcome(it); !ok || o != itemapi.Succeeded {
				return fmt.Errorf("%s: outcome %q", it, o)
			}
		}
		return nil
	})
	if evs := jobEvents(t, rg, "k1"); !slices.Contains(evs, "Created") {
		t.Errorf("events of %s: %v", name, evs)
	}
}
