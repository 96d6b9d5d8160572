package dirsource

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/itemq/itemq/internal/source"
)

// scanBatch is how many directory entries are read, stated and applied at
// a time: the scan streams, whatever the size of a directory.
const scanBatch = 256

type kind uint8

const (
	kMissing kind = iota // no such file
	kOther               // exists but is not an item: FIFO, device, a symlink that dangles, loops or leaves the root
	kDir                 // a directory (not followed through symlinks)
	kFile                // a regular file, or a symlink to one inside the root
	kError               // could not be stated (permissions, I/O): keep what we know
	kLink                // a symlink, not yet followed (readBatch only)
	kUnknown             // type not reported by the filesystem (readBatch only)
	kKnown               // a regular file the index already holds, not stated (scanTree only)
)

// dirEnt is one entry readBatch read.
type dirEnt struct {
	base        string
	kind        kind
	statted     bool // size and mtime are known
	size, mtime int64
}

type stat struct {
	kind        kind
	size, mtime int64
	err         error
}

func fileStat(fi os.FileInfo) stat {
	return stat{kind: kFile, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// classify states rel through the root. Symlinks are followed inside the
// root only: one that resolves outside it is not an item.
func classify(r *os.Root, rel string) stat {
	fi, err := r.Lstat(rel)
	if err != nil {
		if notExist(err) {
			return stat{kind: kMissing}
		}
		return stat{kind: kError, err: err}
	}
	m := fi.Mode()
	switch {
	case m.IsRegular():
		return fileStat(fi)
	case m.IsDir():
		return stat{kind: kDir}
	case m&fs.ModeSymlink != 0:
		fi, err = r.Stat(rel)
		if err != nil {
			return stat{kind: kOther, err: err}
		}
		if fi.Mode().IsRegular() {
			return fileStat(fi)
		}
	}
	return stat{kind: kOther}
}

// apply records what a stat of the eligible path rel found. d.mu is held.
func (d *Driver) apply(rel string, st stat, now time.Time) {
	switch st.kind {
	case kMissing, kOther, kDir:
		d.forgetLocked(rel)
		return
	case kError:
		if p, ok := d.pending[rel]; ok {
			p.since = now
			d.pending[rel] = p
		}
		return
	}
	if d.cfg.Data == DataJSON && st.size > d.cfg.MaxDataBytes {
		// Refused where it enters: never listed, so never a job that an
		// executor would refuse. Logged once, counted.
		d.forgetLocked(rel)
		d.refuse(rel, refusedTooLarge, fmt.Sprintf("it is %d bytes, more than DIR_MAX_DATA_BYTES=%d (DIR_DATA=json: an item's data is the file)", st.size, d.cfg.MaxDataBytes))
		return
	}
	if v, ok := d.idx.Get(rel); ok {
		if v.size() != st.size || v.mtime != st.mtime || v.marked() != d.mark {
			d.idx.Put(rel, makeInfo(st.size, st.mtime, d.mark))
		}
		return
	}
	settle := d.cfg.Settle
	if settle <= 0 || now.Sub(time.Unix(0, st.mtime)) >= settle {
		d.promote(rel, st)
		return
	}
	if p, ok := d.pending[rel]; ok && p.size == st.size && p.mtime == st.mtime {
		if now.Sub(p.since) >= settle {
			d.promote(rel, st)
		}
		return
	}
	d.pending[rel] = pendingFile{size: st.size, mtime: st.mtime, since: now}
	select {
	case d.settleWake <- struct{}{}:
	default:
	}
}

// promote lists a settled file. d.mu is held.
func (d *Driver) promote(rel string, st stat) {
	if _, ok := d.pending[rel]; ok {
		delete(d.pending, rel)
		if len(d.pending) == 0 {
			// A map never shrinks: drop the one a big batch grew.
			d.pending = make(map[string]pendingFile)
		}
	}
	d.idx.Put(rel, makeInfo(st.size, st.mtime, d.mark))
}

// forgetLocked drops rel from the index and from the pending files. d.mu
// is held.
func (d *Driver) forgetLocked(rel string) {
	delete(d.pending, rel)
	if _, ok := d.idx.Delete(rel); ok {
		d.delSeq.Add(1)
	}
}

// forgetTreeLocked drops every indexed file under the directory rel (which
// is gone or no longer a directory). d.mu is held. Pending files under it
// are dropped by the settle loop, which states them again.
func (d *Driver) forgetTreeLocked(rel string) {
	prefix := rel + "/"
	after := prefix
	for {
		names, _, err := d.idx.List(source.ListOptions{Limit: 256, Continue: source.EncodeContinue(after)})
		if err != nil || len(names) == 0 {
			return
		}
		for _, n := range names {
			if !strings.HasPrefix(n, prefix) {
				return
			}
			d.forgetLocked(n)
		}
		after = names[len(names)-1]
	}
}

// scanLoop runs the initial scan, then a full rescan every poll interval
// or when asked (an inotify overflow, a replaced root).
func (d *Driver) scanLoop(ctx context.Context) {
	defer d.wg.Done()
	start := time.Now()
	d.fullScan(ctx)
	if ctx.Err() != nil {
		return
	}
	d.scanned.Store(true)
	d.mu.Lock()
	pending := len(d.pending)
	d.mu.Unlock()
	d.log.Info("initial scan done", "items", d.idx.Len(), "settling", pending, "dur", time.Since(start).String(), "watch", d.watcher != nil, "poll", d.cfg.PollInterval.String())
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.rescanReq:
		}
		d.checkRoot()
		start := time.Now()
		before := d.idx.Len()
		d.fullScan(ctx)
		d.log.Debug("rescan done", "items", d.idx.Len(), "before", before, "dur", time.Since(start).String())
	}
}

// checkRoot reopens DIR_ROOT when the path now names another directory
// (removed and made again, remounted).
func (d *Driver) checkRoot() {
	ref := d.ref.Load()
	fi, err := os.Stat(d.path)
	if err != nil || !fi.IsDir() || os.SameFile(fi, ref.id) {
		return
	}
	r, err := os.OpenRoot(d.path)
	if err != nil {
		d.log.Warn("DIR_ROOT was replaced but cannot be opened", "err", err)
		return
	}
	id, err := r.Stat(".")
	if err != nil {
		r.Close()
		d.log.Warn("DIR_ROOT was replaced but cannot be opened", "err", err)
		return
	}
	d.log.Warn("DIR_ROOT was replaced by another directory; reopened it")
	d.mu.Lock()
	// Requests in flight may still use the old root: close it with the driver.
	d.oldRoots = append(d.oldRoots, ref.r)
	d.ref.Store(&rootRef{r: r, id: id})
	d.mu.Unlock()
	d.removeWatches("")
}

// fullScan walks the whole tree, then drops the indexed files the walk did
// not see (after stating each again). It marks what it sees with a new
// mark rather than collecting the names it saw, so that it needs no memory
// per file beyond the index.
func (d *Driver) fullScan(ctx context.Context) {
	d.mu.Lock()
	d.mark = !d.mark
	d.mu.Unlock()
	r := d.ref.Load().r
	d.scanTree(ctx, r, "")
	if ctx.Err() != nil {
		return
	}
	d.sweep(ctx, r)
	d.scans.Add(1)
}

type candidate struct {
	rel string
	e   dirEnt
}

// scanTree walks the directory rel and everything under it, streaming:
// entries are read, stated and applied scanBatch at a time. A regular file
// the index already holds is only marked as seen, not stated: its size and
// mtime serve nothing once it is listed (Get looks at the file itself).
func (d *Driver) scanTree(ctx context.Context, r *os.Root, start string) {
	stack := []string{start}
	ents := make([]dirEnt, 0, scanBatch)
	cands := make([]candidate, 0, scanBatch)
	var dr dirReader
	for len(stack) > 0 {
		if ctx.Err() != nil {
			return
		}
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		// Watch before reading, so that nothing created meanwhile is missed.
		d.addWatch(dir)
		f, err := r.Open(dirOrDot(dir))
		if err != nil {
			if !notExist(err) {
				d.log.Warn("scan: cannot open a directory; its files keep their last known state", "dir", dir, "err", err)
			}
			continue
		}
		dr.reset()
		for ctx.Err() == nil {
			seq := d.delSeq.Load()
			ents, err = dr.readBatch(f, ents[:0])
			cands = cands[:0]
			for i := range ents {
				e := &ents[i]
				if e.kind == kUnknown {
					statAt(f, e)
				}
				switch e.kind {
				case kDir:
					if rel := joinRel(dir, e.base); d.eligibleDir(rel, e.base) {
						stack = append(stack, rel)
					}
				case kFile, kLink, kError:
					rel := joinRel(dir, e.base)
					if !d.eligibleFile(rel, e.base) {
						continue
					}
					if e.kind == kFile && !e.statted {
						if _, ok := d.idx.Get(rel); ok {
							e.kind = kKnown
						} else {
							statAt(f, e)
						}
					}
					cands = append(cands, candidate{rel, *e})
				}
			}
			if len(cands) > 0 {
				d.applyScanned(r, cands, seq)
			}
			if err != nil {
				if err != io.EOF {
					d.log.Warn("scan: cannot read a directory; its files keep their last known state", "dir", dir, "err", err)
				}
				break
			}
		}
		f.Close()
		clear(ents)
		clear(cands)
	}
}

// applyScanned applies a batch of scanned files. If nothing was dropped
// from the index since the batch was read, what the scan found is used;
// otherwise each file is stated again, so that a scan never brings back a
// file whose removal was applied in between. Symlinks are always followed
// here, inside the root only.
func (d *Driver) applyScanned(r *os.Root, cands []candidate, seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := d.delSeq.Load() == seq
	now := time.Now()
	for _, c := range cands {
		switch {
		case fresh && c.e.kind == kKnown:
			if v, ok := d.idx.Get(c.rel); ok {
				if v.marked() != d.mark {
					d.idx.Put(c.rel, makeInfo(v.size(), v.mtime, d.mark))
				}
				continue
			}
		case fresh && c.e.kind == kFile:
			d.apply(c.rel, stat{kind: kFile, size: c.e.size, mtime: c.e.mtime}, now)
			continue
		case fresh && c.e.kind == kMissing:
			d.apply(c.rel, stat{kind: kMissing}, now)
			continue
		}
		d.apply(c.rel, classify(r, c.rel), now)
	}
}

// sweep looks again at every indexed file the last walk did not mark, and
// drops those that are gone.
func (d *Driver) sweep(ctx context.Context, r *os.Root) {
	d.mu.Lock()
	mark := d.mark
	d.mu.Unlock()
	var stale []string
	d.idx.Ascend(func(name string, v fileInfo) bool {
		if v.marked() != mark {
			stale = append(stale, name)
		}
		return true
	})
	for len(stale) > 0 && ctx.Err() == nil {
		n := min(len(stale), scanBatch)
		d.mu.Lock()
		now := time.Now()
		for _, name := range stale[:n] {
			if v, ok := d.idx.Get(name); !ok || v.marked() == d.mark {
				continue // dropped or seen meanwhile
			}
			st := classify(r, name)
			if st.kind == kFile && !realParents(r, name) {
				st.kind = kOther
			}
			d.apply(name, st, now)
		}
		d.mu.Unlock()
		stale = stale[n:]
	}
}

// realParents reports whether every directory on the way to rel is a real
// directory, not a symlink: the walk does not follow symlinked directories,
// and a file reached through one is listed under its real path only.
func realParents(r *os.Root, rel string) bool {
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		fi, err := r.Lstat(dir)
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// settleLoop lists pending files once they have settled.
func (d *Driver) settleLoop(ctx context.Context) {
	defer d.wg.Done()
	tick := min(max(d.cfg.Settle/4, 10*time.Millisecond), 500*time.Millisecond)
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		d.mu.Lock()
		n := len(d.pending)
		d.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-d.settleWake:
			}
			continue
		}
		t.Reset(tick)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.checkPending()
	}
}

// checkPending states the pending files that may have settled by now.
func (d *Driver) checkPending() {
	r := d.ref.Load().r
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	settle := d.cfg.Settle
	for rel, p := range d.pending {
		if now.Sub(p.since) < settle && now.Sub(time.Unix(0, p.mtime)) < settle {
			continue
		}
		d.apply(rel, classify(r, rel), now)
	}
}
