package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/servers"
	"github.com/itemq/itemq/itemapi"
)

// TestBucketThumbnails is the bucket issue's end to end, on the S3 server
// (versitygw): videos uploaded to a bucket → itemq-bucket lists them → the
// manager (local runner) runs itemq-thumbnail on each with OUTPUT_URL on
// another bucket of the same server → thumbnails and _SUCCESS.json there,
// inputs archived under .done/ (a corrupt one under .failed/). The manager
// is killed once mid-run and restarted.
func TestBucketThumbnails(t *testing.T) {
	ffmpeg := testutil.NeedCommand(t, "ffmpeg")
	srv := servers.VersityGW(t)
	srv.Setenv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	inURL, outURL := srv.NewBucket(t), srv.NewBucket(t)
	in, err := bucket.Open(ctx, inURL)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := bucket.Open(ctx, outURL)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	clips := []string{"clip-1.mp4", "cam 2/clip-2.mp4", "clip-3.mp4", "clip-4.mp4"}
	dir := t.TempDir()
	for i, c := range clips {
		f := filepath.Join(dir, fmt.Sprintf("%d.mp4", i))
		cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc=duration=%d:size=320x180:rate=30", 4+i), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", f)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v %s", err, b)
		}
		upload(ctx, t, in, "clips/"+c, f)
	}
	bad := filepath.Join(dir, "bad.mp4")
	os.WriteFile(bad, []byte("this is not a video"), 0o644)
	upload(ctx, t, in, "clips/bad.mp4", bad)

	amb := testutil.StartServer(t, testutil.Binary(t, "ambassadors/bucket"), "ITEMQ_ADDR", append(srv.Env(),
		"BUCKET_URL="+inURL, "BUCKET_PREFIX=clips/", "BUCKET_PATTERN=*.mp4", "BUCKET_POLL_INTERVAL=200ms")...)
	allow, err := itemapi.JoinObjectURL(inURL, "clips/")
	if err != nil {
		t.Fatal(err)
	}
	mgrEnv := append(srv.Env(),
		"MANAGER_SOURCE="+amb.URL(),
		"MANAGER_INPUT_ALLOW="+allow,
		"MANAGER_COMMAND="+testutil.Binary(t, "executors/thumbnail"),
		"MANAGER_STATE_DIR="+filepath.Join(t.TempDir(), "state"),
		"MANAGER_MAX_ACTIVE=2",
		"MANAGER_RETRY_BACKOFF=100ms",
		"MANAGER_JOB_ENV_OUTPUT_URL="+outURL,
		"MANAGER_JOB_ENV_THUMB_EVERY_FRAMES=30",
	)
	mgr := testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", mgrEnv...)
	// Kill it once the first thumbnail job is under way, then restart it.
	testutil.Eventually(t, 2*time.Minute, "a job started", func() error {
		var l struct{ Items []struct{ State string } }
		getJSON(t, mgr.URL()+"/v1/jobs?limit=0", &l)
		for _, j := range l.Items {
			if j.State != "pending" {
				return nil
			}
		}
		return fmt.Errorf("no job started yet")
	})
	mgr.Kill()
	mgr = testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", mgrEnv...)

	testutil.Eventually(t, 4*time.Minute, "every clip archived", func() error {
		for _, c := range clips {
			if ok, _ := in.Exists(ctx, "clips/.done/"+c); !ok {
				return fmt.Errorf("%s not in .done/", c)
			}
		}
		if ok, _ := in.Exists(ctx, "clips/.failed/bad.mp4"); !ok {
			return fmt.Errorf("bad.mp4 not in .failed/")
		}
		return nil
	})
	for _, c := range append(slices.Clone(clips), "bad.mp4") {
		if ok, _ := in.Exists(ctx, "clips/"+c); ok {
			t.Errorf("%s is still in clips/", c)
		}
	}
	for _, c := range clips {
		key := itemapi.ItemKey(c)
		raw, err := out.ReadAll(ctx, key+"/_SUCCESS.json")
		if err != nil {
			t.Fatalf("%s: no _SUCCESS.json: %v", c, err)
		}
		var m executor.Manifest
		if err := json.Unmarshal(raw, &m); err != nil || m.Item != c || len(m.Outputs) == 0 {
			t.Fatalf("%s: manifest %s (%v)", c, raw, err)
		}
		for _, o := range m.Outputs {
			b, err := out.ReadAll(ctx, key+"/"+o.Name)
			if err != nil {
				t.Fatalf("%s: output %s: %v", c, o.Name, err)
			}
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != o.SHA256 || int64(len(b)) != o.Size {
				t.Errorf("%s: %s does not match its manifest", c, o.Name)
			}
		}
		var st struct{ State, OutputURL string }
		getJSON(t, mgr.URL()+"/v1/jobs/"+itemapi.EscapeName(c), &st)
		if st.State != "succeeded" {
			t.Errorf("status of %s: %+v", c, st)
		}
	}
	if ok, _ := out.Exists(ctx, itemapi.ItemKey("bad.mp4")+"/_SUCCESS.json"); ok {
		t.Error("the corrupt video has a _SUCCESS.json")
	}
	var st struct {
		State    string
		Attempts int
	}
	getJSON(t, mgr.URL()+"/v1/jobs/bad.mp4", &st)
	if st.State != "dead" || st.Attempts != 1 {
		t.Errorf("status of bad.mp4: %+v (a file that is not a video is exit 2: not retried)", st)
	}
	var l itemapi.ItemList
	getJSON(t, amb.URL()+"/v1/items", &l)
	if len(l.Items) != 0 {
		t.Errorf("the ambassador still lists %q", l.Items)
	}
}

func upload(ctx context.Context, t *testing.T, b *blob.Bucket, key, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatalf("upload %s: %v", key, err)
	}
}
