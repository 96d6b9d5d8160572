package kube_test

// Integration tests on a real control plane (internal/testutil/kubetest):
// etcd, kube-apiserver, kube-controller-manager and KWOK, which runs the
// pods (see hack/kwok/stages.yaml for how a pod's annotations choose its
// exit code). They need ITEMQ_K8S_BIN (make test sets it).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

func TestMain(m *testing.M) {
	klog.SetSlogLogger(slog.New(slog.DiscardHandler)) // client-go's chatter, e.g. requests cut by a test's end
	kubetest.Main(m)
}

// testTemplate is a Job template whose pods run on the KWOK node (unless
// pending is set: then they are never scheduled) with the given pod
// annotations (kubetest.Annotation*).
func testTemplate(annotations map[string]string, pending bool, containers ...string) *batchv1.Job {
	if len(containers) == 0 {
		containers = []string{"main"}
	}
	tmpl := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
			Spec:       corev1.PodSpec{NodeName: kubetest.NodeName},
		}},
	}
	if pending {
		tmpl.Spec.Template.Spec.NodeName = ""
	}
	for _, c := range containers {
		tmpl.Spec.Template.Spec.Containers = append(tmpl.Spec.Template.Spec.Containers,
			corev1.Container{Name: c, Image: "itemq/itemq-script:latest"})
	}
	return tmpl
}

func writeTemplate(t *testing.T, tmpl *batchv1.Job) string {
	t.Helper()
	raw, err := yaml.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "job-template.yaml")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rig is a manager with the kubernetes runner, in this process, over an
// in-memory source.
type rig struct {
	t      *testing.T
	cp     *kubetest.ControlPlane
	ns     string
	client kubernetes.Interface
	mem    *memsource.Driver
	runner *kube.Runner
	m      *manager.Manager
	cancel context.CancelFunc
	done   chan error
}

type rigOptions struct {
	template  *batchv1.Job
	queueCfg  func(*manager.Config)
	runnerCfg func(*kube.Config)
	src       func(manager.Source) manager.Source // wraps the source
	rest      *rest.Config                        // default: the admin's
	namespace string                              // default: a fresh one
}

func startRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	cp := kubetest.Get(t)
	ns := o.namespace
	if ns == "" {
		ns = cp.Namespace(t)
	}
	rc := o.rest
	if rc == nil {
		rc = cp.RestConfig()
		rc.QPS, rc.Burst = 50, 100 // the manager's defaults
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if o.template == nil {
		o.template = testTemplate(nil, false)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	rcfg := kube.Config{Queue: "q", Namespace: ns, Template: o.template, MaxAttempts: 3, Log: log,
		Env: map[string]string{"OUTPUT_URL": "mem://"}}
	if o.runnerCfg != nil {
		o.runnerCfg(&rcfg)
	}
	r, err := kube.New(client, rcfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	mem := memsource.New()
	var src manager.Source = &manager.InProcess{Src: source.New(mem)}
	if o.src != nil {
		src = o.src(src)
	}
	qcfg := manager.Config{Queue: "q", MaxActive: 50, MinActive: 50, Resync: 5 * time.Second, Log: log}
	if o.queueCfg != nil {
		o.queueCfg(&qcfg)
	}
	m := manager.New(qcfg, src, r)
	rg := &rig{t: t, cp: cp, ns: ns, client: client, mem: mem, runner: r, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- m.Run(ctx) }()
	t.Cleanup(rg.stop)
	return rg
}

func (rg *rig) stop() {
	if rg.cancel == nil {
		return
	}
	rg.cancel()
	rg.cancel = nil
	select {
	case err := <-rg.done:
		if err != nil {
			rg.t.Errorf("manager: %v", err)
		}
	case <-time.After(30 * time.Second):
		rg.t.Error("manager did not stop within 30 s")
	}
}

func (rg *rig) put(names ...string) {
	rg.t.Helper()
	for _, n := range names {
		if err := rg.mem.Put(n, json.RawMessage(fmt.Sprintf(`{"n":%q}`, n))); err != nil {
			rg.t.Fatal(err)
		}
	}
}

func (rg *rig) waitOutcomes(timeout time.Duration, want itemapi.Outcome, items ...string) {
	rg.t.Helper()
	testutil.Eventually(rg.t, timeout, "items acknowledged "+string(want), func() error {
		n := 0
		var missing string
		for _, it := range items {
			if o, ok := rg.mem.Outcome(it); ok && o == want {
				n++
			} else if missing == "" {
				missing = fmt.Sprintf("%s: outcome %q", it, o)
			}
		}
		if n < len(items) {
			return fmt.Errorf("%d of %d acknowledged; %s", n, len(items), missing)
		}
		return nil
	})
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// census is what the cluster holds for a queue: Jobs per item (by their
// annotation) and pods per item hash (by their label).
type census struct {
	jobs       map[string][]batchv1.Job
	podsByHash map[string]int
	configMaps map[string]corev1.ConfigMap
}

func takeCensus(t *testing.T, c kubernetes.Interface, ns string) census {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: kube.Selector("q")}
	jobs, err := c.BatchV1().Jobs(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	cms, err := c.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	cs := census{jobs: map[string][]batchv1.Job{}, podsByHash: map[string]int{}, configMaps: map[string]corev1.ConfigMap{}}
	for _, j := range jobs.Items {
		cs.jobs[j.Annotations[kube.AnnotationItem]] = append(cs.jobs[j.Annotations[kube.AnnotationItem]], j)
	}
	for _, p := range pods.Items {
		cs.podsByHash[p.Labels[kube.LabelItemHash]]++
	}
	for _, cm := range cms.Items {
		cs.configMaps[cm.Name] = cm
	}
	return cs
}

// onePerItem checks that every item has exactly one Job with the given
// number of pods, and a ConfigMap owned by that Job.
func (cs census) onePerItem(t *testing.T, items []string, pods int) {
	t.Helper()
	if err := cs.check(items, pods); err != nil {
		t.Error(err)
	}
}

func (cs census) check(items []string, pods int) error { return cs.checkWith(items, pods, true) }

// checkWith checks one Job with pods pods per item, and an owned ConfigMap
// when withConfigMaps (or none at all when not: inline item documents).
func (cs census) checkWith(items []string, pods int, withConfigMaps bool) error {
	var errs []error
	if !withConfigMaps && len(cs.configMaps) > 0 {
		errs = append(errs, fmt.Errorf("%d configmaps, want none", len(cs.configMaps)))
	}
	for _, it := range items {
		js := cs.jobs[it]
		if len(js) != 1 {
			errs = append(errs, fmt.Errorf("item %s has %d jobs", it, len(js)))
			continue
		}
		if n := cs.podsByHash[runner.ItemHash(it)]; n != pods {
			errs = append(errs, fmt.Errorf("item %s has %d pods, want %d", it, n, pods))
		}
		cm, ok := cs.configMaps[js[0].Name]
		if withConfigMaps && (!ok || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != js[0].UID) {
			errs = append(errs, fmt.Errorf("item %s: configmap %s missing (%v) or not owned by its job: %+v", it, js[0].Name, !ok, cm.OwnerReferences))
		}
	}
	if len(cs.jobs) != len(items) {
		errs = append(errs, fmt.Errorf("%d items have jobs, want %d", len(cs.jobs), len(items)))
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("and %d more", len(errs)-10))
	}
	return errors.Join(errs...)
}

func jobCondition(j *batchv1.Job) (batchv1.JobConditionType, string) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, c.Reason
		}
	}
	return "", ""
}

// 200 items → 200 Jobs → all Complete through KWOK → every item archived
// as succeeded; one Job and one pod per item, the ConfigMaps owned by
// their Jobs; the status API says succeeded.
func TestIntegrationTwoHundredItems(t *testing.T) {
	rg := startRig(t, rigOptions{queueCfg: func(c *manager.Config) { c.MaxActive, c.MinActive = 200, 200 }})
	items := names("item-", 200)
	rg.put(items[:100]...)
	rg.put(items[100:]...)
	rg.waitOutcomes(4*time.Minute, itemapi.Succeeded, items...)
	cs := takeCensus(t, rg.client, rg.ns)
	cs.onePerItem(t, items, 1)
	for _, it := range items[:5] {
		j := cs.jobs[it][0]
		if c, _ := jobCondition(&j); c != batchv1.JobComplete {
			t.Errorf("job of %s: %v", it, j.Status.Conditions)
		}
	}
	testutil.Eventually(t, 30*time.Second, "status succeeded and acked", func() error {
		for _, it := range items {
			if st, ok := rg.m.Status(it); !ok || st.State != itemapi.StateSucceeded {
				return fmt.Errorf("%s: %+v", it, st)
			}
		}
		jobs, err := rg.runner.Jobs(context.Background())
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Acked != itemapi.Succeeded {
				return fmt.Errorf("job %s not marked acked: %+v", j.Name, j)
			}
		}
		return nil
	})
}

// Exit code 2: the Job fails at once (podFailurePolicy, no retry), the item
// is dead-lettered. Exit code 1: retried per backoffLimit
// (MANAGER_MAX_ATTEMPTS=3 → 3 pods), then dead-lettered.
func TestIntegrationExitCodes(t *testing.T) {
	cases := []struct {
		code     string
		attempts int
		reason   string
	}{
		{"2", 1, batchv1.JobReasonPodFailurePolicy},
		{"1", 3, batchv1.JobReasonBackoffLimitExceeded},
	}
	for _, tc := range cases {
		t.Run("exit"+tc.code, func(t *testing.T) {
			t.Parallel()
			rg := startRig(t, rigOptions{template: testTemplate(map[string]string{kubetest.AnnotationExitCode: tc.code}, false)})
			rg.put("bad")
			// The job controller waits 10 s, then 20 s before attempts 2 and 3.
			rg.waitOutcomes(3*time.Minute, itemapi.Failed, "bad")
			// The item is dead-lettered as soon as the Job controller has
			// decided (FailureTarget); the Failed condition follows.
			testutil.Eventually(t, time.Minute, "job Failed", func() error {
				j, err := rg.client.BatchV1().Jobs(rg.ns).Get(context.Background(), runner.JobName("q", "bad"), metav1.GetOptions{})
				if err != nil {
					return err
				}
				if c, reason := jobCondition(j); c != batchv1.JobFailed || reason != tc.reason {
					return fmt.Errorf("job condition %s %s, want Failed %s", c, reason, tc.reason)
				}
				return nil
			})
			takeCensus(t, rg.client, rg.ns).onePerItem(t, []string{"bad"}, tc.attempts)
			testutil.Eventually(t, 30*time.Second, "dead", func() error {
				st, _ := rg.m.Status("bad")
				if st.State != itemapi.StateDead || st.Attempts != tc.attempts || !strings.Contains(st.Error, tc.reason) {
					return fmt.Errorf("%+v", st)
				}
				return nil
			})
		})
	}
}

// MANAGER_MAX_ACTIVE counts Jobs whose pods are Pending (never scheduled
// here): with 3 allowed, 10 items get exactly 3 Jobs, all pending.
func TestIntegrationPendingPodsCountAsActive(t *testing.T) {
	rg := startRig(t, rigOptions{
		template: testTemplate(nil, true),
		queueCfg: func(c *manager.Config) { c.MaxActive, c.MinActive = 3, 3 },
	})
	items := names("p", 10)
	rg.put(items...)
	testutil.Eventually(t, time.Minute, "3 jobs with pending pods", func() error {
		pods, err := rg.client.CoreV1().Pods(rg.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) != 3 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodPending {
				return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			}
		}
		return nil
	})
	// The manager knows them as pending and starts no more, even after a
	// full resync and reconcile.
	testutil.Eventually(t, 30*time.Second, "runner reports pending", func() error {
		jobs, _ := rg.runner.Jobs(context.Background())
		n := 0
		for _, j := range jobs {
			if j.Phase == runner.PhasePending && j.Attempts == 1 {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d pending jobs with an attempt: %+v", n, jobs)
		}
		return nil
	})
	rg.m.Reconcile()
	testutil.Eventually(t, 30*time.Second, "status", func() error {
		pending := 0
		for _, st := range func() []itemapi.JobStatus { l, _ := rg.m.StatusList("", "", "", 0); return l }() {
			if st.State == itemapi.StatePending {
				pending++
			}
		}
		if pending != 10 {
			return fmt.Errorf("%d pending", pending)
		}
		return nil
	})
	if cs := takeCensus(t, rg.client, rg.ns); len(cs.jobs) != 3 {
		t.Fatalf("%d jobs, want 3", len(cs.jobs))
	}
	// GET /v1/scaling tells them apart from capacity at work.
	if sc := rg.m.Scaling(); sc.Pending != 3 || sc.Running != 0 || sc.Backlog != 7 || sc.C != 3 {
		t.Errorf("scaling: %d pending, %d running, backlog %d, c %d; want 3, 0, 7, 3", sc.Pending, sc.Running, sc.Backlog, sc.C)
	}
}

// Steps as init containers: the API server accepts the built pipeline
// (init containers, emptyDir subPaths) and KWOK runs it.
func TestIntegrationSteps(t *testing.T) {
	rg := startRig(t, rigOptions{
		template:  testTemplate(nil, false),
		runnerCfg: func(c *kube.Config) { c.Steps = [][]string{{"fetch"}, {"thumbnail"}, {"stamp"}} },
	})
	rg.put("a", "b")
	rg.waitOutcomes(2*time.Minute, itemapi.Succeeded, "a", "b")
	cs := takeCensus(t, rg.client, rg.ns)
	cs.onePerItem(t, []string{"a", "b"}, 1)
	pods, err := rg.client.CoreV1().Pods(rg.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("%v %v", pods, err)
	}
	if n := len(pods.Items[0].Spec.InitContainers); n != 2 {
		t.Errorf("%d init containers, want 2", n)
	}
}

// A hash collision: another item's Job already has the item's 10-hex name;
// the item runs under its longer name and nothing of the other item is
// touched.
func TestIntegrationHashCollision(t *testing.T) {
	cp := kubetest.Get(t)
	ns := cp.Namespace(t)
	c := cp.Client(t)
	ctx := context.Background()
	name := runner.JobName("q", "victim")
	squatter, cm, err := kube.Build(testTemplate(nil, false), kube.Params{Queue: "q", Namespace: ns, Name: name,
		Item: itemapi.NewItem("squatter", []byte(`{}`)), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BatchV1().Jobs(ns).Create(ctx, squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rg := startRig(t, rigOptions{namespace: ns})
	rg.put("victim")
	rg.waitOutcomes(time.Minute, itemapi.Succeeded, "victim")
	cs := takeCensus(t, c, ns)
	if js := cs.jobs["victim"]; len(js) != 1 || js[0].Name != kube.JobNames("q", "victim")[1] {
		t.Fatalf("victim's jobs: %v", js)
	}
	if js := cs.jobs["squatter"]; len(js) != 1 || js[0].Name != name {
		t.Fatalf("squatter's jobs: %v", js)
	}
	if st, _ := rg.m.Status("victim"); st.Job != kube.JobNames("q", "victim")[1] {
		t.Errorf("status names job %s", st.Job)
	}
}

// With MANAGER_KUBE_ITEM_FILE=annotation the item document rides in a
// pod annotation projected by the downward API: the API server accepts the
// Job, the pods carry the document, and no ConfigMap is made.
func TestIntegrationInlineItems(t *testing.T) {
	rg := startRig(t, rigOptions{runnerCfg: func(c *kube.Config) { c.InlineItems = true }})
	items := []string{"x", "y/z", "ü"}
	rg.put(items...)
	rg.waitOutcomes(time.Minute, itemapi.Succeeded, items...)
	if err := takeCensus(t, rg.client, rg.ns).checkWith(items, 1, false); err != nil {
		t.Fatal(err)
	}
	pods, err := rg.client.CoreV1().Pods(rg.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		var it itemapi.Item
		if err := json.Unmarshal([]byte(p.Annotations[kube.AnnotationItemFile]), &it); err != nil || it.Validate() != nil || it.Name != p.Annotations[kube.AnnotationItem] {
			t.Errorf("pod %s: item file annotation %q: %v", p.Name, p.Annotations[kube.AnnotationItemFile], err)
		}
	}
}

// noAck is a source that cannot archive (405 on acknowledgements).
type noAck struct{ manager.Source }

func (noAck) Ack(context.Context, string, itemapi.Outcome) error {
	return itemapi.NewStatus(itemapi.ReasonMethodNotAllowed, "this source does not archive")
}

// MANAGER_JOB_TTL applies once the item is acknowledged: the TTL
// controller then deletes the Job (its pod and ConfigMap follow), and the
// item, archived, never runs again. With a source that cannot archive,
// finished Jobs keep no TTL: they are the only record that the item ran.
func TestIntegrationTTL(t *testing.T) {
	t.Run("acked", func(t *testing.T) {
		ttl := time.Duration(0)
		rg := startRig(t, rigOptions{runnerCfg: func(c *kube.Config) { c.TTL = &ttl }})
		rg.put("a", "b")
		rg.waitOutcomes(time.Minute, itemapi.Succeeded, "a", "b")
		testutil.Eventually(t, time.Minute, "jobs and configmaps collected", func() error {
			cs := takeCensus(t, rg.client, rg.ns)
			if len(cs.jobs)+len(cs.configMaps) != 0 {
				return fmt.Errorf("%d jobs, %d configmaps", len(cs.jobs), len(cs.configMaps))
			}
			return nil
		})
		// The archived items are not in the source: a reconcile starts nothing.
		rg.m.Reconcile()
		if cs := takeCensus(t, rg.client, rg.ns); len(cs.jobs) != 0 {
			t.Fatalf("jobs after TTL: %v", cs.jobs)
		}
	})
	t.Run("no ack", func(t *testing.T) {
		ttl := time.Duration(0)
		rg := startRig(t, rigOptions{
			runnerCfg: func(c *kube.Config) { c.TTL = &ttl },
			src:       func(s manager.Source) manager.Source { return noAck{s} },
		})
		rg.put("a", "b")
		testutil.Eventually(t, time.Minute, "jobs succeeded", func() error {
			for _, it := range []string{"a", "b"} {
				if st, _ := rg.m.Status(it); st.State != itemapi.StateSucceeded {
					return fmt.Errorf("%s: %+v", it, st)
				}
			}
			return nil
		})
		rg.m.Reconcile()
		cs := takeCensus(t, rg.client, rg.ns)
		cs.onePerItem(t, []string{"a", "b"}, 1)
		for _, js := range cs.jobs {
			if js[0].Spec.TTLSecondsAfterFinished != nil || js[0].Annotations[kube.AnnotationAcked] != "" {
				t.Errorf("job %s: ttl %v, annotations %v", js[0].Name, js[0].Spec.TTLSecondsAfterFinished, js[0].Annotations)
			}
		}
	})
}

// Forget (the item came back after it was archived) deletes the old Job
// and its ConfigMap; the item runs again under the same name.
func TestIntegrationItemComesBack(t *testing.T) {
	rg := startRig(t, rigOptions{})
	rg.put("again")
	rg.waitOutcomes(time.Minute, itemapi.Succeeded, "again")
	first := takeCensus(t, rg.client, rg.ns).jobs["again"][0].UID
	rg.mem.Remove("again")
	testutil.Eventually(t, 30*time.Second, "item gone", func() error {
		if st, ok := rg.m.Status("again"); !ok || st.State != itemapi.StateSucceeded {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	rg.put("again")
	testutil.Eventually(t, 2*time.Minute, "second job succeeded and acked", func() error {
		cs := takeCensus(t, rg.client, rg.ns)
		js := cs.jobs["again"]
		if len(js) != 1 || js[0].UID == first {
			return fmt.Errorf("jobs %d, same uid %v", len(js), len(js) == 1 && js[0].UID == first)
		}
		if js[0].Annotations[kube.AnnotationAcked] != "succeeded" {
			return errors.New("second job not acked yet")
		}
		return nil
	})
}

// ---- the real itemq-manager binary ----

type procRig struct {
	t        *testing.T
	cp       *kubetest.ControlPlane
	ns       string
	root     string
	bin      string
	template string
	env      []string
}

func newProcRig(t *testing.T, tmpl *batchv1.Job, env ...string) *procRig {
	t.Helper()
	cp := kubetest.Get(t)
	pr := &procRig{t: t, cp: cp, ns: cp.Namespace(t), root: t.TempDir(), bin: testutil.Binary(t, "manager"), template: writeTemplate(t, tmpl)}
	pr.env = append([]string{
		"MANAGER_QUEUE=q",
		"MANAGER_RUNNER=kubernetes",
		"MANAGER_SOURCE=dir://" + pr.root + "?settle=0s&poll_interval=2s",
		"MANAGER_JOB_TEMPLATE=" + pr.template,
		"MANAGER_NAMESPACE=" + pr.ns,
		"KUBECONFIG=" + cp.Kubeconfig,
		"MANAGER_STATE_DIR=" + t.TempDir(),
		"MANAGER_RESYNC=5s",
		"ITEMQ_LOG_LEVEL=debug",
		// The crash tests check the ConfigMap path (three writes per item,
		// an owner set after the Job exists): the hardest to make crash
		// safe. The default annotation path has nothing to own
		// (TestIntegrationInlineItems).
		"MANAGER_KUBE_ITEM_FILE=configmap",
	}, env...)
	return pr
}

func (pr *procRig) files(n int) []string {
	pr.t.Helper()
	out := names("clip-", n)
	for i := range out {
		out[i] += ".mp4"
		if err := os.WriteFile(filepath.Join(pr.root, out[i]), []byte("video"), 0o644); err != nil {
			pr.t.Fatal(err)
		}
	}
	return out
}

func (pr *procRig) start(extra ...string) *testutil.Process {
	pr.t.Helper()
	return testutil.StartServer(pr.t, pr.bin, "MANAGER_ADDR", append(append([]string(nil), pr.env...), extra...)...)
}

// archived lists the items the dir source moved to .done/.
func (pr *procRig) archived(dir string) map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir(filepath.Join(pr.root, dir))
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

func (pr *procRig) waitArchived(timeout time.Duration, items []string) {
	pr.t.Helper()
	testutil.Eventually(pr.t, timeout, "every item archived in .done", func() error {
		done := pr.archived(".done")
		n := 0
		for _, it := range items {
			if done[it] {
				n++
			}
		}
		if n != len(items) {
			return fmt.Errorf("%d of %d archived", n, len(items))
		}
		return nil
	})
}

func countJobs(t *testing.T, c kubernetes.Interface, ns string) int {
	t.Helper()
	l, err := c.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kube.Selector("q")})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

// The manager is SIGKILLed five times while it creates Jobs and restarted
// each time: no item gets a second Job or pod, none is lost.
func TestIntegrationManagerKilledMidRun(t *testing.T) {
	pr := newProcRig(t, testTemplate(map[string]string{kubetest.AnnotationDelay: "300ms"}, false),
		"MANAGER_MAX_ACTIVE=20", "MANAGER_MIN_ACTIVE=20")
	items := pr.files(150)
	c := pr.cp.Client(t)
	begin := time.Now()
	for i, threshold := range []int{10, 35, 60, 85, 110} {
		p := pr.start()
		testutil.Eventually(t, 2*time.Minute, fmt.Sprintf("run %d: %d jobs", i+1, threshold), func() error {
			if n := countJobs(t, c, pr.ns); n < threshold {
				return fmt.Errorf("%d jobs", n)
			}
			return nil
		})
		p.Kill()
		t.Logf("%v: killed the manager with %d jobs created", time.Since(begin).Round(time.Second), countJobs(t, c, pr.ns))
	}
	pr.start()
	pr.waitArchived(4*time.Minute, items)
	t.Logf("all archived %v after the first start", time.Since(begin).Round(time.Second))
	// ConfigMaps whose owner was not yet set when the manager died are
	// adopted by the sweep of the next start.
	testutil.Eventually(t, time.Minute, "one job, one pod and an owned configmap per item", func() error {
		return takeCensus(t, c, pr.ns).check(items, 1)
	})
	if failed := pr.archived(".failed"); len(failed) != 0 {
		t.Errorf("items dead-lettered: %v", failed)
	}
}

// Two replicas with leader election: one dispatches; when it is killed
// the other takes the Lease over and finishes the work; no duplicate Job.
func TestIntegrationLeaderElection(t *testing.T) {
	pr := newProcRig(t, testTemplate(map[string]string{kubetest.AnnotationDelay: "300ms"}, false),
		"MANAGER_MAX_ACTIVE=10", "MANAGER_MIN_ACTIVE=10", "MANAGER_LEADER_ELECT=true")
	items := pr.files(80)
	c := pr.cp.Client(t)
	procs := []*testutil.Process{pr.start(), pr.start()}
	identity := func(p *testutil.Process) string {
		for _, line := range strings.Split(p.Logs(), "\n") {
			var rec struct{ Msg, Identity string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "campaigning for the leader lease" {
				return rec.Identity
			}
		}
		return ""
	}
	holder := func() (string, error) {
		l, err := c.CoordinationV1().Leases(pr.ns).Get(context.Background(), "itemq-q", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return "", errors.New("no holder")
		}
		return *l.Spec.HolderIdentity, nil
	}
	var leader, standby *testutil.Process
	testutil.Eventually(t, time.Minute, "a leader with 20 jobs", func() error {
		h, err := holder()
		if err != nil {
			return err
		}
		for i, p := range procs {
			if identity(p) == h {
				leader, standby = p, procs[1-i]
			}
		}
		if leader == nil {
			return fmt.Errorf("holder %s is neither replica", h)
		}
		if n := countJobs(t, c, pr.ns); n < 20 {
			return fmt.Errorf("%d jobs", n)
		}
		return nil
	})
	// The standby serves the status API from its informers.
	testutil.Eventually(t, 30*time.Second, "standby status API", func() error {
		var list itemapi.JobStatusList
		if err := getJSON(standby.URL()+"/v1/jobs?state=succeeded", &list); err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return errors.New("no succeeded jobs yet")
		}
		return nil
	})
	killed := time.Now()
	leader.Kill()
	testutil.Eventually(t, time.Minute, "the standby holds the lease", func() error {
		h, err := holder()
		if err != nil {
			return err
		}
		if h != identity(standby) {
			return fmt.Errorf("holder %s", h)
		}
		return nil
	})
	t.Logf("the standby took the lease over %v after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
	pr.waitArchived(4*time.Minute, items)
	// Owner references the killed leader had not yet set are set by the
	// sweep the new leader runs when it is elected (asynchronously).
	testutil.Eventually(t, 30*time.Second, "one job, one pod and an owned configmap per item", func() error {
		return takeCensus(t, c, pr.ns).check(items, 1)
	})
}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}
