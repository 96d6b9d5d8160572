package dirsource

import (
	"context"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Events are gathered for debounce after the last one, but never for more
// than maxBatchDelay after the first of a batch, and at most maxDirty
// paths, then applied together: a burst of writes to one file is one stat.
const (
	debounce      = 2 * time.Millisecond
	maxBatchDelay = 20 * time.Millisecond
	maxDirty      = 4096
)

// watchLoop applies fsnotify events to the index.
func (d *Driver) watchLoop(ctx context.Context) {
	defer d.wg.Done()
	dirty := make(map[string]struct{})
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	var first time.Time
	flush := func() {
		timer.Stop()
		armed = false
		d.processDirty(ctx, dirty)
		if len(dirty) > 256 {
			dirty = make(map[string]struct{})
		} else {
			clear(dirty)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-d.watcher.Events:
			if !ok {
				return
			}
			if ev.Name == "" || ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Name == d.path {
				// The root itself was removed or moved.
				d.requestRescan()
				continue
			}
			rel, ok := d.relOf(ev.Name)
			if !ok {
				continue
			}
			dirty[rel] = struct{}{}
			now := time.Now()
			switch {
			case len(dirty) >= maxDirty:
				flush()
			case !armed:
				armed, first = true, now
				timer.Reset(debounce)
			case now.Sub(first) < maxBatchDelay:
				timer.Reset(min(debounce, maxBatchDelay-now.Sub(first)))
			}
		case err, ok := <-d.watcher.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				d.log.Warn("inotify queue overflowed; rescanning the directory", "err", err)
				d.requestRescan()
			} else {
				d.log.Warn("fsnotify", "err", err)
			}
		case <-timer.C:
			flush()
		}
	}
}

// relOf maps an event's path to a relative path the driver may care
// about: under the root, not under a hidden or archive directory.
func (d *Driver) relOf(name string) (string, bool) {
	prefix := d.path
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return "", false
	}
	rel := filepath.ToSlash(rest)
	if d.inArchive(rel) {
		return "", false
	}
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		if !d.eligibleDir(dir, path.Base(dir)) {
			return "", false
		}
	}
	if path.Base(rel)[0] == '.' {
		return "", false
	}
	return rel, true
}

// processDirty states each changed path and applies what it finds.
// Paths that are gone are applied first, so that a directory renamed within
// the root loses its old watches before its new path is watched.
func (d *Driver) processDirty(ctx context.Context, dirty map[string]struct{}) {
	r := d.ref.Load().r
	rels := make([]string, 0, len(dirty))
	for rel := range dirty {
		rels = append(rels, rel)
	}
	sts := make([]stat, len(rels))
	var dirs []string
	d.mu.Lock()
	now := time.Now()
	for i, rel := range rels {
		sts[i] = classify(r, rel)
		switch sts[i].kind {
		case kMissing, kOther:
			d.forgetLocked(rel)
			d.forgetTreeLocked(rel)
			d.removeWatches(rel)
		case kDir:
			d.forgetLocked(rel)
		}
	}
	for i, rel := range rels {
		base := path.Base(rel)
		switch sts[i].kind {
		case kFile:
			if d.eligibleFile(rel, base) {
				d.apply(rel, sts[i], now)
			} else {
				d.forgetLocked(rel)
			}
		case kDir:
			if d.eligibleDir(rel, base) {
				dirs = append(dirs, rel)
			}
		}
	}
	d.mu.Unlock()
	// A directory that appeared (created, or moved in): watch and scan it;
	// files made in it before its watch was added are found by the scan.
	for _, dir := range dirs {
		d.scanTree(ctx, r, dir)
	}
}

// addWatch watches the directory rel, when fsnotify is on.
func (d *Driver) addWatch(rel string) {
	if d.watcher == nil {
		return
	}
	err := d.watcher.Add(filepath.Join(d.path, filepath.FromSlash(rel)))
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) && !d.warnedLimit {
			d.warnedLimit = true
			d.log.Warn("the inotify watch limit is reached (sysctl fs.inotify.max_user_watches): changes in directories without a watch are seen only by the rescan every DIR_POLL_INTERVAL", "dir", rel, "poll", d.cfg.PollInterval.String())
		} else if !notExist(err) && !errors.Is(err, fsnotify.ErrClosed) {
			d.log.Debug("cannot watch a directory", "dir", rel, "err", err)
		}
		return
	}
	d.watched[rel] = struct{}{}
}

// removeWatches drops the watches of the directory rel and of everything
// under it ("" for all). inotify keeps a watch on a directory moved
// elsewhere, and fsnotify would report its events under the old path.
func (d *Driver) removeWatches(rel string) {
	if d.watcher == nil {
		return
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if _, ok := d.watched[rel]; !ok && rel != "" {
		return
	}
	for w := range d.watched {
		if rel == "" || w == rel || strings.HasPrefix(w, rel+"/") {
			_ = d.watcher.Remove(filepath.Join(d.path, filepath.FromSlash(w)))
			delete(d.watched, w)
		}
	}
}
