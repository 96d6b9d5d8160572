// Package webhook delivers the manager's completion events (a job
// succeeded, failed, was dead-lettered or cancelled) to MANAGER_WEBHOOK_URL
// as CloudEvents 1.0 JSON, signed after the Standard Webhooks scheme
// (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 over
// "id.timestamp.body"), retried with backoff, at least once.
//
// Delivery never slows the queue: Enqueue only records the event; Run's
// workers send. The ids of delivered events are appended to a file in the
// manager's state directory, so a restarted manager, which replays the
// events of the finished jobs it finds (Manager.Run), sends only what was
// not delivered. Pending events are bounded (MaxPending); past the bound new
// events are dropped and counted, never blocking.
package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"

	"github.com/itemq/itemq/itemapi"
)

// Event types.
const (
	TypeSucceeded = "io.itemq.job.succeeded"
	TypeFailed    = "io.itemq.job.failed"
	TypeDead      = "io.itemq.job.dead"
	TypeCancelled = "io.itemq.job.cancelled"
)

// Headers of a delivery (Standard Webhooks).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// FileName is the record of delivered event ids in the state directory.
const FileName = "webhooks-delivered.jsonl"

// CloudEvent is the structured-mode CloudEvents 1.0 JSON document posted.
type CloudEvent struct {
	SpecVersion     string            `json:"specversion"`
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         string            `json:"subject"`
	Time            time.Time         `json:"time"`
	DataContentType string            `json:"datacontenttype"`
	Data            itemapi.JobStatus `json:"data"`
}

// Config of a Sender.
type Config struct {
	URL    string
	Secret string // HMAC key; empty: unsigned
	// Source is the events' source attribute (e.g. "itemq/<queue>").
	Source   string
	StateDir string
	// Timeout of one delivery (default 10s); backoff between attempts of
	// one event from MinBackoff to MaxBackoff (defaults 1s, 5m).
	Timeout, MinBackoff, MaxBackoff time.Duration
	Workers                         int // concurrent deliveries (default 8)
	MaxPending                      int // events waiting at most (default 100000)
	// Retention: delivered ids are kept this long (default 7 days).
	Retention time.Duration
	NoSync    bool
	Client    *http.Client
	Log       *slog.Logger
}

// Sender delivers events.
type Sender struct {
	cfg Config
	log *slog.Logger
	hc  *http.Client

	mu        sync.Mutex
	byItem    map[string][]Delivery // the last deliveries of each item, for the dashboard
	pending   map[string]CloudEvent
	delivered map[string]time.Time
	f         *os.File
	q         workqueue.TypedRateLimitingInterface[string]

	sent, failed, dropped prometheus.Counter
	queued                prometheus.GaugeFunc
}

// New opens the record of delivered events and returns a sender; Run
// delivers.
func New(cfg Config) (*Sender, error) {
	if cfg.URL == "" {
		return nil, errors.New("webhook: no URL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	s := &Sender{cfg: cfg, log: cfg.Log, hc: hc, pending: map[string]CloudEvent{}, delivered: map[string]time.Time{}, byItem: map[string][]Delivery{},
		q: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.MinBackoff, cfg.MaxBackoff),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "webhooks"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "itemq_manager_webhooks_delivered_total",
			Help: "Completion events the webhook receiver accepted (2xx)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "itemq_manager_webhook_failures_total",
			Help: "Failed deliveries of completion events (each is retried with backoff)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "itemq_manager_webhooks_dropped_total",
			Help: "Completion events dropped because MANAGER_WEBHOOK_MAX_PENDING were waiting already."}),
	}
	s.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "itemq_manager_webhooks_pending",
		Help: "Completion events waiting for delivery."}, func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(len(s.pending)) })
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// Collectors are the sender's metrics.
func (s *Sender) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.sent, s.failed, s.dropped, s.queued}
}

type deliveredRec struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// open loads the delivered ids younger than Retention, rewrites the file
// with them, and opens it for appending.
func (s *Sender) open() error {
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	path := filepath.Join(s.cfg.StateDir, FileName)
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r deliveredRec
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID != "" && time.Since(r.At) < s.cfg.Retention {
				s.delivered[r.ID] = r.At
			}
		}
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("webhook: read %s: %w", path, err)
	}
	var buf bytes.Buffer
	for id, at := range s.delivered {
		b, _ := json.Marshal(deliveredRec{ID: id, At: at})
		buf.Write(append(b, '\n'))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("webhook: compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("webhook: compact %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("webhook: open %s: %w", path, err)
	}
	s.f = f
	return nil
}

// Enqueue records an event for delivery, unless it was delivered or is
// pending already. It never blocks.
func (s *Sender) Enqueue(typ string, st itemapi.JobStatus, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.delivered[id]; ok {
		return
	}
	if _, ok := s.pending[id]; ok {
		return
	}
	if len(s.pending) >= s.cfg.MaxPending {
		s.dropped.Inc()
		s.log.Warn("webhook events pile up (the receiver is down or slow); dropping one", "id", id, "pending", len(s.pending))
		return
	}
	s.pending[id] = CloudEvent{SpecVersion: "1.0", ID: id, Source: s.cfg.Source, Type: typ, Subject: st.Item,
		Time: time.Now().UTC(), DataContentType: "application/json", Data: st}
	s.trackLocked(st.Item, Delivery{ID: id, Type: typ})
	s.q.Add(id)
}

// Delivery is what became of one event of an item (for the dashboard).
type Delivery struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"lastError,omitempty"`
	DeliveredAt time.Time `json:"deliveredAt,omitzero"`
}

// Tracked bounds: the last perItem deliveries of at most maxItems items.
const (
	perItem  = 5
	maxItems = 10000
)

// trackLocked records or updates a delivery of an item.
func (s *Sender) trackLocked(item string, d Delivery) {
	ds := s.byItem[item]
	for i := range ds {
		if ds[i].ID == d.ID {
			ds[i] = d
			return
		}
	}
	if _, ok := s.byItem[item]; !ok && len(s.byItem) >= maxItems {
		for k := range s.byItem { // drop one (any) to stay bounded
			delete(s.byItem, k)
			break
		}
	}
	ds = append(ds, d)
	if len(ds) > perItem {
		ds = ds[len(ds)-perItem:]
	}
	s.byItem[item] = ds
}

// Deliveries returns the last deliveries of an item's events, oldest first.
func (s *Sender) Deliveries(item string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.byItem[item]...)
}

// attemptDone records how one delivery attempt of an event went.
func (s *Sender) attemptDone(ev CloudEvent, err error) {
	for _, d := range s.byItem[ev.Subject] {
		if d.ID == ev.ID {
			d.Attempts++
			if err != nil {
				d.LastError = err.Error()
			} else {
				d.LastError, d.DeliveredAt = "", time.Now().UTC()
			}
			s.trackLocked(ev.Subject, d)
			return
		}
	}
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, shutdown := s.q.Get()
				if shutdown {
					return
				}
				s.deliverOne(ctx, id)
				s.q.Done(id)
			}
		}()
	}
	<-ctx.Done()
	s.q.ShutDown()
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	return nil
}

func (s *Sender) deliverOne(ctx context.Context, id string) {
	s.mu.Lock()
	ev, ok := s.pending[id]
	s.mu.Unlock()
	if !ok {
		s.q.Forget(id)
		return
	}
	err := s.post(ctx, ev)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.failed.Inc()
		s.mu.Lock()
		s.attemptDone(ev, err)
		s.mu.Unlock()
		n := s.q.NumRequeues(id)
		s.log.Warn("webhook delivery failed; will retry", "id", id, "type", ev.Type, "item", ev.Subject, "attempt", n+1, "err", err)
		s.q.AddRateLimited(id)
		return
	}
	s.q.Forget(id)
	s.sent.Inc()
	now := time.Now().UTC()
	line, _ := json.Marshal(deliveredRec{ID: id, At: now})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attemptDone(ev, nil)
	delete(s.pending, id)
	s.delivered[id] = now
	if s.f != nil {
		if _, err := s.f.Write(append(line, '\n')); err == nil && !s.cfg.NoSync {
			_ = s.f.Sync()
		}
	}
}

func (s *Sender) post(ctx context.Context, ev CloudEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, ts)
	if s.cfg.Secret != "" {
		req.Header.Set(HeaderSignature, "v1,"+Sign(s.cfg.Secret, ev.ID, ts, body))
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

// Sign is the base64 HMAC-SHA256 of "id.timestamp.body" with secret.
func Sign(secret, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a receiver should: a valid signature (any
// of the space-separated "v1,<sig>" values) over the body, and a timestamp
// within tolerance of now (against replays).
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	id, ts := h.Get(HeaderID), h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("webhook: missing id or timestamp")
	}
	if d := time.Since(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %s is %v away from now", ts, d.Round(time.Second))
	}
	want := Sign(secret, id, ts, body)
	for _, sig := range strings.Fields(h.Get(HeaderSignature)) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: no valid signature")
}

// Pending is the number of events waiting for delivery.
func (s *Sender) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}
