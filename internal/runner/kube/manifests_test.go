package kube_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// The example's manifests (examples/thumbnails/k8s) apply cleanly with
// kubectl apply --dry-run=server -k, then for real; the manager's
// ServiceAccount, with only the Role of the manifests, can do its whole
// job (Jobs, ConfigMaps, the Lease and its events) with the manifests' Job
// template, and is refused what it does not need.
func TestIntegrationManifestsAndRBAC(t *testing.T) {
	cp := kubetest.Get(t)
	ctx := context.Background()
	dir := filepath.Join(testutil.ModuleRoot(t), "examples", "thumbnails", "k8s")
	const ns = "itemq-thumbnails"
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := cp.Kubectl(ctx, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// A server-side dry run of namespaced objects needs their namespace.
	kubectl("apply", "-f", filepath.Join(dir, "namespace.yaml"))
	out := kubectl("apply", "--dry-run=server", "-k", dir)
	for _, want := range []string{"deployment.apps/itemq-manager", "role.rbac.authorization.k8s.io/itemq-manager",
		"persistentvolumeclaim/media", "configmap/itemq-job-template-"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run did not show %s:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "(server dry run)") {
		t.Errorf("not a server dry run:\n%s", out)
	}
	t.Logf("kubectl apply --dry-run=server -k:\n%s", out)
	kubectl("apply", "-k", dir)
	admin := cp.Client(t)
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, "itemq-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkDeployment(t, d)
	testutil.Eventually(t, time.Minute, "default ServiceAccount", func() error {
		_, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})

	token, err := cp.Token(ctx, ns, "itemq-manager")
	if err != nil {
		t.Fatal(err)
	}
	rc := cp.TokenConfig(token)
	rc.QPS, rc.Burst = 50, 100
	sa, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}

	// Refused: what the manager does not need.
	forbidden := map[string]func() error{
		"delete pods": func() error {
			return sa.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		},
		"list secrets": func() error { _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err },
		"update jobs/status": func() error {
			j := testTemplate(nil, false)
			j.Name = "x"
			_, err := sa.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
			return err
		},
		"create deployments": func() error {
			_, err := sa.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"list jobs in another namespace": func() error {
			_, err := sa.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
			return err
		},
		"list role bindings": func() error {
			_, err := sa.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
			return err
		},
	}
	for what, call := range forbidden {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want 403 Forbidden", what, err)
		}
	}

	// Allowed: the whole job, as the ServiceAccount, with the example's
	// Job template (its pods placed on the KWOK node) and leader election.
	tmpl, err := kube.LoadTemplate(filepath.Join(dir, "job-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Spec.Template.Spec.NodeName = kubetest.NodeName
	ectx, cancel := context.WithCancel(ctx)
	elected := make(chan struct{})
	electErr := make(chan error, 1)
	go func() {
		electErr <- kube.Elect(ectx, sa, kube.Election{Namespace: ns, Name: "itemq-q", Identity: "rbac-test"}, func(context.Context) { close(elected) })
	}()
	defer func() {
		cancel()
		if err := <-electErr; err != nil {
			t.Errorf("leader election: %v", err)
		}
	}()
	select {
	case <-elected:
	case err := <-electErr:
		t.Fatalf("leader election as the ServiceAccount: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("not elected within a minute")
	}
	rg := startRig(t, rigOptions{namespace: ns, rest: rc, template: tmpl})
	items := []string{"incoming/a.mp4", "incoming/b.mp4", "incoming/c.mp4"}
	rg.put(items...)
	rg.waitOutcomes(2*time.Minute, itemapi.Succeeded, items...)
	testutil.Eventually(t, time.Minute, "jobs acked, configmaps owned", func() error {
		cs := takeCensus(t, admin, ns)
		if err := cs.check(items, 1); err != nil {
			return err
		}
		for _, it := range items {
			if cs.jobs[it][0].Annotations[kube.AnnotationAcked] != "succeeded" {
				return fmt.Errorf("%s not acked", it)
			}
		}
		return nil
	})
	// Forget (delete) works too.
	if err := rg.runner.Forget(ctx, items[0]); err != nil {
		t.Fatalf("forget as the ServiceAccount: %v", err)
	}
	if err := rg.runner.Sweep(ctx); err != nil {
		t.Fatalf("sweep as the ServiceAccount: %v", err)
	}
	ev, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(ev.Items) == 0 {
		t.Errorf("no leader election event recorded: %v", err)
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if spec.ServiceAccountName != "itemq-manager" || len(spec.Containers) != 2 {
		t.Fatalf("deployment: sa %q, %d containers", spec.ServiceAccountName, len(spec.Containers))
	}
	env := map[string]string{}
	for _, e := range spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["MANAGER_RUNNER"] != "kubernetes" || env["MANAGER_SOURCE"] != "http://127.0.0.1:8080" || env["MANAGER_LEADER_ELECT"] != "true" {
		t.Errorf("manager env: %v", env)
	}
	var tmplVolume string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			tmplVolume = v.ConfigMap.Name
		}
	}
	if !strings.HasPrefix(tmplVolume, "itemq-job-template-") {
		t.Errorf("the job template volume is %q, want the generated ConfigMap", tmplVolume)
	}
}
