package kube

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/itemq/itemq/internal/runner"
)

// A Job's attempts are its pods, oldest first: a failed one with its exit
// code and node, then the running one; the log is the latest pod's.
func TestHistoryAndLogsFromPods(t *testing.T) {
	c := newFake()
	r := newRunner(t, c, nil)
	ctx := context.Background()
	if err := r.Start(ctx, item("a")); err != nil {
		t.Fatal(err)
	}
	j := waitCached(t, r, "a")
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	pod := func(name string, created time.Time, st corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created),
				Labels: map[string]string{"batch.kubernetes.io/controller-uid": string(j.UID)}},
			Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "main"}}},
			Status: st,
		}
	}
	start := metav1.NewTime(t0)
	failed := pod(j.Name+"-x1", t0, corev1.PodStatus{Phase: corev1.PodFailed, StartTime: &start,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 1, Reason: "Error", FinishedAt: metav1.NewTime(t0.Add(time.Second))}}}}})
	start2 := metav1.NewTime(t0.Add(2 * time.Second))
	running := pod(j.Name+"-x2", t0.Add(2*time.Second), corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &start2})
	other := pod("someone-else", t0, corev1.PodStatus{Phase: corev1.PodRunning})
	other.Labels = map[string]string{"batch.kubernetes.io/controller-uid": "other"}
	for _, p := range []*corev1.Pod{running, failed, other} {
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := r.History(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 {
		t.Fatalf("history: %+v", h)
	}
	if a := h[0]; a.Number != 1 || a.ExitCode == nil || *a.ExitCode != 1 || a.Reason != "exit code 1" ||
		a.Where != "pod "+failed.Name+" on node node-1" || !a.StartedAt.Equal(t0) || !a.FinishedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("first attempt: %+v", a)
	}
	if a := h[1]; a.Number != 2 || a.ExitCode != nil || !a.FinishedAt.IsZero() || a.Reason != "" {
		t.Errorf("running attempt: %+v", a)
	}
	rc, err := r.Logs(ctx, "a", 10, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "fake logs" { // what client-go's fake serves
		t.Errorf("logs: %q", b)
	}
	if _, err := r.History(ctx, "nope"); !errors.Is(err, runner.ErrNotFound) {
		t.Errorf("history of an unknown item: %v", err)
	}
}
