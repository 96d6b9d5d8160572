package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/itemq/itemq/internal/fairq"
	"github.com/itemq/itemq/itemapi"
)

// Fair configures the order in which waiting items get their jobs
// (package fairq): priorities with ageing, and a fair share across a key.
// The zero Fair is FIFO.
type Fair struct {
	// PriorityField is the field of an item's data (a dotted path, e.g.
	// "priority" or "meta.prio") holding its priority, an integer: higher
	// first, FIFO within a priority. Absent or not a number: 0. A
	// submission may set it with POST /v1/jobs?priority=N.
	PriorityField string
	// LowShare is the fraction of starts kept for the oldest item below the
	// highest priority waiting, so that no priority starves (default
	// DefaultLowShare when PriorityField is set; negative: none, strict
	// priority).
	LowShare float64
	// KeyField is the field of an item's data whose value shares the
	// parallelism fairly (e.g. "tenant"): among items of the same priority
	// each key gets its turn, by weight. Absent: the key "".
	KeyField string
	// Weights of keys (default 1 each): a key of weight 2 gets twice the
	// starts of a key of weight 1 while both have items waiting.
	Weights map[string]float64
	// KeyCap bounds the jobs of one key that hold a slot at once (0: no cap).
	KeyCap int
}

func (f Fair) enabled() bool { return f.PriorityField != "" || f.KeyField != "" || f.KeyCap > 0 }

// DefaultLowShare is Fair.LowShare's default: one start in ten goes to a
// lower priority while one waits.
const DefaultLowShare = 0.1

func (f Fair) queueConfig() fairq.Config {
	share := f.LowShare
	if share == 0 && f.PriorityField != "" {
		share = DefaultLowShare
	}
	return fairq.Config{LowShare: max(share, 0), Weights: f.Weights, KeyCap: f.KeyCap}
}

// ParseWeights reads "key=weight,key=weight" (MANAGER_FAIR_WEIGHTS).
func ParseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("weight %q: want key=weight", part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w <= 0 || math.IsInf(w, 0) {
			return nil, fmt.Errorf("weight %q: want a positive number", part)
		}
		out[strings.TrimSpace(k)] = w
	}
	return out, nil
}

// classOf reads an item's class from its data (nil: the zero class).
func (f Fair) classOf(it *itemapi.Item) fairq.Class {
	var c fairq.Class
	if it == nil || len(it.Data) == 0 || !f.enabled() {
		return c
	}
	var data any
	d := json.NewDecoder(bytes.NewReader(it.Data))
	d.UseNumber()
	if d.Decode(&data) != nil {
		return c
	}
	if f.KeyField != "" {
		switch v := lookup(data, f.KeyField).(type) {
		case string:
			c.Key = v
		case json.Number:
			c.Key = v.String()
		case bool:
			c.Key = strconv.FormatBool(v)
		}
	}
	if f.PriorityField != "" {
		if n, ok := lookup(data, f.PriorityField).(json.Number); ok {
			if p, err := n.Float64(); err == nil && !math.IsNaN(p) {
				c.Priority = int(math.Max(math.Min(p, MaxPriority), -MaxPriority))
			}
		}
	}
	return c
}

// MaxPriority bounds priorities both ways (a larger one counts as this).
const MaxPriority = 1_000_000

func lookup(v any, path string) any {
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[part]
	}
	return v
}

// WithPriority returns data with its priority field set to p: the
// submission's ?priority=N. The data must be a JSON object.
func (m *Manager) WithPriority(data json.RawMessage, p int) (json.RawMessage, error) {
	field := m.cfg.Fair.PriorityField
	if field == "" {
		return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "priority: this manager has no priority field (MANAGER_PRIORITY_FIELD)")
	}
	if p > MaxPriority || p < -MaxPriority {
		return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "priority %d: out of ±%d", p, MaxPriority)
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil || obj == nil {
		return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "priority: the job's data must be a JSON object")
	}
	parts := strings.Split(field, ".")
	cur := obj
	for _, part := range parts[:len(parts)-1] {
		next, ok := cur[part].(map[string]any)
		if !ok {
			if cur[part] != nil {
				return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "priority: data field %q is not an object", part)
			}
			next = map[string]any{}
			cur[part] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = p
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode the job's data: %w", err)
	}
	if err := itemapi.CheckDataSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

// classifyLocked records the class of an item about to wait, from its
// document when the manager has it (an ambassador's watch events and
// submissions carry it). An item known by name only (a listing, the
// snapshot after a restart) has no class yet: pushLocked sends it to the
// classify workers, which read it first.
func (m *Manager) classifyLocked(name string, it *itemapi.Item) {
	if !m.cfg.Fair.enabled() {
		return
	}
	if it == nil {
		it = m.docs[name]
	}
	if it == nil {
		return
	}
	m.fq.SetClass(name, m.cfg.Fair.classOf(it))
}

// pushLocked hands a waiting item to the dispatch queue, or, when its class
// is not known yet, to the classify workers.
func (m *Manager) pushLocked(name string) {
	if m.classifyQ != nil {
		if _, ok := m.fq.Class(name); !ok {
			if len(m.unclassified) == 0 {
				m.unclassifiedSince = time.Now()
			}
			m.unclassified[name] = struct{}{}
			m.classifyQ.Add(name)
			return
		}
	}
	m.dispatchQ.Add(name)
}

// classifyHoldLocked is how long dispatch should still wait for the
// classify workers: while they read waiting items (a burst, or the
// snapshot after a restart), the next start could otherwise go to
// whichever item they read first rather than to the one the order puts
// first — but for at most maxClassifyHold, so that a slow source delays
// starts by no more than that (0: go).
func (m *Manager) classifyHoldLocked(now time.Time) time.Duration {
	if len(m.unclassified) == 0 {
		return 0
	}
	return max(0, maxClassifyHold-now.Sub(m.unclassifiedSince))
}

// maxClassifyHold bounds the wait of dispatch for the classify workers.
const maxClassifyHold = 2 * time.Second

// classifyWorkers read the data of items listed by name only, to learn
// their class; the document is kept for the job's start when small, so
// the read is not repeated.
const (
	classifyWorkers  = 4
	keepDocBytes     = 8 << 10
	classifyDeadline = time.Minute
)

// classifyRunning reads the class of the jobs found running at start, a
// few at a time, within classifyRunningDeadline; what is not read by then
// goes to the classify workers (and counts under the key "" until read).
func (m *Manager) classifyRunning(ctx context.Context, items []string) {
	rctx, cancel := context.WithTimeout(ctx, classifyRunningDeadline)
	defer cancel()
	workqueue.ParallelizeUntil(rctx, classifyWorkers, len(items), func(i int) { m.classify(rctx, items[i]) })
	for _, name := range items {
		if _, ok := m.fq.Class(name); !ok {
			m.classifyQ.Add(name)
		}
	}
}

const classifyRunningDeadline = 10 * time.Second

func (m *Manager) classifyLoop(ctx context.Context) error {
	for {
		name, shutdown := m.classifyQ.Get()
		if shutdown {
			return nil
		}
		m.classify(ctx, name)
		m.classifyQ.Done(name)
		m.mu.Lock()
		delete(m.unclassified, name)
		if len(m.unclassified) == 0 {
			m.unclassifiedSince = time.Time{}
		}
		m.mu.Unlock()
		m.signal()
	}
}

func (m *Manager) classify(ctx context.Context, name string) {
	m.mu.Lock()
	_, waiting := m.queued[name]
	running := m.jobs[name] != nil && m.jobs[name].Active()
	it := m.docs[name]
	m.mu.Unlock()
	if !waiting && !running {
		return
	}
	if it == nil {
		gctx, cancel := context.WithTimeout(ctx, classifyDeadline)
		var err error
		it, err = m.src.Get(gctx, name)
		cancel()
		switch {
		case itemapi.IsNotFound(err):
			m.mu.Lock()
			m.itemDeletedLocked(name, time.Now())
			m.mu.Unlock()
			return
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			// It waits with the zero class rather than not at all; its
			// start reads it again (and retries).
			m.log.Warn("cannot read an item to learn its priority and key; it waits with the defaults", "item", name, "err", err)
			it = nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, waiting := m.queued[name]; !waiting {
		if j := m.jobs[name]; j != nil && j.Active() && it != nil {
			// A job found running at start: it counts against its key's
			// cap from now on (it counted under the key "" until now).
			m.fq.SetClass(name, m.cfg.Fair.classOf(it))
			if m.dispatchQ != nil {
				m.dispatchQ.Add(wakeItem) // "" may have room now
			}
		}
		return
	}
	c := m.cfg.Fair.classOf(it)
	m.fq.SetClass(name, c)
	if it != nil && len(it.Data) <= keepDocBytes && m.jobs[name] == nil {
		m.docs[name] = it
	}
	m.dispatchQ.Add(name)
}

// releaseLocked ends an item's hold on its key's cap; when that lets
// items of the key go, a dispatch worker waiting in Get is woken.
func (m *Manager) releaseLocked(item string) {
	if m.fq.Release(item) && m.dispatchQ != nil {
		m.dispatchQ.Add(wakeItem)
	}
}

// wakeItem is the dispatch queue's wake-up (fairq's zero item): no item has
// an empty name.
const wakeItem = ""
