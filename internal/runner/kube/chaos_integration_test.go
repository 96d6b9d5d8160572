package kube_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// TestIntegrationChaos (issue 13) is the chaos run on the Kubernetes
// runner: files of a dir:// source through two itemq-manager replicas with
// leader election, Jobs run by KWOK on the test control plane (pods run
// 1 s), while at random (every 0.5–2.5 s) a replica is SIGKILLed and
// started again (the leader as often as the standby), or a running pod is
// deleted (the executor killed: the Job controller counts a failed
// attempt). Every 20th
// item always fails (its name starts with "conformance.fail.", which
// hack/kwok/stages.yaml makes exit 1). At the end: every item archived
// once, in .done/ or .failed/, and every always-failing one in .failed/;
// one Job per item, whatever the kills (no second Job: no two attempts of
// an item at once, none completed twice), Complete for the done ones and
// Failed for the others; the leader's status API agrees; no Job left
// running. ITEMQ_CHAOS_ITEMS sets the size (make test: 60; make chaos: 2,000).
func TestIntegrationChaos(t *testing.T) {
	n := testutil.ChaosItems(t, 60)
	pr := newProcRig(t, testTemplate(map[string]string{kubetest.AnnotationDelay: "1s"}, false),
		"MANAGER_MAX_ACTIVE=10", "MANAGER_MIN_ACTIVE=10", "MANAGER_MAX_ATTEMPTS=3", "MANAGER_RESYNC=1s",
		"MANAGER_LEADER_ELECT=true", "MANAGER_LEASE_DURATION=3s")
	// Each replica its own state directory (two pods do not share one).
	pr.env = slices.DeleteFunc(pr.env, func(e string) bool {
		return strings.HasPrefix(e, "MANAGER_STATE_DIR=")
	})
	states := t.TempDir()
	items := make([]string, n)
	doomed := map[string]bool{}
	for i := range items {
		items[i] = fmt.Sprintf("c%05d.mp4", i)
		if i%20 == 7 {
			items[i] = "conformance.fail." + items[i]
			doomed[items[i]] = true
		}
		if err := os.WriteFile(filepath.Join(pr.root, items[i]), []byte("video"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := pr.cp.Client(t)
	start := func(i int) *testutil.Process {
		return pr.start("MANAGER_STATE_DIR=" + filepath.Join(states, fmt.Sprint(i)))
	}
	replicas := []*testutil.Process{start(0), start(1)}
	deleted := map[string]int{} // pods deleted, by item
	archived := func() int {
		done, failed := pr.archived(".done"), pr.archived(".failed")
		return len(done) + len(failed)
	}
	stuck := func() string {
		done, failed := pr.archived(".done"), pr.archived(".failed")
		cs := takeCensus(t, c, pr.ns)
		var out []string
		for _, it := range items {
			if done[it] || failed[it] {
				continue
			}
			story := fmt.Sprintf("%s (pods deleted %d):", it, deleted[it])
			for _, j := range cs.jobs[it] {
				story += fmt.Sprintf(" Job %s active %d failed %d succeeded %d conditions %v annotations %v;",
					j.Name, j.Status.Active, j.Status.Failed, j.Status.Succeeded, j.Status.Conditions, j.Annotations)
			}
			out = append(out, story)
		}
		return "not archived: " + strings.Join(out, " | ")
	}
	testutil.ChaosRun{Total: n, Finished: archived, Every: 1500 * time.Millisecond, Timeout: time.Duration(120+n/2) * time.Second, Stuck: stuck,
		Kills: []testutil.ChaosKill{
			{Name: "manager", Do: func() bool {
				i := rand.IntN(len(replicas))
				replicas[i].Kill()
				replicas[i] = start(i)
				return true
			}},
			{Name: "pod", Do: func() bool {
				pods, err := c.CoreV1().Pods(pr.ns).List(context.Background(), metav1.ListOptions{LabelSelector: kube.Selector("q")})
				if err != nil {
					return false
				}
				running := slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool {
					return p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil
				})
				if len(running) == 0 {
					return false
				}
				p := running[rand.IntN(len(running))]
				zero := int64(0)
				if c.CoreV1().Pods(pr.ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}) != nil {
					return false
				}
				deleted[p.Annotations[kube.AnnotationItem]]++
				return true
			}},
		}}.Run(t)

	// Every item archived once; the always-failing ones (and only items
	// that failed every attempt) in .failed/.
	done, failed := pr.archived(".done"), pr.archived(".failed")
	for _, it := range items {
		_, listed := os.Stat(filepath.Join(pr.root, it))
		switch {
		case done[it] == failed[it] || listed == nil:
			t.Errorf("%s: in .done %v, in .failed %v, still listed %v", it, done[it], failed[it], listed == nil)
		case doomed[it] && !failed[it]:
			t.Errorf("%s always fails, yet is in .done", it)
		case failed[it] && !doomed[it] && deleted[it] < 3:
			t.Errorf("%s dead-lettered with %d of its pods deleted (3 attempts)", it, deleted[it])
		}
	}
	// One Job per item, finished as archived.
	testutil.Eventually(t, time.Minute, "one finished Job per item", func() error {
		cs := takeCensus(t, c, pr.ns)
		for _, it := range items {
			js := cs.jobs[it]
			if len(js) != 1 {
				return fmt.Errorf("%s has %d Jobs", it, len(js))
			}
			cond, _ := jobCondition(&js[0])
			if want := map[bool]batchv1.JobConditionType{true: batchv1.JobComplete, false: batchv1.JobFailed}[done[it]]; cond != want {
				return fmt.Errorf("the Job of %s is %q, archived in .done %v", it, cond, done[it])
			}
		}
		if len(cs.jobs) != len(items) {
			return fmt.Errorf("Jobs for %d items, want %d", len(cs.jobs), len(items))
		}
		return nil
	})
	// The leader's status API agrees.
	testutil.Eventually(t, time.Minute, "the leader's status API", func() error {
		var errs []error
		for _, p := range replicas {
			jobs, err := itemapi.NewJobsClient(p.URL())
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				want := map[bool]itemapi.State{true: itemapi.StateSucceeded, false: itemapi.StateDead}[done[it]]
				if st, err := jobs.Get(context.Background(), it); err != nil || st.State != want {
					errs = append(errs, fmt.Errorf("%s: %s (%v), want %s", p.URL(), st.State, err, want))
					break
				}
			}
		}
		if len(errs) == len(replicas) {
			return fmt.Errorf("no replica answers for every item: %v", errs)
		}
		return nil
	})
	t.Logf("%d done, %d dead-lettered (%d always failing); pods deleted %v", len(done), len(failed), len(doomed), deleted)
}
