package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/dashboard"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/manager/webhook"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// fakeExecutor is a launcher that does what an executor does, in process:
// it logs, and a job whose data says "thumbs" uploads PNG thumbnails and
// the manifest to the outputs bucket; data "fail" exits 2; an item whose
// name starts with "hold" runs until cancelled.
type fakeExecutor struct {
	out string // mem:// bucket name
}

func (f fakeExecutor) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	fmt.Fprintf(a.Log, "hello from %s\n", a.Item.Name)
	if strings.HasPrefix(a.Item.Name, "hold") {
		<-ctx.Done()
		return -1, ctx.Err()
	}
	var data struct {
		Fail   bool `json:"fail"`
		Thumbs int  `json:"thumbs"`
	}
	_ = json.Unmarshal(a.Item.Data, &data)
	if data.Fail {
		fmt.Fprintln(a.Log, "failing on purpose")
		return 2, nil
	}
	b := bucket.Mem(f.out)
	key := itemapi.ItemKey(a.Item.Name)
	man := itemapi.Manifest{Item: a.Item.Name, Key: key}
	for i := 1; i <= data.Thumbs; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 64, 36))
		for x := 0; x < 64; x++ {
			for y := 0; y < 36; y++ {
				img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 7), uint8(i * 60), 255})
			}
		}
		var buf bytes.Buffer
		_ = png.Encode(&buf, img)
		name := fmt.Sprintf("thumb-%03d.png", i)
		if err := b.WriteAll(ctx, key+"/"+name, buf.Bytes(), nil); err != nil {
			return 1, err
		}
		man.Outputs = append(man.Outputs, itemapi.ManifestOutput{Name: name, Size: int64(buf.Len())})
	}
	mb, _ := json.Marshal(man)
	if err := b.WriteAll(ctx, key+"/"+itemapi.ManifestName, mb, nil); err != nil {
		return 1, err
	}
	fmt.Fprintf(a.Log, "uploaded %d thumbnails\n", data.Thumbs)
	return 0, nil
}

type site struct {
	t   *testing.T
	mem *memsource.Driver
	m   *manager.Manager
	srv *httptest.Server
}

func startSite(t *testing.T, opts dashboard.Options) *site {
	t.Helper()
	mem := memsource.New()
	out := fmt.Sprintf("dash-%d", time.Now().UnixNano())
	r, err := local.New(local.Config{Queue: "demo", StateDir: t.TempDir(), MaxAttempts: 1, NoSync: true}, fakeExecutor{out: out})
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "demo", MinActive: 4, MaxActive: 4, Resync: time.Hour, OutputURL: "mem://" + out},
		&manager.InProcess{Src: source.New(mem)}, r)
	opts.Interval = 200 * time.Millisecond
	opts.Source = "mem://"
	dash := dashboard.New(m, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	go func() { defer wg.Done(); _ = dash.Run(ctx) }()
	srv := httptest.NewServer(statusapi.NewAPI(m, statusapi.APIOptions{Token: opts.Token, ReadToken: opts.ReadToken, Dashboard: dash}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		wg.Wait()
		bucket.DropMem(out)
	})
	return &site{t: t, mem: mem, m: m, srv: srv}
}

func (s *site) put(name, data string) {
	s.t.Helper()
	if err := s.mem.Put(name, json.RawMessage(data)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) waitState(item string, want itemapi.State) {
	s.t.Helper()
	testutil.Eventually(s.t, 30*time.Second, item+" "+string(want), func() error {
		if st, _ := s.m.Status(item); st.State != want {
			return fmt.Errorf("%q", st.State)
		}
		return nil
	})
}

// browser starts headless chromium; dialogs (an alert a hostile name
// would open) are counted.
func browser(t *testing.T) (context.Context, *atomic.Int64) {
	t.Helper()
	exe := testutil.Need(t, "ITEMQ_CHROMIUM")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("headless", "new"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	dialogs := new(atomic.Int64)
	opened := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range opened {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	return ctx, dialogs
}

// shot writes a screenshot of the page as a test artifact: under
// $ITEMQ_ARTIFACTS/dashboard when set (make screenshots), else the test's
// temporary directory.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ITEMQ_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	}
}

func textOf(ctx context.Context, sel string) (string, error) {
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	return strings.TrimSpace(s), err
}

func waitText(t *testing.T, ctx context.Context, sel, what string, ok func(string) bool) string {
	t.Helper()
	var last string
	testutil.Eventually(t, 30*time.Second, what, func() error {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := textOf(tctx, sel)
		last = s
		if err != nil {
			return err
		}
		if !ok(s) {
			return fmt.Errorf("%s: %q", sel, s)
		}
		return nil
	})
	return last
}

// The dashboard in a real headless Chromium: the overview agrees with the
// API and moves live; a job submitted from the form runs and its page shows
// the log and the thumbnails; cancel and bulk redrive work from the pages;
// hostile names are shown as text; cross-site writes are refused.
func TestDashboardInChromium(t *testing.T) {
	s := startSite(t, dashboard.Options{Deliveries: func(item string) []webhook.Delivery {
		return []webhook.Delivery{{ID: item + ".succeeded", Type: webhook.TypeSucceeded, Attempts: 2, DeliveredAt: time.Now()}}
	}})
	s.put("ok-1", `{"thumbs":1}`)
	s.put("bad-1", `{"fail":true}`)
	s.put("bad-2", `{"fail":true}`)
	s.put("hold-1", `{}`)
	s.put("hold-2", `{}`)
	s.waitState("ok-1", itemapi.StateSucceeded)
	s.waitState("bad-1", itemapi.StateDead)
	s.waitState("bad-2", itemapi.StateDead)
	s.waitState("hold-1", itemapi.StateRunning)
	s.waitState("hold-2", itemapi.StateRunning)
	ctx, dialogs := browser(t)
	base := s.srv.URL

	// The overview's counts are the API's.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-count="succeeded"]`))); err != nil {
		t.Fatal(err)
	}
	sum := s.m.Summary()
	for _, st := range []itemapi.State{itemapi.StateSucceeded, itemapi.StateDead, itemapi.StateRunning} {
		want := strconv.Itoa(sum.Counts[st])
		waitText(t, ctx, `[data-count="`+string(st)+`"]`, string(st)+" count", func(s string) bool { return s == want })
	}
	// Live: a new job's success shows without a reload.
	waitText(t, ctx, "[data-live-status]", "live", func(s string) bool { return strings.HasPrefix(s, "Live:") })
	s.put("ok-2", `{"thumbs":2}`)
	want := strconv.Itoa(sum.Counts[itemapi.StateSucceeded] + 1)
	waitText(t, ctx, `[data-count="succeeded"]`, "live succeeded count", func(s string) bool { return s == want })
	time.Sleep(600 * time.Millisecond) // a chart sample or two
	shot(t, ctx, "overview")

	// On a phone's width nothing runs off the side of the page.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `[data-count="succeeded"]`, "the phone's overview", func(s string) bool { return s != "" })
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 390 {
		t.Errorf("on a 390-pixel screen the overview is %d pixels wide (%v)", width, err)
	}
	shot(t, ctx, "overview-phone")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}

	// The jobs table, filtered.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/jobs?state=dead")); err != nil {
		t.Fatal(err)
	}
	table := waitText(t, ctx, "table.jobs tbody", "dead jobs", func(s string) bool { return strings.Contains(s, "bad-1") })
	if strings.Contains(table, "ok-1") {
		t.Errorf("the dead filter shows ok-1: %q", table)
	}
	shot(t, ctx, "jobs")

	// Bulk redrive, with a confirmation that says how many.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/bulk?action=retry&state=dead")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "h1", "confirmation", func(s string) bool { return s == "Retry 2 job(s)?" })
	shot(t, ctx, "confirm")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form[action="/ui/action"] button`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "h1", "bulk result", func(s string) bool { return strings.HasPrefix(s, "retry: 2 done") })
	testutil.Eventually(t, 30*time.Second, "redriven and dead again", func() error {
		for _, it := range []string{"bad-1", "bad-2"} {
			h, _ := s.m.History(context.Background(), it)
			if st, _ := s.m.Status(it); st.State != itemapi.StateDead || len(h) != 1 {
				return fmt.Errorf("%s: %s, %d attempts in the new job", it, st.State, len(h))
			}
		}
		return nil
	})

	// Cancel from the job's page.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/job/hold-1"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/action"] button.danger`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "main p .state", "cancelled on the page", func(s string) bool { return s == "cancelled" })
	s.waitState("hold-1", itemapi.StateCancelled)

	// A running job's page follows the job: cancelled elsewhere (here through
	// the API), the page shows it without being reloaded by hand.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/job/hold-2")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "main p .state", "hold-2 running on its page", func(s string) bool { return s == "running" })
	if res := s.m.CancelJobs(context.Background(), itemapi.JobSelector{Items: []string{"hold-2"}}); res.Done != 1 {
		t.Fatalf("cancel hold-2: %+v", res)
	}
	waitText(t, ctx, "main p .state", "hold-2 cancelled on its open page", func(s string) bool { return s == "cancelled" })

	// Submit from the form: the job's page shows its log and thumbnails.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/submit"),
		chromedp.SetValue(chromedp.CSS("#data"), `{"thumbs": 3, "title": "from the form"}`),
		chromedp.Click(chromedp.CSS(`form.submit button`))); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the job's page after the submit", func() error {
		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			return err
		}
		if !strings.Contains(url, "/ui/job/submit-") {
			return fmt.Errorf("the browser is at %s", url)
		}
		return nil
	})
	item := waitText(t, ctx, "h1", "job page", func(s string) bool { return strings.HasPrefix(s, "submit-") })
	s.waitState(item, itemapi.StateSucceeded)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "pre.log", "the log", func(s string) bool { return strings.Contains(s, "uploaded 3 thumbnails") })
	testutil.Eventually(t, 30*time.Second, "thumbnails drawn", func() error {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll(".outputs img")].filter(i => i.complete && i.naturalWidth === 64).length`))
		if err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("%d thumbnails drawn", n)
		}
		return nil
	})
	waitText(t, ctx, `section[aria-labelledby="hook-h"]`, "webhook deliveries", func(s string) bool {
		return strings.Contains(s, webhook.TypeSucceeded) && strings.Contains(s, "2")
	})
	shot(t, ctx, "job")

	// Hostile names and data are text, nothing runs.
	// (held running, so that the source still holds its data)
	hostile := `hold<img src=x onerror=alert(1)>"'` + strings.Repeat("x", 300)
	s.put(hostile, `{"thumbs":0,"note":"</pre><script>alert(2)</script>"}`)
	s.waitState(hostile, itemapi.StateRunning)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/job/"+itemapi.EscapeName(hostile))); err != nil {
		t.Fatal(err)
	}
	if h1 := waitText(t, ctx, "h1", "hostile page", func(s string) bool { return s != "" }); h1 != hostile {
		t.Errorf("the hostile name is shown as %q", h1)
	}
	waitText(t, ctx, "pre.data", "hostile data", func(s string) bool { return strings.Contains(s, "<script>alert(2)</script>") })
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/jobs?q=onerror")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "table.jobs tbody", "hostile row", func(s string) bool { return strings.Contains(s, "<img src=x") })
	time.Sleep(300 * time.Millisecond)
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d script dialogs opened: a hostile name or data ran", n)
	}
	shot(t, ctx, "hostile")
}

// The security headers, cross-site writes refused, the token asked for.
func TestDashboardSecurity(t *testing.T) {
	s := startSite(t, dashboard.Options{Token: "admin", ReadToken: "viewer"})
	s.put("hold-x", `{}`)
	s.waitState("hold-x", itemapi.StateRunning)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Reading needs a login.
	resp, err := client.Get(s.srv.URL + "/ui/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("unauthenticated read: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	// A cross-site form post is refused even with the viewer's cookie.
	req, _ := http.NewRequest("POST", s.srv.URL+"/ui/action", strings.NewReader("action=cancel&item=hold-x&token=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %s", resp.Status)
	}
	// Logged in as a viewer: pages open, actions need the admin token.
	post := func(path, form, cookie string) *http.Response {
		req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: cookie})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("/ui/login", "token=viewer&next=/ui/jobs", ""); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("login: %s %v", resp.Status, resp.Cookies())
	}
	if resp := post("/ui/action", "action=cancel&item=hold-x", "viewer"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a viewer's cancel: %s", resp.Status)
	}
	if st, _ := s.m.Status("hold-x"); st.State != itemapi.StateRunning {
		t.Fatalf("cancelled by a viewer: %+v", st)
	}
	if resp := post("/ui/action", "action=cancel&item=hold-x&token=admin", "viewer"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel with the admin token: %s", resp.Status)
	}
	s.waitState("hold-x", itemapi.StateCancelled)
	if resp := post("/ui/login", "token=nope&next=//evil.example", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %s", resp.Status)
	}
}
