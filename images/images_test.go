// Package images_test builds itemq's images with hack/images.sh (podman,
// local bases) and checks them: every binary's --version as UID 65532, the
// dir ambassador image serving /v1/items from a mounted directory, the
// thumbnail image making thumbnails of a mounted item, and the container
// runner processing 20 items with the script image through a manager that
// is killed and restarted.
package images_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/container"
	"github.com/itemq/itemq/internal/testutil"
)

var all = []string{"itemq-dir", "itemq-bucket", "itemq-kafka", "itemq-redis", "itemq-manager", "itemq-script", "itemq-thumbnail"}

var (
	buildOnce sync.Once
	version   string
	buildErr  error
)

// build runs hack/images.sh once per test process (podman's layer cache
// makes an unchanged image cheap) and returns the engine and the version
// the images are tagged with.
func build(t *testing.T) (engine, ver string) {
	t.Helper()
	engine = testutil.Need(t, "ITEMQ_PODMAN")
	buildOnce.Do(func() {
		start := time.Now()
		var out, stderr bytes.Buffer
		cmd := exec.Command("bash", "hack/images.sh")
		cmd.Dir = testutil.ModuleRoot(t)
		cmd.Env = append(os.Environ(), "ENGINE="+engine, "BASES=local", "REGISTRY=itemq")
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("hack/images.sh: %v\n%s", err, stderr.String())
			return
		}
		for _, line := range strings.Fields(out.String()) {
			if v, ok := strings.CutPrefix(line, "itemq/itemq-dir:"); ok {
				version = v
			}
		}
		if version == "" {
			buildErr = fmt.Errorf("hack/images.sh printed no itemq-dir tag:\n%s", out.String())
		}
		t.Logf("images built in %v", time.Since(start).Round(time.Second))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return engine, version
}

func image(name, ver string) string { return "itemq/" + name + ":" + ver }

func run(t *testing.T, engine string, args ...string) string {
	t.Helper()
	out, err := exec.Command(engine, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", engine, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// The static images are manifest lists of linux/amd64 and linux/arm64
// images, each holding binaries of its own architecture (cross-compiled:
// nothing is run, so no emulation is needed to check them); the ffmpeg
// image is built for the host's architecture only (docs/images.md).
// (It runs first: podman 4.3 stores the instance a `podman run` of a
// manifest list picked under the list's own name, so later tests that run
// the images replace the local lists.)
func TestStaticImagesAreMultiArch(t *testing.T) {
	engine, ver := build(t)
	if filepath.Base(engine) != "podman" {
		t.Skip("manifest lists are built with podman only")
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, name := range all {
		if name == "itemq-thumbnail" {
			var infos []struct{ Architecture string }
			if err := json.Unmarshal([]byte(run(t, engine, "image", "inspect", image(name, ver))), &infos); err != nil || len(infos) != 1 {
				t.Fatalf("inspect %s: %v", name, err)
			}
			if infos[0].Architecture != runtime.GOARCH {
				t.Errorf("%s: architecture %s, want the host's %s", name, infos[0].Architecture, runtime.GOARCH)
			}
			continue
		}
		var list struct {
			MediaType string
			Manifests []struct {
				Digest   string
				Platform struct{ Architecture, OS string }
			}
		}
		if err := json.Unmarshal([]byte(run(t, engine, "manifest", "inspect", image(name, ver))), &list); err != nil {
			t.Fatalf("manifest inspect %s: %v", name, err)
		}
		got := map[string]bool{}
		for _, m := range list.Manifests {
			if m.Platform.OS != "linux" {
				t.Errorf("%s: a manifest for %s", name, m.Platform.OS)
			}
			got[m.Platform.Architecture] = true
		}
		if len(list.Manifests) != 2 || !got["amd64"] || !got["arm64"] {
			t.Errorf("%s:%s is not a list of linux/amd64 and linux/arm64: %+v", name, ver, list)
		}
		for arch, machine := range machines {
			img := image(name, ver) + "-" + arch
			var infos []struct{ Architecture, Os string }
			if err := json.Unmarshal([]byte(run(t, engine, "image", "inspect", img)), &infos); err != nil || len(infos) != 1 {
				t.Fatalf("inspect %s: %v", img, err)
			}
			if infos[0].Architecture != arch || infos[0].Os != "linux" {
				t.Errorf("%s: %s/%s", img, infos[0].Os, infos[0].Architecture)
			}
			// The binary inside is of that architecture.
			ctr := strings.TrimSpace(run(t, engine, "create", "--platform", "linux/"+arch, img))
			dst := filepath.Join(t.TempDir(), name)
			run(t, engine, "cp", ctr+":/usr/bin/"+name, dst)
			run(t, engine, "rm", ctr)
			f, err := elf.Open(dst)
			if err != nil {
				t.Fatalf("%s in %s: %v", name, img, err)
			}
			if f.Machine != machine {
				t.Errorf("%s in %s is a %v binary, want %v", name, img, f.Machine, machine)
			}
			f.Close()
		}
	}
}

func TestVersionAsNonroot(t *testing.T) {
	engine, ver := build(t)
	for _, name := range all {
		img := image(name, ver)
		// The image's user, and labels.
		var cfg struct {
			Config struct {
				User   string
				Labels map[string]string
			}
		}
		var infos []json.RawMessage
		if err := json.Unmarshal([]byte(run(t, engine, "image", "inspect", img)), &infos); err != nil || len(infos) != 1 {
			t.Fatalf("inspect %s: %v", img, err)
		}
		if err := json.Unmarshal(infos[0], &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", name, cfg.Config.User)
		}
		l := cfg.Config.Labels
		if l["org.opencontainers.image.version"] != ver || l["org.opencontainers.image.title"] != name ||
			len(l["org.opencontainers.image.revision"]) < 7 || l["org.opencontainers.image.source"] == "" ||
			l["org.opencontainers.image.licenses"] != "Apache-2.0" {
			t.Errorf("%s: labels %v", name, l)
		}
		// --version, on a read-only root filesystem, with the image's user;
		// `id`-less images print their uid through /proc/self/status.
		out := run(t, engine, "run", "--rm", "--read-only", "--network", "none", img, "--version")
		if !strings.HasPrefix(out, name+" "+ver+" ") {
			t.Errorf("%s --version: %q, want %s %s …", name, out, name, ver)
		}
		if name != "itemq-thumbnail" {
			// No shell in the static images.
			if out, err := exec.Command(engine, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", img, "-c", "true").CombinedOutput(); err == nil {
				t.Errorf("%s has a shell: %s", name, out)
			}
		} else {
			// The Debian-based one: the process runs as 65532.
			out := run(t, engine, "run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/id", img)
			if !strings.HasPrefix(out, "uid=65532(nonroot) gid=65532(nonroot)") {
				t.Errorf("%s: id says %q", name, out)
			}
			run(t, engine, "run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/ffmpeg", img, "-hide_banner", "-version")
		}
	}
	// The executor images ship the itemq command (itemq blob … for scripts)
	// next to the executor; the manager's, for people (kubectl exec … itemq jobs).
	for _, name := range []string{"itemq-script", "itemq-thumbnail", "itemq-manager"} {
		out := run(t, engine, "run", "--rm", "--network", "none", "--entrypoint", "/usr/bin/itemq", image(name, ver), "--version")
		if !strings.HasPrefix(out, "itemq "+ver+" ") {
			t.Errorf("itemq --version in %s: %q", name, out)
		}
	}
}

// uidOf reads the real UID of a container's main process from /proc (the
// engine runs on this machine).
func uidOf(t *testing.T, engine, ctr string) string {
	t.Helper()
	pid := strings.TrimSpace(run(t, engine, "inspect", "--format", "{{.State.Pid}}", ctr))
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no Uid line in /proc/%s/status", pid)
	return ""
}

func TestAmbassadorImageServesAMountedDirectory(t *testing.T) {
	engine, ver := build(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // readable by the container's user
	for _, n := range []string{"a.mp4", "b.mp4", "sub/c.mp4"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := testutil.FreeAddr(t)
	name := "itemq-test-dir-" + randHex()
	run(t, engine, "run", "-d", "--name", name, "--read-only", "-p", addr+":8080",
		"-e", "ITEMQ_ADDR=0.0.0.0:8080", "-e", "DIR_ROOT=/data", "-e", "DIR_PATTERN=*.mp4",
		"-v", dir+":/data:ro", image("itemq-dir", ver))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(engine, "logs", name).CombinedOutput()
			t.Logf("logs of %s:\n%s", name, out)
		}
		exec.Command(engine, "rm", "-f", name).Run()
	})
	var list struct {
		Kind  string   `json:"kind"`
		Items []string `json:"items"`
	}
	testutil.Eventually(t, time.Minute, "GET /v1/items from the host", func() error {
		resp, err := http.Get("http://" + addr + "/v1/items")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		if len(list.Items) < 3 {
			return fmt.Errorf("items %v (the first scan may be running)", list.Items)
		}
		return nil
	})
	if list.Kind != "ItemList" || strings.Join(list.Items, ",") != "a.mp4,b.mp4,sub/c.mp4" {
		t.Errorf("items: %+v", list)
	}
	if uid := uidOf(t, engine, name); uid != "65532" {
		t.Errorf("the ambassador runs as uid %s, want 65532", uid)
	}
	// Its /metrics carry the build info.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `itemq_build_info{binary="itemq-dir"`) || !strings.Contains(string(b), `version="`+ver+`"`) {
		t.Errorf("/metrics lacks the build info of %s", ver)
	}
}

func TestThumbnailImage(t *testing.T) {
	engine, ver := build(t)
	ffmpeg := testutil.NeedCommand(t, "ffmpeg")
	in, out, item := t.TempDir(), t.TempDir(), t.TempDir()
	if b, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=25",
		"-pix_fmt", "yuv420p", filepath.Join(in, "clip one.mp4")).CombinedOutput(); err != nil {
		t.Fatalf("make a clip: %v\n%s", err, b)
	}
	os.Chmod(in, 0o755)
	os.Chmod(out, 0o777)
	doc := `{"kind":"Item","apiVersion":"v1","name":"clips/clip one.mp4","data":{"url":"file:///in/clip%20one.mp4"}}`
	if err := os.WriteFile(filepath.Join(item, "item.json"), []byte(doc), 0o444); err != nil {
		t.Fatal(err)
	}
	// As the container runner and a Kubernetes Job run it: the item file
	// read-only at the fixed path, a read-only root filesystem, a tmpfs /tmp.
	b, err := exec.Command(engine, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
		"-v", in+":/in:ro", "-v", out+":/out", "-v", filepath.Join(item, "item.json")+":"+container.ItemFile+":ro",
		"-e", "WORK_ITEM_FILE="+container.ItemFile, "-e", "OUTPUT_URL=file:///out?no_tmp_dir=true", "-e", "THUMB_EVERY_FRAMES=25",
		"-e", "EXECUTOR_INPUT_ALLOW=file:///in/",
		"-e", "THUMB_SHEET=true", image("itemq-thumbnail", ver)).CombinedOutput()
	if err != nil {
		t.Fatalf("itemq-thumbnail: %v\n%s", err, b)
	}
	res := filepath.Join(out, "clips", "clip%20one.mp4")
	for _, f := range []string{"thumb001.png", "thumb002.png", "thumb003.png", "sheet.png", "_SUCCESS.json"} {
		st, err := os.Stat(filepath.Join(res, f))
		if err != nil {
			t.Errorf("%v\n%s", err, b)
			continue
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65532 {
			t.Errorf("%s was written by uid %d, want 65532", f, uid)
		}
	}
}

// TestContainerRunner: the dir ambassador and the manager on this machine,
// MANAGER_RUNNER=podman with the script image running a user's "script"
// (the static probe program, mounted) for 20 items. The manager is killed
// (SIGKILL) while a job's container runs and started again: it adopts the
// container, every item runs to success exactly once, none is lost, and no
// container is left.
func TestContainerRunner(t *testing.T) {
	engine, ver := build(t)
	probe := testutil.Binary(t, "internal/runner/container/testdata/probe")
	base := t.TempDir()
	root, out, runs, state, work := filepath.Join(base, "in"), filepath.Join(base, "out"), filepath.Join(base, "runs"), filepath.Join(base, "state"), filepath.Join(base, "work")
	for _, d := range []string{root, out, runs} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
	}
	q := "itest-" + randHex()
	t.Cleanup(func() {
		if n, err := container.Remove(context.Background(), engine, q); err != nil || n > 0 {
			t.Errorf("cleanup: %d containers of %s removed, %v", n, q, err)
		}
	})
	items := []string{"gate.json"}
	for i := 0; i < 19; i++ {
		items = append(items, fmt.Sprintf("item%02d.json", i))
	}
	for _, n := range items {
		data := `{"sleepMs":800}`
		if n == "gate.json" {
			data = `{"waitFor":"/runs/go"}`
		}
		tmp := filepath.Join(root, "."+n+".part")
		if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	amb := testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR",
		"DIR_ROOT="+root, "DIR_DATA=json", "DIR_SETTLE=50ms", "DIR_POLL_INTERVAL=2s")
	cmd, _ := json.Marshal([]string{"/usr/bin/itemq-script", "--", "/test/probe"})
	vols, _ := json.Marshal([]string{probe + ":/test/probe:ro", runs + ":/runs", out + ":/out"})
	env := []string{
		"MANAGER_QUEUE=" + q,
		"MANAGER_SOURCE=" + amb.URL(),
		"MANAGER_RUNNER=podman",
		"MANAGER_CONTAINER_ENGINE=" + engine,
		"MANAGER_IMAGE=" + image("itemq-script", ver),
		"MANAGER_COMMAND=" + string(cmd),
		"MANAGER_CONTAINER_NETWORK=none",
		"MANAGER_CONTAINER_VOLUMES=" + string(vols),
		`MANAGER_CONTAINER_RUN_ARGS=["--read-only","--tmpfs","/tmp"]`,
		"MANAGER_CONTAINER_PULL=never",
		"MANAGER_STATE_DIR=" + state,
		"MANAGER_WORK_DIR=" + work,
		"MANAGER_MAX_ACTIVE=4",
		"MANAGER_MIN_ACTIVE=4",
		"MANAGER_RETRY_BACKOFF=50ms",
		"MANAGER_RESYNC=2s",
		// no_tmp_dir: fileblob writes its temporary files next to the
		// results, not in /tmp (a tmpfs: rename(2) across devices fails).
		"MANAGER_JOB_ENV_OUTPUT_URL=file:///out?no_tmp_dir=true",
		"MANAGER_JOB_ENV_PROBE_LOG=/runs/probe.log",
		"MANAGER_JOB_ENV_OUT_ROOT=/out",
	}
	for _, k := range []string{"CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	lines := func(prefix string) map[string]int {
		b, _ := os.ReadFile(filepath.Join(runs, "probe.log"))
		m := map[string]int{}
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				m[rest]++
			}
		}
		return m
	}
	mgrBin := testutil.Binary(t, "manager")
	mgr := testutil.StartServer(t, mgrBin, "MANAGER_ADDR", env...)
	testutil.Eventually(t, 3*time.Minute, "the gate item running and 4 items done", func() error {
		if len(lines("done ")) < 4 || lines("start ")["gate.json no"] == 0 {
			return fmt.Errorf("done: %v", lines("done "))
		}
		return nil
	})
	mgr.Kill()
	gateJob := runner.JobName(q, "gate.json")
	if got := strings.Fields(run(t, engine, "ps", "--filter", "label="+container.LabelQueue+"="+q, "--filter", "status=running", "--format", "{{.Names}}")); !contains(got, gateJob) {
		t.Fatalf("running containers after the kill: %v, want %s among them", got, gateJob)
	}
	mgr = testutil.StartServer(t, mgrBin, "MANAGER_ADDR", env...)
	testutil.Eventually(t, time.Minute, "the restarted manager adopted the gate's container", func() error {
		if !strings.Contains(mgr.Logs(), `"msg":"adopting a running container"`) || !strings.Contains(mgr.Logs(), gateJob) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(runs, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Minute, "every item archived", func() error {
		for _, n := range items {
			if _, err := os.Stat(filepath.Join(root, ".done", n)); err != nil {
				return err
			}
		}
		return nil
	})
	done, starts := lines("done "), lines("start ")
	for _, n := range items {
		if done[n] != 1 {
			t.Errorf("%s completed %d times, want 1", n, done[n])
		}
		if starts[n+" yes"] > 0 {
			t.Errorf("%s ran after it had succeeded", n)
		}
		if _, err := os.Stat(filepath.Join(out, n, "_SUCCESS.json")); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if starts["gate.json no"] != 1 {
		t.Errorf("the gate item started %d times, want 1", starts["gate.json no"])
	}
	testutil.Eventually(t, 30*time.Second, "no container left", func() error {
		if left := strings.Fields(run(t, engine, "ps", "-a", "--filter", "label="+container.LabelQueue+"="+q, "--format", "{{.Names}}")); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
	// The job log holds the executor's output.
	logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
	if len(logs) > 0 {
		b, _ := os.ReadFile(logs[0])
		if !strings.Contains(string(b), "uid=65532") {
			t.Errorf("job log %s lacks the container's output:\n%s", logs[0], b)
		}
	}
	if err := mgr.Stop(); err != nil {
		t.Errorf("the manager did not stop cleanly: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
