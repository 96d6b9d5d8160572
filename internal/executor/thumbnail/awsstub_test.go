package thumbnail_test

import (
	"strings"
	"testing"
	"time"

	ffmpeg "github.com/u2takey/ffmpeg-go"

	"github.com/itemq/itemq/internal/testutil"
)

// ffmpeg-go's s3:// outputs go through aws-sdk-go v1, which go.mod replaces
// with a stub (third_party/aws-sdk-go-stub). Such an output must fail at
// once with the stub's error, not leave ffmpeg blocked on a pipe nobody
// reads.
func TestFFmpegGoS3OutputFailsWithoutTheSDK(t *testing.T) {
	testutil.NeedCommand(t, "ffmpeg")
	done := make(chan error, 1)
	go func() {
		done <- ffmpeg.Input("testsrc=duration=5:size=320x240:rate=30", ffmpeg.KwArgs{"f": "lavfi"}).
			Output("s3://bucket/out.ts", ffmpeg.KwArgs{"f": "mpegts"}).
			Silent(true).Run()
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an s3:// output through ffmpeg-go succeeded without an AWS SDK")
		}
		if strings.Contains(err.Error(), "signal: killed") {
			t.Fatalf("ffmpeg was killed, not failed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("an s3:// output through ffmpeg-go hangs")
	}
}
