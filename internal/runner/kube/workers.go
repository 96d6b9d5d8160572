package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// The pool on Kubernetes (MANAGER_EXECUTION=pool; docs/pool.md): a
// Deployment of workers, "<queue>-workers", built from the Job template's
// pod, whose replicas follow the manager's parallelism; the workers'
// token is in the Secret "<queue>-pool".
const (
	LabelRole  = "itemq.io/role" // "worker" on the pool's Deployment and pods
	RoleWorker = "worker"
	// AnnotationSpecHash is the hash of what the Deployment was built
	// from: a change (a new template, image or setting) rolls the workers.
	AnnotationSpecHash = "itemq.io/spec-hash"
	// AnnotationDeletionCost is Kubernetes' hint of which pods a
	// ReplicaSet removes first when it shrinks (lower first).
	AnnotationDeletionCost = "controller.kubernetes.io/pod-deletion-cost"
	poolTokenKey           = "token"
)

// WorkersConfig configures the pool's Deployment.
type WorkersConfig struct {
	Queue, Namespace string
	Template         *batchv1.Job
	// Command, when set, is the executor's argv (MANAGER_COMMAND), run in
	// the template's only container's image.
	Command []string
	// Env is set in the worker container (MANAGER_JOB_ENV_*).
	Env map[string]string
	// URL is the manager as the workers reach it (MANAGER_POOL_URL);
	// Token their bearer token (MANAGER_POOL_TOKEN).
	URL, Token string
	// Owner, when set, is a ConfigMap of the namespace that owns the
	// Deployment and the Secret (MANAGER_POOL_OWNER): deleting it deletes
	// them (Kubernetes' garbage collector), as helm uninstall deletes the
	// chart's job-template ConfigMap. The manager needs get on it.
	Owner string
	Log   *slog.Logger
}

// Workers keeps the pool's Deployment: a pool.Workers.
type Workers struct {
	client kubernetes.Interface
	cfg    WorkersConfig
	deploy *appsv1.Deployment
	secret *corev1.Secret
	owner  *metav1.OwnerReference // Owner's, once read
	log    *slog.Logger
}

// DeploymentName is the pool's Deployment of a queue.
func DeploymentName(queue string) string { return queue + "-workers" }

// NewWorkers builds the Deployment and Secret (created by the first Scale).
func NewWorkers(client kubernetes.Interface, cfg WorkersConfig) (*Workers, error) {
	var steps [][]string
	if len(cfg.Command) > 0 {
		steps = [][]string{cfg.Command}
	}
	if err := ValidateTemplate(cfg.Template, steps); err != nil {
		return nil, err
	}
	if len(cfg.Template.Spec.Template.Spec.Containers) != 1 {
		return nil, fmt.Errorf("job template: the pool's worker is the template's only container, but it has %d", len(cfg.Template.Spec.Template.Spec.Containers))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	w := &Workers{client: client, cfg: cfg, log: cfg.Log}
	w.secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.Queue + "-pool", Namespace: cfg.Namespace, Labels: w.labels()},
		Data:       map[string][]byte{poolTokenKey: []byte(cfg.Token)},
	}
	w.deploy = w.build()
	return w, nil
}

func (w *Workers) labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelQueue: w.cfg.Queue, LabelRole: RoleWorker}
}

// build is the Deployment, without replicas.
func (w *Workers) build() *appsv1.Deployment {
	t := w.cfg.Template.DeepCopy()
	pt := t.Spec.Template
	pt.Labels = merge(pt.Labels, w.labels())
	pod := &pt.Spec
	pod.RestartPolicy = corev1.RestartPolicyAlways
	pod.ActiveDeadlineSeconds = nil // a worker outlives items; MANAGER_JOB_TIMEOUT bounds each
	c := &pod.Containers[0]
	if len(w.cfg.Command) > 0 {
		c.Command, c.Args = slices.Clone(w.cfg.Command), nil
	}
	env := make([]corev1.EnvVar, 0, len(w.cfg.Env)+4)
	for _, k := range slices.Sorted(maps.Keys(w.cfg.Env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: w.cfg.Env[k]})
	}
	env = append(env,
		corev1.EnvVar{Name: "ITEMQ_POOL_URL", Value: w.cfg.URL},
		corev1.EnvVar{Name: "ITEMQ_POOL_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: w.secret.Name}, Key: poolTokenKey}}},
		corev1.EnvVar{Name: "ITEMQ_POOL_WORKER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "ITEMQ_QUEUE", Value: w.cfg.Queue},
	)
	c.Env = setEnv(c.Env, env)
	sum := sha256.New()
	_ = json.NewEncoder(sum).Encode(pt)
	_, _ = sum.Write(w.secret.Data[poolTokenKey])
	hash := hex.EncodeToString(sum.Sum(nil))[:16]
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: DeploymentName(w.cfg.Queue), Namespace: w.cfg.Namespace,
			Labels:      merge(t.Labels, w.labels()),
			Annotations: map[string]string{AnnotationSpecHash: hash},
		},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelQueue: w.cfg.Queue, LabelRole: RoleWorker}},
			Template: pt,
		},
	}
}

// Deployment is the Deployment as built (for tests and docs).
func (w *Workers) Deployment() *appsv1.Deployment { return w.deploy.DeepCopy() }

// Scale makes the Deployment exist, up to date, with n replicas; on a
// scale-down the idle workers' pods are marked to go first.
func (w *Workers) Scale(ctx context.Context, n int, idle []string) error {
	if err := w.resolveOwner(ctx); err != nil {
		return err
	}
	if err := w.ensureSecret(ctx); err != nil {
		return err
	}
	deploys := w.client.AppsV1().Deployments(w.cfg.Namespace)
	marked := false
	// The Deployment controller writes the object's status beside us: an
	// update that conflicts is made again on the new version.
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deploys.Get(ctx, w.deploy.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			d := w.deploy.DeepCopy()
			d.Spec.Replicas = ptr.To(int32(n))
			d.OwnerReferences = w.withOwner(nil)
			if _, err := deploys.Create(ctx, d, metav1.CreateOptions{FieldManager: "itemq-manager"}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create the pool's Deployment %s: %w", d.Name, err)
			}
			w.log.Info("pool: Deployment created", "deployment", d.Name, "replicas", n)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the pool's Deployment %s: %w", w.deploy.Name, err)
		}
		have := int(ptr.Deref(cur.Spec.Replicas, 1))
		stale := cur.Annotations[AnnotationSpecHash] != w.deploy.Annotations[AnnotationSpecHash]
		unowned := !w.owned(cur.OwnerReferences)
		if have == n && !stale && !unowned {
			return nil
		}
		if n < have && !marked {
			w.markIdle(ctx, idle, have-n)
			marked = true
		}
		d := cur.DeepCopy()
		d.Spec.Replicas = ptr.To(int32(n))
		if stale {
			d.Labels, d.Annotations = w.deploy.Labels, merge(d.Annotations, w.deploy.Annotations)
			d.Spec.Selector, d.Spec.Template = w.deploy.Spec.Selector, w.deploy.Spec.Template
			w.log.Info("pool: the workers' spec changed; rolling them", "deployment", d.Name)
		}
		d.OwnerReferences = w.withOwner(d.OwnerReferences)
		if _, err := deploys.Update(ctx, d, metav1.UpdateOptions{FieldManager: "itemq-manager"}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("scale the pool's Deployment %s to %d: %w", d.Name, n, err)
		}
		return nil
	})
}

// markIdle gives up to k idle workers' pods the lowest deletion cost, so
// the ReplicaSet removes them rather than busy ones (best effort: a busy
// worker told to stop finishes its item within its grace period).
func (w *Workers) markIdle(ctx context.Context, idle []string, k int) {
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationDeletionCost + `":"` + strconv.Itoa(-1000) + `"}}}`)
	for _, name := range idle[:min(k, len(idle))] {
		if _, err := w.client.CoreV1().Pods(w.cfg.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			w.log.Warn("pool: cannot mark an idle worker to go first", "pod", name, "err", err)
		}
	}
}

func (w *Workers) ensureSecret(ctx context.Context) error {
	secrets := w.client.CoreV1().Secrets(w.cfg.Namespace)
	cur, err := secrets.Get(ctx, w.secret.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s := w.secret.DeepCopy()
		s.OwnerReferences = w.withOwner(nil)
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the pool's Secret %s: %w", w.secret.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the pool's Secret %s: %w", w.secret.Name, err)
	}
	if string(cur.Data[poolTokenKey]) == w.cfg.Token && w.owned(cur.OwnerReferences) {
		return nil
	}
	cur = cur.DeepCopy()
	cur.Data = w.secret.Data
	cur.OwnerReferences = w.withOwner(cur.OwnerReferences)
	if _, err := secrets.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update the pool's Secret %s: %w", w.secret.Name, err)
	}
	return nil
}

// resolveOwner reads the owner ConfigMap's UID, once. A Deployment owned
// by a UID that does not exist would be deleted by the garbage collector
// at once: without the owner, the pool is not made.
func (w *Workers) resolveOwner(ctx context.Context) error {
	if w.cfg.Owner == "" || w.owner != nil {
		return nil
	}
	cm, err := w.client.CoreV1().ConfigMaps(w.cfg.Namespace).Get(ctx, w.cfg.Owner, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the pool's owner, the ConfigMap %s (MANAGER_POOL_OWNER): %w", w.cfg.Owner, err)
	}
	w.owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID}
	return nil
}

// owned says whether refs has the owner (always true without one).
func (w *Workers) owned(refs []metav1.OwnerReference) bool {
	return w.owner == nil || slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == w.owner.UID })
}

// withOwner is refs with the owner added (refs itself without one).
func (w *Workers) withOwner(refs []metav1.OwnerReference) []metav1.OwnerReference {
	if w.owned(refs) {
		return refs
	}
	return append(slices.Clone(refs), *w.owner)
}
