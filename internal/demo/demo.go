// Package demo is `make demo`: the video thumbnail generator on one machine.
// It makes a few sample videos with ffmpeg (once), starts the itemq-dir
// ambassador on them and itemq-manager with the local runner and
// itemq-thumbnail, shows progress, and writes a contact-sheet page of every
// video's thumbnails. With watch on, it keeps running and processes videos
// added to the directory.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/itemq/itemq/internal/sysproc"
)

// Options of a demo run.
type Options struct {
	Dir    string // the demo's directory (videos/, out/, state/, logs/)
	Bin    string // where the itemq binaries are
	Videos int    // sample videos to make when videos/ is empty
	Watch  bool   // keep running until interrupted
	Out    io.Writer
	TTY    bool // draw a progress bar (else plain lines)
}

// Run runs the demo until every video is done (or, with Watch, until ctx ends).
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if o.Bin, err = filepath.Abs(o.Bin); err != nil {
		return err
	}
	videos := filepath.Join(dir, "videos")
	out := filepath.Join(dir, "out")
	state := filepath.Join(dir, "state")
	logs := filepath.Join(dir, "logs")
	for _, d := range []string{out, state} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clean %s: %w", d, err)
		}
	}
	for _, d := range []string{videos, out, state, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	n, err := makeSamples(ctx, videos, o.Videos, o.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "itemq demo: %d videos in %s\n", n, videos)

	amb, err := startServer(ctx, filepath.Join(o.Bin, "itemq-dir"), filepath.Join(logs, "itemq-dir.log"), "ITEMQ_ADDR",
		"DIR_ROOT="+videos, "DIR_PATTERN=*.mp4", "DIR_SETTLE=250ms", "DIR_ON_DONE=keep", "DIR_POLL_INTERVAL=5s")
	if err != nil {
		return err
	}
	defer amb.stop()
	mgr, err := startServer(ctx, filepath.Join(o.Bin, "itemq-manager"), filepath.Join(logs, "itemq-manager.log"), "MANAGER_ADDR",
		"MANAGER_SOURCE=http://"+amb.addr,
		// Executors read only the videos the ambassador watches.
		"MANAGER_INPUT_ALLOW="+(&url.URL{Scheme: "file", Path: videos + "/"}).String(),
		"MANAGER_COMMAND="+filepath.Join(o.Bin, "itemq-thumbnail"),
		"MANAGER_STATE_DIR="+state,
		"MANAGER_JOB_ENV_OUTPUT_URL=file://"+filepath.Join(out, "thumbs"),
		"MANAGER_JOB_ENV_THUMB_SHEET=true",
		"MANAGER_JOB_ENV_EXECUTOR_LOG_FORMAT=text",
		"MANAGER_RESYNC=5s",
	)
	if err != nil {
		return err
	}
	defer mgr.stop()
	fmt.Fprintf(o.Out, "ambassador http://%s  manager http://%s  (logs in %s)\n", amb.addr, mgr.addr, logs)
	fmt.Fprintf(o.Out, "dashboard: http://%s/ui/  (up while the demo runs; WATCH=1 keeps it)\n", mgr.addr)

	p := &progress{out: o.Out, tty: o.TTY}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	written := -1
	for {
		select {
		case <-ctx.Done():
			p.done()
			if o.Watch {
				return summary(ctx, o.Out, mgr.addr, out, start)
			}
			return ctx.Err()
		case <-amb.exited:
			return fmt.Errorf("itemq-dir exited; see %s", amb.log)
		case <-mgr.exited:
			return fmt.Errorf("itemq-manager exited; see %s", mgr.log)
		case <-tick.C:
		}
		total, err := countItems(ctx, amb.addr)
		if err != nil {
			continue
		}
		jobs, err := listJobs(ctx, mgr.addr)
		if err != nil {
			continue
		}
		c := countStates(jobs)
		p.show(c, total)
		if c.finished() != written {
			if err := writeIndex(out, jobs); err != nil {
				return err
			}
			written = c.finished()
		}
		if !o.Watch && total > 0 && c.finished() >= total {
			p.done()
			return summary(ctx, o.Out, mgr.addr, out, start)
		}
	}
}

func summary(ctx context.Context, w io.Writer, mgrAddr, out string, start time.Time) error {
	jobs, err := listJobs(context.WithoutCancel(ctx), mgrAddr)
	if err != nil {
		return err
	}
	if err := writeIndex(out, jobs); err != nil {
		return err
	}
	c := countStates(jobs)
	wall := time.Since(start)
	fmt.Fprintf(w, "done: %d items, %d succeeded, %d failed, wall time %v, %.2f items/s\n",
		c.finished(), c.succeeded, c.failed, wall.Round(10*time.Millisecond), float64(c.finished())/wall.Seconds())
	fmt.Fprintf(w, "contact sheets: %s\n", filepath.Join(out, "index.html"))
	if c.failed > 0 {
		return fmt.Errorf("%d items failed; see the job logs under the state directory", c.failed)
	}
	return nil
}

// ---- sample videos ----

var sources = []string{
	"testsrc2=duration=%d:size=640x360:rate=30",
	"smptehdbars=duration=%d:size=640x360:rate=30",
	"mandelbrot=size=640x360:rate=30,trim=duration=%d",
	"life=size=640x360:rate=30:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00,trim=duration=%d",
	"rgbtestsrc=duration=%d:size=640x360:rate=30",
	"cellauto=rule=110:size=640x360:rate=30,trim=duration=%d",
	"testsrc=duration=%d:size=640x360:rate=30",
	"gradients=duration=%d:size=640x360:rate=30:speed=0.05",
}

func makeSamples(ctx context.Context, dir string, n int, w io.Writer) (int, error) {
	have, _ := filepath.Glob(filepath.Join(dir, "*.mp4"))
	if len(have) > 0 {
		return len(have), nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return 0, errors.New("ffmpeg is not installed (apt-get install ffmpeg)")
	}
	for i := 0; i < n; i++ {
		src := fmt.Sprintf(sources[i%len(sources)], 6+2*(i%3))
		name := fmt.Sprintf("sample%02d.mp4", i+1)
		tmp := filepath.Join(dir, "."+name+".part")
		fmt.Fprintf(w, "making %s with ffmpeg …\n", name)
		cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", src,
			"-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4", tmp)
		if b, err := cmd.CombinedOutput(); err != nil {
			return i, fmt.Errorf("ffmpeg %s: %v: %s", name, err, b)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return i, err
		}
	}
	return n, nil
}

// ---- processes ----

type server struct {
	cmd    *exec.Cmd
	addr   string
	log    string
	exited chan struct{}
}

func startServer(ctx context.Context, bin, logPath, addrVar string, env ...string) (*server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", bin, err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), addrVar+"=127.0.0.1:0"), env...)
	// The servers stop with the demo, even when it is killed.
	cmd.SysProcAttr = sysproc.Child(true, syscall.SIGTERM)
	r, wpipe := io.Pipe()
	cmd.Stderr = io.MultiWriter(f, wpipe)
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); wpipe.Close(); f.Close(); close(s.exited) }()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
	}()
	select {
	case s.addr = <-addrc:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("%s exited at start; see %s", filepath.Base(bin), logPath)
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s did not start within 30 s; see %s", filepath.Base(bin), logPath)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// ---- status ----

type job struct {
	Item      string    `json:"item"`
	State     string    `json:"state"`
	OutputURL string    `json:"outputURL"`
	Error     string    `json:"error"`
	Started   time.Time `json:"startedAt"`
	Finished  time.Time `json:"finishedAt"`
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func countItems(ctx context.Context, addr string) (int, error) {
	var l struct{ Items []string }
	if err := getJSON(ctx, "http://"+addr+"/v1/items", &l); err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

func listJobs(ctx context.Context, addr string) ([]job, error) {
	var l struct{ Items []job }
	if err := getJSON(ctx, "http://"+addr+"/v1/jobs?limit=0", &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

type counts struct{ pending, running, succeeded, failed int }

func (c counts) finished() int { return c.succeeded + c.failed }

func countStates(jobs []job) counts {
	var c counts
	for _, j := range jobs {
		switch j.State {
		case "running":
			c.running++
		case "succeeded":
			c.succeeded++
		case "failed", "dead":
			c.failed++
		default:
			c.pending++
		}
	}
	return c
}

type progress struct {
	out  io.Writer
	tty  bool
	last string
}

func (p *progress) show(c counts, total int) {
	if p.tty {
		const width = 30
		filled := 0
		if total > 0 {
			filled = width * c.finished() / total
		}
		fmt.Fprintf(p.out, "\r[%s%s] %d/%d done, %d running, %d failed ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), c.finished(), total, c.running, c.failed)
		return
	}
	line := fmt.Sprintf("%d/%d done, %d running, %d waiting, %d failed", c.finished(), total, c.running, c.pending, c.failed)
	if line != p.last {
		fmt.Fprintln(p.out, line)
		p.last = line
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.out)
	}
}
