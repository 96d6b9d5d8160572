package runner

import (
	"slices"
	"strings"
	"testing"
)

func envMap(env []EnvVar) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

// The executor contract (docs/executors.md): one definition for every
// runner.
func TestExecutorEnv(t *testing.T) {
	base := map[string]string{"OUTPUT_URL": "s3://b/x", "TOKEN": "t", "ITEMQ_QUEUE": "user's", "INPUT_DIR": "/data"}
	spec := EnvSpec{Queue: "q", Job: "q-0123456789", Attempt: 2, Steps: 3, ItemFile: "/i/item.json", InputDir: "/in", OutputDir: "/out", Base: base}
	for step := 1; step <= 3; step++ {
		s := spec
		s.Step = step
		env := ExecutorEnv(s)
		if !slices.IsSortedFunc(env, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("step %d: not sorted: %v", step, env)
		}
		m := envMap(env)
		want := map[string]string{
			"WORK_ITEM_FILE": "/i/item.json", "OUTPUT_DIR": "/out", "ITEMQ_QUEUE": "q", "ITEMQ_JOB_NAME": "q-0123456789",
			"ITEMQ_ATTEMPT": "2", "ITEMQ_STEP": string(rune('0' + step)), "ITEMQ_STEPS": "3", "TOKEN": "t",
		}
		switch step {
		case 1:
			want["INPUT_DIR"] = "/data" // the user's, on step 1 only
		default:
			want["INPUT_DIR"] = "/in"
		}
		if step == 3 {
			want["OUTPUT_URL"] = "s3://b/x"
		}
		if len(m) != len(want) {
			t.Errorf("step %d: %v, want %v", step, m, want)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("step %d: %s=%q, want %q", step, k, m[k], v)
			}
		}
	}
	// Attempt unknown (Kubernetes builds the Job once): no ITEMQ_ATTEMPT,
	// not even the user's.
	m := envMap(ExecutorEnv(EnvSpec{Queue: "q", Job: "j", Base: map[string]string{"ITEMQ_ATTEMPT": "9"}}))
	if _, ok := m["ITEMQ_ATTEMPT"]; ok {
		t.Errorf("ITEMQ_ATTEMPT with Attempt 0: %v", m)
	}
	if m["ITEMQ_STEP"] != "1" || m["ITEMQ_STEPS"] != "1" {
		t.Errorf("single step: %v", m)
	}
}

func TestJobNamesAndResolve(t *testing.T) {
	names := JobNames("q", "a")
	if len(names) != 3 || names[0] != JobName("q", "a") || len(names[1]) != 2+20 || len(names[2]) != 2+32 {
		t.Fatalf("JobNames = %v", names)
	}
	long := strings.Repeat("x", MaxQueueNameLen)
	for _, n := range JobNames(long, "a") {
		if len(n) > 63 {
			t.Errorf("%q longer than a DNS label", n)
		}
	}
	owners := map[string]string{names[0]: "other", names[1]: "a"}
	got, ok := ResolveJobName(names, "a", func(n string) string { return owners[n] })
	if !ok || got != names[1] {
		t.Errorf("resolve = %q %v, want the item's own %q", got, ok, names[1])
	}
	owners[names[1]] = "third"
	if got, _ := ResolveJobName(names, "a", func(n string) string { return owners[n] }); got != names[2] {
		t.Errorf("resolve = %q, want %q", got, names[2])
	}
	owners[names[2]] = "fourth"
	if _, ok := ResolveJobName(names, "a", func(n string) string { return owners[n] }); ok {
		t.Error("resolved a name although every candidate is taken")
	}
}
