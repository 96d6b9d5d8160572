package kube

import (
	"context"
	"fmt"
	"io"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

var (
	_ runner.Historian   = (*Runner)(nil)
	_ runner.LogStreamer = (*Runner)(nil)
)

// pods lists the pods of an item's Job, oldest first (each is an
// attempt). The manager's Role needs get and list on pods.
func (r *Runner) pods(ctx context.Context, item string) (string, []corev1.Pod, error) {
	j := r.jobOf(item)
	if j == nil {
		return "", nil, fmt.Errorf("pods of %q: %w", item, runner.ErrNotFound)
	}
	var pods *corev1.PodList
	err := r.retry(ctx, func(ctx context.Context) error {
		var err error
		pods, err = r.client.CoreV1().Pods(r.cfg.Namespace).List(ctx, metav1.ListOptions{
			LabelSelector: "batch.kubernetes.io/controller-uid=" + string(j.UID)})
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("list the pods of Job %s: %w", j.Name, err)
	}
	items := pods.Items
	slices.SortStableFunc(items, func(a, b corev1.Pod) int {
		return a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time)
	})
	return j.Name, items, nil
}

// History is the attempts of an item's Job, one per pod, read from the
// pods (those the Job controller or the TTL has removed are missing).
func (r *Runner) History(ctx context.Context, item string) ([]itemapi.Attempt, error) {
	_, pods, err := r.pods(ctx, item)
	if err != nil {
		return nil, err
	}
	out := make([]itemapi.Attempt, 0, len(pods))
	for i, p := range pods {
		out = append(out, podAttempt(i+1, &p))
	}
	return out, nil
}

// podAttempt describes one pod as an attempt: its main container's (the
// last step's) end, or the pod's.
func podAttempt(n int, p *corev1.Pod) itemapi.Attempt {
	a := itemapi.Attempt{Number: n, Where: "pod " + p.Name}
	if p.Spec.NodeName != "" {
		a.Where += " on node " + p.Spec.NodeName
	}
	if p.Status.StartTime != nil {
		a.StartedAt = p.Status.StartTime.Time.UTC()
	}
	statuses := slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
	for _, cs := range statuses {
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		code := int(t.ExitCode)
		a.ExitCode = &code
		a.FinishedAt = t.FinishedAt.Time.UTC()
		a.Reason = t.Reason
		if code != 0 {
			break // the step that failed ends the attempt
		}
	}
	switch {
	case p.Status.Reason != "":
		a.Reason = p.Status.Reason // Evicted, DeadlineExceeded…
	case p.Status.Phase == corev1.PodSucceeded:
		a.Reason = "succeeded"
	case a.ExitCode != nil && *a.ExitCode != 0 && (a.Reason == "" || a.Reason == "Error"):
		a.Reason = fmt.Sprintf("exit code %d", *a.ExitCode)
	case p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending:
		a.ExitCode, a.Reason = nil, "" // an earlier step ended; the attempt runs
	}
	return a
}

// Logs streams the log of the latest attempt's pod: its main container (the
// last step). The manager's Role needs get on pods/log.
func (r *Runner) Logs(ctx context.Context, item string, tail int, follow bool) (io.ReadCloser, error) {
	job, pods, err := r.pods(ctx, item)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("the Job %s of %q has no pod (yet, or any more): %w", job, item, runner.ErrNotFound)
	}
	p := pods[len(pods)-1]
	opts := &corev1.PodLogOptions{Follow: follow}
	if len(p.Spec.Containers) > 0 {
		opts.Container = p.Spec.Containers[0].Name
	}
	if tail > 0 {
		t := int64(tail)
		opts.TailLines = &t
	}
	rc, err := r.client.CoreV1().Pods(r.cfg.Namespace).GetLogs(p.Name, opts).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("the log of pod %s: %w", p.Name, err)
	}
	return rc, nil
}
