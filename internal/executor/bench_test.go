package executor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
)

// goProgram builds a Go program with the given main.go.
func goProgram(b *testing.B, name, main string) string {
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644)
	cmd := exec.Command("go", "build", "-o", name, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return filepath.Join(dir, name)
}

// goHello is an empty Go program: the floor of any Go binary's start.
func goHello(b *testing.B) string {
	return goProgram(b, "hello", "package main\nfunc main() {}\n")
}

// goSpawn is a Go program that runs its argument and waits for it, with
// net/http linked (as every executor has it, for http(s) inputs): the floor
// of any Go executor that runs a command.
func goSpawn(b *testing.B) string {
	return goProgram(b, "spawn", `package main

import (
	"net/http"
	"os"
	"os/exec"
)

func main() {
	if len(os.Args) > 2 { // never: links net/http without using it
		http.Get(os.Args[2])
	}
	if err := exec.Command(os.Args[1]).Run(); err != nil {
		os.Exit(1)
	}
}
`)
}

// timed runs cmd and returns its wall time and CPU time (user+system, of
// the process and the children it waited for).
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
// alone, in turn, one round per iteration (use -benchtime 40x). Reports the
// means and the executor's overhead over /bin/true (target: at most 20 ms),
// and, to tell where it goes: an empty Go program, a Go program that only
// runs /bin/true (go-spawn: the floor of any Go executor). The file-upload
// mode (OUTPUT_URL=file://…, EXECUTOR_FORCE=true) checks for _SUCCESS.json
// and writes it, in process.
func BenchmarkScriptOverhead(b *testing.B) {
	bin := testutil.Binary(b, "executors/script")
	hello, spawn := goHello(b), goSpawn(b)
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
			var exWall, exCPU, trWall, trCPU, goWall, goCPU, spWall, spCPU time.Duration
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
				w, u = timed(b, exec.Command(spawn, "/bin/true"))
				spWall, spCPU = spWall+w, spCPU+u
				n++
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
			b.ReportMetric(ms(exWall), "itemq-wall-ms")
			b.ReportMetric(ms(trWall), "true-wall-ms")
			b.ReportMetric(ms(exWall-trWall), "overhead-wall-ms")
			b.ReportMetric(ms(exCPU), "itemq-cpu-ms")
			b.ReportMetric(ms(trCPU), "true-cpu-ms")
			b.ReportMetric(ms(exCPU-trCPU), "overhead-cpu-ms")
			b.ReportMetric(ms(goWall), "go-empty-wall-ms")
			b.ReportMetric(ms(goCPU), "go-empty-cpu-ms")
			b.ReportMetric(ms(spWall-trWall), "go-spawn-overhead-wall-ms")
			b.ReportMetric(ms(spCPU-trCPU), "go-spawn-overhead-cpu-ms")
		})
	}
}
