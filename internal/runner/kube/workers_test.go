package kube

import (
	"context"
	"errors"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func poolTemplate() *batchv1.Job {
	return &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		ActiveDeadlineSeconds: ptr.To[int64](60),
		Containers:            []corev1.Container{{Name: "main", Image: "itemq/itemq-script", Env: []corev1.EnvVar{{Name: "KEEP", Value: "1"}}}},
	}}}}
}

// A scale-down marks idle workers' pods to go first (and only as many as
// go); a scale-up or an unchanged size marks none.
func TestWorkersScaleDownMarksIdlePods(t *testing.T) {
	ctx := context.Background()
	var objs []runtime.Object
	for _, n := range []string{"w-a", "w-b", "w-c"} {
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "ns"}})
	}
	client := fake.NewSimpleClientset(objs...)
	w, err := NewWorkers(client, WorkersConfig{Queue: "q", Namespace: "ns", Template: poolTemplate(), URL: "http://m:8081", Token: "0123456789abcdefgh"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Scale(ctx, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Scale(ctx, 3, []string{"w-a"}); err != nil {
		t.Fatal(err)
	}
	if marked(t, client, "w-a") {
		t.Error("a pod was marked though the pool did not shrink")
	}
	if err := w.Scale(ctx, 2, []string{"w-b", "w-c"}); err != nil {
		t.Fatal(err)
	}
	if !marked(t, client, "w-b") || marked(t, client, "w-c") || marked(t, client, "w-a") {
		t.Errorf("after shrinking by one with w-b and w-c idle: marked a %v b %v c %v; want only b",
			marked(t, client, "w-a"), marked(t, client, "w-b"), marked(t, client, "w-c"))
	}
	d, err := client.AppsV1().Deployments("ns").Get(ctx, DeploymentName("q"), metav1.GetOptions{})
	if err != nil || ptr.Deref(d.Spec.Replicas, 0) != 2 {
		t.Fatalf("deployment: %v, %+v", err, d)
	}
	// The pod: restartPolicy Always, no deadline (MANAGER_JOB_TIMEOUT bounds
	// each item), the template's variables kept, the pool's added.
	pod := d.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyAlways || pod.ActiveDeadlineSeconds != nil || pod.Containers[0].Env[0].Name != "KEEP" {
		t.Errorf("pod spec %+v", pod)
	}
	// A new token rolls the workers (the spec hash changes) and updates the Secret.
	w2, _ := NewWorkers(client, WorkersConfig{Queue: "q", Namespace: "ns", Template: poolTemplate(), URL: "http://m:8081", Token: "another-token-0123456"})
	if err := w2.Scale(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	d2, _ := client.AppsV1().Deployments("ns").Get(ctx, DeploymentName("q"), metav1.GetOptions{})
	if d2.Annotations[AnnotationSpecHash] == d.Annotations[AnnotationSpecHash] {
		t.Error("a new token did not change the Deployment's spec hash")
	}
	if s, _ := client.CoreV1().Secrets("ns").Get(ctx, "q-pool", metav1.GetOptions{}); string(s.Data["token"]) != "another-token-0123456" {
		t.Errorf("the Secret holds %q", s.Data["token"])
	}
}

func TestWorkersRefuseTwoContainers(t *testing.T) {
	tmpl := poolTemplate()
	tmpl.Spec.Template.Spec.Containers = append(tmpl.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "x"})
	if _, err := NewWorkers(fake.NewSimpleClientset(), WorkersConfig{Queue: "q", Template: tmpl, Token: "0123456789abcdefgh"}); err == nil {
		t.Error("a template with two containers was accepted for the pool")
	}
}

func marked(t *testing.T, c *fake.Clientset, pod string) bool {
	t.Helper()
	p, err := c.CoreV1().Pods("ns").Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Annotations[AnnotationDeletionCost] == "-1000"
}

// An update that conflicts with the Deployment controller's status write is
// made again on the new version, not given up until the next resize.
func TestWorkersScaleRetriesAConflict(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset()
	w, err := NewWorkers(client, WorkersConfig{Queue: "q", Namespace: "ns", Template: poolTemplate(), URL: "http://m:8081", Token: "0123456789abcdefgh"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Scale(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	client.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts < 2 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, DeploymentName("q"), errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if err := w.Scale(ctx, 3, nil); err != nil {
		t.Fatalf("Scale after two conflicts: %v", err)
	}
	d, _ := client.AppsV1().Deployments("ns").Get(ctx, DeploymentName("q"), metav1.GetOptions{})
	if conflicts != 2 || ptr.Deref(d.Spec.Replicas, 0) != 3 {
		t.Fatalf("%d conflicts, replicas %d; want 2 and 3", conflicts, ptr.Deref(d.Spec.Replicas, 0))
	}
}
