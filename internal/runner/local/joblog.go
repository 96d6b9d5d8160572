package local

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// JobLog is a job's log file, bounded: after max bytes, output is dropped,
// except for the last tailBytes, which are written (with a count of what was
// dropped) when the attempt ends, so the end of a failing run is always
// there. A nil *JobLog discards everything.
type JobLog struct {
	mu      sync.Mutex
	f       *os.File
	max     int64
	written int64
	dropped int64
	tail    []byte
}

const tailBytes = 16 << 10

// OpenJobLog opens (appending) the log file at path.
func OpenJobLog(path string, max int64) (*JobLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open job log %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat job log %s: %w", path, err)
	}
	return &JobLog{f: f, max: max, written: st.Size()}, nil
}

// Write appends p, within the bound.
func (l *JobLog) Write(p []byte) (int, error) {
	if l == nil {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	if room := l.max - l.written; room > 0 {
		k := min(int64(len(p)), room)
		if _, err := l.f.Write(p[:k]); err != nil {
			return 0, err
		}
		l.written += k
		p = p[k:]
	}
	if len(p) > 0 {
		l.dropped += int64(len(p))
		l.tail = append(l.tail, p...)
		if len(l.tail) > tailBytes {
			l.tail = append(l.tail[:0], l.tail[len(l.tail)-tailBytes:]...)
		}
	}
	return n, nil
}

// Notef writes a line of the runner's own (not the executor's).
func (l *JobLog) Notef(format string, args ...any) {
	if l == nil {
		return
	}
	l.flushTail()
	line := fmt.Sprintf("=== %s itemq: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	l.mu.Lock()
	// Runner notes are always written: they are small and say what happened.
	_, _ = io.WriteString(l.f, line)
	l.written += int64(len(line))
	l.mu.Unlock()
}

// flushTail writes the kept tail of dropped output.
func (l *JobLog) flushTail() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped == 0 {
		return
	}
	fmt.Fprintf(l.f, "\n=== itemq: log limit of %d bytes reached; %d bytes dropped; the last %d follow\n", l.max, l.dropped, len(l.tail))
	_, _ = l.f.Write(l.tail)
	l.dropped, l.tail = 0, nil
}

// Close flushes the tail and closes the file.
func (l *JobLog) Close() error {
	if l == nil {
		return nil
	}
	l.flushTail()
	return l.f.Close()
}
