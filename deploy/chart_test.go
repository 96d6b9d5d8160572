// Package deploy_test checks what deploy/ ships: the Helm chart
// (deploy/helm/itemq) with helm itself (lint, template, the schema), the
// rendered objects with server-side dry runs on the test control plane, a
// real install, upgrade and uninstall there, the ServiceAccount's RBAC, the
// real itemq-manager running with the chart's settings and RBAC, and the
// alert rules and dashboard (deploy/prometheus, deploy/grafana) against the
// metrics a running manager and ambassador export.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// valuesFiles are the chart's example values (deploy/helm/itemq/ci): every
// source kind, both item-file modes, everything optional, the pool.
var valuesFiles = []string{"dir", "bucket", "kafka", "redis", "url", "full", "pool"}

func chartDir(t testing.TB) string {
	return filepath.Join(testutil.ModuleRoot(t), "deploy", "helm", "itemq")
}

func valuesFile(t testing.TB, name string) string {
	return filepath.Join(chartDir(t), "ci", name+"-values.yaml")
}

// helmCmd runs helm with its own home (cache, config, data) in a temporary
// directory, and kubeconfig when not empty.
func helmCmd(t testing.TB, kubeconfig string, args ...string) ([]byte, error) {
	t.Helper()
	bin := testutil.Need(t, "ITEMQ_HELM")
	home := filepath.Join(os.TempDir(), "itemq-helm-home")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+home+"/cache",
		"HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func helm(t testing.TB, kubeconfig string, args ...string) []byte {
	t.Helper()
	out, err := helmCmd(t, kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// object is a rendered manifest.
type object struct {
	raw  []byte
	Kind string `json:"kind"`
	Meta struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func (o object) id() string { return o.Kind + "/" + o.Meta.Name }

// splitManifests parses helm template's output.
func splitManifests(t testing.TB, out []byte) []object {
	t.Helper()
	var objs []object
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		var o object
		if err := json.Unmarshal(js, &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "" {
			continue
		}
		o.raw = js
		objs = append(objs, o)
	}
	return objs
}

func render(t testing.TB, release, namespace string, args ...string) []object {
	t.Helper()
	out := helm(t, "", append([]string{"template", release, chartDir(t), "--namespace", namespace}, args...)...)
	return splitManifests(t, out)
}

func find(t testing.TB, objs []object, kind string) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind {
			return o
		}
	}
	t.Fatalf("no %s rendered", kind)
	return object{}
}

func decode[T any](t testing.TB, o object) *T {
	t.Helper()
	v := new(T)
	if err := yaml.UnmarshalStrict(o.raw, v); err != nil {
		t.Fatalf("%s: %v", o.id(), err)
	}
	return v
}

// jobTemplate is the Job template the chart gives the manager, decoded
// strictly as a batch/v1 Job (the manager rejects unknown fields too).
func jobTemplate(t testing.TB, objs []object) (*batchv1.Job, string) {
	t.Helper()
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasSuffix(o.Meta.Name, "-job-template") {
			cm := decode[corev1.ConfigMap](t, o)
			text := cm.Data["job-template.yaml"]
			var j batchv1.Job
			if err := yaml.UnmarshalStrict([]byte(text), &j); err != nil {
				t.Fatalf("the job template: %v\n%s", err, text)
			}
			return &j, text
		}
	}
	t.Fatal("no job template ConfigMap rendered")
	return nil, ""
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "(valueFrom)"
			continue
		}
		env[e.Name] = e.Value
	}
	return env
}

func TestHelmLint(t *testing.T) {
	out := helm(t, "", "lint", "--strict", chartDir(t))
	t.Logf("%s", out)
	for _, v := range valuesFiles {
		helm(t, "", "lint", "--strict", chartDir(t), "-f", valuesFile(t, v))
	}
}

// A wrong value fails at install (template) time with a message naming it.
func TestSchemaRejectsWrongValues(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--set", "manager.itemFile=pod"}, "itemFile"},
		{[]string{"--set", "manger.maxActive=3"}, "manger"},
		{[]string{"--set", "replicaCount=3", "--set", "leaderElection.enabled=false"}, "replicaCount"},
		{[]string{"--set", "queue=Not_A_Label"}, "queue"},
		{[]string{"--set", "source.type=url"}, "url"},
		{[]string{"--set", "source.type=nats"}, "source.type"},
		{[]string{"--set", "ambassador.kind=custom"}, "repository"},
		{[]string{"--set", "ambassador.kind=sqs"}, "kind"},
		{[]string{"--set", "manager.maxActive=0"}, "maxActive"},
		{[]string{"--set", "manager.jobTimeout=30 minutes"}, "jobTimeout"},
		{[]string{"--set", "manager.targetWait=1.5"}, "targetWait"},
		{[]string{"--set", "job.env.OUTPUT-URL=x"}, "OUTPUT-URL"},
		{[]string{"--set", "dataVolume.enabled=true"}, "dataVolume"},
		{[]string{"--set-json", `job.command=["a"]`, "--set-json", `job.steps=[["b"]]`}, "job.steps"},
		{[]string{"--set", "manager.fair.lowShare=2"}, "lowShare"},
		{[]string{"--set", "manager.fair.key=t", "--set", "manager.fair.weights.a=-1"}, "weights"},
		{[]string{"--set", "manager.fair.keyCap=2"}, "manager.fair.key"},
		{[]string{"--set", "pool.leaseTTL=15 seconds"}, "leaseTTL"},
		{[]string{"--set", "pool.tokn.name=x"}, "tokn"},
		{[]string{"--set", "pool.token.key="}, "key"},
		{[]string{"--set", "pool.enabled=true", "--set", "replicaCount=2", "--set", "leaderElection.enabled=false"}, "replicaCount"},
	}
	for _, c := range cases {
		_, err := helmCmd(t, "", append([]string{"template", "q", chartDir(t)}, c.args...)...)
		if err == nil {
			t.Errorf("%v: rendered, want an error about %s", c.args, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: the error does not name %q:\n%v", c.args, c.want, err)
		}
	}
	// A release name that is not a DNS label fails too, unless queue is set.
	if _, err := helmCmd(t, "", "template", strings.Repeat("x", 53), chartDir(t)); err == nil || !strings.Contains(err.Error(), "queue") {
		t.Errorf("a 53-character release name as the queue: %v", err)
	}
}

// What the chart renders, object by object, for every example values file.
func TestTemplateRendersTheQueue(t *testing.T) {
	for _, v := range valuesFiles {
		t.Run(v, func(t *testing.T) {
			objs := render(t, "rel", "ns1", "-f", valuesFile(t, v))
			kinds := map[string]bool{}
			for _, o := range objs {
				kinds[o.Kind] = true
				for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
					"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"} {
					if o.Meta.Labels[l] == "" {
						t.Errorf("%s lacks the label %s", o.id(), l)
					}
				}
				if o.Meta.Namespace != "ns1" {
					t.Errorf("%s in namespace %q", o.id(), o.Meta.Namespace)
				}
			}
			for _, k := range []string{"Deployment", "ServiceAccount", "Role", "RoleBinding", "Service", "ConfigMap"} {
				if !kinds[k] {
					t.Errorf("no %s", k)
				}
			}
			d := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
			spec := d.Spec.Template.Spec
			m := spec.Containers[0]
			env := envOf(m)
			if env["MANAGER_RUNNER"] != "kubernetes" || env["MANAGER_JOB_TEMPLATE"] != "/etc/itemq/job-template.yaml" ||
				env["MANAGER_ADDR"] != "0.0.0.0:8081" {
				t.Errorf("manager env %v", env)
			}
			if env["MANAGER_KUBE_ITEM_FILE"] != "configmap" && env["MANAGER_KUBE_ITEM_FILE"] != "annotation" {
				t.Errorf("MANAGER_KUBE_ITEM_FILE=%q", env["MANAGER_KUBE_ITEM_FILE"])
			}
			// Non-root, read-only, no privileges, for every container.
			if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Errorf("pod security context %+v", sc)
			}
			for _, c := range spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: security context %+v", c.Name, sc)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("container %s: resources %+v", c.Name, c.Resources)
				}
			}
			if m.ReadinessProbe == nil || m.LivenessProbe == nil {
				t.Error("the manager has no probes")
			}
			if v == "pool" {
				if *d.Spec.Replicas != 1 || env["MANAGER_LEADER_ELECT"] != "false" || kinds["PodDisruptionBudget"] ||
					d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Errorf("the pool's one manager: replicas %d, leader election %q, PDB %v, strategy %q",
						*d.Spec.Replicas, env["MANAGER_LEADER_ELECT"], kinds["PodDisruptionBudget"], d.Spec.Strategy.Type)
				}
				if env["MANAGER_EXECUTION"] != "pool" || env["MANAGER_STATE_DIR"] != "/var/lib/itemq" {
					t.Errorf("pool: manager env %v", env)
				}
			} else if env["MANAGER_EXECUTION"] != "" || env["MANAGER_STATE_DIR"] != "/var/lib/itemq" ||
				d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
				t.Errorf("a Job per item: MANAGER_EXECUTION %q, MANAGER_STATE_DIR %q, strategy %q",
					env["MANAGER_EXECUTION"], env["MANAGER_STATE_DIR"], d.Spec.Strategy.Type)
			}
			switch v {
			case "url":
				if len(spec.Containers) != 1 || env["MANAGER_SOURCE"] != "dir:///data/in?pattern=*.json" {
					t.Errorf("in-manager source: %d containers, MANAGER_SOURCE=%q", len(spec.Containers), env["MANAGER_SOURCE"])
				}
				if *d.Spec.Replicas != 1 || env["MANAGER_LEADER_ELECT"] != "false" || kinds["PodDisruptionBudget"] {
					t.Errorf("one replica: replicas %d, leader election %q, PDB %v", *d.Spec.Replicas, env["MANAGER_LEADER_ELECT"], kinds["PodDisruptionBudget"])
				}
				if _, ok := env["MANAGER_JOB_TTL"]; ok {
					t.Errorf("ttlSecondsAfterFinished null gave MANAGER_JOB_TTL=%q", env["MANAGER_JOB_TTL"])
				}
			default:
				if len(spec.Containers) != 2 || env["MANAGER_SOURCE"] != "http://127.0.0.1:8080" {
					t.Fatalf("ambassador sidecar: %d containers, MANAGER_SOURCE=%q", len(spec.Containers), env["MANAGER_SOURCE"])
				}
				a := spec.Containers[1]
				if envOf(a)["ITEMQ_ADDR"] != "127.0.0.1:8080" {
					t.Errorf("the ambassador listens on %q, want the loopback", envOf(a)["ITEMQ_ADDR"])
				}
				wantImage := map[string]string{"dir": "itemq/itemq-dir", "bucket": "itemq/itemq-bucket", "kafka": "itemq/itemq-kafka",
					"redis": "itemq/itemq-redis", "full": "itemq/itemq-dir", "pool": "itemq/itemq-redis"}[v]
				if !strings.HasPrefix(a.Image, wantImage+":") {
					t.Errorf("ambassador image %s, want %s", a.Image, wantImage)
				}
				if v != "pool" && (*d.Spec.Replicas != 2 || env["MANAGER_LEADER_ELECT"] != "true" || !kinds["PodDisruptionBudget"]) {
					t.Errorf("two replicas: replicas %d, leader election %q, PDB %v", *d.Spec.Replicas, env["MANAGER_LEADER_ELECT"], kinds["PodDisruptionBudget"])
				}
				if env["MANAGER_JOB_TTL"] != "86400s" && v != "full" {
					t.Errorf("MANAGER_JOB_TTL=%q", env["MANAGER_JOB_TTL"])
				}
			}
			if d.Spec.Template.Annotations["checksum/job-template"] == "" {
				t.Error("no checksum of the job template on the pod template")
			}
			job, text := jobTemplate(t, objs)
			ps := job.Spec.Template.Spec
			if len(ps.Containers) != 1 || ps.Containers[0].Name != "executor" {
				t.Fatalf("job template containers: %+v", ps.Containers)
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Error("executor pods mount a service account token")
			}
			if job.Labels["app.kubernetes.io/component"] != "executor" || job.Labels["app.kubernetes.io/instance"] != "rel" {
				t.Errorf("job labels %v", job.Labels)
			}
			if v == "full" {
				if job.Labels["kueue.x-k8s.io/queue-name"] != "user-queue" {
					t.Errorf("no Kueue label on the Job: %v", job.Labels)
				}
				if env["MANAGER_STEPS"] != `[["/usr/bin/render","--fast"],["/usr/bin/itemq-script","--","/app/stamp"]]` {
					t.Errorf("MANAGER_STEPS=%q", env["MANAGER_STEPS"])
				}
				if env["MANAGER_JOB_TTL"] != "3600s" || env["MANAGER_TOKEN"] != "(valueFrom)" || env["MANAGER_DISPATCH_WORKERS"] != "32" {
					t.Errorf("manager env %v", env)
				}
				if ps.NodeSelector["node.kubernetes.io/instance-type"] != "gpu" || len(ps.Tolerations) != 1 ||
					*job.Spec.ActiveDeadlineSeconds != 7200 || ps.PriorityClassName != "batch-low" {
					t.Errorf("scheduling of the job template:\n%s", text)
				}
				if ps.Containers[0].Image != "registry.example.com/render:1.4.2" {
					t.Errorf("executor image %s", ps.Containers[0].Image)
				}
				for _, k := range []string{"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Ingress", "PersistentVolumeClaim"} {
					if !kinds[k] {
						t.Errorf("no %s", k)
					}
				}
			}
			if v == "bucket" && env["MANAGER_COMMAND"] != `["/usr/bin/itemq-script","--","/app/resize.sh"]` {
				t.Errorf("MANAGER_COMMAND=%q", env["MANAGER_COMMAND"])
			}
		})
	}
}

// roleRule is a rule of a Role for one group and resource, its verbs and
// resourceNames sorted and joined.
type roleRule struct{ group, resource, verbs, names string }

// roleRules is the rendered Role's rules, one per group and resource,
// sorted by group + resource (+ names).
func roleRules(t testing.TB, objs []object) []roleRule {
	t.Helper()
	var role struct {
		Rules []struct {
			APIGroups     []string `json:"apiGroups"`
			Resources     []string `json:"resources"`
			Verbs         []string `json:"verbs"`
			ResourceNames []string `json:"resourceNames"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(find(t, objs, "Role").raw, &role); err != nil {
		t.Fatal(err)
	}
	var out []roleRule
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				v := append([]string{}, r.Verbs...)
				sort.Strings(v)
				n := append([]string{}, r.ResourceNames...)
				sort.Strings(n)
				out = append(out, roleRule{g, res, strings.Join(v, ","), strings.Join(n, ",")})
			}
		}
	}
	sortRules(out)
	return out
}

func sortRules(rs []roleRule) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.group+a.resource != b.group+b.resource {
			return a.group+a.resource < b.group+b.resource
		}
		return a.names < b.names
	})
}

// The RBAC the chart grants, as rules: exactly what the runner calls.
func TestRoleIsTheMinimum(t *testing.T) {
	// Sorted by group + resource, as roleRules sorts them.
	want := []roleRule{
		{"batch", "jobs", "create,delete,get,list,patch,watch", ""},
		{"", "configmaps", "create,delete,get,list,patch", ""},
		{"coordination.k8s.io", "leases", "create,get,update", ""},
		{"", "events", "create,patch", ""},
	}
	if got := roleRules(t, render(t, "rel", "ns1")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rules:\n got %v\nwant %v", got, want)
	}
	// Without leader election, no Lease.
	noLease := []roleRule{want[0], want[1], want[3]}
	if got := roleRules(t, render(t, "rel", "ns1", "-f", valuesFile(t, "url"))); fmt.Sprint(got) != fmt.Sprint(noLease) {
		t.Errorf("rules without leader election: %v", got)
	}
	// rbac.readPods adds read-only pods and logs, nothing else.
	withPods := append([]roleRule{}, want...)
	withPods = append(withPods, roleRule{"", "pods", "get,list", ""}, roleRule{"", "pods/log", "get,list", ""})
	sortRules(withPods)
	if got := roleRules(t, render(t, "rel", "ns1", "--set", "rbac.readPods=true")); fmt.Sprint(got) != fmt.Sprint(withPods) {
		t.Errorf("rules with rbac.readPods:\n got %v\nwant %v", got, withPods)
	}
	// pool.enabled adds what kube.Workers calls, get and update only on the
	// pool's own Deployment and Secret (create cannot be limited to a name).
	pool := append([]roleRule{}, noLease...)
	pool = append(pool,
		roleRule{"apps", "deployments", "create", ""},
		roleRule{"apps", "deployments", "get,update", kube.DeploymentName("frames")},
		roleRule{"", "secrets", "create", ""},
		roleRule{"", "secrets", "get,update", "frames-pool"},
		roleRule{"", "pods", "patch", ""})
	sortRules(pool)
	poolObjs := render(t, "rel", "ns1", "-f", valuesFile(t, "pool"))
	got := roleRules(t, poolObjs)
	if fmt.Sprint(got) != fmt.Sprint(pool) {
		t.Errorf("rules with pool.enabled:\n got %v\nwant %v", got, pool)
	}
	// And those extra rules are exactly the calls workers.go makes through
	// the client (group, resource, verb), read from its source: a call added
	// there without its rule, or a rule kept for a call gone, fails here.
	extra := map[string]bool{}
	for _, r := range got {
		if slices.Contains(noLease, roleRule{r.group, r.resource, r.verbs, ""}) {
			continue
		}
		for _, v := range strings.Split(r.verbs, ",") {
			extra[r.group+"/"+r.resource+" "+v] = true
		}
	}
	calls := clientCalls(t, filepath.Join(testutil.ModuleRoot(t), "internal", "runner", "kube", "workers.go"))
	for _, r := range noLease { // granted without the pool (the owner ConfigMap's get)
		for _, v := range strings.Split(r.verbs, ",") {
			delete(calls, r.group+"/"+r.resource+" "+v)
		}
	}
	if fmt.Sprint(calls) != fmt.Sprint(extra) {
		t.Errorf("the pool's rules grant %v;\nworkers.go calls %v", extra, calls)
	}
	// The rules name the Deployment and Secret kube.Workers makes from the
	// chart's Job template.
	tmpl, _ := jobTemplate(t, poolObjs)
	w, err := kube.NewWorkers(nil, kube.WorkersConfig{Queue: "frames", Namespace: "ns1", Template: tmpl,
		URL: "http://m", Token: strings.Repeat("t", 16)})
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, e := range w.Deployment().Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secret = e.ValueFrom.SecretKeyRef.Name
		}
	}
	if d := w.Deployment().Name; secret == "" || !slices.Contains(got, roleRule{"", "secrets", "get,update", secret}) ||
		!slices.Contains(got, roleRule{"apps", "deployments", "get,update", d}) {
		t.Errorf("the workers' Deployment is %q, their Secret %q; the rules: %v", d, secret, got)
	}
}

// clientCalls is the API calls a file of package kube makes through a
// client-go clientset, as "group/resource verb": X.AppsV1().Deployments(ns).Get(…),
// directly or through a variable holding X.AppsV1().Deployments(ns).
func clientCalls(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{"CoreV1": "", "AppsV1": "apps", "BatchV1": "batch", "CoordinationV1": "coordination.k8s.io"}
	// resource is the group/resource of X.<Group>().<Resources>(…).
	resource := func(e ast.Expr) (string, bool) {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return "", false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		inner, ok := sel.X.(*ast.CallExpr)
		if !ok {
			return "", false
		}
		gsel, ok := inner.Fun.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		if !strings.HasSuffix(gsel.Sel.Name, "V1") && !strings.Contains(gsel.Sel.Name, "V1beta") {
			return "", false
		}
		g, known := groups[gsel.Sel.Name]
		if !known {
			t.Fatalf("%s: the API group of %s() is not known to this test", file, gsel.Sel.Name)
		}
		return g + "/" + strings.ToLower(sel.Sel.Name), true
	}
	vars := map[string]string{} // variable → group/resource
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
			for i, rhs := range as.Rhs {
				if r, ok := resource(rhs); ok {
					if id, ok := as.Lhs[i].(*ast.Ident); ok {
						vars[id.Name] = r
					}
				}
			}
		}
		return true
	})
	calls := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		r, ok := resource(sel.X)
		if id, isID := sel.X.(*ast.Ident); !ok && isID {
			r, ok = vars[id.Name]
		}
		if ok {
			calls[r+" "+strings.ToLower(sel.Sel.Name)] = true
		}
		return true
	})
	if len(calls) == 0 {
		t.Fatalf("no client calls found in %s", file)
	}
	return calls
}

// deploy/ and the chart ship the same dashboard and rules.
func TestChartCopiesAreIdentical(t *testing.T) {
	root := testutil.ModuleRoot(t)
	for truth, cp := range map[string]string{
		"deploy/grafana/itemq.json":    "deploy/helm/itemq/files/itemq.json",
		"deploy/prometheus/rules.yaml": "deploy/helm/itemq/files/rules.yaml",
	} {
		a := testutil.ReadFile(t, filepath.Join(root, truth))
		b := testutil.ReadFile(t, filepath.Join(root, cp))
		if a != b {
			t.Errorf("%s differs from %s: cp %s %s", cp, truth, truth, cp)
		}
	}
	// And the chart renders them.
	objs := render(t, "rel", "ns1", "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(find(t, objs, "PrometheusRule").raw, &rule); err != nil || len(rule.Spec.Groups) == 0 || len(rule.Spec.Groups[0].Rules) < 5 {
		t.Errorf("PrometheusRule: %v %+v", err, rule)
	}
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasSuffix(o.Meta.Name, "-dashboard") {
			cm := decode[corev1.ConfigMap](t, o)
			if cm.Data["itemq.json"] != strings.TrimRight(testutil.ReadFile(t, filepath.Join(root, "deploy/grafana/itemq.json")), "\n") {
				t.Error("the dashboard ConfigMap does not hold deploy/grafana/itemq.json")
			}
			if cm.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard labels %v", cm.Labels)
			}
			return
		}
	}
	t.Error("no dashboard ConfigMap")
}

// Fair dispatch's values become the manager's settings, in the form it
// parses (--set gives weights as strings).
func TestFairDispatchValues(t *testing.T) {
	objs := render(t, "rel", "ns1", "--set", "manager.fair.key=tenant", "--set", "manager.fair.weights.gold=3",
		"--set", "manager.fair.weights.free=0.5", "--set", "manager.fair.keyCap=2", "--set", "manager.fair.priorityField=meta.prio")
	env := envOf(decode[appsv1.Deployment](t, find(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
	for k, want := range map[string]string{"MANAGER_FAIR_KEY": "tenant", "MANAGER_FAIR_WEIGHTS": "free=0.5,gold=3",
		"MANAGER_FAIR_KEY_CAP": "2", "MANAGER_PRIORITY_FIELD": "meta.prio", "MANAGER_PRIORITY_LOW_SHARE": "0.1"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if w, err := manager.ParseWeights(env["MANAGER_FAIR_WEIGHTS"]); err != nil || w["gold"] != 3 || w["free"] != 0.5 {
		t.Errorf("the manager reads MANAGER_FAIR_WEIGHTS as %v, %v", w, err)
	}
	// Off by default: none of them is set.
	env = envOf(decode[appsv1.Deployment](t, find(t, render(t, "rel", "ns1"), "Deployment")).Spec.Template.Spec.Containers[0])
	for _, k := range []string{"MANAGER_FAIR_KEY", "MANAGER_FAIR_WEIGHTS", "MANAGER_FAIR_KEY_CAP", "MANAGER_PRIORITY_FIELD"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%q by default", k, v)
		}
	}
}

// The chart's README lists every value of values.yaml.
func TestReadmeListsEveryValue(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal([]byte(testutil.ReadFile(t, filepath.Join(chartDir(t), "values.yaml"))), &values); err != nil {
		t.Fatal(err)
	}
	readme := testutil.ReadFile(t, filepath.Join(chartDir(t), "README.md"))
	n := 0
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			if strings.Contains(readme, "| `"+p+"` |") {
				n++
				continue
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(p+".", sub)
				continue
			}
			t.Errorf("README.md does not list the value %s", p)
		}
	}
	walk("", values)
	if n < 100 {
		t.Errorf("only %d values listed", n)
	}
}

// The manager listens on the pod's address, so it always has a token: the
// given Secret's, or one the chart generates (none only when asked); and
// executors may read only what the ambassador serves.
func TestTokenAndInputAllow(t *testing.T) {
	for _, c := range []struct {
		args                 []string
		token, secret, allow string
	}{
		{nil, "(valueFrom)", "rel-itemq-token", "file:///data/"},
		{[]string{"-f", valuesFile(t, "dir")}, "(valueFrom)", "rel-itemq-token", "file:///media/incoming/"},
		{[]string{"-f", valuesFile(t, "bucket"), "--set", "ambassador.env.BUCKET_PREFIX=clips/"}, "(valueFrom)", "rel-itemq-token", "s3://incoming/clips/?region=eu-west-1"},
		{[]string{"-f", valuesFile(t, "full")}, "(valueFrom)", "", "file:///data/in/"},
		{[]string{"-f", valuesFile(t, "kafka")}, "(valueFrom)", "rel-itemq-token", ""},
		{[]string{"--set", "manager.allowUnauthenticated=true", "--set", "manager.inputAllow=*"}, "", "", "*"},
	} {
		objs := render(t, "rel", "ns1", c.args...)
		env := envOf(decode[appsv1.Deployment](t, find(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
		if env["MANAGER_TOKEN"] != c.token || env["MANAGER_INPUT_ALLOW"] != c.allow {
			t.Errorf("%q: MANAGER_TOKEN %q, MANAGER_INPUT_ALLOW %q; want %q, %q", c.args, env["MANAGER_TOKEN"], env["MANAGER_INPUT_ALLOW"], c.token, c.allow)
		}
		if (c.token == "") != (env["MANAGER_ALLOW_UNAUTHENTICATED"] == "true") {
			t.Errorf("%q: MANAGER_ALLOW_UNAUTHENTICATED=%q", c.args, env["MANAGER_ALLOW_UNAUTHENTICATED"])
		}
		var secret *corev1.Secret
		for _, o := range objs {
			if o.Kind == "Secret" {
				secret = decode[corev1.Secret](t, o)
			}
		}
		switch {
		case c.secret == "" && secret != nil:
			t.Errorf("%q: a Secret %s was generated", c.args, secret.Name)
		case c.secret != "" && (secret == nil || secret.Name != c.secret || len(secret.Data["token"]) < 32):
			t.Errorf("%q: generated Secret %+v, want %s with a token of ≥ 32 bytes", c.args, secret, c.secret)
		}
	}
}

// pool.enabled: the manager runs the pool (MANAGER_EXECUTION=pool), its
// workers reach it through the Service with a token from a Secret, its
// record is in a state volume; disabled, no pool value changes anything.
func TestPoolValues(t *testing.T) {
	pool := []string{"--set", "pool.enabled=true", "--set", "replicaCount=1", "--set", "leaderElection.enabled=false"}
	manager := func(objs []object) *appsv1.Deployment {
		t.Helper()
		return decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
	}
	secrets := func(objs []object) map[string]*corev1.Secret {
		out := map[string]*corev1.Secret{}
		for _, o := range objs {
			if o.Kind == "Secret" {
				out[o.Meta.Name] = decode[corev1.Secret](t, o)
			}
		}
		return out
	}
	// Generated tokens differ from one rendering to the next.
	tokenLine := regexp.MustCompile(`(?m)^  token: .*$`)
	renderText := func(args ...string) string {
		out := helm(t, "", append([]string{"template", "rel", chartDir(t), "--namespace", "ns1"}, args...)...)
		return tokenLine.ReplaceAllString(string(out), "  token: (random)")
	}

	// Disabled (the default), the pool's values change nothing, and there is
	// no trace of it: no setting, no Secret, no rule.
	for _, base := range [][]string{nil, {"-f", valuesFile(t, "url")}, {"-f", valuesFile(t, "full")}} {
		before := renderText(base...)
		after := renderText(append(append([]string{}, base...), "--set", "pool.token.name=s", "--set", "pool.token.key=k",
			"--set", "pool.leaseTTL=99s", "--set", "pool.stateClaim=c")...)
		if before != after {
			t.Errorf("%q: pool values change the rendering with pool.enabled false", base)
		}
		for _, word := range []string{"MANAGER_EXECUTION", "MANAGER_POOL", "pool-token",
			"Recreate", `"deployments"`, `"secrets"`, "itemq.io/role"} {
			if strings.Contains(before, word) {
				t.Errorf("%q: %s rendered with pool.enabled false", base, word)
			}
		}
	}

	// Enabled, with the generated token and an emptyDir.
	objs := render(t, "rel", "ns1", pool...)
	d := manager(objs)
	spec := d.Spec.Template.Spec
	m := spec.Containers[0]
	env := envOf(m)
	for k, want := range map[string]string{"MANAGER_EXECUTION": "pool", "MANAGER_POOL_URL": "http://rel-itemq.ns1.svc:8081",
		"MANAGER_POOL_TOKEN": "(valueFrom)", "MANAGER_POOL_LEASE_TTL": "15s", "MANAGER_STATE_DIR": "/var/lib/itemq",
		"MANAGER_LEADER_ELECT": "false", "MANAGER_RUNNER": "kubernetes", "MANAGER_POOL_OWNER": "rel-itemq-job-template"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if v, ok := env["MANAGER_TARGET_WAIT"]; ok {
		t.Errorf("MANAGER_TARGET_WAIT=%q rendered with manager.targetWait empty", v)
	}
	if env := envOf(manager(render(t, "rel", "ns1", append(pool, "--set", "manager.targetWait=1500ms")...)).Spec.Template.Spec.Containers[0]); env["MANAGER_TARGET_WAIT"] != "1500ms" {
		t.Errorf("manager.targetWait=1500ms: MANAGER_TARGET_WAIT=%q", env["MANAGER_TARGET_WAIT"])
	}
	if svc := find(t, objs, "Service"); !strings.HasPrefix(env["MANAGER_POOL_URL"], "http://"+svc.Meta.Name+"."+svc.Meta.Namespace+".svc:") {
		t.Errorf("MANAGER_POOL_URL=%s is not the Service %s", env["MANAGER_POOL_URL"], svc.id())
	}
	secretRef := func(c corev1.Container, name string) *corev1.SecretKeySelector {
		for _, e := range c.Env {
			if e.Name == name && e.ValueFrom != nil {
				return e.ValueFrom.SecretKeyRef
			}
		}
		return nil
	}
	if ref := secretRef(m, "MANAGER_POOL_TOKEN"); ref == nil || ref.Name != "rel-itemq-pool-token" || ref.Key != "token" {
		t.Errorf("MANAGER_POOL_TOKEN from %+v", ref)
	}
	if s := secrets(objs)["rel-itemq-pool-token"]; s == nil || len(s.Data["token"]) != 40 {
		t.Errorf("the generated pool token Secret: %+v", s)
	} else if mt := secrets(objs)["rel-itemq-token"]; mt == nil || bytes.Equal(mt.Data["token"], s.Data["token"]) {
		t.Error("the pool's token is the status API's (or there is no API token)")
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("strategy %+v, want Recreate: never two managers of the pool", d.Spec.Strategy)
	}
	state := func(spec corev1.PodSpec, c corev1.Container) (*corev1.Volume, *corev1.VolumeMount) {
		var v *corev1.Volume
		var vm *corev1.VolumeMount
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == "state" {
				v = &spec.Volumes[i]
			}
		}
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == "/var/lib/itemq" {
				vm = &c.VolumeMounts[i]
			}
		}
		return v, vm
	}
	v, vm := state(spec, m)
	if v == nil || v.EmptyDir == nil || vm == nil || vm.Name != "state" || vm.ReadOnly {
		t.Errorf("the state volume %+v, mounted %+v; want an emptyDir, read-write", v, vm)
	}
	// The root filesystem is read-only: the state directory is the volume,
	// which the manager's group may write (fsGroup).
	if sc := m.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("manager security context %+v", m.SecurityContext)
	}
	if psc := spec.SecurityContext; psc == nil || psc.FSGroup == nil || psc.RunAsGroup == nil || *psc.FSGroup != *psc.RunAsGroup {
		t.Errorf("pod security context %+v: want fsGroup = the manager's group", spec.SecurityContext)
	}

	// A claim, a Secret of one's own, another Service port and lease.
	objs = render(t, "rel", "ns2", append(append([]string{}, pool...), "--set", "pool.stateClaim=q-state",
		"--set", "pool.token.name=my-pool", "--set", "pool.token.key=t", "--set", "service.port=9000",
		"--set", "pool.leaseTTL=1m", "--set", "fullnameOverride=q")...)
	d = manager(objs)
	m = d.Spec.Template.Spec.Containers[0]
	env = envOf(m)
	if env["MANAGER_POOL_URL"] != "http://q.ns2.svc:9000" || env["MANAGER_POOL_LEASE_TTL"] != "1m" {
		t.Errorf("MANAGER_POOL_URL=%q, MANAGER_POOL_LEASE_TTL=%q", env["MANAGER_POOL_URL"], env["MANAGER_POOL_LEASE_TTL"])
	}
	if ref := secretRef(m, "MANAGER_POOL_TOKEN"); ref == nil || ref.Name != "my-pool" || ref.Key != "t" {
		t.Errorf("MANAGER_POOL_TOKEN from %+v", ref)
	}
	if _, ok := secrets(objs)["q-pool-token"]; ok {
		t.Error("a pool token Secret was generated though pool.token.name is set")
	}
	v, vm = state(d.Spec.Template.Spec, m)
	if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "q-state" || v.EmptyDir != nil ||
		vm == nil || vm.ReadOnly {
		t.Errorf("the state volume %+v, mounted %+v; want the claim q-state, read-write", v, vm)
	}

	// The NetworkPolicy lets the workers reach the manager when it names
	// its peers (by default it admits every pod of the namespace).
	npFrom := func(objs []object) []string {
		var np struct {
			Spec struct {
				Ingress []struct {
					From []json.RawMessage `json:"from"`
				} `json:"ingress"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(find(t, objs, "NetworkPolicy").raw, &np); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range np.Spec.Ingress {
			for _, f := range in.From {
				out = append(out, string(f))
			}
		}
		return out
	}
	worker := `{"podSelector":{"matchLabels":{"itemq.io/queue":"frames","itemq.io/role":"worker"}}}`
	if from := npFrom(render(t, "rel", "ns1", "-f", valuesFile(t, "pool"))); !slices.Contains(from, worker) {
		t.Errorf("the NetworkPolicy does not admit the workers: %v", from)
	}
	if from := npFrom(render(t, "rel", "ns1", append(append([]string{}, pool...), "--set", "networkPolicy.enabled=true")...)); fmt.Sprint(from) != `[{"podSelector":{}}]` {
		t.Errorf("the default NetworkPolicy peers: %v", from)
	}
	if from := npFrom(render(t, "rel", "ns1", "-f", valuesFile(t, "full"))); slices.Contains(from, strings.ReplaceAll(worker, "frames", "renders")) {
		t.Errorf("the NetworkPolicy admits workers without pool.enabled: %v", from)
	}

	// Not with more than one manager, leader election, or a pipeline.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "pool.enabled=true"}, "pool.enabled needs replicaCount=1 and leaderElection.enabled=false"},
		{[]string{"--set", "pool.enabled=true", "--set", "replicaCount=1"}, "pool.enabled needs replicaCount=1 and leaderElection.enabled=false"},
		{[]string{"--set", "pool.enabled=true", "--set", "leaderElection.enabled=false"}, "replicaCount"},
		{append(append([]string{}, pool...), "--set-json", `job.steps=[["a"],["b"]]`), "job.steps"},
	} {
		_, err := helmCmd(t, "", append([]string{"template", "q", chartDir(t)}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error about %q", c.args, err, c.want)
		}
	}
	// One step is one executor: fine.
	if env := envOf(manager(render(t, "rel", "ns1", append(append([]string{}, pool...), "--set-json", `job.steps=[["a"]]`)...)).Spec.Template.Spec.Containers[0]); env["MANAGER_STEPS"] != `[["a"]]` {
		t.Errorf("one step with the pool: MANAGER_STEPS=%q", env["MANAGER_STEPS"])
	}
}

// The manager writes its records (Idempotency-Keys, webhook deliveries, the
// pool's jobs) in MANAGER_STATE_DIR, and its root filesystem is read-only:
// every rendering sets MANAGER_STATE_DIR on a writable volume of the pod
// (without it the manager defaulted to ~/.local/state on the read-only root
// and could not start).
func TestManagerStateDirIsWritable(t *testing.T) {
	pool := []string{"--set", "pool.enabled=true", "--set", "replicaCount=1", "--set", "leaderElection.enabled=false"}
	for _, args := range [][]string{nil, {"-f", valuesFile(t, "url")}, {"-f", valuesFile(t, "full")}, pool,
		append(slices.Clone(pool), "--set", "pool.stateClaim=claim")} {
		d := decode[appsv1.Deployment](t, find(t, render(t, "rel", "ns1", args...), "Deployment"))
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Fatalf("%q: the manager's root filesystem is no longer read-only: this test assumes it", args)
		}
		dir := envOf(c)["MANAGER_STATE_DIR"]
		if dir == "" {
			t.Errorf("%q: MANAGER_STATE_DIR is not set: the manager would write under its home on the read-only root", args)
			continue
		}
		var vol string
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir && !m.ReadOnly {
				vol = m.Name
			}
		}
		ok := false
		for _, v := range pod.Volumes {
			if v.Name == vol && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%q: MANAGER_STATE_DIR=%s is not a writable emptyDir or claim mounted in the manager (volume %q)", args, dir, vol)
		}
	}
}
