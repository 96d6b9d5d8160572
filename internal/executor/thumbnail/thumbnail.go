// Package thumbnail is the step of itemq-thumbnail: it extracts thumbnails
// from the input video with ffmpeg. The ffmpeg command lines are built with
// github.com/u2takey/ffmpeg-go (GetArgs only: ffmpeg-go never runs ffmpeg
// here and its command logging is never triggered); ffmpeg runs through
// executor.Command, in its own process group, with its stderr kept for the
// error message.
package thumbnail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ffmpeg "github.com/u2takey/ffmpeg-go"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/executor"
)

// Config is the environment of the thumbnail step.
type Config struct {
	EveryFrames  int    `env:"THUMB_EVERY_FRAMES" envDefault:"100"`
	Interval     string `env:"THUMB_INTERVAL"`
	Width        int    `env:"THUMB_WIDTH" envDefault:"320"`
	Format       string `env:"THUMB_FORMAT" envDefault:"png"`
	Max          int    `env:"THUMB_MAX" envDefault:"0"`
	Sheet        bool   `env:"THUMB_SHEET" envDefault:"false"`
	SheetColumns int    `env:"THUMB_SHEET_COLUMNS" envDefault:"5"`
	FFmpeg       string `env:"THUMB_FFMPEG" envDefault:"ffmpeg"`
	FFprobe      string `env:"THUMB_FFPROBE" envDefault:"ffprobe"`
}

// Step extracts thumbnails.
type Step struct {
	EveryFrames  int           // one thumbnail per this many frames (when Interval is 0)
	Interval     time.Duration // one thumbnail per this much time, by fast input seeking
	Width        int
	Ext          string // "png" or "jpg"
	Max          int    // at most this many thumbnails; 0: no cap
	Sheet        bool
	SheetColumns int
	FFmpeg       string
	FFprobe      string
}

// New builds the step from THUMB_* variables. It takes no arguments.
func New(args, environ []string) (executor.Step, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("itemq-thumbnail takes no command (got %q); configure it with THUMB_* variables", args)
	}
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		return nil, err
	}
	env := config.Environ(environ)
	s := &Step{EveryFrames: cfg.EveryFrames, Width: cfg.Width, Max: cfg.Max, Sheet: cfg.Sheet, SheetColumns: cfg.SheetColumns}
	var errs []string
	if cfg.Interval != "" {
		if _, set := env["THUMB_EVERY_FRAMES"]; set {
			errs = append(errs, "set THUMB_EVERY_FRAMES or THUMB_INTERVAL, not both")
		}
		d, err := parseSeconds(cfg.Interval)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("THUMB_INTERVAL=%q: want a positive number of seconds (2.5) or a duration (1m30s)", cfg.Interval))
		}
		s.Interval = d
	} else if cfg.EveryFrames < 1 {
		errs = append(errs, fmt.Sprintf("THUMB_EVERY_FRAMES=%d: must be at least 1", cfg.EveryFrames))
	}
	if cfg.Width < 2 || cfg.Width > 16384 {
		errs = append(errs, fmt.Sprintf("THUMB_WIDTH=%d: want 2 to 16384 pixels", cfg.Width))
	}
	switch strings.ToLower(cfg.Format) {
	case "png":
		s.Ext = "png"
	case "jpg", "jpeg":
		s.Ext = "jpg"
	default:
		errs = append(errs, fmt.Sprintf("THUMB_FORMAT=%q: want png or jpg", cfg.Format))
	}
	if cfg.Max < 0 {
		errs = append(errs, fmt.Sprintf("THUMB_MAX=%d: must not be negative", cfg.Max))
	}
	if cfg.SheetColumns < 1 {
		errs = append(errs, fmt.Sprintf("THUMB_SHEET_COLUMNS=%d: must be at least 1", cfg.SheetColumns))
	}
	var err error
	if s.FFmpeg, err = lookPath(cfg.FFmpeg, env["PATH"]); err != nil {
		errs = append(errs, fmt.Sprintf("THUMB_FFMPEG=%q: %v", cfg.FFmpeg, err))
	}
	if s.Interval > 0 {
		if s.FFprobe, err = lookPath(cfg.FFprobe, env["PATH"]); err != nil {
			errs = append(errs, fmt.Sprintf("THUMB_FFPROBE=%q: %v", cfg.FFprobe, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return s, nil
}

func parseSeconds(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > 1e9 {
			return 0, errors.New("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	for dir := range strings.SplitSeq(path, ":") {
		if dir == "" {
			dir = "."
		}
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Pattern is the ffmpeg output pattern of the thumbnails in dir:
// thumb001.png, thumb002.png, ….
func (s *Step) Pattern(dir string) string { return filepath.Join(dir, "thumb%03d."+s.Ext) }

// global options of every ffmpeg run: quiet but for errors, which are
// what the error message is made of.
var globalArgs = []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"}

func (s *Step) outputArgs(kw ffmpeg.KwArgs) ffmpeg.KwArgs {
	if s.Ext == "jpg" {
		kw["q:v"] = 3
	}
	return kw
}

func (s *Step) scale(st *ffmpeg.Stream) *ffmpeg.Stream {
	return st.Filter("scale", ffmpeg.Args{strconv.Itoa(s.Width), "-1"})
}

// FramesArgs is the ffmpeg command line (without the program) of the
// THUMB_EVERY_FRAMES mode: one pass that keeps frames 0, N, 2N, ….
func (s *Step) FramesArgs(input, outDir string) []string {
	st := ffmpeg.Input(input).Filter("select", ffmpeg.Args{fmt.Sprintf("not(mod(n,%d))", s.EveryFrames)})
	kw := ffmpeg.KwArgs{"fps_mode": "vfr"}
	if s.Max > 0 {
		kw["frames:v"] = s.Max
	}
	return s.scale(st).Output(s.Pattern(outDir), s.outputArgs(kw)).GlobalArgs(globalArgs...).OverWriteOutput().GetArgs()
}

// SeekArgs is the ffmpeg command line of one thumbnail of the THUMB_INTERVAL
// mode: a fast input seek to at, then one frame.
func (s *Step) SeekArgs(input string, at time.Duration, out string) []string {
	st := ffmpeg.Input(input, ffmpeg.KwArgs{"ss": strconv.FormatFloat(at.Seconds(), 'f', 3, 64)})
	return s.scale(st).Output(out, s.outputArgs(ffmpeg.KwArgs{"frames:v": 1})).GlobalArgs(globalArgs...).OverWriteOutput().GetArgs()
}

// SheetArgs is the ffmpeg command line that tiles n thumbnails into one
// contact sheet.
func (s *Step) SheetArgs(outDir string, n int) []string {
	cols := min(n, s.SheetColumns)
	rows := (n + cols - 1) / cols
	st := ffmpeg.Input(s.Pattern(outDir), ffmpeg.KwArgs{"f": "image2", "framerate": 1, "start_number": 1}).
		Filter("tile", ffmpeg.Args{fmt.Sprintf("%dx%d", cols, rows)}, ffmpeg.KwArgs{"padding": 4, "margin": 4})
	return st.Output(filepath.Join(outDir, "sheet."+s.Ext), s.outputArgs(ffmpeg.KwArgs{"frames:v": 1})).
		GlobalArgs(globalArgs...).OverWriteOutput().GetArgs()
}

// Run extracts the thumbnails of r.InputFile into r.OutputDir.
func (s *Step) Run(ctx context.Context, r *executor.Run) error {
	input := r.InputFile
	if input == "" {
		if r.InputDir == "" {
			return executor.Permanentf("no input video: the item has no data.url or data.path, and INPUT_DIR is not set")
		}
		return executor.Permanentf("INPUT_DIR %s does not hold exactly one file: set INPUT_FILE", r.InputDir)
	}
	var n int
	var err error
	if s.Interval > 0 {
		n, err = s.runInterval(ctx, r, input)
	} else {
		if err = s.ffmpeg(ctx, r, s.FramesArgs(input, r.OutputDir)); err == nil {
			n, err = s.count(r.OutputDir)
		}
	}
	if err != nil {
		return err
	}
	if n == 0 {
		return executor.Permanentf("%s: no video frames, no thumbnails", filepath.Base(input))
	}
	if s.Sheet {
		if err := s.ffmpeg(ctx, r, s.SheetArgs(r.OutputDir, n)); err != nil {
			return fmt.Errorf("contact sheet: %w", err)
		}
	}
	r.Log.Info("thumbnails written", "phase", "step", "thumbnails", n, "sheet", s.Sheet)
	return nil
}

func (s *Step) count(dir string) (int, error) {
	n := 0
	for {
		if _, err := os.Stat(fmt.Sprintf(s.Pattern(dir), n+1)); err != nil {
			return n, nil
		}
		n++
	}
}

func (s *Step) runInterval(ctx context.Context, r *executor.Run, input string) (int, error) {
	dur, err := s.probe(ctx, r, input)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; ; i++ {
		at := time.Duration(i) * s.Interval
		if at >= dur || (s.Max > 0 && n >= s.Max) {
			break
		}
		out := fmt.Sprintf(s.Pattern(r.OutputDir), n+1)
		if err := s.ffmpeg(ctx, r, s.SeekArgs(input, at, out)); err != nil {
			return n, err
		}
		if _, err := os.Stat(out); err != nil {
			break // past the last frame
		}
		n++
	}
	return n, nil
}

// probe checks that input has a video stream and returns its duration.
func (s *Step) probe(ctx context.Context, r *executor.Run, input string) (time.Duration, error) {
	var out strings.Builder
	cmd := r.Command(s.FFprobe, "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json", input)
	cmd.OnStdout = func(line string, _ bool) { out.WriteString(line); out.WriteByte('\n') }
	tail := newTail(10)
	cmd.OnStderr = tail.add
	if err := classify(ctx, cmd.Run(ctx), tail); err != nil {
		return 0, fmt.Errorf("ffprobe: %w", err)
	}
	var p struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal([]byte(out.String()), &p); err != nil {
		return 0, fmt.Errorf("ffprobe output: %w", err)
	}
	if !slices.ContainsFunc(p.Streams, func(s struct {
		CodecType string `json:"codec_type"`
	}) bool {
		return s.CodecType == "video"
	}) {
		return 0, executor.Permanentf("%s: not a video (no video stream)", filepath.Base(input))
	}
	sec, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil || sec <= 0 {
		return 0, executor.Permanentf("%s: unknown duration (%q); use THUMB_EVERY_FRAMES", filepath.Base(input), p.Format.Duration)
	}
	return time.Duration(sec * float64(time.Second)), nil
}

func (s *Step) ffmpeg(ctx context.Context, r *executor.Run, args []string) error {
	cmd := r.Command(s.FFmpeg, args...)
	tail := newTail(10)
	cmd.OnStderr = tail.add
	cmd.OnStdout = func(line string, _ bool) { r.Log.Debug("ffmpeg output", "line", line) }
	r.Log.Info("ffmpeg", "phase", "step", "argv", append([]string{s.FFmpeg}, args...))
	if err := classify(ctx, cmd.Run(ctx), tail); err != nil {
		return fmt.Errorf("ffmpeg: %w", err)
	}
	return nil
}

// classify turns a failed ffmpeg or ffprobe into an error with ffmpeg's
// reason: permanent (the input is not a usable video) unless the process
// was killed or the machine ran out of something.
func classify(ctx context.Context, err error, tail *tail) error {
	if err == nil {
		return nil
	}
	var ee *executor.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.Signal != 0 {
		return err
	}
	reason := tail.String()
	if reason == "" {
		reason = err.Error()
	}
	for _, t := range []string{"No space left on device", "Cannot allocate memory", "Resource temporarily unavailable", "Too many open files"} {
		if strings.Contains(reason, t) {
			return fmt.Errorf("%s (%w)", reason, err)
		}
	}
	return executor.Permanentf("%s (%w)", reason, err)
}

// tail keeps the last lines of a stream.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) add(line string, _ bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "; ")
}
