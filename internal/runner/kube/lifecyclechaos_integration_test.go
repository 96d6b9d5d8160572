package kube_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// Cancels and retries thrown at random items on the control plane while
// their pods run, fail and are retried: afterwards (what was cancelled
// retried, and what failed of the items that can succeed), every item that
// can succeed succeeded, every one that always fails is dead, the source
// archived each so, at most one Job per item exists, and no item ever had
// two pods running at once (checked throughout).
func TestIntegrationLifecycleChaos(t *testing.T) {
	rg := startRig(t, rigOptions{
		template:  testTemplate(map[string]string{kubetest.AnnotationDelay: "300ms"}, false),
		runnerCfg: func(c *kube.Config) { c.MaxAttempts = 2 },
	})
	var good, bad, all []string
	for i := range 24 {
		good = append(good, fmt.Sprintf("s.%02d", i))
	}
	for i := range 8 {
		bad = append(bad, fmt.Sprintf("conformance.fail.%02d", i)) // every pod exits 1 (hack/kwok/stages.yaml)
	}
	all = append(append(all, good...), bad...)
	rg.put(all...)
	ctx := context.Background()

	// Two running pods of one item, at any census.
	var twice []string
	census := func() {
		pods, err := rg.client.CoreV1().Pods(rg.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running := map[string]int{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running[p.Labels[kube.LabelItemHash]]++
			}
		}
		for _, it := range all {
			if running[runner.ItemHash(it)] > 1 {
				twice = append(twice, it)
			}
		}
	}

	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	storm := time.Now().Add(6 * time.Second)
	actions, nextCensus := 0, time.Now()
	for time.Now().Before(storm) {
		it := all[rng.IntN(len(all))]
		switch r := rng.IntN(10); {
		case r < 4:
			_, _ = rg.m.Cancel(ctx, it)
		case r < 9:
			_, _, _ = rg.m.Retry(ctx, it)
		default:
			rg.m.RetryJobs(ctx, itemapi.JobSelector{State: itemapi.StateDead, Prefix: "s."})
		}
		actions++
		if time.Now().After(nextCensus) {
			census()
			nextCensus = time.Now().Add(300 * time.Millisecond)
		}
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
	t.Logf("%d actions in the storm", actions)

	testutil.Eventually(t, 3*time.Minute, "every item ended as it should", func() error {
		census()
		rg.m.RetryJobs(ctx, itemapi.JobSelector{State: itemapi.StateCancelled})
		for _, st := range []itemapi.State{itemapi.StateDead, itemapi.StateFailed} {
			rg.m.RetryJobs(ctx, itemapi.JobSelector{State: st, Prefix: "s."})
		}
		for _, it := range all {
			wantState, wantOutcome := itemapi.StateSucceeded, itemapi.Succeeded
			if strings.HasPrefix(it, "conformance.fail.") {
				wantState, wantOutcome = itemapi.StateDead, itemapi.Failed
			}
			st, _ := rg.m.Status(it)
			o, acked := rg.mem.Outcome(it)
			if st.State != wantState || !acked || o != wantOutcome {
				return fmt.Errorf("%s: state %q, source outcome %q (acked %v); want %s and %s", it, st.State, o, acked, wantState, wantOutcome)
			}
		}
		return nil
	})
	if n := rg.mem.Len(); n != 0 {
		t.Errorf("the source still holds %d items", n)
	}
	cs := takeCensus(t, rg.client, rg.ns)
	for it, js := range cs.jobs {
		if len(js) > 1 {
			t.Errorf("%s has %d Jobs", it, len(js))
		}
	}
	if len(twice) > 0 {
		t.Fatalf("items with two pods running at once: %v", twice)
	}
}

// A Job cancelled the moment it was created, before the informer has seen
// it (a job cancelled while the manager started it) is cancelled, not
// reported missing — it ran to the end beside its item's dead letter (found
// by TestIntegrationLifecycleChaos).
func TestIntegrationCancelRightAfterStart(t *testing.T) {
	rg := startRig(t, rigOptions{template: testTemplate(map[string]string{kubetest.AnnotationHold: "true"}, false)})
	ctx := context.Background()
	for i := range 5 {
		name := fmt.Sprintf("direct.%d", i)
		if err := rg.runner.Start(ctx, itemapi.NewItem(name, []byte(`{}`))); err != nil {
			t.Fatalf("Start %s: %v", name, err)
		}
		if err := rg.runner.Cancel(ctx, name); err != nil {
			t.Fatalf("Cancel %s right after its start: %v", name, err)
		}
		j, err := rg.client.BatchV1().Jobs(rg.ns).Get(ctx, runner.JobName("q", name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.Spec.Suspend == nil || !*j.Spec.Suspend || j.Annotations[kube.AnnotationCancelled] != "true" {
			t.Fatalf("%s: the Job is not cancelled: suspend %v, annotations %v", name, j.Spec.Suspend, j.Annotations)
		}
	}
}
