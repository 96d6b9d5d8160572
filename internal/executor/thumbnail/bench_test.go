package thumbnail_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/executor/thumbnail"
	"github.com/itemq/itemq/internal/testutil"
)

// BenchmarkThumbnailVsFFmpeg runs itemq-thumbnail (default settings, input
// by data.path, results left in OUTPUT_DIR) and ffmpeg alone with the same
// arguments on the same file, in turn, one pair per iteration (use
// -benchtime 20x). It reports the mean wall and CPU times and the ratio
// (target: at most 1.05).
func BenchmarkThumbnailVsFFmpeg(b *testing.B) {
	ffmpeg := testutil.NeedCommand(b, "ffmpeg")
	bin := testutil.Binary(b, "executors/thumbnail")
	for _, v := range []struct {
		name, src string
	}{
		{"10s-640x360", "testsrc=duration=10:size=640x360:rate=30"},
		{"60s-1280x720", "testsrc=duration=60:size=1280x720:rate=30"},
	} {
		b.Run(v.name, func(b *testing.B) {
			dir := b.TempDir()
			video := filepath.Join(dir, "in.mp4")
			if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", v.src,
				"-pix_fmt", "yuv420p", video).CombinedOutput(); err != nil {
				b.Fatalf("make the video: %v\n%s", err, out)
			}
			item := filepath.Join(dir, "item.json")
			os.WriteFile(item, []byte(fmt.Sprintf(`{"kind":"Item","apiVersion":"v1","name":"bench","data":{"path":%q}}`, video)), 0o644)
			outX, outF := filepath.Join(dir, "x"), filepath.Join(dir, "f")
			os.Mkdir(outF, 0o755)
			env := append(baseEnv(), "WORK_ITEM_FILE="+item, "OUTPUT_DIR="+outX, "EXECUTOR_LOG_LEVEL=warn")
			args := (&thumbnail.Step{EveryFrames: 100, Width: 320, Ext: "png"}).FramesArgs(video, outF)
			var xWall, xCPU, fWall, fCPU time.Duration
			n := 0
			for b.Loop() {
				runX := func() {
					c := exec.Command(bin)
					c.Env = env
					w, u := timed(b, c)
					xWall, xCPU = xWall+w, xCPU+u
				}
				runF := func() {
					w, u := timed(b, exec.Command(ffmpeg, args...))
					fWall, fCPU = fWall+w, fCPU+u
				}
				if n%2 == 0 {
					runX()
					runF()
				} else {
					runF()
					runX()
				}
				n++
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
			b.ReportMetric(ms(xWall), "itemq-wall-ms")
			b.ReportMetric(ms(fWall), "ffmpeg-wall-ms")
			b.ReportMetric(float64(xWall)/float64(fWall), "wall-ratio")
			b.ReportMetric(ms(xCPU), "itemq-cpu-ms")
			b.ReportMetric(ms(fCPU), "ffmpeg-cpu-ms")
			b.ReportMetric(float64(xCPU)/float64(fCPU), "cpu-ratio")
		})
	}
}

// timed runs cmd and returns its wall time and CPU time (user+system, of
// the process and the children it waited for).
func timed(b *testing.B, cmd *exec.Cmd) (wall, cpu time.Duration) {
	b.Helper()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}
