package executor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
)

// goHello builds an empty Go program: the floor of any Go binary's start.
func goHello(b *testing.B) string {
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the empty program: %v\n%s", err, out)
	}
	return filepath.Join(dir, "hello")
}

// timed runs cmd and returns its wall time and CPU time (user+system).
func timed(b *testing.B, cmd *exec.Cmd) (wall, cpu time.Duration) {
	b.Helper()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	wall = time.Since(start)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkScriptOverhead: itemq-script running /bin/true, against /bin/true
// alone and an empty Go program, in turn, one round per iteration (use
// -benchtime 50x). Reports the means and the executor's overhead over
// /bin/true (target: at most 20 ms), and, to tell where it goes, the cost
// of an empty Go program and of `itemq-blob --version` (the start of the
// bucket helper, which links gocloud.dev/blob and its drivers: the
// file-upload mode starts it once per run).
func BenchmarkScriptOverhead(b *testing.B) {
	bin := testutil.Binary(b, "executors/script")
	hello := goHello(b)
	helper := filepath.Join(filepath.Dir(bin), "itemq-blob") // built next to the executor
	for _, mode := range []struct {
		name string
		env  func(b *testing.B) []string
	}{
		{"no-upload", func(b *testing.B) []string { return []string{"OUTPUT_DIR=" + b.TempDir()} }},
		{"file-upload", func(b *testing.B) []string {
			return []string{"OUTPUT_URL=file://" + b.TempDir(), "EXECUTOR_FORCE=true"}
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			item := b.TempDir() + "/item.json"
			os.WriteFile(item, []byte(`{"kind":"Item","apiVersion":"v1","name":"bench","data":{"n":1}}`), 0o644)
			env := append(append(baseEnv(), "WORK_ITEM_FILE="+item, "EXECUTOR_LOG_LEVEL=warn"), mode.env(b)...)
			var exWall, exCPU, trWall, trCPU, goWall, goCPU, icWall, icCPU time.Duration
			n := 0
			for b.Loop() {
				c := exec.Command(bin, "--", "/bin/true")
				c.Env = env
				w, u := timed(b, c)
				exWall, exCPU = exWall+w, exCPU+u
				w, u = timed(b, exec.Command("/bin/true"))
				trWall, trCPU = trWall+w, trCPU+u
				w, u = timed(b, exec.Command(hello))
				goWall, goCPU = goWall+w, goCPU+u
				w, u = timed(b, exec.Command(helper, "--version"))
				icWall, icCPU = icWall+w, icCPU+u
				n++
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
			b.ReportMetric(ms(exWall), "itemq-wall-ms")
			b.ReportMetric(ms(trWall), "true-wall-ms")
			b.ReportMetric(ms(exWall-trWall), "overhead-wall-ms")
			b.ReportMetric(ms(exCPU), "itemq-cpu-ms")
			b.ReportMetric(ms(trCPU), "true-cpu-ms")
			b.ReportMetric(ms(goWall), "go-empty-wall-ms")
			b.ReportMetric(ms(goCPU), "go-empty-cpu-ms")
			b.ReportMetric(ms(icWall), "blob-init-wall-ms")
			b.ReportMetric(ms(icCPU), "blob-init-cpu-ms")
			b.ReportMetric(ms(exCPU-trCPU), "overhead-cpu-ms")
		})
	}
}
