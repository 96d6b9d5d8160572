package kubetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func job(name string, annotations map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
				Spec: corev1.PodSpec{
					NodeName:      kubetest.NodeName,
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
				},
			},
		},
	}
}

func condition(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

// The control plane runs Jobs to completion through KWOK, and the stages
// make a pod fail with the exit code its annotation names.
func TestControlPlane(t *testing.T) {
	cp := kubetest.Get(t)
	ns := cp.Namespace(t)
	c := cp.Client(t)
	ctx := context.Background()
	jobs := map[string]batchv1.JobConditionType{"ok": batchv1.JobComplete, "exit3": batchv1.JobFailed}
	for name := range jobs {
		var ann map[string]string
		if name == "exit3" {
			ann = map[string]string{kubetest.AnnotationExitCode: "3"}
		}
		if _, err := c.BatchV1().Jobs(ns).Create(ctx, job(name, ann), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range jobs {
		testutil.Eventually(t, 60*time.Second, "job "+name+" "+string(want), func() error {
			j, err := c.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := condition(j); got != want {
				return fmt.Errorf("condition %q, want %q", got, want)
			}
			return nil
		})
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=exit3"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of exit3: %v %v", pods, err)
	}
	st := pods.Items[0].Status.ContainerStatuses
	if len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 3 {
		t.Fatalf("exit3's container status: %+v", st)
	}
}
