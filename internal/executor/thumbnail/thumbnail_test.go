package thumbnail_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/executor/thumbnail"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

var (
	videoOnce sync.Once
	videoDir  string
	videoErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if videoDir != "" {
		os.RemoveAll(videoDir)
	}
	os.Exit(code)
}

// video is a 10 s, 30 fps, 640x360 test pattern (300 frames), made once.
func video(t *testing.T) string {
	t.Helper()
	ffmpeg := testutil.NeedCommand(t, "ffmpeg")
	testutil.NeedCommand(t, "ffprobe")
	videoOnce.Do(func() {
		if videoDir, videoErr = os.MkdirTemp("", "itemq-thumb-test-"); videoErr != nil {
			return
		}
		out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
			"-i", "testsrc=duration=10:size=640x360:rate=30", "-pix_fmt", "yuv420p", filepath.Join(videoDir, "test.mp4")).CombinedOutput()
		if err != nil {
			videoErr = fmt.Errorf("make the test video: %v\n%s", err, out)
		}
	})
	if videoErr != nil {
		t.Fatal(videoErr)
	}
	return filepath.Join(videoDir, "test.mp4")
}

func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "WORK_ITEM_FILE" || k == "SCRIPT" || strings.HasPrefix(k, "INPUT_") || strings.HasPrefix(k, "OUTPUT_") ||
			strings.HasPrefix(k, "EXECUTOR_") || strings.HasPrefix(k, "SCRIPT_") || strings.HasPrefix(k, "THUMB_") {
			continue
		}
		env = append(env, kv)
	}
	// These tests are about fetching: every input is allowed
	// (EXECUTOR_INPUT_ALLOW's confinement has its own tests).
	return append(env, "EXECUTOR_INPUT_ALLOW=*")
}

func run(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func writeItem(t *testing.T, name string, data any) string {
	t.Helper()
	raw, _ := json.Marshal(data)
	doc, _ := json.Marshal(itemapi.NewItem(name, raw))
	p := filepath.Join(t.TempDir(), "item.json")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// probe returns "codec,width,height" of an image or video's first stream.
func probe(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
		"stream=codec_name,width,height", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	return strings.TrimSpace(string(out))
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestThumbnails(t *testing.T) {
	bin := testutil.Binary(t, "executors/thumbnail")
	v := video(t)
	for _, tc := range []struct {
		name  string
		env   []string
		files []string
		probe map[string]string
	}{
		{"every-100-frames", nil, []string{"thumb001.png", "thumb002.png", "thumb003.png"},
			map[string]string{"thumb001.png": "png,320,180", "thumb003.png": "png,320,180"}},
		{"interval", []string{"THUMB_INTERVAL=3"}, []string{"thumb001.png", "thumb002.png", "thumb003.png", "thumb004.png"},
			map[string]string{"thumb004.png": "png,320,180"}},
		{"max", []string{"THUMB_EVERY_FRAMES=30", "THUMB_MAX=2"}, []string{"thumb001.png", "thumb002.png"}, nil},
		{"interval-max", []string{"THUMB_INTERVAL=1s", "THUMB_MAX=2"}, []string{"thumb001.png", "thumb002.png"}, nil},
		{"jpg-width", []string{"THUMB_FORMAT=jpg", "THUMB_WIDTH=160"}, []string{"thumb001.jpg", "thumb002.jpg", "thumb003.jpg"},
			map[string]string{"thumb002.jpg": "mjpeg,160,90"}},
		{"sheet", []string{"THUMB_SHEET=true"}, []string{"sheet.png", "thumb001.png", "thumb002.png", "thumb003.png"},
			// 3 tiles of 320x180 in a row, 4 px of padding between them and a 4 px margin.
			map[string]string{"sheet.png": "png,976,188"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			env := append([]string{"WORK_ITEM_FILE=" + writeItem(t, "videos/test.mp4", map[string]any{"path": v}), "OUTPUT_DIR=" + out}, tc.env...)
			code, stderr := run(t, bin, env)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if got := files(t, out); !slices.Equal(got, tc.files) {
				t.Fatalf("outputs %v, want %v", got, tc.files)
			}
			for f, want := range tc.probe {
				if got := probe(t, filepath.Join(out, f)); got != want {
					t.Errorf("%s: %s, want %s", f, got, want)
				}
			}
		})
	}
}

// Upload to a bucket (through gofakes3): the thumbnails under the item key,
// with their manifest.
func TestThumbnailsUpload(t *testing.T) {
	bin := testutil.Binary(t, "executors/thumbnail")
	v := video(t)
	for _, be := range buckettest.Backends() {
		if be.InProcess {
			continue
		}
		t.Run(be.Name, func(t *testing.T) {
			bucket, env := be.New(t)
			buckettest.Put(t, bucket, "in/test.mp4", []byte(testutil.ReadFile(t, v)))
			u, _ := itemapi.JoinObjectURL(bucket, "in/test.mp4")
			// (Not the item name "in/test.mp4": on file:// its results
			// directory would be where the input file is.)
			env = append(env, "WORK_ITEM_FILE="+writeItem(t, "out/test.mp4", map[string]any{"url": u}), "OUTPUT_URL="+bucket)
			if code, stderr := run(t, bin, env); code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			keys := buckettest.Keys(t, bucket, "out/test.mp4/")
			want := []string{"out/test.mp4/_SUCCESS.json", "out/test.mp4/thumb001.png", "out/test.mp4/thumb002.png", "out/test.mp4/thumb003.png"}
			if !slices.Equal(keys, want) {
				t.Fatalf("objects %v, want %v", keys, want)
			}
			var m executor.Manifest
			if err := json.Unmarshal(buckettest.Get(t, bucket, "out/test.mp4/_SUCCESS.json"), &m); err != nil || len(m.Outputs) != 3 || m.Executor != "itemq-thumbnail" {
				t.Fatalf("manifest %+v, %v", m, err)
			}
		})
	}
}

// Not a video: exit 2 with ffmpeg's reason.
func TestNotAVideo(t *testing.T) {
	bin := testutil.Binary(t, "executors/thumbnail")
	video(t)
	text := filepath.Join(t.TempDir(), "notes.mp4")
	os.WriteFile(text, []byte("this is not a video\n"), 0o644)
	for _, mode := range [][]string{nil, {"THUMB_INTERVAL=2"}} {
		env := append([]string{"WORK_ITEM_FILE=" + writeItem(t, "n", map[string]any{"path": text}), "OUTPUT_DIR=" + t.TempDir()}, mode...)
		code, stderr := run(t, bin, env)
		if code != 2 || !strings.Contains(stderr, "Invalid data found when processing input") {
			t.Fatalf("%v: exit %d, want 2 with ffmpeg's reason:\n%s", mode, code, stderr)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	bin := testutil.Binary(t, "executors/thumbnail")
	item := writeItem(t, "c", map[string]any{"path": "/nonexistent"})
	for _, env := range [][]string{
		{"THUMB_FORMAT=gif"}, {"THUMB_EVERY_FRAMES=0"}, {"THUMB_INTERVAL=abc"},
		{"THUMB_INTERVAL=2", "THUMB_EVERY_FRAMES=10"}, {"THUMB_FFMPEG=/nonexistent/ffmpeg"}, {"THUMB_WIDTH=-5"},
	} {
		code, stderr := run(t, bin, append([]string{"WORK_ITEM_FILE=" + item}, env...))
		if code != 2 || !strings.Contains(stderr, "configuration") {
			t.Errorf("%v: exit %d, want 2 with a configuration error:\n%s", env, code, stderr)
		}
	}
}

// The ffmpeg command lines (what the benchmark compares against).
func TestArgs(t *testing.T) {
	s := &thumbnail.Step{EveryFrames: 100, Width: 320, Ext: "png"}
	got := strings.Join(s.FramesArgs("in.mp4", "out"), " ")
	want := `-i in.mp4 -filter_complex [0]select=not(mod(n\,100))[s0];[s0]scale=320:-1[s1] -map [s1] -fps_mode vfr out/thumb%03d.png -hide_banner -nostdin -nostats -loglevel error -y`
	if got != want {
		t.Fatalf("FramesArgs:\n got %s\nwant %s", got, want)
	}
}
