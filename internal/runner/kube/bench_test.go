package kube_test

// Benchmarks on the test control plane (docs/benchmarks/kubernetes.md):
//
//	ITEMQ_K8S_BIN=… go test -run '^$' -bench Kube -benchtime 1x ./internal/runner/kube/
//
// Pods are left Pending (the template has no nodeName) so that KWOK adds
// no load: what is measured is the creation of Jobs (and the Job
// controller's creation of their pods, as in a real cluster).

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/kubetest"
	"github.com/itemq/itemq/itemapi"
)

// jobWatch records when each Job of a namespace is first seen.
type jobWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time // item → when its Job was first seen
	n    atomic.Int64
}

func watchJobs(b *testing.B, cp *kubetest.ControlPlane, ns string) *jobWatch {
	b.Helper()
	w := &jobWatch{seen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	f := informers.NewSharedInformerFactoryWithOptions(cp.MustClient(), 0, informers.WithNamespace(ns))
	inf := f.Batch().V1().Jobs().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		now := time.Now()
		j := obj.(*batchv1.Job)
		item := j.Annotations[kube.AnnotationItem]
		if item == "" {
			item = j.Name
		}
		w.mu.Lock()
		if _, ok := w.seen[item]; !ok {
			w.seen[item] = now
			w.n.Add(1)
		}
		w.mu.Unlock()
	}})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

func (w *jobWatch) wait(b *testing.B, n int, timeout time.Duration) {
	b.Helper()
	testutil.Eventually(b, timeout, fmt.Sprintf("%d jobs", n), func() error {
		if got := w.n.Load(); got < int64(n) {
			return fmt.Errorf("%d jobs", got)
		}
		return nil
	})
}

// benchRig runs a manager with the kubernetes runner over an in-memory
// source, with the given client rate limits and dispatch workers.
// benchManager is a running manager; stop stops it (once).
type benchManager struct {
	*rig
	stop func()
}

func benchRig(b *testing.B, cp *kubetest.ControlPlane, ns string, qps float32, burst, workers, maxActive int, inline bool) benchManager {
	b.Helper()
	rc := cp.RestConfig()
	rc.QPS, rc.Burst = qps, burst
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := kube.New(client, kube.Config{Queue: "q", Namespace: ns, Template: testTemplate(nil, true), MaxAttempts: 3, InlineItems: inline})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	rg := &rig{cp: cp, ns: ns, client: client, runner: r, cancel: cancel, done: make(chan error, 1), mem: memsource.New()}
	rg.m = manager.New(manager.Config{Queue: "q", MaxActive: maxActive, MinActive: maxActive, DispatchWorkers: workers, Resync: time.Minute},
		&manager.InProcess{Src: source.New(rg.mem)}, r)
	go func() { rg.done <- rg.m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-rg.done; err != nil {
				b.Errorf("manager: %v", err)
			}
		})
	}
	b.Cleanup(stop)
	testutil.Eventually(b, time.Minute, "manager ready", rg.m.Ready)
	return benchManager{rg, stop}
}

// BenchmarkKubeCreate1000 measures the time to create 1,000 Jobs: through
// the runner (items put into the source of a running manager; with the item
// file in a ConfigMap each Job is a ConfigMap create, a Job create and an
// owner patch; in an annotation, one Job create) at the manager's default
// client limits (QPS 50, burst 100), without client limits, and at
// client-go's defaults (QPS 5, burst 10; 100 Jobs, for the record); and by
// a plain client creating the same 1,000 Jobs from 32 goroutines without
// client limits (just the Jobs; with ConfigMaps; with ConfigMaps and the
// owner patch).
func BenchmarkKubeCreate1000(b *testing.B) {
	cp := kubetest.Get(b)
	const n = 1000
	runner := func(qps float32, burst, workers, items int, inline bool) func(b *testing.B) {
		return func(b *testing.B) {
			for range b.N {
				d := createThroughRunner(b, cp, qps, burst, workers, items, inline)
				b.ReportMetric(d.Seconds(), "s")
				b.ReportMetric(float64(items)/d.Seconds(), "jobs/s")
			}
		}
	}
	plain := func(withConfigMaps, withPatch bool) func(b *testing.B) {
		return func(b *testing.B) {
			for range b.N {
				d := createPlain(b, cp, n, withConfigMaps, withPatch)
				b.ReportMetric(d.Seconds(), "s")
				b.ReportMetric(n/d.Seconds(), "jobs/s")
			}
		}
	}
	b.Run("plain-client-jobs", plain(false, false))
	b.Run("plain-client-configmap+job", plain(true, false))
	b.Run("plain-client-configmap+job+patch", plain(true, true))
	b.Run("runner-qps50-burst100", runner(50, 100, 8, n, false))
	b.Run("runner-unlimited", runner(-1, 0, 8, n, false))
	b.Run("runner-unlimited-32-workers", runner(-1, 0, 32, n, false))
	b.Run("runner-qps5-burst10-100jobs", runner(5, 10, 8, 100, false))
	b.Run("runner-inline-qps50-burst100", runner(50, 100, 8, n, true))
	b.Run("runner-inline-unlimited", runner(-1, 0, 8, n, true))
	b.Run("runner-inline-unlimited-32-workers", runner(-1, 0, 32, n, true))
}

// BenchmarkKubeCreateVsPlain compares the runner with the plain client
// (1,000 Jobs each, no client limits, 32 workers or goroutines) in
// alternation, so that the load of a shared machine affects both alike; it
// reports the median of the ratios runner/plain.
func BenchmarkKubeCreateVsPlain(b *testing.B) {
	cp := kubetest.Get(b)
	const n, rounds = 1000, 4
	for range b.N {
		var cm, inline []float64
		for r := range rounds {
			p := createPlain(b, cp, n, false, false)
			c := createThroughRunner(b, cp, -1, 0, 32, n, false)
			i := createThroughRunner(b, cp, -1, 0, 32, n, true)
			b.Logf("round %d: plain %.0f jobs/s, runner (configmap) %.0f jobs/s = %.0f%%, runner (annotation) %.0f jobs/s = %.0f%%", r+1,
				n/p.Seconds(), n/c.Seconds(), 100*p.Seconds()/c.Seconds(), n/i.Seconds(), 100*p.Seconds()/i.Seconds())
			cm = append(cm, p.Seconds()/c.Seconds())
			inline = append(inline, p.Seconds()/i.Seconds())
		}
		b.ReportMetric(100*median(cm), "configmap-%-of-plain")
		b.ReportMetric(100*median(inline), "annotation-%-of-plain")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// createThroughRunner puts items into the source of a running manager and
// returns the time until all their Jobs exist.
func createThroughRunner(b *testing.B, cp *kubetest.ControlPlane, qps float32, burst, workers, items int, inline bool) time.Duration {
	b.Helper()
	ns := cp.Namespace(b)
	w := watchJobs(b, cp, ns)
	rg := benchRig(b, cp, ns, qps, burst, workers, items, inline)
	start := time.Now()
	for i := range items {
		if err := rg.mem.Put(fmt.Sprintf("item-%04d", i), []byte(`{}`)); err != nil {
			b.Fatal(err)
		}
	}
	w.wait(b, items, 10*time.Minute)
	d := time.Since(start)
	rg.stop() // now, not at the end of the benchmark
	return d
}

// createPlain creates n Jobs (and their ConfigMaps, and owner patches) from
// 32 goroutines with an unlimited client and returns the time until all
// the Jobs were seen.
func createPlain(b *testing.B, cp *kubetest.ControlPlane, n int, withConfigMaps, withPatch bool) time.Duration {
	b.Helper()
	ns := cp.Namespace(b)
	w := watchJobs(b, cp, ns)
	c := cp.MustClient() // QPS -1: no client-side limit
	ctx := context.Background()
	jobs := make([]*batchv1.Job, n)
	cms := make([]*corev1.ConfigMap, n)
	for i := range jobs {
		j, cm, err := kube.Build(testTemplate(nil, true), kube.Params{Queue: "q", Namespace: ns,
			Item: itemapi.NewItem(fmt.Sprintf("item-%04d", i), []byte(`{}`)), MaxAttempts: 3})
		if err != nil {
			b.Fatal(err)
		}
		jobs[i], cms[i] = j, cm
	}
	next := atomic.Int64{}
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if withConfigMaps {
					if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cms[i], metav1.CreateOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
				j, err := c.BatchV1().Jobs(ns).Create(ctx, jobs[i], metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				if withPatch {
					patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q,"controller":true}]}}`, j.Name, j.UID)
					if _, err := c.CoreV1().ConfigMaps(ns).Patch(ctx, j.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	w.wait(b, n, 10*time.Minute)
	return time.Since(start)
}

// BenchmarkKubeJobLatency measures the time from an item appearing in the
// source to its Job being seen by a watch, with the manager's defaults
// (QPS 50, burst 100, 8 dispatch workers): items arriving steadily at
// 10/s for 30 s, then a burst of 100 at once; with the item file in a
// ConfigMap (three writes per item) and in an annotation (one).
func BenchmarkKubeJobLatency(b *testing.B) {
	cp := kubetest.Get(b)
	for _, mode := range []string{"configmap", "annotation"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				ns := cp.Namespace(b)
				w := watchJobs(b, cp, ns)
				rg := benchRig(b, cp, ns, 50, 100, 8, 1000, mode == "annotation")
				put := map[string]time.Time{}
				tick := time.NewTicker(100 * time.Millisecond)
				for i := range 300 {
					<-tick.C
					name := fmt.Sprintf("steady-%04d", i)
					put[name] = time.Now()
					if err := rg.mem.Put(name, []byte(`{}`)); err != nil {
						b.Fatal(err)
					}
				}
				tick.Stop()
				w.wait(b, 300, 5*time.Minute)
				report(b, "steady", w, put)
				// Let the client's token bucket refill before the burst.
				time.Sleep(3 * time.Second)
				burst := map[string]time.Time{}
				for i := range 100 {
					name := fmt.Sprintf("burst-%04d", i)
					burst[name] = time.Now()
					if err := rg.mem.Put(name, []byte(`{}`)); err != nil {
						b.Fatal(err)
					}
				}
				w.wait(b, 400, 5*time.Minute)
				report(b, "burst", w, burst)
			}
		})
	}
}

func report(b *testing.B, what string, w *jobWatch, put map[string]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ds []time.Duration
	for name, t0 := range put {
		ds = append(ds, w.seen[name].Sub(t0))
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	b.ReportMetric(float64(q(0.5).Milliseconds()), what+"-p50-ms")
	b.ReportMetric(float64(q(0.99).Milliseconds()), what+"-p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), what+"-max-ms")
	b.Logf("%s: %d items, p50 %v, p99 %v, max %v", what, len(ds), q(0.5), q(0.99), ds[len(ds)-1])
}
