package dirsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

var _ source.Redriver = (*Driver)(nil)

// Redrive puts a file of the failed archive back: the archive's name moves
// to name in the root by an atomic rename that never replaces a file
// (Conflict when the root holds name already), and the file is listed at
// once, whatever DIR_SETTLE says. Only DIR_ON_DONE=move keeps a failed
// archive. Older failures archived under a numbered name (name.1, …) stay
// where they are.
func (d *Driver) Redrive(ctx context.Context, name string) (string, error) {
	if d.failed == nil {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "redrive: this directory keeps no failed archive (DIR_ON_DONE=%s); only DIR_ON_DONE=move keeps failed files where redrive finds them", d.cfg.OnDone)
	}
	if err := d.checkName(name); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.ref.Load().r
	st, err := d.restore(r, d.failed, name)
	if err != nil {
		return "", err
	}
	delete(d.pending, name)
	d.idx.Put(name, makeInfo(st.size, st.mtime, d.mark))
	d.log.Info("redriven", "item", name, "from", d.failed.path)
	return name, nil
}

// restore renames the archive's file name back to name in the root and
// states it there. d.mu is held.
func (d *Driver) restore(r *os.Root, ar *archive, name string) (stat, error) {
	dir, base := path.Split(name)
	dir = dirOrDot(strings.TrimSuffix(dir, "/"))
	from, srcDir := ar.root, dir
	if from == nil {
		from, srcDir = r, path.Join(ar.rel, dir)
	}
	if st := classify(from, path.Join(srcDir, base)); st.kind != kFile {
		if st.kind == kError {
			return stat{}, source.Errorf(itemapi.ReasonInternal, "redrive: stat %s in %s: %v", name, ar.path, st.err)
		}
		return stat{}, source.Errorf(itemapi.ReasonNotFound, "redrive: the failed archive %s holds no file %q", ar.path, name)
	}
	if _, ok := d.idx.Get(name); ok {
		return stat{}, conflict(name)
	}
	if dir != "." {
		if err := r.MkdirAll(dir, 0o777); err != nil {
			return stat{}, source.Errorf(itemapi.ReasonInternal, "redrive: create %s: %v", dir, err)
		}
	}
	if err := renameBetween(from, r, srcDir, dir, base); err != nil {
		switch {
		case errors.Is(err, fs.ErrExist):
			return stat{}, conflict(name)
		case notExist(err):
			return stat{}, source.Errorf(itemapi.ReasonNotFound, "redrive: the failed archive %s holds no file %q", ar.path, name)
		}
		return stat{}, source.Errorf(itemapi.ReasonInternal, "redrive: move %s from %s back: %v", name, ar.path, err)
	}
	st := classify(r, name)
	if st.kind != kFile {
		return stat{}, source.Errorf(itemapi.ReasonInternal, "redrive: %s moved back but cannot be stated: %v", name, st.err)
	}
	return st, nil
}

func conflict(name string) error {
	return source.Errorf(itemapi.ReasonConflict, "redrive: the directory already holds a file %q; move or remove it first", name)
}

// renameBetween renames srcDir/base under from to dstDir/base under to,
// never replacing a file.
func renameBetween(from, to *os.Root, srcDir, dstDir, base string) error {
	src, err := from.Open(srcDir)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := to.Open(dstDir)
	if err != nil {
		return err
	}
	defer dst.Close()
	return renameNoReplace(src, dst, base, base)
}
