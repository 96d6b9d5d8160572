package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// Config of the runner.
type Config struct {
	Queue     string
	Namespace string
	// Template is the user's Job template (MANAGER_JOB_TEMPLATE).
	Template *batchv1.Job
	// Steps and Env: see Params.
	Steps [][]string
	Env   map[string]string
	// MaxAttempts per item: backoffLimit = MaxAttempts-1 (default 3).
	MaxAttempts int
	// JobTimeout, when positive, bounds each attempt (the pods'
	// activeDeadlineSeconds).
	JobTimeout time.Duration
	// InlineItems keeps item documents in a pod template annotation
	// (downward API) instead of ConfigMaps: see Params.InlineItem.
	InlineItems bool
	// TTL, when set, is written into a Job's ttlSecondsAfterFinished when
	// its item is acknowledged (MarkAcked), never before: a Job is only
	// collected once the source has been told, so its item cannot run
	// again. Nil keeps finished Jobs until the manager forgets them
	// (MANAGER_RETENTION after their item left the source).
	TTL *time.Duration
	// SweepInterval is how often ConfigMaps left by a crash are looked for
	// (default 10m; the first sweep runs when Run starts, and one runs
	// again soon after a sweep that left young orphans alone).
	SweepInterval time.Duration
	// OrphanAge: a ConfigMap without an owner and without a Job is deleted
	// once it is this old (default 1m; younger, its Job may be being
	// created). One whose Job exists is adopted at once.
	OrphanAge time.Duration
	// Active, when set, tells whether this replica may do the background
	// writes (the sweep); with leader election only the leader does.
	Active func() bool
	// RetryBase is the first delay of the retries of transient API errors
	// (429, 5xx, timeouts, broken connections): doubled up to 5s, with
	// jitter, at most RetryAttempts tries (defaults 200ms, 6).
	RetryBase     time.Duration
	RetryAttempts int
	Log           *slog.Logger
}

// Runner is the kubernetes runner: it implements runner.Runner with one
// batch/v1 Job per item.
//
// The Jobs are the record. New wires a shared informer on the queue's
// Jobs (label selector Selector(queue)) in the runner's namespace; Run
// starts it (and the workers that set ConfigMap owners) and delivers
// changes of Job state to the manager. Jobs before Run lists the Jobs
// through the API; after, from the cache once it has synced, so the
// manager's first listing at start-up is complete either way.
type Runner struct {
	cfg      Config
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	log      *slog.Logger

	startOnce sync.Once
	running   atomic.Bool // the informer was started

	mu sync.Mutex
	// forgotten: Jobs deleted by Forget, ignored in the cache. An entry
	// stays forgetLinger after the informer saw the deletion: a listing
	// of the cache taken just before that may still hold the Job (UIDs are
	// never reused, so a late entry hides nothing else).
	forgotten map[types.UID]time.Time // when the informer saw it deleted (zero: not yet)
	creating  map[string]int          // items being started now (the sweep leaves their ConfigMaps alone)
	owners    chan ownership          // owner references still to set (ownerWorkers)
	sweepNow  chan struct{}           // SweepSoon: sweep at once (a replica just elected)

	notifyMu sync.Mutex
	notify   func(runner.Job) // nil outside Run
	last     map[string]runner.Job

	// recorder records Events on the Jobs (kubectl describe job tells
	// the item's story); set while Run runs, nil before.
	recorder atomic.Pointer[record.EventRecorder]
}

var _ runner.Runner = (*Runner)(nil)

const itemIndex = "item"

// New validates the configuration and wires the informer; Run starts it.
func New(client kubernetes.Interface, cfg Config) (*Runner, error) {
	if err := runner.ValidateQueueName(cfg.Queue); err != nil {
		return nil, err
	}
	if cfg.Namespace == "" {
		return nil, errors.New("kubernetes runner: no namespace (MANAGER_NAMESPACE)")
	}
	if err := ValidateTemplate(cfg.Template, cfg.Steps); err != nil {
		return nil, err
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Minute
	}
	if cfg.OrphanAge <= 0 {
		cfg.OrphanAge = time.Minute
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 200 * time.Millisecond
	}
	if cfg.RetryAttempts <= 0 {
		cfg.RetryAttempts = 6
	}
	if cfg.TTL != nil && *cfg.TTL < 0 {
		return nil, fmt.Errorf("kubernetes runner: negative job TTL %v", *cfg.TTL)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		cfg: cfg, client: client, log: cfg.Log,
		forgotten: map[types.UID]time.Time{},
		creating:  map[string]int{},
		last:      map[string]runner.Job{},
	}
	for _, w := range TemplateWarnings(cfg.Template) {
		r.log.Warn("job template: " + w)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = Selector(cfg.Queue) }))
	r.informer = factory.Batch().V1().Jobs().Informer()
	if err := r.informer.AddIndexers(cache.Indexers{itemIndex: func(obj any) ([]string, error) {
		if j, ok := obj.(*batchv1.Job); ok && j.Annotations[AnnotationItem] != "" {
			return []string{j.Annotations[AnnotationItem]}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	// The cache keeps what the state needs: no pod templates, no managed
	// fields (a large queue has many Jobs).
	if err := r.informer.SetTransform(func(obj any) (any, error) {
		if j, ok := obj.(*batchv1.Job); ok {
			j.ManagedFields = nil
			j.Spec.Template = corev1.PodTemplateSpec{}
		}
		return obj, nil
	}); err != nil {
		return nil, err
	}
	r.factory = factory
	r.owners = make(chan ownership, 4096)
	r.sweepNow = make(chan struct{}, 1)
	return r, nil
}

// startInformer starts the informer and the owner workers (once), until
// ctx ends.
func (r *Runner) startInformer(ctx context.Context) {
	r.startOnce.Do(func() {
		r.factory.Start(ctx.Done())
		for range ownerWorkers {
			go r.ownerWorker(ctx)
		}
		r.running.Store(true)
	})
}

// ownership is a ConfigMap (name, UID) that a Job must own.
type ownership struct {
	name  string
	cmUID types.UID
	job   *batchv1.Job
}

// ownerWorkers set the owner references of new ConfigMaps off Start's
// path: Start takes two round trips, not three. Those left undone when the
// manager stops are set by the sweep of the next start.
const ownerWorkers = 4

func (r *Runner) ownerWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-r.owners:
			r.setOwner(ctx, o)
		}
	}
}

func (r *Runner) setOwner(ctx context.Context, o ownership) {
	if err := r.own(ctx, o.name, o.cmUID, o.job); err != nil && ctx.Err() == nil {
		// The Job runs; the sweep sets the owner later.
		r.log.Warn("cannot make the job the owner of its ConfigMap; the sweep will", "job", o.name, "err", err)
	}
}

// WaitForSync blocks until the Job cache has synced or ctx ends.
func (r *Runner) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), r.informer.HasSynced) {
		return fmt.Errorf("list the Jobs of queue %s in %s: %w", r.cfg.Queue, r.cfg.Namespace, context.Cause(ctx))
	}
	return nil
}

// Run delivers job updates to notify (serially) until ctx ends, and sweeps
// ConfigMaps left by crashes.
func (r *Runner) Run(ctx context.Context, notify func(runner.Job)) error {
	r.notifyMu.Lock()
	if r.notify != nil {
		r.notifyMu.Unlock()
		return errors.New("kubernetes runner: Run called twice")
	}
	r.notify = notify
	r.notifyMu.Unlock()
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: r.client.CoreV1().Events(r.cfg.Namespace)})
	defer bc.Shutdown()
	var rec record.EventRecorder = bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "itemq-manager"})
	r.recorder.Store(&rec)
	defer r.recorder.Store(nil)
	r.startInformer(ctx)
	defer func() {
		r.notifyMu.Lock()
		r.notify = func(runner.Job) {}
		r.notifyMu.Unlock()
	}()
	reg, err := r.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observe(obj) },
		UpdateFunc: func(_, obj any) { r.observe(obj) },
		DeleteFunc: func(obj any) { r.deleted(obj) },
	})
	if err != nil {
		return fmt.Errorf("watch jobs: %w", err)
	}
	defer func() { _ = r.informer.RemoveEventHandler(reg) }()
	if err := r.WaitForSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		next := r.cfg.SweepInterval
		if r.cfg.Active == nil || r.cfg.Active() {
			young, err := r.sweep(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("sweep of orphaned ConfigMaps failed", "err", err)
			}
			if young {
				next = min(next, r.cfg.OrphanAge+time.Second)
			}
		} else {
			// A standby sweeps soon after it becomes the leader.
			next = min(next, 10*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		case <-r.sweepNow:
		}
	}
}

// SweepSoon makes Run sweep now rather than at its next interval: a replica
// just elected leader adopts the ConfigMaps whose owner the previous leader
// had not yet set when it died.
func (r *Runner) SweepSoon() {
	select {
	case r.sweepNow <- struct{}{}:
	default:
	}
}

func (r *Runner) observe(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	st, ok := jobState(j)
	if !ok || r.isForgotten(j.UID) {
		return
	}
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	old, seen := r.last[st.Item]
	if seen && reflect.DeepEqual(old, st) {
		return
	}
	if seen && old.Name == st.Name && !st.Phase.Finished() && !st.RetryAt.IsZero() && old.RetryAt.IsZero() {
		r.event(j, corev1.EventTypeWarning, "AttemptFailed", "attempt %d of %d of item %q failed; the Job controller starts the next one after its backoff (about %s)",
			j.Status.Failed, r.cfg.MaxAttempts, st.Item, time.Until(st.RetryAt).Round(time.Second))
	}
	r.last[st.Item] = st
	r.notify(st)
}

// event records an Event on the Job j (dropped outside Run).
func (r *Runner) event(j *batchv1.Job, typ, reason, format string, args ...any) {
	rec := r.recorder.Load()
	if rec == nil {
		return
	}
	var obj runtime.Object = j
	if j.Kind == "" {
		// Objects from the API carry no TypeMeta; the reference needs it.
		c := *j
		c.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
		obj = &c
	}
	(*rec).Eventf(obj, typ, reason, format, args...)
}

func (r *Runner) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	r.mu.Lock()
	now := time.Now()
	if _, ok := r.forgotten[j.UID]; ok {
		r.forgotten[j.UID] = now
	}
	for uid, at := range r.forgotten {
		if !at.IsZero() && now.Sub(at) > forgetLinger {
			delete(r.forgotten, uid)
		}
	}
	r.mu.Unlock()
	r.notifyMu.Lock()
	if old, ok := r.last[itemOf(j)]; ok && old.Name == j.Name {
		delete(r.last, itemOf(j))
	}
	r.notifyMu.Unlock()
}

// forgetLinger is how long a forgotten Job's UID is remembered after the
// informer saw its deletion.
const forgetLinger = time.Minute

func (r *Runner) isForgotten(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.forgotten[uid]
	return ok
}

func itemOf(obj metav1.Object) string { return obj.GetAnnotations()[AnnotationItem] }

// jobOf is the cached Job of an item (nil if none).
func (r *Runner) jobOf(item string) *batchv1.Job {
	objs, _ := r.informer.GetIndexer().ByIndex(itemIndex, item)
	var found *batchv1.Job
	for _, o := range objs {
		j := o.(*batchv1.Job)
		if r.isForgotten(j.UID) {
			continue
		}
		if found == nil || j.CreationTimestamp.Before(&found.CreationTimestamp) {
			found = j
		}
	}
	return found
}

// apiJobOf reads the item's Job from the API server rather than the cache
// (nil if it has none).
func (r *Runner) apiJobOf(ctx context.Context, item string) (*batchv1.Job, error) {
	for _, name := range JobNames(r.cfg.Queue, item) {
		var j *batchv1.Job
		err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			j, err = r.client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
			return err
		})
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("get job %s: %w", name, err)
		case itemOf(j) != item:
			continue // another item's (a hash collision): the next name
		case r.isForgotten(j.UID) || j.DeletionTimestamp != nil:
			return nil, nil
		}
		return j, nil
	}
	return nil, nil
}

// cachedJob is the cached Job of that name (nil if none).
func (r *Runner) cachedJob(name string) *batchv1.Job {
	obj, ok, _ := r.informer.GetIndexer().GetByKey(r.cfg.Namespace + "/" + name)
	if !ok {
		return nil
	}
	return obj.(*batchv1.Job)
}

// Jobs lists the queue's Jobs: before Run, through the API; once Run has
// started the informer, from its cache once it has synced (it blocks until
// then, or until ctx ends).
func (r *Runner) Jobs(ctx context.Context) ([]runner.Job, error) {
	var objs []*batchv1.Job
	if !r.running.Load() {
		var list *batchv1.JobList
		err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			list, err = r.client.BatchV1().Jobs(r.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: Selector(r.cfg.Queue)})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list the Jobs of queue %s in %s: %w", r.cfg.Queue, r.cfg.Namespace, err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	} else {
		if err := r.WaitForSync(ctx); err != nil {
			return nil, err
		}
		for _, o := range r.informer.GetIndexer().List() {
			objs = append(objs, o.(*batchv1.Job))
		}
	}
	out := make([]runner.Job, 0, len(objs))
	seen := make(map[string]int, len(objs))
	for _, j := range objs {
		st, ok := jobState(j)
		if !ok || r.isForgotten(j.UID) {
			continue
		}
		if i, dup := seen[st.Item]; dup {
			// Two Jobs claim one item (never made by this runner): the
			// older one is the item's job, as jobOf says.
			if st.CreatedAt.Before(out[i].CreatedAt) {
				out[i] = st
			}
			continue
		}
		seen[st.Item] = len(out)
		out = append(out, st)
	}
	return out, nil
}

var exitCodeRE = regexp.MustCompile(`exit code (\d+)`)

// jobState maps a Job to the runner's Job record. ok is false for a Job
// without the item annotation (not the runner's).
func jobState(j *batchv1.Job) (runner.Job, bool) {
	item := itemOf(j)
	if item == "" {
		return runner.Job{}, false
	}
	st := runner.Job{
		Item: item, Name: j.Name, Phase: runner.PhasePending,
		CreatedAt: j.CreationTimestamp.Time,
		Acked:     itemapi.Outcome(j.Annotations[AnnotationAcked]),
		Attempts:  int(j.Status.Failed + j.Status.Succeeded + j.Status.Active),
	}
	if u := j.Status.UncountedTerminatedPods; u != nil {
		// Ended pods the Job controller has not added to its counts yet
		// (a Job is marked failed before its last pod is counted).
		st.Attempts += len(u.Failed) + len(u.Succeeded)
	}
	if j.Status.StartTime != nil {
		st.StartedAt = j.Status.StartTime.Time
	}
	var done, failed *batchv1.JobCondition
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			done = c
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			if failed == nil || c.Type == batchv1.JobFailed {
				failed = c
			}
		}
	}
	cancelled := j.Annotations[AnnotationCancelled] == "true"
	switch {
	case cancelled && done == nil && failed == nil:
		// Suspended by Cancel: final once its pods are gone.
		if j.Status.Active > 0 {
			st.Phase = runner.PhaseRunning
			break
		}
		st.Phase, st.Cancelled, st.Error = runner.PhaseFailed, true, runner.CancelledError
		st.FinishedAt = j.CreationTimestamp.Time
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobSuspended && c.Status == corev1.ConditionTrue {
				st.FinishedAt = c.LastTransitionTime.Time
			}
		}
	case done != nil:
		st.Phase = runner.PhaseSucceeded
		st.FinishedAt = done.LastTransitionTime.Time
		if j.Status.CompletionTime != nil {
			st.FinishedAt = j.Status.CompletionTime.Time
		}
	case failed != nil:
		st.Phase = runner.PhaseFailed
		st.FinishedAt = failed.LastTransitionTime.Time
		st.Error = failed.Reason
		if failed.Message != "" {
			st.Error += ": " + failed.Message
		}
		if m := exitCodeRE.FindStringSubmatch(failed.Message); m != nil {
			st.ExitCode, _ = strconv.Atoi(m[1])
		}
	case j.Status.Active > 0 && ptr.Deref(j.Status.Ready, 0) > 0:
		st.Phase = runner.PhaseRunning
	default:
		// No pod yet, its pod is Pending (unscheduled, pulling, init
		// steps running), or the backoff before the next attempt.
		if j.Status.Failed > 0 {
			st.Error = fmt.Sprintf("%d attempt(s) failed", j.Status.Failed)
			if j.Status.Active == 0 {
				// The Job controller's backoff before the next pod. Its
				// exact end is not in the Job's status: this is an
				// estimate (10 s doubled per failure, at most 6 min).
				st.RetryAt = controllerRetryAt(j)
			}
		}
	}
	if st.Phase.Finished() && !st.StartedAt.IsZero() && st.FinishedAt.After(st.StartedAt) {
		st.LastDuration = st.FinishedAt.Sub(st.StartedAt)
	}
	return st, true
}

// controllerRetryAt estimates when the Job controller creates the next pod
// of a Job in backoff: 10 s · 2^(failed-1), capped at 6 min, from the
// Job's last status change known here (its start time, else its creation).
func controllerRetryAt(j *batchv1.Job) time.Time {
	d := 10 * time.Second << min(j.Status.Failed-1, 6)
	d = min(d, 6*time.Minute)
	from := j.CreationTimestamp.Time
	if j.Status.StartTime != nil {
		from = j.Status.StartTime.Time
	}
	for _, c := range j.Status.Conditions {
		if c.LastTransitionTime.After(from) {
			from = c.LastTransitionTime.Time
		}
	}
	return from.Add(d).UTC()
}

// Cancel suspends the item's Job (spec.suspend=true: the Job controller
// terminates its pods) and annotates it AnnotationCancelled; the Job stays
// as the record and reports PhaseFailed, Cancelled, once no pod is active.
// A finished job is left alone.
func (r *Runner) Cancel(ctx context.Context, item string) error {
	j := r.jobOf(item)
	if j == nil {
		// A Job just created may not be in the cache yet (a job cancelled
		// while it started): ask the API server.
		var err error
		if j, err = r.apiJobOf(ctx, item); err != nil {
			return fmt.Errorf("cancel %q: %w", item, err)
		}
	}
	if j == nil {
		return fmt.Errorf("cancel %q: %w", item, runner.ErrNotFound)
	}
	if st, _ := jobState(j); st.Phase.Finished() {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": j.UID, "annotations": map[string]string{AnnotationCancelled: "true"}},
		"spec":     map[string]any{"suspend": true},
	})
	err := r.retry(ctx, func(ctx context.Context) error {
		_, err := r.client.BatchV1().Jobs(r.cfg.Namespace).Patch(ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("cancel the job %s of %q: %w", j.Name, item, err)
	}
	r.event(j, corev1.EventTypeNormal, "Cancelled", "item %q cancelled: the Job is suspended, so its pods are terminated; it stays as the record", item)
	return nil
}

// errTaken: the name belongs to another item's Job or ConfigMap.
var errTaken = errors.New("name taken by another item")

// Start creates the item's ConfigMap, then its Job, then makes the Job the
// ConfigMap's owner (in the background: see ownerWorkers). An item that has a Job (found by its annotation, in
// the cache or through AlreadyExists) gets runner.ErrAlreadyExists. When
// another item holds the name (a hash collision), the next of JobNames is
// used.
func (r *Runner) Start(ctx context.Context, it *itemapi.Item) error {
	if j := r.jobOf(it.Name); j != nil {
		return runner.ErrAlreadyExists
	}
	r.mu.Lock()
	r.creating[it.Name]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.creating[it.Name]--; r.creating[it.Name] <= 0 {
			delete(r.creating, it.Name)
		}
		r.mu.Unlock()
	}()
	for _, name := range JobNames(r.cfg.Queue, it.Name) {
		err := r.startAs(ctx, it, name)
		if errors.Is(err, errTaken) {
			r.log.Warn("job name already used by another item (hash collision); trying a longer name", "item", it.Name, "job", name)
			continue
		}
		return err
	}
	return fmt.Errorf("start %q: every candidate job name is taken by another item", it.Name)
}

func (r *Runner) startAs(ctx context.Context, it *itemapi.Item, name string) error {
	if j := r.cachedJob(name); j != nil {
		switch {
		case itemOf(j) != it.Name:
			return errTaken
		case r.isForgotten(j.UID) || j.DeletionTimestamp != nil:
			return fmt.Errorf("the previous job %s of %q is still being deleted", name, it.Name)
		}
		return runner.ErrAlreadyExists
	}
	job, cm, err := Build(r.cfg.Template, Params{
		Queue: r.cfg.Queue, Namespace: r.cfg.Namespace, Name: name, Item: it,
		Steps: r.cfg.Steps, Env: r.cfg.Env, MaxAttempts: r.cfg.MaxAttempts, AttemptDeadline: r.cfg.JobTimeout,
		InlineItem: r.cfg.InlineItems,
	})
	if err != nil {
		return err
	}
	var cmUID types.UID
	if cm != nil {
		if cmUID, err = r.ensureConfigMap(ctx, cm, it.Name); err != nil {
			return err
		}
	}
	jobs := r.client.BatchV1().Jobs(r.cfg.Namespace)
	var created *batchv1.Job
	mine := false // a create that failed transiently may have created it
	err = r.retry(ctx, func(ctx context.Context) error {
		var err error
		created, err = jobs.Create(ctx, job, metav1.CreateOptions{})
		if transient(err) {
			mine = true
		}
		return err
	})
	already := false
	switch {
	case err == nil:
	case apierrors.IsAlreadyExists(err):
		var existing *batchv1.Job
		if err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			existing, err = jobs.Get(ctx, name, metav1.GetOptions{})
			return err
		}); err != nil {
			return fmt.Errorf("get job %s: %w", name, err)
		}
		if itemOf(existing) != it.Name {
			// Another item's Job holds the name (and its ConfigMap was gone,
			// so ours was created: give the name back).
			if cm != nil {
				r.deleteConfigMap(ctx, name, cmUID)
			}
			return errTaken
		}
		created, already = existing, !mine
	default:
		return fmt.Errorf("create job %s: %w", name, err)
	}
	if cm != nil {
		select {
		case r.owners <- ownership{name: name, cmUID: cmUID, job: created}:
		default: // the workers are behind: do it here
			r.setOwner(ctx, ownership{name: name, cmUID: cmUID, job: created})
		}
	}
	if already {
		return runner.ErrAlreadyExists
	}
	if ptr.Deref(created.Spec.Suspend, false) {
		r.event(created, corev1.EventTypeNormal, "Created", "the Job of item %q was created suspended (by its template or an admission webhook such as Kueue's): it counts as pending until it is resumed", it.Name)
	} else {
		r.event(created, corev1.EventTypeNormal, "Created", "the Job of item %q was created (up to %d attempts)", it.Name, r.cfg.MaxAttempts)
	}
	return nil
}

// ensureConfigMap creates the item's ConfigMap, or finds the one left by an
// interrupted start of the same item (adopted when its content is the same,
// made again when not). It returns its UID; errTaken when another item
// holds the name; runner.ErrAlreadyExists when the ConfigMap belongs to an
// existing Job of this item.
func (r *Runner) ensureConfigMap(ctx context.Context, cm *corev1.ConfigMap, item string) (types.UID, error) {
	cms := r.client.CoreV1().ConfigMaps(r.cfg.Namespace)
	for range 3 {
		var created *corev1.ConfigMap
		err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			created, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			return err
		})
		if err == nil {
			return created.UID, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("create configmap %s: %w", cm.Name, err)
		}
		var existing *corev1.ConfigMap
		err = r.retry(ctx, func(ctx context.Context) error {
			var err error
			existing, err = cms.Get(ctx, cm.Name, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile: create again
		}
		if err != nil {
			return "", fmt.Errorf("get configmap %s: %w", cm.Name, err)
		}
		if itemOf(existing) != item {
			return "", errTaken
		}
		if existing.DeletionTimestamp != nil {
			return "", fmt.Errorf("configmap %s of an earlier job is being deleted", cm.Name)
		}
		if owner := jobOwner(existing); owner != nil {
			var job *batchv1.Job
			err := r.retry(ctx, func(ctx context.Context) error {
				var err error
				job, err = r.client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
				return err
			})
			switch {
			case err == nil && job.UID == owner.UID:
				return "", runner.ErrAlreadyExists
			case err != nil && !apierrors.IsNotFound(err):
				return "", fmt.Errorf("get job %s: %w", cm.Name, err)
			}
			// Its Job is gone (forgotten, collected): the garbage collector
			// will delete it; do it now.
		} else if existing.Data[ItemKey] == cm.Data[ItemKey] {
			r.log.Info("adopting the ConfigMap of an interrupted start", "item", item, "configmap", cm.Name)
			return existing.UID, nil
		}
		r.deleteConfigMap(ctx, cm.Name, existing.UID)
	}
	return "", fmt.Errorf("configmap %s keeps coming back", cm.Name)
}

func jobOwner(cm *corev1.ConfigMap) *metav1.OwnerReference {
	for i, o := range cm.OwnerReferences {
		if o.Kind == "Job" && o.APIVersion == "batch/v1" {
			return &cm.OwnerReferences[i]
		}
	}
	return nil
}

// own makes job the owner of the ConfigMap cmUID (which must still be the
// one of that name), so the garbage collector deletes both together.
func (r *Runner) own(ctx context.Context, name string, cmUID types.UID, job *batchv1.Job) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": cmUID, // a precondition: never own another object of that name
		"ownerReferences": []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr.To(true),
		}},
	}})
	return r.retry(ctx, func(ctx context.Context) error {
		_, err := r.client.CoreV1().ConfigMaps(r.cfg.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}

func (r *Runner) deleteConfigMap(ctx context.Context, name string, uid types.UID) {
	err := r.retry(ctx, func(ctx context.Context) error {
		return r.client.CoreV1().ConfigMaps(r.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.log.Warn("cannot delete configmap", "configmap", name, "err", err)
	}
}

// MarkAcked annotates the item's Job with the outcome the source was told
// (the status API shows a failed, acknowledged job as dead) and, with a
// TTL configured, lets the TTL controller collect it.
func (r *Runner) MarkAcked(ctx context.Context, item string, outcome itemapi.Outcome) error {
	j := r.jobOf(item)
	if j == nil {
		return fmt.Errorf("mark %q acked: no job", item)
	}
	p := map[string]any{"metadata": map[string]any{
		"uid":         j.UID,
		"annotations": map[string]string{AnnotationAcked: string(outcome)},
	}}
	if r.cfg.TTL != nil {
		p["spec"] = map[string]any{"ttlSecondsAfterFinished": int32(r.cfg.TTL.Round(time.Second) / time.Second)}
	}
	patch, _ := json.Marshal(p)
	err := r.retry(ctx, func(ctx context.Context) error {
		_, err := r.client.BatchV1().Jobs(r.cfg.Namespace).Patch(ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil // already collected
	}
	if err != nil {
		return fmt.Errorf("mark job %s acked: %w", j.Name, err)
	}
	switch outcome {
	case itemapi.Failed:
		r.event(j, corev1.EventTypeWarning, "DeadLettered", "item %q failed past its retries: the source moved it to its dead letter", item)
	case itemapi.Cancelled:
		r.event(j, corev1.EventTypeNormal, "Acknowledged", "item %q acknowledged to the source as cancelled", item)
	default:
		r.event(j, corev1.EventTypeNormal, "Acknowledged", "item %q acknowledged to the source: %s", item, outcome)
	}
	return nil
}

// Forget deletes the item's finished Job (background propagation: its pods
// and ConfigMap follow through the garbage collector) and its ConfigMap.
func (r *Runner) Forget(ctx context.Context, item string) error {
	j := r.jobOf(item)
	if j == nil {
		return nil
	}
	if st, _ := jobState(j); !st.Phase.Finished() {
		return fmt.Errorf("forget %q: its job %s is not finished", item, j.Name)
	}
	r.mu.Lock()
	r.forgotten[j.UID] = time.Time{}
	r.mu.Unlock()
	uid := j.UID
	err := r.retry(ctx, func(ctx context.Context) error {
		return r.client.BatchV1().Jobs(r.cfg.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: &uid},
		})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		r.mu.Lock()
		delete(r.forgotten, j.UID)
		r.mu.Unlock()
		return fmt.Errorf("delete job %s: %w", j.Name, err)
	}
	err = r.retry(ctx, func(ctx context.Context) error {
		return r.client.CoreV1().ConfigMaps(r.cfg.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{})
	})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Warn("cannot delete the ConfigMap of a forgotten job; the garbage collector will", "job", j.Name, "err", err)
	}
	return nil
}

// Sweep finds the queue's ConfigMaps that have no owner (a start was
// interrupted between creating the ConfigMap and the Job, or before the
// owner was set): a ConfigMap whose Job exists is adopted by it; one
// without a Job is deleted once it is older than OrphanAge.
func (r *Runner) Sweep(ctx context.Context) error {
	_, err := r.sweep(ctx)
	return err
}

// sweep also reports whether it left young orphans alone.
func (r *Runner) sweep(ctx context.Context) (young bool, err error) {
	if err := r.WaitForSync(ctx); err != nil {
		return false, err
	}
	cms := r.client.CoreV1().ConfigMaps(r.cfg.Namespace)
	opts := metav1.ListOptions{LabelSelector: Selector(r.cfg.Queue), Limit: 500}
	adopted, deleted := 0, 0
	for {
		var list *corev1.ConfigMapList
		err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			list, err = cms.List(ctx, opts)
			return err
		})
		if err != nil {
			return young, fmt.Errorf("list configmaps: %w", err)
		}
		for i := range list.Items {
			cm := &list.Items[i]
			item := itemOf(cm)
			if jobOwner(cm) != nil || cm.DeletionTimestamp != nil || item == "" {
				continue
			}
			r.mu.Lock()
			busy := r.creating[item] > 0
			r.mu.Unlock()
			if busy {
				continue
			}
			if j := r.cachedJob(cm.Name); j != nil && itemOf(j) == item && !r.isForgotten(j.UID) {
				if err := r.own(ctx, cm.Name, cm.UID, j); err != nil {
					r.log.Warn("cannot adopt configmap", "configmap", cm.Name, "err", err)
				} else {
					adopted++
				}
				continue
			}
			if time.Since(cm.CreationTimestamp.Time) < r.cfg.OrphanAge {
				young = true
				continue
			}
			r.deleteConfigMap(ctx, cm.Name, cm.UID)
			deleted++
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if adopted+deleted > 0 {
		r.log.Info("swept orphaned ConfigMaps", "adopted", adopted, "deleted", deleted)
	}
	return young, nil
}

// retry calls fn until it succeeds, fails for good, or RetryAttempts
// transient failures (429, 5xx, timeouts, broken connections) have
// happened, waiting between tries (the server's Retry-After when longer).
func (r *Runner) retry(ctx context.Context, fn func(context.Context) error) error {
	delay := r.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !transient(err) || attempt >= r.cfg.RetryAttempts || ctx.Err() != nil {
			return err
		}
		d := delay/2 + rand.N(delay/2+1)
		if s, ok := apierrors.SuggestsClientDelay(err); ok && time.Duration(s)*time.Second > d {
			d = time.Duration(s) * time.Second
		}
		r.log.Debug("transient API error; retrying", "err", err, "in", d)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// transient reports whether an API error may go away on its own.
func transient(err error) bool {
	if err == nil {
		return false
	}
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) || utilnet.IsProbableEOF(err)
}
