package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/pool"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

const poolToken = "kube-pool-token-0123456789"

// kubelet stands in for the kubelet of the KWOK node, which runs no
// process: for every Running pod of the pool's Deployment it runs a worker
// (pool.Work, named after the pod, as ITEMQ_POOL_WORKER=metadata.name
// makes it), and tells it to stop when the pod is deleted, as SIGTERM
// would.
type kubelet struct {
	client   kubernetes.Interface
	ns, url  string
	command  []string
	env      []string
	mu       sync.Mutex
	workers  map[string]context.CancelFunc
	wg       sync.WaitGroup
	everSeen map[string]bool
	maxLive  int // the most worker pods running at once
}

func (k *kubelet) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		pods, err := k.client.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRole + "=" + kube.RoleWorker})
		if err == nil {
			live := map[string]bool{}
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
					live[p.Name] = true
				}
			}
			k.mu.Lock()
			k.maxLive = max(k.maxLive, len(live))
			for name := range live {
				if _, ok := k.workers[name]; !ok {
					wctx, cancel := context.WithCancel(ctx)
					k.workers[name] = cancel
					k.everSeen[name] = true
					k.wg.Add(1)
					go func() {
						defer k.wg.Done()
						_ = pool.Work(wctx, pool.WorkerConfig{URL: k.url, Token: poolToken, Name: name, Command: k.command, Env: k.env})
					}()
				}
			}
			for name, cancel := range k.workers {
				if !live[name] {
					cancel()
					delete(k.workers, name)
				}
			}
			k.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			k.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// The pool on Kubernetes: the manager keeps a Deployment of workers at its
// parallelism; the workers (on the Deployment's pods) take item after item;
// every item runs once; when the load is gone the Deployment shrinks, the
// idle workers' pods marked to go first.
func TestIntegrationPool(t *testing.T) {
	cp := kubetest.Get(t)
	ns := cp.Namespace(t)
	rc := cp.RestConfig()
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	marks := t.TempDir()
	workers, err := kube.NewWorkers(client, kube.WorkersConfig{Queue: "q", Namespace: ns, Template: testTemplate(nil, false),
		Env: map[string]string{"OUTPUT_URL": "mem://"}, URL: "http://manager.example:8081", Token: poolToken, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var h *pool.Runner
	srv := httptest.NewServer(nil)
	defer srv.Close()
	pr, err := pool.New(pool.Config{
		Config:   local.Config{Queue: "q", StateDir: t.TempDir(), MaxAttempts: 2, NoSync: true, Log: log},
		Launcher: pool.LauncherConfig{Token: poolToken, TTL: 3 * time.Second, Log: log},
		Resize:   200 * time.Millisecond,
	}, workers)
	if err != nil {
		t.Fatal(err)
	}
	h = pr
	srv.Config.Handler = h.Handler()

	mem := memsource.New()
	m := manager.New(manager.Config{Queue: "q", Pool: true, MinActive: 1, MaxActive: 4, ScaleDownDelay: 500 * time.Millisecond,
		DrainTime: time.Second, Resync: 5 * time.Second, Log: log}, &manager.InProcess{Src: source.New(mem)}, pr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	kl := &kubelet{client: client, ns: ns, url: srv.URL, workers: map[string]context.CancelFunc{}, everSeen: map[string]bool{},
		command: []string{"/bin/sh", "-c", `echo "$ITEMQ_JOB_NAME" >> "$MARKS/runs"; sleep 0.3`},
		env:     []string{"MARKS=" + marks, "PATH=" + os.Getenv("PATH")}}
	klDone := make(chan struct{})
	go func() { kl.run(ctx); close(klDone) }()
	defer func() {
		cancel()
		<-klDone
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	// The Deployment, its Secret, one worker at MANAGER_MIN_ACTIVE.
	deploy := kube.DeploymentName("q")
	testutil.Eventually(t, time.Minute, "the Deployment at 1 replica with a running pod", func() error {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 1 || d.Status.ReadyReplicas != 1 {
			return fmt.Errorf("replicas %d, ready %d", r, d.Status.ReadyReplicas)
		}
		return nil
	})
	d, _ := client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
	pod := d.Spec.Template.Spec
	env := map[string]corev1.EnvVar{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e
	}
	if pod.RestartPolicy != corev1.RestartPolicyAlways || env["ITEMQ_POOL_URL"].Value != "http://manager.example:8081" ||
		env["ITEMQ_POOL_TOKEN"].ValueFrom == nil || env["ITEMQ_POOL_TOKEN"].Value != "" ||
		env["ITEMQ_POOL_WORKER"].ValueFrom == nil || env["ITEMQ_POOL_WORKER"].ValueFrom.FieldRef.FieldPath != "metadata.name" || env["OUTPUT_URL"].Value != "mem://" {
		t.Errorf("the workers' pod: restartPolicy %s, env %+v", pod.RestartPolicy, env)
	}
	sec, err := client.CoreV1().Secrets(ns).Get(ctx, "q-pool", metav1.GetOptions{})
	if err != nil || string(sec.Data["token"]) != poolToken {
		t.Errorf("the pool's Secret: %v %v", err, sec)
	}

	// A load: the pool grows to MANAGER_MAX_ACTIVE; every item runs once, on
	// a worker named after its pod.
	items := names("w", 40)
	for _, n := range items {
		if err := mem.Put(n, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 2*time.Minute, "every item succeeded", func() error {
		n := 0
		for _, it := range items {
			if o, ok := mem.Outcome(it); ok && o == itemapi.Succeeded {
				n++
			}
		}
		if n < len(items) {
			return fmt.Errorf("%d of %d", n, len(items))
		}
		return nil
	})
	runs, _ := os.ReadFile(filepath.Join(marks, "runs"))
	seen := map[string]int{}
	for _, j := range strings.Fields(string(runs)) {
		seen[j]++
	}
	if len(seen) != len(items) {
		t.Errorf("%d jobs ran, want %d", len(seen), len(items))
	}
	for j, n := range seen {
		if n != 1 {
			t.Errorf("job %s ran %d times", j, n)
		}
	}
	jobs, _ := pr.Jobs(ctx)
	kl.mu.Lock()
	ever, maxLive := kl.everSeen, kl.maxLive
	kl.mu.Unlock()
	for _, j := range jobs {
		if len(j.History) != 1 || !ever[strings.TrimPrefix(j.History[0].Where, "worker ")] {
			t.Errorf("job %s: history %+v, want one attempt on a worker pod of the Deployment", j.Item, j.History)
			break
		}
	}
	if maxLive < 2 || maxLive > 4 {
		t.Errorf("at most %d worker pods ran at once, want 2 to 4 (the pool grew with the load, within MANAGER_MAX_ACTIVE)", maxLive)
	}

	// The load is gone: back to one worker.
	testutil.Eventually(t, time.Minute, "the Deployment back at 1 replica", func() error {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 1 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	if sc := m.Scaling(); sc.C != 1 {
		t.Errorf("c = %d after the load, want 1", sc.C)
	}
}

// With an owner (MANAGER_POOL_OWNER), the pool's Deployment and Secret go
// when the owner goes — helm uninstall deletes the chart's job-template
// ConfigMap — where before they were left, their workers polling a
// manager that was no more. A pool made before the owner was set gets it
// at the next Scale; an owner that does not exist is an error naming it,
// and nothing is made.
func TestIntegrationPoolOwner(t *testing.T) {
	cp := kubetest.Get(t)
	ns := cp.Namespace(t)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	workers := func(owner string) *kube.Workers {
		t.Helper()
		w, err := kube.NewWorkers(client, kube.WorkersConfig{Queue: "q", Namespace: ns, Template: testTemplate(nil, false),
			URL: "http://manager.example:8081", Token: poolToken, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	if err := workers("missing").Scale(ctx, 1, nil); err == nil || !strings.Contains(err.Error(), "ConfigMap missing") {
		t.Fatalf("an owner that does not exist: %v", err)
	}
	if _, err := client.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName("q"), metav1.GetOptions{}); err == nil {
		t.Fatal("the Deployment was made without its owner")
	}
	// Made before the owner was set, then owned at the next Scale.
	if err := workers("").Scale(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rel-itemq-job-template"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := workers(cm.Name).Scale(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	ownedBy := func(refs []metav1.OwnerReference) bool {
		return len(refs) == 1 && refs[0].UID == cm.UID && refs[0].Kind == "ConfigMap" && refs[0].Name == cm.Name
	}
	d, err := client.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName("q"), metav1.GetOptions{})
	if err != nil || !ownedBy(d.OwnerReferences) {
		t.Fatalf("the Deployment's owners: %v %+v", err, d.OwnerReferences)
	}
	s, err := client.CoreV1().Secrets(ns).Get(ctx, "q-pool", metav1.GetOptions{})
	if err != nil || !ownedBy(s.OwnerReferences) {
		t.Fatalf("the Secret's owners: %v %+v", err, s.OwnerReferences)
	}
	// The owner goes: the garbage collector takes the pool with it.
	if err := client.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "the pool deleted with its owner", func() error {
		if _, err := client.AppsV1().Deployments(ns).Get(ctx, kube.DeploymentName("q"), metav1.GetOptions{}); err == nil {
			return fmt.Errorf("the Deployment is still there")
		}
		if _, err := client.CoreV1().Secrets(ns).Get(ctx, "q-pool", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("the Secret is still there")
		}
		return nil
	})
}
