package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/itemapi"
)

// maxSamples keeps an hour of samples at the default interval; fewer at
// longer ones.
const maxSamples = 720

// pushInterval is how often live pages get the summary.
const pushInterval = time.Second

// live is one server-sent event: the summary and, when one was taken since
// the last event, the newest sample.
type live struct {
	Summary itemapi.Summary `json:"summary"`
	Sample  *sample         `json:"sample,omitempty"`
}

// Run samples the charts every Interval and pushes the summary to live
// pages every second, until ctx ends.
func (d *Dashboard) Run(ctx context.Context) error {
	tick := time.NewTicker(pushInterval)
	defer tick.Stop()
	lastSample := time.Time{}
	for {
		now := time.Now()
		ev := live{Summary: d.summary()}
		if now.Sub(lastSample) >= d.opts.Interval {
			s := d.takeSample(now, ev.Summary)
			ev.Sample = &s
			lastSample = now
		}
		d.publish(ev)
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for ch := range d.subs {
				close(ch)
				delete(d.subs, ch)
			}
			d.mu.Unlock()
			return nil
		case <-tick.C:
		}
	}
}

func (d *Dashboard) takeSample(now time.Time, sum itemapi.Summary) sample {
	done := sum.Counts[itemapi.StateSucceeded] + sum.Counts[itemapi.StateFailed] + sum.Counts[itemapi.StateDead] + sum.Counts[itemapi.StateCancelled]
	s := sample{T: now.Unix(), Done: done, Lambda: sum.Lambda, Backlog: sum.Backlog, Active: sum.Active, C: sum.Parallelism}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.samples); n > 0 {
		prev := d.samples[n-1]
		if dt := float64(s.T - prev.T); dt > 0 && done >= prev.Done {
			s.Throughput = float64(done-prev.Done) / dt
		}
	}
	d.samples = append(d.samples, s)
	if len(d.samples) > maxSamples {
		d.samples = append(d.samples[:0:0], d.samples[len(d.samples)-maxSamples:]...)
	}
	return s
}

// publish sends an event to every live page; a page that does not keep
// up misses it (its channel is full), never slowing anything.
func (d *Dashboard) publish(ev live) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- b:
		default:
		}
	}
}

// maxLivePages bounds the event streams open at once.
const maxLivePages = 256

// jobState is what a job's page follows: when either changes, the page is
// out of date.
type jobState struct {
	State    itemapi.State `json:"state"`
	Attempts int           `json:"attempts"`
}

// events streams the summary to a live page (text/event-stream). With
// ?job=<item>, every event is followed by a "job" event with that job's
// state and attempt count, so the job's page can follow it.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	job := r.URL.Query().Get("job")
	if job != "" {
		if err := itemapi.ValidateName(job); err != nil {
			http.Error(w, "job: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	ch := make(chan []byte, 4)
	d.mu.Lock()
	if len(d.subs) >= maxLivePages {
		d.mu.Unlock()
		http.Error(w, "too many live pages", http.StatusServiceUnavailable)
		return
	}
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if _, ok := d.subs[ch]; ok {
			delete(d.subs, ch)
		}
		d.mu.Unlock()
	}()
	httpapi.LongLived(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	first, _ := json.Marshal(live{Summary: d.summary()})
	write := func(b []byte) bool {
		if _, err := w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
			return false
		}
		if job != "" {
			js := jobState{State: itemapi.State("gone")}
			if st, ok := d.m.Status(job); ok {
				js = jobState{State: st.State, Attempts: st.Attempts}
			}
			jb, _ := json.Marshal(js)
			if _, err := w.Write(append(append([]byte("event: job\ndata: "), jb...), '\n', '\n')); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write(first) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-ch:
			if !ok || !write(b) {
				return
			}
		}
	}
}

// series answers the charts' samples of the last hour.
func (d *Dashboard) series(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	b, err := json.Marshal(d.samples)
	d.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if string(b) == "null" {
		b = []byte("[]")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
