package thumbnail_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/testutil"
)

// A two-step job (multi-worker): itemq-thumbnail writes thumbnails into a
// shared directory (its OUTPUT_DIR, no OUTPUT_URL), then itemq-script reads
// them from there (its INPUT_DIR), shrinks and renames each with ffmpeg,
// and uploads the result.
func TestTwoStepPipeline(t *testing.T) {
	thumb := testutil.Binary(t, "executors/thumbnail")
	script := testutil.Binary(t, "executors/script")
	v := video(t)
	shared := t.TempDir()
	bucket := "file://" + t.TempDir()
	item := writeItem(t, "videos/test.mp4", map[string]any{"path": v})

	if code, stderr := run(t, thumb, []string{"WORK_ITEM_FILE=" + item, "OUTPUT_DIR=" + shared}); code != 0 {
		t.Fatalf("step 1: exit %d:\n%s", code, stderr)
	}
	const stamp = `set -e
for f in "$INPUT_DIR"/thumb*.png; do
  ffmpeg -hide_banner -loglevel error -nostdin -i "$f" -vf scale=160:-1 "$OUTPUT_DIR/small-$(basename "$f")"
done`
	env := []string{"WORK_ITEM_FILE=" + item, "INPUT_DIR=" + shared, "OUTPUT_URL=" + bucket}
	if code, stderr := run(t, script, env, "--", "sh", "-c", stamp); code != 0 {
		t.Fatalf("step 2: exit %d:\n%s", code, stderr)
	}
	keys := buckettest.Keys(t, bucket, "")
	want := []string{"videos/test.mp4/_SUCCESS.json", "videos/test.mp4/small-thumb001.png", "videos/test.mp4/small-thumb002.png", "videos/test.mp4/small-thumb003.png"}
	if !slices.Equal(keys, want) {
		t.Fatalf("objects %v, want %v", keys, want)
	}
	dir := filepath.Join(bucket[len("file://"):], "videos", "test.mp4")
	if got := probe(t, filepath.Join(dir, "small-thumb002.png")); got != "png,160,90" {
		t.Fatalf("small-thumb002.png: %s", got)
	}
}
