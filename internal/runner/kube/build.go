package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// Labels and annotations the runner puts on its Jobs, their pod templates
// and their ConfigMaps.
const (
	LabelManagedBy = runner.LabelManagedBy
	ManagedBy      = runner.ManagedBy
	LabelQueue     = runner.LabelQueue
	LabelItemHash  = runner.LabelItemHash
	// AnnotationItem is the full item name: the identity of a Job (names
	// are hashes and may collide).
	AnnotationItem = runner.LabelItem
	// AnnotationAcked is the outcome the source was told ("succeeded" or
	// "failed"), set by MarkAcked.
	AnnotationAcked = "itemq.io/acked"
	// AnnotationCancelled ("true") marks a Job stopped by Runner.Cancel
	// (with spec.suspend=true, so its pods are terminated and the Job stays
	// as the record).
	AnnotationCancelled = "itemq.io/cancelled"
	// AnnotationItemFile holds the item document on the pod template when
	// Params.InlineItem is set (projected as the item file by the downward
	// API instead of a ConfigMap).
	AnnotationItemFile = "itemq.io/item-file"
)

// Where the builder puts things in the pod.
const (
	ItemVolume = "itemq-item" // the ConfigMap volume
	WorkVolume = "itemq-work" // the emptyDir shared by the steps of a pipeline
	ItemKey    = "item.json"  // the ConfigMap key
	ItemDir    = runner.ItemDir
	ItemFile   = runner.ItemFile // WORK_ITEM_FILE; ItemKey in ItemDir
	InputDir   = runner.InputDir
	OutputDir  = runner.OutputDir
)

// Params are what a Job is built from besides its template.
type Params struct {
	Queue     string
	Namespace string
	// Name of the Job and its ConfigMap (default: runner.JobName).
	Name string
	Item *itemapi.Item
	// Steps, when set, are the commands of the job's steps (MANAGER_STEPS or
	// MANAGER_COMMAND), run in the template's only container's image.
	Steps [][]string
	// Env is set in every container (MANAGER_JOB_ENV_*), replacing the
	// template's variables of the same name.
	Env map[string]string
	// MaxAttempts sets backoffLimit = MaxAttempts-1 (at least 1 attempt).
	MaxAttempts int
	// AttemptDeadline, when positive, bounds each attempt: the pod's
	// activeDeadlineSeconds (MANAGER_JOB_TIMEOUT, "bound of one attempt" as
	// for the local runner; a timed-out attempt is a retryable failure). A
	// bound of the whole Job is the template's spec.activeDeadlineSeconds.
	AttemptDeadline time.Duration
	// InlineItem puts the item document into an annotation of the pod
	// template, projected as the item file by a downwardAPI volume, instead
	// of a ConfigMap: one API write per item instead of three (ConfigMap,
	// Job, owner). Documents larger than MaxInlineItemBytes still get a
	// ConfigMap.
	InlineItem bool
}

// MaxInlineItemBytes bounds an item document kept in an annotation (the API
// server allows 256 KiB of annotations per object).
const MaxInlineItemBytes = 128 << 10

// LoadTemplate reads a Job template: a YAML (or JSON) file holding one
// batch/v1 Job. Unknown fields are errors, so a typo does not pass
// silently.
func LoadTemplate(path string) (*batchv1.Job, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("job template: %w", err)
	}
	return ParseTemplate(raw)
}

// ParseTemplate parses a Job template (see LoadTemplate).
func ParseTemplate(raw []byte) (*batchv1.Job, error) {
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(raw, &job); err != nil {
		return nil, fmt.Errorf("job template: want one batch/v1 Job in YAML: %w", err)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		return nil, fmt.Errorf("job template: apiVersion %q, kind %q: want batch/v1 Job", job.APIVersion, job.Kind)
	}
	return &job, nil
}

// ValidateTemplate checks that a template can be built into Jobs, with the
// steps given (nil: the template's containers are the steps).
func ValidateTemplate(tmpl *batchv1.Job, steps [][]string) error {
	if tmpl == nil {
		return errors.New("job template: missing")
	}
	if tmpl.APIVersion != "" && tmpl.APIVersion != "batch/v1" || tmpl.Kind != "" && tmpl.Kind != "Job" {
		return fmt.Errorf("job template: apiVersion %q, kind %q: want batch/v1 Job", tmpl.APIVersion, tmpl.Kind)
	}
	spec := tmpl.Spec
	pod := spec.Template.Spec
	var errs []error
	if len(pod.Containers) == 0 {
		errs = append(errs, errors.New("spec.template.spec.containers: at least one container is needed"))
	}
	if len(steps) > 0 && len(pod.Containers) != 1 {
		errs = append(errs, fmt.Errorf("spec.template.spec.containers: MANAGER_STEPS/MANAGER_COMMAND run in the image of the template's only container, but it has %d", len(pod.Containers)))
	}
	if spec.Selector != nil || ptr.Deref(spec.ManualSelector, false) {
		errs = append(errs, errors.New("spec.selector/manualSelector: leave them out; the Job controller makes the selector"))
	}
	if p := ptr.Deref(spec.Parallelism, 1); p != 1 {
		errs = append(errs, fmt.Errorf("spec.parallelism=%d: a job runs one item, one pod at a time", p))
	}
	if c := ptr.Deref(spec.Completions, 1); c != 1 {
		errs = append(errs, fmt.Errorf("spec.completions=%d: a job runs one item once", c))
	}
	if spec.CompletionMode != nil && *spec.CompletionMode != batchv1.NonIndexedCompletion {
		errs = append(errs, fmt.Errorf("spec.completionMode=%s: only NonIndexed", *spec.CompletionMode))
	}
	if spec.BackoffLimitPerIndex != nil || spec.MaxFailedIndexes != nil || spec.SuccessPolicy != nil {
		errs = append(errs, errors.New("spec.backoffLimitPerIndex/maxFailedIndexes/successPolicy: only for Indexed Jobs"))
	}
	if rp := pod.RestartPolicy; rp != "" && rp != corev1.RestartPolicyNever {
		errs = append(errs, fmt.Errorf("spec.template.spec.restartPolicy=%s: must be Never (each attempt is a pod; the podFailurePolicy needs it)", rp))
	}
	for _, v := range pod.Volumes {
		if v.Name == ItemVolume || v.Name == WorkVolume {
			errs = append(errs, fmt.Errorf("spec.template.spec.volumes: the name %q is reserved for itemq", v.Name))
		}
	}
	if tmpl.Spec.PodFailurePolicy != nil && len(tmpl.Spec.PodFailurePolicy.Rules)+len(podFailureRules()) > 20 {
		errs = append(errs, errors.New("spec.podFailurePolicy: at most 18 rules (itemq adds 2)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("job template: %w", err)
	}
	return nil
}

// TemplateWarnings lists what a valid template sets that the builder
// replaces.
func TemplateWarnings(tmpl *batchv1.Job) []string {
	var w []string
	if tmpl.Spec.TTLSecondsAfterFinished != nil {
		w = append(w, "spec.ttlSecondsAfterFinished is ignored: Jobs get MANAGER_JOB_TTL once their item is acknowledged")
	}
	if tmpl.Spec.BackoffLimit != nil {
		w = append(w, "spec.backoffLimit is ignored: it is MANAGER_MAX_ATTEMPTS-1")
	}
	if tmpl.Name != "" || tmpl.GenerateName != "" || tmpl.Namespace != "" {
		w = append(w, "metadata.name/generateName/namespace are ignored: Jobs are named <queue>-<hash> in the manager's namespace")
	}
	return w
}

// JobNames returns the candidate names of an item's Job, in the order they
// are tried: runner.JobName (10 hex digits of sha256), then 20 and 32 hex
// digits (the queue name shortened to fit 63 characters) for the rare item
// whose shorter name is taken by another item. They are deterministic, so a
// restarted manager finds the same Job.
func JobNames(queueName, item string) []string { return runner.JobNames(queueName, item) }

// Selector is the label selector of a queue's Jobs and ConfigMaps.
func Selector(queueName string) string {
	return LabelManagedBy + "=" + ManagedBy + "," + LabelQueue + "=" + queueName
}

// podFailureRules fail the Job at once when a container exits with 2 (the
// item is bad: retrying cannot help), and do not count disruptions
// (preemption, eviction, node drain) as attempts.
func podFailureRules() []batchv1.PodFailurePolicyRule {
	return []batchv1.PodFailurePolicyRule{
		{
			Action:      batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{runner.ExitPermanent}},
		},
		{
			Action:          batchv1.PodFailurePolicyActionIgnore,
			OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
		},
	}
}

// Build makes the Job of one item and the ConfigMap holding its item file
// from the user's template (no ConfigMap, nil, when the document is inline:
// Params.InlineItem). It is a pure function: the same inputs give the same
// objects. The template must have passed ValidateTemplate.
//
// The Job: named p.Name, labelled (managed-by, queue, item-hash) and
// annotated (item) like its pod template and its ConfigMap; backoffLimit
// MaxAttempts-1; restartPolicy Never; a podFailurePolicy that fails the Job
// on exit code 2 and ignores disruptions (then the template's own rules);
// the pod's activeDeadlineSeconds from AttemptDeadline; no ttlSecondsAfterFinished
// (the runner sets it when the item is acknowledged). Every container, init
// containers included, mounts the ConfigMap read-only at ItemDir; every
// step gets runner.ExecutorEnv (without ITEMQ_ATTEMPT: see
// docs/executors.md) and an OUTPUT_DIR on an emptyDir; the template's init
// containers get WORK_ITEM_FILE, ITEMQ_QUEUE, ITEMQ_JOB_NAME and Env.
//
// Steps: with p.Steps, each step is a copy of the template's container with
// the step's command; otherwise the template's containers are the steps.
// With more than one step, steps 1..n-1 become init containers (after the
// template's own) run in order and step n the main container; they share an
// emptyDir: step k writes to OutputDir (subdirectory step<k> of the volume),
// which step k+1 reads as InputDir; ITEMQ_STEP is k; only the last step
// keeps OUTPUT_URL.
func Build(tmpl *batchv1.Job, p Params) (*batchv1.Job, *corev1.ConfigMap, error) {
	if p.Item == nil {
		return nil, nil, errors.New("build job: no item")
	}
	if err := ValidateTemplate(tmpl, p.Steps); err != nil {
		return nil, nil, err
	}
	doc, err := json.Marshal(p.Item)
	if err != nil {
		return nil, nil, fmt.Errorf("build job: encode item %q: %w", p.Item.Name, err)
	}
	name := p.Name
	if name == "" {
		name = runner.JobName(p.Queue, p.Item.Name)
	}
	labels := map[string]string{
		LabelManagedBy: ManagedBy,
		LabelQueue:     p.Queue,
		LabelItemHash:  runner.ItemHash(p.Item.Name),
	}
	annotations := map[string]string{AnnotationItem: p.Item.Name}

	inline := p.InlineItem && len(doc) <= MaxInlineItemBytes
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: p.Namespace,
			Labels: maps.Clone(labels), Annotations: maps.Clone(annotations),
		},
		Data:      map[string]string{ItemKey: string(doc)},
		Immutable: ptr.To(true),
	}

	t := tmpl.DeepCopy()
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: p.Namespace,
			Labels:      merge(t.Labels, labels),
			Annotations: merge(withoutKey(t.Annotations, AnnotationAcked), annotations),
		},
		Spec: t.Spec,
	}
	spec := &job.Spec
	spec.Selector, spec.ManualSelector = nil, nil
	spec.Parallelism, spec.Completions = ptr.To[int32](1), ptr.To[int32](1)
	spec.BackoffLimit = ptr.To(int32(max(p.MaxAttempts, 1) - 1))
	spec.TTLSecondsAfterFinished = nil
	rules := podFailureRules()
	if spec.PodFailurePolicy != nil {
		rules = append(rules, spec.PodFailurePolicy.Rules...)
	}
	spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules}

	pt := &spec.Template
	pt.Labels = merge(pt.Labels, labels)
	pt.Annotations = merge(pt.Annotations, annotations)
	pod := &pt.Spec
	pod.RestartPolicy = corev1.RestartPolicyNever
	if p.AttemptDeadline > 0 {
		pod.ActiveDeadlineSeconds = ptr.To(int64((p.AttemptDeadline + time.Second - 1) / time.Second))
	}
	itemVolume := corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name},
		Items:                []corev1.KeyToPath{{Key: ItemKey, Path: ItemKey}},
		DefaultMode:          ptr.To[int32](0o444),
	}}
	if inline {
		pt.Annotations[AnnotationItemFile] = string(doc)
		itemVolume = corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     ItemKey,
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + AnnotationItemFile + "']"},
			}},
			DefaultMode: ptr.To[int32](0o444),
		}}
		cm = nil
	}
	pod.Volumes = append(pod.Volumes, corev1.Volume{Name: ItemVolume, VolumeSource: itemVolume})

	// The steps.
	var steps []corev1.Container
	if len(p.Steps) > 0 {
		base := pod.Containers[0]
		for i, argv := range p.Steps {
			c := *base.DeepCopy()
			if len(p.Steps) > 1 {
				c.Name = fmt.Sprintf("step%d", i+1)
			}
			c.Command = slices.Clone(argv)
			c.Args = nil
			steps = append(steps, c)
		}
	} else {
		steps = pod.Containers
	}
	n := len(steps)
	// The template's own init containers get the step-1 contract, less
	// the step variables.
	common := kubeEnv(runner.ExecutorEnv(runner.EnvSpec{
		Queue: p.Queue, Job: name, Step: 1, Steps: n,
		ItemFile: ItemFile, InputDir: InputDir, OutputDir: OutputDir, Base: p.Env,
	}), "OUTPUT_DIR", "ITEMQ_STEP", "ITEMQ_STEPS")
	itemMount := corev1.VolumeMount{Name: ItemVolume, MountPath: ItemDir, ReadOnly: true}
	for i := range steps {
		c := &steps[i]
		// runner.ExecutorEnv is the contract; ITEMQ_ATTEMPT is not known
		// when the Job is built (the Job controller makes the attempts),
		// so it is not set on Kubernetes (docs/executors.md).
		c.Env = setEnv(c.Env, kubeEnv(runner.ExecutorEnv(runner.EnvSpec{
			Queue: p.Queue, Job: name, Step: i + 1, Steps: n,
			ItemFile: ItemFile, InputDir: InputDir, OutputDir: OutputDir, Base: p.Env,
		})))
		c.VolumeMounts = append(c.VolumeMounts, itemMount)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: WorkVolume, MountPath: OutputDir, SubPath: fmt.Sprintf("step%d", i+1)})
		if i > 0 {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: WorkVolume, MountPath: InputDir, SubPath: fmt.Sprintf("step%d", i), ReadOnly: true})
		}
		if i < n-1 {
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OUTPUT_URL" })
		}
	}
	for i := range pod.InitContainers {
		c := &pod.InitContainers[i]
		c.Env = setEnv(c.Env, common)
		c.VolumeMounts = append(c.VolumeMounts, itemMount)
	}
	// Every step has an OUTPUT_DIR (a single one too): a shared emptyDir.
	pod.Volumes = append(pod.Volumes, corev1.Volume{Name: WorkVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	if n > 1 {
		pod.InitContainers = append(pod.InitContainers, steps[:n-1]...)
		pod.Containers = steps[n-1:]
	} else {
		pod.Containers = steps
	}
	return job, cm, nil
}

// merge returns base with over's entries added (over wins).
func merge(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

func withoutKey(m map[string]string, key string) map[string]string {
	if _, ok := m[key]; !ok {
		return m
	}
	out := maps.Clone(m)
	delete(out, key)
	return out
}

// kubeEnv is env as Kubernetes variables, without the names in drop.
func kubeEnv(env []runner.EnvVar, drop ...string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env))
	for _, e := range env {
		if !slices.Contains(drop, e.Name) {
			out = append(out, corev1.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	return out
}

// setEnv sets vars in env: a variable already there is replaced where it
// stands; new ones are appended in order.
func setEnv(env []corev1.EnvVar, vars []corev1.EnvVar) []corev1.EnvVar {
	out := slices.Clone(env)
	for _, v := range vars {
		i := slices.IndexFunc(out, func(e corev1.EnvVar) bool { return e.Name == v.Name })
		if i >= 0 {
			out[i] = v
		} else {
			out = append(out, v)
		}
	}
	return out
}
