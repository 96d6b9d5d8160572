package blobsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// loop polls the bucket until ctx ends: every PollInterval after a
// successful listing; after a failed one, with a backoff that starts at one
// second (or the interval, if shorter) and doubles up to the interval. A
// failed listing keeps the last good index. Ready kicks a poll when the
// bucket answers again.
func (d *Driver) loop(ctx context.Context) {
	defer close(d.done)
	start := min(time.Second, d.cfg.PollInterval)
	backoff := time.Duration(0)
	for {
		err := d.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := d.cfg.PollInterval
		if err != nil {
			if backoff == 0 {
				backoff = start
			} else {
				backoff = min(2*backoff, d.cfg.PollInterval)
			}
			wait = backoff
			d.log.Debug("bucket listing failed; retrying", "bucket", d.cfg.URL, "in", wait.String(), "err", err)
		} else {
			backoff = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-d.kick:
			t.Stop()
		}
	}
}

// poll lists the bucket once and brings the index up to date: new keys are
// added (announced to watchers), keys no longer listed are removed. Only
// list attributes are used: no object is read or HEADed.
//
// The driver's own changes made while a listing runs (a submit the listing
// may have missed, an ack whose object the listing may still have seen) are
// newer than the listing, so the poll leaves those names alone: d.recent
// holds them, reset when a poll starts.
func (d *Driver) poll(ctx context.Context) error {
	d.mu.Lock()
	d.gen++
	gen := d.gen
	clear(d.recent)
	d.mu.Unlock()

	begin := time.Now()
	var listed, added, changed int
	err := d.walk(ctx, d.cfg.Prefix, func(page []*blob.ListObject) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, o := range page {
			name, ok := d.nameOf(o.Key)
			if !ok {
				continue
			}
			listed++
			if _, mine := d.recent[name]; mine {
				continue
			}
			a := attrs{size: o.Size, mod: o.ModTime.UnixNano(), gen: gen}
			old, known := d.idx.Get(name)
			if known && old.md5 == string(o.MD5) {
				a.md5 = old.md5 // no new string for every item at every poll
			} else {
				a.md5 = string(o.MD5)
			}
			if known && (old.size != a.size || old.mod != a.mod || old.md5 != a.md5) {
				changed++
			}
			if d.idx.Put(name, a) {
				added++
			}
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.mu.Lock()
		d.pollErr = err
		d.mu.Unlock()
		return d.health.report(err)
	}

	// What the listing did not see is gone.
	var stale []string
	d.idx.Ascend(func(name string, a attrs) bool {
		if a.gen != gen {
			stale = append(stale, name)
		}
		return true
	})
	d.mu.Lock()
	removed := 0
	for _, name := range stale {
		if _, mine := d.recent[name]; mine {
			continue
		}
		if a, ok := d.idx.Get(name); ok && a.gen != gen {
			d.idx.Delete(name)
			removed++
		}
	}
	d.pollErr = nil
	d.mu.Unlock()
	d.synced.Store(true)
	d.health.report(nil)
	d.log.Debug("listed bucket", "bucket", d.cfg.URL, "items", listed, "added", added, "removed", removed,
		"changed", changed, "dur", time.Since(begin).String())

	if !d.recovered.Load() {
		if err := d.recover(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("recovery of interrupted archive moves failed; will retry after the next listing", "err", err)
		} else {
			d.recovered.Store(true)
		}
	}
	return nil
}

// walk lists the keys under prefix page by page, with the provider's paging.
// Where an archive prefix lies below the prefix, it lists with the "/"
// delimiter and does not descend into the archives, so that archived objects
// (which only ever grow in number) are not listed by every poll; subtrees
// without archives are listed flat.
func (d *Driver) walk(ctx context.Context, prefix string, fn func([]*blob.ListObject)) error {
	delim := ""
	for _, a := range d.cfg.archivePrefixes() {
		if strings.HasPrefix(a, prefix) && strings.Contains(a[len(prefix):], "/") {
			delim = "/"
		}
	}
	opts := &blob.ListOptions{Prefix: prefix, Delimiter: delim}
	var dirs []string
	token := blob.FirstPageToken
	for {
		page, next, err := d.b.ListPage(ctx, token, d.cfg.ListPageSize, opts)
		if err != nil {
			return fmt.Errorf("list %s under %q: %w", d.cfg.URL, prefix, err)
		}
		objs := page[:0]
		for _, o := range page {
			if o.IsDir {
				if !d.cfg.isArchived(o.Key) {
					dirs = append(dirs, o.Key)
				}
				continue
			}
			objs = append(objs, o)
		}
		fn(objs)
		if len(next) == 0 {
			break
		}
		token = next
	}
	for _, dir := range dirs {
		if err := d.walk(ctx, dir, fn); err != nil {
			return err
		}
	}
	return nil
}

// recover finishes archive moves that a crash interrupted between the copy
// and the delete: an item that is also in an archive, with the same MD5 and
// an archive copy strictly newer than it, is the source of a finished copy,
// and is deleted (nothing is lost: the archive holds the same bytes). It
// runs once, after the first successful listing, because only a crash (or a
// delete that failed, which the ack reported) leaves such a pair; an
// identical object uploaded again after its archive copy is newer than the
// copy and stays.
func (d *Driver) recover(ctx context.Context) error {
	if d.idx.Len() == 0 || (d.cfg.OnDone != ActionMove && d.cfg.OnFailed != ActionMove) {
		return nil
	}
	var pairs []string // item names in both places
	for _, archive := range d.cfg.archivePrefixes() {
		opts := &blob.ListOptions{Prefix: archive}
		token := blob.FirstPageToken
		for {
			page, next, err := d.b.ListPage(ctx, token, d.cfg.ListPageSize, opts)
			if err != nil {
				return fmt.Errorf("list archive %q: %w", archive, err)
			}
			for _, o := range page {
				name := o.Key[len(archive):]
				cur, ok := d.idx.Get(name)
				if ok && len(o.MD5) > 0 && string(o.MD5) == cur.md5 && o.ModTime.UnixNano() > cur.mod {
					pairs = append(pairs, name)
				}
			}
			if len(next) == 0 {
				break
			}
			token = next
		}
	}
	var errs []error
	for _, name := range pairs {
		if err := d.finishMove(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finishMove deletes an item whose archive copy exists, after checking again
// (under the item's ack lock) that the item still has the archived bytes.
func (d *Driver) finishMove(ctx context.Context, name string) error {
	key, ok := d.keyOf(name)
	if !ok {
		return nil
	}
	mu := &d.locks[lockIndex(name)]
	mu.Lock()
	defer mu.Unlock()
	src, err := d.b.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil
		}
		return fmt.Errorf("read attributes of %s: %w", key, err)
	}
	for _, archive := range d.cfg.archivePrefixes() {
		dst, err := d.b.Attributes(ctx, archive+name)
		if err != nil {
			continue
		}
		if len(src.MD5) == 0 || string(src.MD5) != string(dst.MD5) || !dst.ModTime.After(src.ModTime) {
			continue
		}
		if err := d.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete %s (archived as %s): %w", key, archive+name, err)
		}
		d.forget(name)
		d.log.Warn("finished an archive move that was interrupted between copy and delete",
			"item", name, "archive", archive+name, "md5", md5Hex(string(src.MD5)))
		return nil
	}
	return nil
}
