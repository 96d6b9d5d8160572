package dirsource

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/itemq/itemq/itemapi"
)

// Reasons a file that would otherwise be an item is not listed.
const (
	refusedName     = "name"      // not a name the API can serve (backslash, not UTF-8, too long)
	refusedTooLarge = "too_large" // DIR_DATA=json and larger than the item data limit
)

// maxRemembered bounds the refused files remembered (to log each once).
const maxRemembered = 1 << 16

// refusals logs each refused file once and counts it in
// itemq_dir_refused_files_total.
type refusals struct {
	mu      sync.Mutex
	seen    map[string]string // rel → reason
	full    bool
	counter *prometheus.CounterVec
}

func newRefusals() *refusals {
	return &refusals{
		seen: make(map[string]string),
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "itemq_dir_refused_files_total",
			Help: "Files under DIR_ROOT that match DIR_PATTERN but are not listed, counted once per file: reason=name (a name the API cannot serve: a backslash, not UTF-8, longer than 1024 bytes), reason=too_large (DIR_DATA=json and larger than the item data limit).",
		}, []string{"reason"}),
	}
}

// note reports whether rel is seen with this reason for the first time.
func (r *refusals) note(rel, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.seen[rel]; ok && old == reason {
		return false
	}
	if len(r.seen) >= maxRemembered {
		if r.full {
			return false
		}
		r.full = true
	} else {
		r.seen[rel] = reason
	}
	r.counter.WithLabelValues(reason).Inc()
	return true
}

// unservableName says why rel cannot be an item's name, or "".
func unservableName(rel string) string {
	if err := itemapi.ValidateName(rel); err != nil {
		return err.Error()
	}
	if strings.IndexByte(rel, '\\') >= 0 {
		return "item name contains a backslash"
	}
	return ""
}

// refuse logs a refused file once and counts it.
func (d *Driver) refuse(rel, reason, why string) {
	if !d.refused.note(rel, reason) {
		return
	}
	if d.refused.full && len(d.refused.seen) >= maxRemembered {
		d.log.Warn("more files are refused than can be remembered; later ones are neither logged nor counted", "limit", maxRemembered)
		return
	}
	d.log.Warn("file not listed: "+why, "file", quote(rel), "reason", reason)
}

func quote(s string) string {
	if len(s) > 300 {
		s = s[:300]
	}
	// Go-quoted without the quotes: invalid UTF-8 shows as \xff, a
	// backslash as \\.
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// Collectors are the driver's Prometheus metrics (source.MetricsProvider).
func (d *Driver) Collectors() []prometheus.Collector {
	return []prometheus.Collector{d.refused.counter}
}
