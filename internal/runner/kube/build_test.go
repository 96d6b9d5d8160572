package kube

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

var update = flag.Bool("update", false, "rewrite the golden files of the builder tests")

func mustTemplate(t *testing.T, file string) *batchv1.Job {
	t.Helper()
	tmpl, err := LoadTemplate(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// The builder is a pure function of the template and the parameters; its
// output is compared with testdata/*.golden.yaml (go test -update rewrites
// them).
func TestBuildGolden(t *testing.T) {
	item := itemapi.NewItem("clips/a b.mp4", []byte(`{"url":"file:///data/clips/a%20b.mp4","size":1234}`))
	env := map[string]string{"OUTPUT_URL": "s3://out?endpoint=http://minio:9000", "THUMB_WIDTH": "320"}
	cases := []struct {
		name, tmpl string
		p          Params
	}{
		{"basic", "", Params{Queue: "thumbs", Namespace: "media", Item: item, Env: env, MaxAttempts: 3}},
		{"steps", "", Params{Queue: "thumbs", Namespace: "media", Item: item, Env: env, MaxAttempts: 1,
			Steps: [][]string{{"itemq-script", "--", "fetch.sh"}, {"itemq-thumbnail"}, {"itemq-script", "--", "stamp.sh"}}}},
		{"containers", "", Params{Queue: "thumbs", Namespace: "media", Item: item, Env: env, MaxAttempts: 2, AttemptDeadline: 90*time.Second + time.Millisecond}},
		{"inline", "basic", Params{Queue: "thumbs", Namespace: "media", Item: item, Env: env, MaxAttempts: 3, InlineItem: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tmpl == "" {
				tc.tmpl = tc.name
			}
			tmpl := mustTemplate(t, tc.tmpl+".template.yaml")
			before, _ := yaml.Marshal(tmpl)
			job, cm, err := Build(tmpl, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := yaml.Marshal(tmpl); !bytes.Equal(before, after) {
				t.Fatal("Build changed its template")
			}
			jy, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			var cy []byte
			if cm != nil {
				if cy, err = yaml.Marshal(cm); err != nil {
					t.Fatal(err)
				}
			}
			if (cm == nil) != tc.p.InlineItem {
				t.Fatalf("configmap %v with InlineItem %v", cm, tc.p.InlineItem)
			}
			got := append(append(jy, "---\n"...), cy...)
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Build output differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
			// Same inputs, same output.
			job2, cm2, _ := Build(tmpl, tc.p)
			jy2, _ := yaml.Marshal(job2)
			cy2, _ := yaml.Marshal(cm2)
			if cm2 == nil {
				cy2 = nil
			}
			if !bytes.Equal(jy, jy2) || !bytes.Equal(cy, cy2) {
				t.Error("Build is not deterministic")
			}
			checkContract(t, job, cm, tc.p)
		})
	}
}

// checkContract checks the rules of the item file contract on a built Job,
// independently of the golden files.
func checkContract(t *testing.T, job *batchv1.Job, cm *corev1.ConfigMap, p Params) {
	t.Helper()
	hash := runner.ItemHash(p.Item.Name)
	if cm == nil { // inline: the document is in the pod's annotation
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: job.Name, Labels: job.Labels, Annotations: job.Annotations},
			Data: map[string]string{ItemKey: job.Spec.Template.Annotations[AnnotationItemFile]}, Immutable: ptr.To(true)}
		vols := job.Spec.Template.Spec.Volumes
		i := slices.IndexFunc(vols, func(v corev1.Volume) bool { return v.Name == ItemVolume })
		if i < 0 || vols[i].DownwardAPI == nil {
			t.Errorf("item volume in %+v", vols)
		}
	}
	for what, m := range map[string]map[string]string{"job": job.Labels, "pod": job.Spec.Template.Labels, "configmap": cm.Labels} {
		if m[LabelManagedBy] != ManagedBy || m[LabelQueue] != p.Queue || m[LabelItemHash] != hash {
			t.Errorf("%s labels: %v", what, m)
		}
	}
	for what, m := range map[string]map[string]string{"job": job.Annotations, "pod": job.Spec.Template.Annotations, "configmap": cm.Annotations} {
		if m[AnnotationItem] != p.Item.Name {
			t.Errorf("%s annotations: %v", what, m)
		}
	}
	if job.Name != runner.JobName(p.Queue, p.Item.Name) || cm.Name != job.Name {
		t.Errorf("names %s %s", job.Name, cm.Name)
	}
	if *job.Spec.BackoffLimit != int32(p.MaxAttempts-1) || job.Spec.TTLSecondsAfterFinished != nil {
		t.Errorf("backoffLimit %d ttl %v", *job.Spec.BackoffLimit, job.Spec.TTLSecondsAfterFinished)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("restartPolicy")
	}
	r := job.Spec.PodFailurePolicy.Rules[0]
	if r.Action != batchv1.PodFailurePolicyActionFailJob || r.OnExitCodes.Values[0] != 2 {
		t.Errorf("first podFailurePolicy rule %+v", r)
	}
	all := append(append([]corev1.Container(nil), job.Spec.Template.Spec.InitContainers...), job.Spec.Template.Spec.Containers...)
	var steps []corev1.Container
	for _, c := range all {
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if env["WORK_ITEM_FILE"] != ItemFile {
			t.Errorf("container %s: WORK_ITEM_FILE=%q", c.Name, env["WORK_ITEM_FILE"])
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			if m.Name == ItemVolume && m.MountPath == ItemDir && m.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("container %s does not mount the item file read-only", c.Name)
		}
		if env["ITEMQ_STEP"] != "" {
			steps = append(steps, c)
		}
	}
	// Pipelines: step k's output directory is step k+1's input.
	for i, c := range steps {
		sub := map[string]string{}
		for _, m := range c.VolumeMounts {
			if m.Name == WorkVolume {
				sub[m.MountPath] = m.SubPath
			}
		}
		if i > 0 {
			prev := map[string]string{}
			for _, m := range steps[i-1].VolumeMounts {
				if m.Name == WorkVolume {
					prev[m.MountPath] = m.SubPath
				}
			}
			if sub[InputDir] == "" || sub[InputDir] != prev[OutputDir] {
				t.Errorf("step %d reads %q, step %d wrote %q", i+1, sub[InputDir], i, prev[OutputDir])
			}
		}
		hasURL := false
		for _, e := range c.Env {
			hasURL = hasURL || e.Name == "OUTPUT_URL"
		}
		if last := i == len(steps)-1; hasURL != last {
			t.Errorf("step %d: OUTPUT_URL set %v", i+1, hasURL)
		}
	}
	if cm.Data[ItemKey] == "" || !*cm.Immutable {
		t.Errorf("configmap %+v", cm)
	}
}

func TestValidateTemplate(t *testing.T) {
	cases := map[string]string{
		"no containers":  `{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {containers: []}}}}`,
		"restartPolicy":  `{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {restartPolicy: OnFailure, containers: [{name: a, image: b}]}}}}`,
		"parallelism":    `{apiVersion: batch/v1, kind: Job, spec: {parallelism: 3, template: {spec: {containers: [{name: a, image: b}]}}}}`,
		"indexed":        `{apiVersion: batch/v1, kind: Job, spec: {completionMode: Indexed, template: {spec: {containers: [{name: a, image: b}]}}}}`,
		"selector":       `{apiVersion: batch/v1, kind: Job, spec: {manualSelector: true, template: {spec: {containers: [{name: a, image: b}]}}}}`,
		"reserved":       `{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {containers: [{name: a, image: b}], volumes: [{name: itemq-item, emptyDir: {}}]}}}}`,
		"steps two ctrs": `{apiVersion: batch/v1, kind: Job, spec: {template: {spec: {containers: [{name: a, image: b}, {name: c, image: d}]}}}}`,
	}
	for name, y := range cases {
		tmpl, err := ParseTemplate([]byte(y))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var steps [][]string
		if name == "steps two ctrs" {
			steps = [][]string{{"x"}}
		}
		if err := ValidateTemplate(tmpl, steps); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "job template: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, y := range map[string]string{
		"not a job": `{apiVersion: v1, kind: Pod, spec: {}}`,
		"typo":      `{apiVersion: batch/v1, kind: Job, spec: {templat: {}}}`,
		"not yaml":  "\t{",
	} {
		if _, err := ParseTemplate([]byte(y)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if err := ValidateTemplate(mustTemplate(t, "basic.template.yaml"), nil); err != nil {
		t.Error(err)
	}
	if w := TemplateWarnings(mustTemplate(t, "basic.template.yaml")); len(w) != 3 {
		t.Errorf("warnings: %q", w)
	}
}

func TestJobNames(t *testing.T) {
	dns := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	long := strings.Repeat("q", runner.MaxQueueNameLen)
	for _, q := range []string{"a", "thumbs", long, strings.Repeat("ab-", 14) + "x"} {
		names := JobNames(q, "item")
		if names[0] != runner.JobName(q, "item") {
			t.Errorf("first name %s", names[0])
		}
		seen := map[string]bool{}
		for _, n := range names {
			if len(n) > 63 || !dns.MatchString(n) || seen[n] {
				t.Errorf("queue %q: bad or repeated name %q", q, n)
			}
			seen[n] = true
		}
		if again := JobNames(q, "item"); strings.Join(again, ",") != strings.Join(names, ",") {
			t.Error("not deterministic")
		}
	}
}

// A document too large for an annotation gets a ConfigMap, inline or not.
func TestBuildInlineTooLarge(t *testing.T) {
	big := itemapi.NewItem("big", []byte(`{"pad":"`+strings.Repeat("x", MaxInlineItemBytes)+`"}`))
	job, cm, err := Build(mustTemplate(t, "basic.template.yaml"), Params{Queue: "q", Item: big, MaxAttempts: 1, InlineItem: true})
	if err != nil || cm == nil || job.Spec.Template.Annotations[AnnotationItemFile] != "" {
		t.Fatalf("cm %v, err %v", cm != nil, err)
	}
}
