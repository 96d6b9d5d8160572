package images_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner/container"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/testutil"
)

// examples/thumbnails/pod: run.sh starts the pod (ambassador + manager
// sharing localhost) with `podman kube play`; two sample clips get
// thumbnails, written by uid 65532, and the status API answers on the host.
func TestThumbnailsPodExample(t *testing.T) {
	engine, ver := build(t)
	testutil.NeedCommand(t, "ffmpeg")
	root := testutil.ModuleRoot(t)
	run(t, engine, "build", "-q", "-t", "localhost/itemq-thumbnails-worker:latest",
		"--build-arg", "THUMBNAIL_IMAGE="+image("itemq-thumbnail", ver), "--build-arg", "MANAGER_IMAGE="+image("itemq-manager", ver),
		filepath.Join(root, "examples", "thumbnails", "pod"))
	media := filepath.Join(t.TempDir(), "media")
	addr := testutil.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	pod := "itemq-test-" + randHex()
	script := filepath.Join(root, "examples", "thumbnails", "pod", "run.sh")
	env := append(os.Environ(), "MEDIA="+media, "PORT="+port, "POD="+pod, "SAMPLES=2", "BUILD=0", "PODMAN="+engine)
	cmd := exec.Command(script)
	cmd.Env, cmd.Dir = env, t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range []string{"ambassador", "manager"} {
				out, _ := exec.Command(engine, "logs", pod+"-"+c).CombinedOutput()
				t.Logf("logs of %s-%s:\n%s", pod, c, out)
			}
		}
		down := exec.Command(script, "down")
		down.Env, down.Dir = env, t.TempDir()
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("run.sh down: %v\n%s", err, out)
		}
		if exec.Command(engine, "pod", "exists", pod).Run() == nil {
			t.Errorf("pod %s still exists", pod)
		}
	})
	testutil.Eventually(t, 3*time.Minute, "thumbnails of both clips", func() error {
		for _, clip := range []string{"clip-1.mp4", "clip-2.mp4"} {
			if _, err := os.Stat(filepath.Join(media, "incoming", ".done", clip)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, clip := range []string{"clip-1.mp4", "clip-2.mp4"} {
		for _, f := range []string{"thumb001.png", "sheet.png", "_SUCCESS.json"} {
			st, err := os.Stat(filepath.Join(media, "thumbnails", clip, f))
			if err != nil {
				t.Error(err)
				continue
			}
			if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65532 {
				t.Errorf("%s/%s written by uid %d", clip, f, uid)
			}
		}
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jobs struct {
		Items []struct{ Item, State string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&jobs); err != nil || len(jobs.Items) != 2 {
		t.Fatalf("status API: %+v, %v", jobs, err)
	}
	for _, j := range jobs.Items {
		if j.State != "succeeded" {
			t.Errorf("job %+v", j)
		}
	}
}

// examples/script-worker: the image builds on the local Debian base, and the
// README's local run works: the dir ambassador and the manager on this
// machine, the container runner running the image for each photo.
func TestScriptWorkerExample(t *testing.T) {
	engine, ver := build(t)
	ffmpeg := testutil.NeedCommand(t, "ffmpeg")
	root := testutil.ModuleRoot(t)
	img := "localhost/itemq-resize:test"
	start := time.Now()
	run(t, engine, "build", "-q", "-t", img, "--build-arg", "BASE=localhost/itemq-debian-base:bookworm",
		"--build-arg", "SCRIPT_IMAGE="+image("itemq-script", ver), filepath.Join(root, "examples", "script-worker"))
	t.Logf("example image built in %v", time.Since(start).Round(time.Second))

	demo := filepath.Join(t.TempDir(), "demo")
	photos, small := filepath.Join(demo, "photos"), filepath.Join(demo, "small")
	for _, d := range []string{photos, small} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(small, 0o777)
	os.Chmod(demo, 0o755)
	os.Chmod(photos, 0o755)
	for i, size := range []string{"640x480", "300x900"} {
		name := fmt.Sprintf("photo-%d.png", i+1)
		tmp := filepath.Join(photos, "."+name)
		if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size="+size,
			"-frames:v", "1", "-f", "image2", "-c:v", "png", tmp).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		os.Chmod(tmp, 0o644)
		os.Rename(tmp, filepath.Join(photos, name))
	}
	if err := os.WriteFile(filepath.Join(photos, "notes.png"), []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	q := "rtest-" + randHex()
	t.Cleanup(func() { container.Remove(context.Background(), engine, q) })
	amb := testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR", "DIR_ROOT="+photos, "DIR_SETTLE=50ms")
	vols, _ := json.Marshal([]string{demo + ":" + demo})
	testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR",
		"MANAGER_QUEUE="+q,
		"MANAGER_SOURCE="+amb.URL(),
		"MANAGER_INPUT_ALLOW=file://"+photos+"/",
		"MANAGER_RUNNER=podman",
		"MANAGER_CONTAINER_ENGINE="+engine,
		"MANAGER_IMAGE="+img,
		"MANAGER_CONTAINER_VOLUMES="+string(vols),
		`MANAGER_CONTAINER_RUN_ARGS=["--read-only","--tmpfs","/tmp","--network","none"]`,
		"MANAGER_CONTAINER_PULL=never",
		"MANAGER_STATE_DIR="+filepath.Join(t.TempDir(), "state"),
		"MANAGER_RETRY_BACKOFF=50ms",
		"MANAGER_JOB_ENV_OUTPUT_URL=file://"+small+"?no_tmp_dir=true",
		"MANAGER_JOB_ENV_RESIZE_GEOMETRY=256x256",
	)
	testutil.Eventually(t, 3*time.Minute, "photos archived", func() error {
		for _, p := range []string{".done/photo-1.png", ".done/photo-2.png", ".failed/notes.png"} {
			if _, err := os.Stat(filepath.Join(photos, p)); err != nil {
				return err
			}
		}
		return nil
	})
	for i, want := range [][2]int{{256, 192}, {85, 256}} {
		name := fmt.Sprintf("photo-%d", i+1)
		f, err := os.Open(filepath.Join(small, name+".png", name+"-256x256.png"))
		if err != nil {
			t.Error(err)
			continue
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != want[0] || cfg.Height != want[1] {
			t.Errorf("%s: %dx%d, %v; want %dx%d", name, cfg.Width, cfg.Height, err, want[0], want[1])
		}
	}
	if _, err := os.Stat(filepath.Join(small, "notes.png", "_SUCCESS.json")); err == nil {
		t.Error("notes.png has results")
	}
}

func TestScriptWorkerJobTemplate(t *testing.T) {
	tmpl, err := kube.LoadTemplate(filepath.Join(testutil.ModuleRoot(t), "examples", "script-worker", "k8s", "job-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.ValidateTemplate(tmpl, nil); err != nil {
		t.Fatal(err)
	}
}
