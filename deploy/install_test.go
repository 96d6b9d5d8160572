package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
)

// monitoringCRDs stands in for prometheus-operator's CRDs (ServiceMonitor,
// PrometheusRule): the kinds exist, their content is not validated (the
// test control plane has no operator; promcheck checks the rules).
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`

var crdOnce sync.Once

func installCRDs(t *testing.T, cp *kubetest.ControlPlane) {
	t.Helper()
	ctx := context.Background()
	var err error
	crdOnce.Do(func() {
		f := filepath.Join(t.TempDir(), "crds.yaml")
		if err = os.WriteFile(f, []byte(monitoringCRDs), 0o600); err != nil {
			return
		}
		var out []byte
		if out, err = cp.Kubectl(ctx, "apply", "-f", f); err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
			return
		}
		if out, err = cp.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
			"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("monitoring CRDs: %v", err)
	}
}

func kubectl(t *testing.T, cp *kubetest.ControlPlane, args ...string) string {
	t.Helper()
	out, err := cp.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Every example values file renders objects the API server accepts
// (server-side dry run, admission and validation included), and its Job
// template is a valid Job.
func TestIntegrationTemplateServerDryRun(t *testing.T) {
	cp := kubetest.Get(t)
	installCRDs(t, cp)
	for _, v := range valuesFiles {
		t.Run(v, func(t *testing.T) {
			ns := cp.Namespace(t)
			out := helm(t, "", "template", "rel", chartDir(t), "--namespace", ns, "-f", valuesFile(t, v))
			objs := splitManifests(t, out)
			f := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			res := kubectl(t, cp, "apply", "--dry-run=server", "-f", f)
			if n := strings.Count(res, "(server dry run)"); n != len(objs) {
				t.Errorf("%d of %d objects passed the server dry run:\n%s", n, len(objs), res)
			}
			// The Job template, named as the manager names a Job, is a valid Job.
			job, _ := jobTemplate(t, objs)
			job.APIVersion, job.Kind = "batch/v1", "Job"
			job.Name, job.Namespace = "rel-0123456789", ns
			raw, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			jf := filepath.Join(t.TempDir(), "job.yaml")
			if err := os.WriteFile(jf, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			if res := kubectl(t, cp, "create", "--dry-run=server", "-f", jf); !strings.Contains(res, "(server dry run)") {
				t.Errorf("job template: %s", res)
			}
		})
	}
}

// A real helm install on the test control plane; the ServiceAccount's RBAC
// allows what the runner calls and nothing else; the real itemq-dir and
// itemq-manager binaries, run outside the cluster with the containers'
// rendered settings, the chart's Job template and the ServiceAccount's
// token, process items (KWOK runs the Jobs' pods); helm upgrade with a new
// Job template keeps every Job (running ones too); helm uninstall removes
// every object of the chart and leaves the Jobs, the queue's record.
func TestIntegrationInstallUpgradeUninstall(t *testing.T) {
	cp := kubetest.Get(t)
	ctx := context.Background()
	ns := cp.Namespace(t)
	admin := cp.Client(t)
	const rel = "media"
	values := []string{"-f", valuesFile(t, "dir"), "--set", "job.labels.example\\.com/team=media"}

	// The claim the values name (the data volume of the ambassador and the Jobs).
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "media"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}}
	if _, err := admin.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	helm(t, cp.Kubeconfig, append([]string{"install", rel, chartDir(t), "--namespace", ns}, values...)...)
	manifest := filepath.Join(t.TempDir(), "manifest.yaml")
	out := helm(t, cp.Kubeconfig, "get", "manifest", rel, "--namespace", ns)
	if err := os.WriteFile(manifest, out, 0o600); err != nil {
		t.Fatal(err)
	}
	objs := splitManifests(t, out)
	names := kubectl(t, cp, "get", "-f", manifest, "-o", "name")
	if n := len(strings.Fields(names)); n != len(objs) || n < 7 {
		t.Fatalf("%d of %d objects of the release exist:\n%s", n, len(objs), names)
	}
	for _, o := range objs {
		if strings.HasPrefix(o.Kind, "Cluster") {
			t.Errorf("the chart creates a cluster-wide %s", o.id())
		}
	}

	// RBAC, asked as the ServiceAccount (SelfSubjectAccessReview).
	sa := rel + "-itemq"
	token, err := cp.Token(ctx, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	saClient, err := kubernetes.NewForConfig(cp.TokenConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	can := func(namespace, verb, group, resource, sub string) bool {
		t.Helper()
		r, err := saClient.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: group, Resource: resource, Subresource: sub}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review: %v", err)
		}
		return r.Status.Allowed
	}
	type access struct{ verb, group, resource, sub string }
	allowed := []access{
		{"get", "batch", "jobs", ""}, {"list", "batch", "jobs", ""}, {"watch", "batch", "jobs", ""},
		{"create", "batch", "jobs", ""}, {"patch", "batch", "jobs", ""}, {"delete", "batch", "jobs", ""},
		{"get", "", "configmaps", ""}, {"list", "", "configmaps", ""}, {"create", "", "configmaps", ""},
		{"patch", "", "configmaps", ""}, {"delete", "", "configmaps", ""},
		{"get", "coordination.k8s.io", "leases", ""}, {"create", "coordination.k8s.io", "leases", ""},
		{"update", "coordination.k8s.io", "leases", ""},
		{"create", "", "events", ""}, {"patch", "", "events", ""},
	}
	forbidden := []access{
		{"update", "batch", "jobs", ""}, {"update", "batch", "jobs", "status"}, {"patch", "batch", "jobs", "status"},
		{"deletecollection", "batch", "jobs", ""}, {"update", "", "configmaps", ""}, {"watch", "", "configmaps", ""},
		{"list", "", "pods", ""}, {"get", "", "pods", "log"}, {"delete", "", "pods", ""}, {"create", "", "pods", ""},
		{"get", "", "secrets", ""}, {"list", "", "secrets", ""}, {"delete", "coordination.k8s.io", "leases", ""},
		{"list", "coordination.k8s.io", "leases", ""}, {"create", "apps", "deployments", ""}, {"patch", "apps", "deployments", ""},
		{"list", "rbac.authorization.k8s.io", "rolebindings", ""}, {"create", "rbac.authorization.k8s.io", "roles", ""},
		{"create", "", "serviceaccounts", "token"}, {"list", "", "events", ""},
	}
	for _, a := range allowed {
		if !can(ns, a.verb, a.group, a.resource, a.sub) {
			t.Errorf("the ServiceAccount may not %v, which the manager needs", a)
		}
	}
	for _, a := range forbidden {
		if can(ns, a.verb, a.group, a.resource, a.sub) {
			t.Errorf("the ServiceAccount may %v, which the manager does not need", a)
		}
	}
	for _, a := range []access{{"list", "batch", "jobs", ""}, {"create", "", "configmaps", ""}} {
		if can("default", a.verb, a.group, a.resource, a.sub) || can("", a.verb, a.group, a.resource, a.sub) {
			t.Errorf("the ServiceAccount may %v outside its namespace", a)
		}
	}
	if can("", "list", "", "namespaces", "") || can("", "list", "", "nodes", "") {
		t.Error("the ServiceAccount may list namespaces or nodes")
	}

	// Items flow: the pod's two containers as processes, with the rendered
	// settings and the ServiceAccount's identity.
	dep, err := admin.AppsV1().Deployments(ns).Get(ctx, rel+"-itemq", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-itemq-job-template", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmplFile := writeTemplate(t, cm.Data["job-template.yaml"])
	kubeconfig, err := cp.WriteKubeconfig(t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	containers := dep.Spec.Template.Spec.Containers
	if len(containers) != 2 {
		t.Fatalf("%d containers", len(containers))
	}
	ambEnv := processEnv(t, containers[1], ns, map[string]string{
		"ITEMQ_ADDR": "127.0.0.1:0", "DIR_ROOT": dir,
		"DIR_POLL_INTERVAL": "1s", "DIR_SETTLE": "0s", // the chart's example polls every 10 s
	})
	amb := testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR", ambEnv...)
	mgrEnv := processEnv(t, containers[0], ns, map[string]string{
		"MANAGER_SOURCE": amb.URL(), "MANAGER_ADDR": "127.0.0.1:0", "MANAGER_JOB_TEMPLATE": tmplFile,
		"KUBECONFIG": kubeconfig, "MANAGER_STATE_DIR": t.TempDir(), // the pod's volume
	})
	mgr := testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", mgrEnv...)
	items := []string{"a.mp4", "b.mp4", "c.mp4", "d.txt"}
	for _, it := range items {
		if err := os.WriteFile(filepath.Join(dir, it), []byte(it), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sel := "itemq.io/queue=thumbnails"
	testutil.Eventually(t, 2*time.Minute, "three items processed and acknowledged", func() error {
		for _, it := range items[:3] {
			if _, err := os.Stat(filepath.Join(dir, ".done", it)); err != nil {
				return err
			}
		}
		jobs, err := admin.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		if len(jobs.Items) != 3 {
			return fmt.Errorf("%d jobs", len(jobs.Items))
		}
		for _, j := range jobs.Items {
			if j.Annotations["itemq.io/acked"] != "succeeded" || j.Spec.TTLSecondsAfterFinished == nil {
				return fmt.Errorf("job %s not acknowledged yet", j.Name)
			}
		}
		return nil
	})
	jobs, err := admin.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Items {
		if j.Labels["app.kubernetes.io/instance"] != rel || j.Labels["app.kubernetes.io/component"] != "executor" ||
			j.Labels["example.com/team"] != "media" {
			t.Errorf("job %s: labels %v", j.Name, j.Labels)
		}
		if *j.Spec.TTLSecondsAfterFinished != 86400 {
			t.Errorf("job %s: ttlSecondsAfterFinished %d", j.Name, *j.Spec.TTLSecondsAfterFinished)
		}
		if c := j.Spec.Template.Spec.Containers[0]; c.Image != "itemq/itemq-thumbnail:latest" || *c.SecurityContext.ReadOnlyRootFilesystem != true {
			t.Errorf("job %s: executor %s %+v", j.Name, c.Image, c.SecurityContext)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d.txt")); err != nil {
		t.Errorf("d.txt (not *.mp4) was taken: %v", err)
	}
	if _, err := admin.CoordinationV1().Leases(ns).Get(ctx, "itemq-thumbnails", metav1.GetOptions{}); err != nil {
		t.Errorf("the Lease of the leader election: %v", err)
	}
	if err := mgr.Stop(); err != nil {
		t.Logf("manager stop: %v", err)
	}

	// A Job running during the upgrade, as the manager labels one.
	running := managedJob(ns, "thumbnails", "e.mp4")
	if _, err := admin.BatchV1().Jobs(ns).Create(ctx, running, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "the held job running", func() error {
		j, err := admin.BatchV1().Jobs(ns).Get(ctx, running.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.Status.Active != 1 || j.Status.Ready == nil || *j.Status.Ready != 1 {
			return fmt.Errorf("active %d", j.Status.Active)
		}
		return nil
	})
	before := jobUIDs(t, admin, ns)
	oldSum := dep.Spec.Template.Annotations["checksum/job-template"]

	helm(t, cp.Kubeconfig, append([]string{"upgrade", rel, chartDir(t), "--namespace", ns,
		"--set", "job.image.tag=v2", "--set", "job.resources.limits.memory=3Gi"}, values...)...)
	cm, err = admin.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-itemq-job-template", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["job-template.yaml"], "itemq/itemq-thumbnail:v2") || !strings.Contains(cm.Data["job-template.yaml"], "3Gi") {
		t.Errorf("the upgrade did not change the job template:\n%s", cm.Data["job-template.yaml"])
	}
	dep, err = admin.AppsV1().Deployments(ns).Get(ctx, rel+"-itemq", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Template.Annotations["checksum/job-template"] == oldSum {
		t.Error("the managers' pod template did not change with the job template (they would not restart to read it)")
	}
	after := jobUIDs(t, admin, ns)
	if fmt.Sprint(after) != fmt.Sprint(before) || len(before) != 4 {
		t.Errorf("jobs changed by the upgrade:\nbefore %v\nafter  %v", before, after)
	}
	j, err := admin.BatchV1().Jobs(ns).Get(ctx, running.Name, metav1.GetOptions{})
	if err != nil || j.Status.Active != 1 {
		t.Errorf("the running job after the upgrade: %v %+v", err, j.Status)
	}

	// Uninstall: no object of the chart is left; the Jobs stay.
	helm(t, cp.Kubeconfig, "uninstall", rel, "--namespace", ns, "--wait", "--timeout", "2m")
	if left := kubectl(t, cp, "get", "-f", manifest, "-o", "name", "--ignore-not-found"); strings.TrimSpace(left) != "" {
		t.Errorf("left after helm uninstall:\n%s", left)
	}
	if after := jobUIDs(t, admin, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("helm uninstall changed the Jobs (the queue's record):\n%v\n%v", before, after)
	}
}

// processEnv is a container's env as a process's, with valueFrom resolved
// as the kubelet would (the namespace) or dropped, and overrides applied.
func processEnv(t *testing.T, c corev1.Container, ns string, overrides map[string]string) []string {
	t.Helper()
	var env []string
	seen := map[string]bool{}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				continue
			}
			v = ns
		}
		if o, ok := overrides[e.Name]; ok {
			v = o
		}
		seen[e.Name] = true
		env = append(env, e.Name+"="+v)
	}
	for k, v := range overrides {
		if !seen[k] {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// writeTemplate writes the chart's Job template with its pods placed on the
// KWOK node (the test control plane has no scheduler).
func writeTemplate(t *testing.T, text string) string {
	t.Helper()
	var j batchv1.Job
	if err := yaml.UnmarshalStrict([]byte(text), &j); err != nil {
		t.Fatal(err)
	}
	j.Spec.Template.Spec.NodeName = kubetest.NodeName
	raw, err := yaml.Marshal(&j)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "job-template.yaml")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// managedJob is a Job labelled and annotated as the manager labels one,
// whose pod keeps running.
func managedJob(ns, queue, item string) *batchv1.Job {
	labels := map[string]string{"app.kubernetes.io/managed-by": "itemq", "itemq.io/queue": queue, "itemq.io/item-hash": "00000000e5"}
	ann := map[string]string{"itemq.io/item": item}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: queue + "-00000000e5", Namespace: ns, Labels: labels, Annotations: ann},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"itemq.io/item": item, kubetest.AnnotationHold: "true"}},
			Spec: corev1.PodSpec{NodeName: kubetest.NodeName, RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "executor", Image: "itemq/itemq-thumbnail:latest"}}},
		}},
	}
}

func jobUIDs(t *testing.T, c kubernetes.Interface, ns string) map[string]types.UID {
	t.Helper()
	jobs, err := c.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, j := range jobs.Items {
		out[j.Name] = j.UID
	}
	return out
}

// With pool.enabled, the ServiceAccount's RBAC is what kube.Workers (the
// manager's code) needs, used as it uses it: with the ServiceAccount's
// token it creates the workers' Secret and Deployment, scales them, marks
// an idle worker's pod to go first, and updates both with a new token; it
// still reads no other Secret and touches no other Deployment. The
// generated pool token survives an upgrade.
func TestIntegrationPoolRBAC(t *testing.T) {
	cp := kubetest.Get(t)
	ctx := context.Background()
	ns := cp.Namespace(t)
	admin := cp.Client(t)
	const rel, queue = "frames", "frames"
	values := []string{"-f", valuesFile(t, "pool")}
	helm(t, cp.Kubeconfig, append([]string{"install", rel, chartDir(t), "--namespace", ns}, values...)...)
	poolToken := func() string {
		t.Helper()
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, rel+"-itemq-pool-token", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(s.Data["token"])
	}
	token := poolToken()
	if len(token) != 40 {
		t.Fatalf("the generated pool token has %d characters", len(token))
	}
	helm(t, cp.Kubeconfig, append([]string{"upgrade", rel, chartDir(t), "--namespace", ns, "--set", "manager.maxActive=9"}, values...)...)
	if again := poolToken(); again != token {
		t.Error("helm upgrade replaced the generated pool token")
	}

	saToken, err := cp.Token(ctx, ns, rel+"-itemq")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cp.TokenConfig(saToken))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := admin.AppsV1().Deployments(ns).Get(ctx, rel+"-itemq", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := envOf(dep.Spec.Template.Spec.Containers[0])
	var command []string
	if err := json.Unmarshal([]byte(env["MANAGER_COMMAND"]), &command); err != nil {
		t.Fatalf("MANAGER_COMMAND=%q: %v", env["MANAGER_COMMAND"], err)
	}
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-itemq-job-template", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := kube.ParseTemplate([]byte(cm.Data["job-template.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	var warnings bytes.Buffer
	workers := func(token string) *kube.Workers {
		t.Helper()
		w, err := kube.NewWorkers(sa, kube.WorkersConfig{Queue: queue, Namespace: ns, Template: tmpl, Command: command,
			URL: env["MANAGER_POOL_URL"], Token: token, Owner: env["MANAGER_POOL_OWNER"],
			Log: slog.New(slog.NewTextHandler(&warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := workers(token)
	if err := w.Scale(ctx, 2, nil); err != nil {
		t.Fatalf("create the workers as the ServiceAccount: %v", err)
	}
	if err := w.Scale(ctx, 2, nil); err != nil {
		t.Fatalf("read the workers as the ServiceAccount: %v", err)
	}
	sel := metav1.ListOptions{LabelSelector: "itemq.io/queue=" + queue + ",itemq.io/role=worker"}
	var pods []string
	testutil.Eventually(t, time.Minute, "the workers' two pods", func() error {
		list, err := admin.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			return err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			pods = append(pods, p.Name)
		}
		if len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	// Scale down, the first pod marked idle: the ReplicaSet removes it. (An
	// update may conflict with the deployment controller's status writes;
	// the manager tries again, as here.)
	scale := func(what string, w *kube.Workers, n int, idle []string) {
		t.Helper()
		testutil.Eventually(t, 30*time.Second, what+" as the ServiceAccount", func() error {
			err := w.Scale(ctx, n, idle)
			if apierrors.IsForbidden(err) {
				t.Fatalf("%s as the ServiceAccount: %v", what, err)
			}
			return err
		})
	}
	scale("scale the workers down", w, 1, pods[:1])
	if warnings.Len() > 0 {
		t.Errorf("kube.Workers warned: %s", warnings.String())
	}
	testutil.Eventually(t, time.Minute, "the idle pod removed", func() error {
		list, err := admin.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			return err
		}
		var left []string
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				left = append(left, p.Name)
			}
		}
		if len(left) != 1 || left[0] == pods[0] {
			return fmt.Errorf("pods left %v; the idle one was %s", left, pods[0])
		}
		return nil
	})
	// A new token: the Secret is updated and the workers roll.
	before, err := admin.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName(queue), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newToken := strings.Repeat("n", 32)
	scale("update the workers", workers(newToken), 1, nil)
	s, err := admin.CoreV1().Secrets(ns).Get(ctx, queue+"-pool", metav1.GetOptions{})
	if err != nil || string(s.Data["token"]) != newToken {
		t.Errorf("the workers' Secret after a new token: %v %v", err, s)
	}
	after, err := admin.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName(queue), metav1.GetOptions{})
	if err != nil || after.Annotations[kube.AnnotationSpecHash] == before.Annotations[kube.AnnotationSpecHash] {
		t.Errorf("the workers' Deployment did not roll with the new token: %v", err)
	}

	// helm uninstall takes the workers with it: their Deployment and
	// Secret are owned by the job template's ConfigMap (MANAGER_POOL_OWNER).
	defer func() {
		helm(t, cp.Kubeconfig, "uninstall", rel, "--namespace", ns)
		testutil.Eventually(t, time.Minute, "the workers gone with the release", func() error {
			if _, err := admin.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName(queue), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the workers' Deployment: %v", err)
			}
			if _, err := admin.CoreV1().Secrets(ns).Get(ctx, queue+"-pool", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the workers' Secret: %v", err)
			}
			return nil
		})
	}()

	// Nothing beyond.
	can := func(verb, group, resource, name string) bool {
		t.Helper()
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: resource, Name: name}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review: %v", err)
		}
		return r.Status.Allowed
	}
	for _, a := range [][4]string{
		{"get", "", "secrets", rel + "-itemq-pool-token"}, {"get", "", "secrets", rel + "-itemq-token"}, {"list", "", "secrets", ""},
		{"watch", "", "secrets", ""}, {"delete", "", "secrets", queue + "-pool"}, {"update", "", "secrets", "other"},
		{"get", "apps", "deployments", rel + "-itemq"}, {"update", "apps", "deployments", rel + "-itemq"},
		{"patch", "apps", "deployments", kube.DeploymentName(queue)}, {"delete", "apps", "deployments", kube.DeploymentName(queue)},
		{"list", "apps", "deployments", ""}, {"delete", "", "pods", ""}, {"create", "", "pods", ""}, {"list", "", "pods", ""},
	} {
		if can(a[0], a[1], a[2], a[3]) {
			t.Errorf("the ServiceAccount may %v, which the pool does not need", a)
		}
	}
}
