// Package dirsource is the directory driver of internal/source: the items
// are the regular files under a directory (local or NFS-mounted), named by
// their slash-separated path relative to it.
//
// The driver answers List, Get and Watch from an in-memory source.Index,
// never from a directory scan per request. The index is kept current by
// fsnotify (inotify) events and by a full rescan every DIR_POLL_INTERVAL,
// because inotify does not see what other NFS clients write. A file is
// listed only once its size and mtime have been stable for DIR_SETTLE, and
// hidden files, *.tmp and *.part are never listed, so that a half-written
// file is not served. Every file access goes through an os.Root, so no item
// name and no symlink can reach outside the directory.
//
// Acknowledged files are moved to DIR_DONE_DIR or DIR_FAILED_DIR by an
// atomic rename that keeps their relative path, deleted, or kept
// (DIR_ON_DONE). With DIR_SUBMIT=true, submissions are written as new JSON
// files, atomically (temporary file, fsync, rename).
package dirsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Open reads the DIR_* variables of environ and opens the directory's
// source. The driver's background work (initial scan, watching, rescans)
// ends when ctx ends or the source is closed. It is ambassador.OpenFunc.
func Open(ctx context.Context, environ []string, log *slog.Logger) (*source.Source, error) {
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		return nil, err
	}
	d, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return source.New(d, source.WithMaxSubmitBytes(cfg.MaxSubmitBytes)), nil
}

// fileInfo is what the index keeps per file: 16 bytes. Size and mtime are
// those seen when the file was listed, refreshed by fsnotify events (a
// rescan does not state files it knows; Get looks at the file itself). The
// sign bit of sizeMark is the mark of the last full scan that saw the file
// (see sweep).
type fileInfo struct {
	sizeMark int64
	mtime    int64 // Unix nanoseconds
}

const markBit = -1 << 63

func makeInfo(size, mtime int64, mark bool) fileInfo {
	if mark {
		size |= markBit
	}
	return fileInfo{sizeMark: size, mtime: mtime}
}

func (f fileInfo) size() int64  { return f.sizeMark &^ markBit }
func (f fileInfo) marked() bool { return f.sizeMark < 0 }

// pendingFile is a file seen but not yet settled.
type pendingFile struct {
	size, mtime int64
	since       time.Time // when this size and mtime were first seen
}

// rootRef is the open root directory and its identity (to notice that
// DIR_ROOT was removed or replaced).
type rootRef struct {
	r  *os.Root
	id os.FileInfo
}

// archive is where acknowledged files of one outcome go.
type archive struct {
	rel  string   // inside the root: the path relative to it
	root *os.Root // outside the root: the archive directory itself
	path string   // absolute path, for messages
}

// Driver is the directory driver. Create it with New (or Open).
type Driver struct {
	cfg       Config
	log       *slog.Logger
	path      string // the root's absolute, clean path
	bucketURL string // file:// URL of path
	idx       *source.Index[fileInfo]
	excluded  []string // archive directories inside the root, relative
	refused   *refusals
	done      *archive
	failed    *archive
	ref       atomic.Pointer[rootRef]

	// mu serialises every stat-and-apply of the index, so that a scan, an
	// event, an acknowledgement and a submission cannot undo each other.
	mu       sync.Mutex
	mark     bool                   // the current scan mark
	pending  map[string]pendingFile // files not yet settled
	oldRoots []*os.Root
	delSeq   atomic.Uint64 // counts index deletions (see applyScanned)

	watcher     *fsnotify.Watcher
	wmu         sync.Mutex
	watched     map[string]struct{} // directories with a watch, relative
	warnedLimit bool

	scanned    atomic.Bool
	scans      atomic.Uint64 // full scans done
	rescanReq  chan struct{}
	settleWake chan struct{}

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ source.Driver          = (*Driver)(nil)
	_ source.Watcher         = (*Driver)(nil)
	_ source.MetricsProvider = (*Driver)(nil)
	_ source.Submitter       = (*Driver)(nil)
	_ source.Acker           = (*Driver)(nil)
	_ source.ReadyChecker    = (*Driver)(nil)
	_ source.Counter         = (*Driver)(nil)
)

// New opens the directory and starts the background work: the initial scan
// (Ready fails until it is done), fsnotify watching, settling and periodic
// rescans. All of it ends when ctx ends or Close is called.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Driver, error) {
	if err := config.Invalid(cfg.validate()); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("DIR_ROOT=%q: %w", cfg.Root, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open DIR_ROOT: %w", err)
	}
	id, err := r.Stat(".")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open DIR_ROOT: %w", err)
	}
	d := &Driver{
		cfg:        cfg,
		log:        log.With("root", abs),
		path:       abs,
		bucketURL:  (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(),
		idx:        source.NewIndex[fileInfo](),
		pending:    make(map[string]pendingFile),
		watched:    make(map[string]struct{}),
		rescanReq:  make(chan struct{}, 1),
		settleWake: make(chan struct{}, 1),
		refused:    newRefusals(),
	}
	d.ref.Store(&rootRef{r: r, id: id})
	if err := d.setup(id); err != nil {
		d.closeRoots()
		return nil, err
	}
	if cfg.Watch {
		w, err := fsnotify.NewBufferedWatcher(4096)
		if err != nil {
			d.log.Warn("fsnotify is not available; changes are seen by the rescan every DIR_POLL_INTERVAL only", "err", err, "poll", cfg.PollInterval.String())
		} else {
			d.watcher = w
		}
	}
	d.log.Info("directory source", "pattern", cfg.Pattern, "recursive", cfg.Recursive, "data", cfg.Data,
		"watch", d.watcher != nil, "poll", cfg.PollInterval.String(), "settle", cfg.Settle.String(),
		"onDone", cfg.OnDone, "doneDir", archivePath(d.done), "failedDir", archivePath(d.failed), "submit", cfg.Submit)
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(2)
	go d.scanLoop(ctx)
	go d.settleLoop(ctx)
	if d.watcher != nil {
		d.wg.Add(1)
		go d.watchLoop(ctx)
	}
	return d, nil
}

func archivePath(ar *archive) string {
	if ar == nil {
		return ""
	}
	return ar.path
}

// setup opens the archive directories and the submission directory.
func (d *Driver) setup(rootID os.FileInfo) error {
	if d.cfg.OnDone == OnDoneMove {
		var err error
		if d.done, err = d.openArchive("DIR_DONE_DIR", d.cfg.DoneDir, rootID); err != nil {
			return err
		}
		if d.failed, err = d.openArchive("DIR_FAILED_DIR", d.cfg.FailedDir, rootID); err != nil {
			return err
		}
	}
	if d.cfg.Submit && d.cfg.SubmitSubdir != "" {
		sub := filepath.ToSlash(d.cfg.SubmitSubdir)
		for rest := sub; rest != "."; rest = path.Dir(rest) {
			if ignoredBase(path.Base(rest), true) {
				return fmt.Errorf("DIR_SUBMIT_SUBDIR=%q: hidden directories are not listed", d.cfg.SubmitSubdir)
			}
		}
		if d.inArchive(sub) {
			return fmt.Errorf("DIR_SUBMIT_SUBDIR=%q is inside an archive directory", d.cfg.SubmitSubdir)
		}
		if err := d.ref.Load().r.MkdirAll(sub, 0o777); err != nil {
			return fmt.Errorf("DIR_SUBMIT_SUBDIR: %w", err)
		}
	}
	return nil
}

func (d *Driver) openArchive(envName, dir string, rootID os.FileInfo) (*archive, error) {
	var rel, abs string
	if filepath.IsAbs(dir) {
		abs = filepath.Clean(dir)
		if r, err := filepath.Rel(d.path, abs); err == nil && filepath.IsLocal(r) {
			rel = filepath.ToSlash(r)
		}
	} else {
		if !filepath.IsLocal(dir) {
			return nil, fmt.Errorf("%s=%q: a relative path must stay inside DIR_ROOT", envName, dir)
		}
		rel = filepath.ToSlash(filepath.Clean(dir))
		abs = filepath.Join(d.path, rel)
	}
	if abs == d.path {
		return nil, fmt.Errorf("%s=%q is DIR_ROOT itself", envName, dir)
	}
	if rel != "" {
		d.excluded = append(d.excluded, rel)
		return &archive{rel: rel, path: abs}, nil
	}
	// Outside the root: it must be on the same filesystem, since moves are
	// atomic renames.
	if err := os.MkdirAll(abs, 0o777); err != nil {
		return nil, fmt.Errorf("%s: %w", envName, err)
	}
	ar, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envName, err)
	}
	st, err := ar.Stat(".")
	if err != nil {
		ar.Close()
		return nil, fmt.Errorf("%s: %w", envName, err)
	}
	if !sameDevice(st, rootID) {
		ar.Close()
		return nil, fmt.Errorf("%s=%q is on another filesystem than DIR_ROOT; acknowledged files are moved by an atomic rename, which needs the same filesystem", envName, dir)
	}
	if err := canRenameAcross(); err != nil {
		ar.Close()
		return nil, fmt.Errorf("%s=%q: %w", envName, dir, err)
	}
	return &archive{root: ar, path: abs}, nil
}

// Config returns the driver's configuration.
func (d *Driver) Config() Config { return d.cfg }

// Path is the root directory's absolute path.
func (d *Driver) Path() string { return d.path }

// List answers from the index.
func (d *Driver) List(_ context.Context, opts source.ListOptions) ([]string, string, error) {
	return d.idx.List(opts)
}

// Get answers from the index, then looks at that one file (a stat, or a
// read with DIR_DATA=json): a file that is gone is dropped from the index
// and is a NotFound.
func (d *Driver) Get(_ context.Context, name string) (json.RawMessage, error) {
	if err := d.checkName(name); err != nil {
		return nil, err
	}
	if _, ok := d.idx.Get(name); !ok {
		return nil, source.NotFound(name)
	}
	r := d.ref.Load().r
	if d.cfg.Data == DataJSON {
		return d.readJSON(r, name)
	}
	fi, err := r.Stat(name)
	if err != nil {
		return nil, d.accessError(r, name, err)
	}
	if !fi.Mode().IsRegular() {
		d.forget(r, name)
		return nil, source.Errorf(itemapi.ReasonNotFound, "item %q not found: it is no longer a regular file", name)
	}
	return d.fileData(name, fi.Size(), fi.ModTime())
}

// FileData is an item's data with DIR_DATA=file.
type FileData struct {
	Path    string    `json:"path"`
	URL     string    `json:"url"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

func (d *Driver) fileData(name string, size int64, mtime time.Time) (json.RawMessage, error) {
	u, err := itemapi.JoinObjectURL(d.bucketURL, name)
	if err != nil {
		return nil, source.Errorf(itemapi.ReasonInternal, "item %q: object URL: %v", name, err)
	}
	return json.Marshal(FileData{
		Path:    filepath.Join(d.path, filepath.FromSlash(name)),
		URL:     u,
		Size:    size,
		ModTime: mtime.UTC(),
	})
}

func (d *Driver) readJSON(r *os.Root, name string) (json.RawMessage, error) {
	// O_NONBLOCK: should the file have been replaced by a FIFO, opening it
	// must not block; it is refused below.
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, d.accessError(r, name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, source.Errorf(itemapi.ReasonInternal, "item %q cannot be read: %v", name, err)
	}
	if !fi.Mode().IsRegular() {
		d.forget(r, name)
		return nil, source.Errorf(itemapi.ReasonNotFound, "item %q not found: it is no longer a regular file", name)
	}
	max := d.cfg.MaxDataBytes
	if fi.Size() > max {
		return nil, source.Errorf(itemapi.ReasonTooLarge, "item %q: the file is %d bytes, more than DIR_MAX_DATA_BYTES=%d", name, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, source.Errorf(itemapi.ReasonInternal, "item %q cannot be read: %v", name, err)
	}
	if int64(len(b)) > max {
		return nil, source.Errorf(itemapi.ReasonTooLarge, "item %q: the file is more than DIR_MAX_DATA_BYTES=%d", name, max)
	}
	if !isJSONObject(b) {
		return nil, source.Errorf(itemapi.ReasonInternal, "item %q: the file is not a JSON object, which DIR_DATA=json needs", name)
	}
	return b, nil
}

func isJSONObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

// accessError turns the error of opening or stating an indexed file into
// the item's error: gone (or no longer an item, such as a symlink now
// pointing outside the root) is a NotFound and leaves the index; anything
// else (permissions, I/O) is an error of this item only.
func (d *Driver) accessError(r *os.Root, name string, err error) error {
	if notExist(err) {
		d.forget(r, name)
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: the file is gone", name)
	}
	if d.forget(r, name) {
		// For instance a symlink that now points outside the root.
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: it is no longer a regular file inside the directory", name)
	}
	if errors.Is(err, fs.ErrPermission) {
		return source.Errorf(itemapi.ReasonInternal, "item %q cannot be read: permission denied (%v)", name, err)
	}
	return source.Errorf(itemapi.ReasonInternal, "item %q cannot be read: %v", name, err)
}

// forget looks at name again and drops it from the index when it is no
// longer an item. It reports whether it did.
func (d *Driver) forget(r *os.Root, name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := classify(r, name)
	switch st.kind {
	case kMissing, kOther, kDir:
		d.forgetLocked(name)
		return true
	}
	return false
}

// Watch is the index's watch: the items, SYNCED, then changes.
func (d *Driver) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	return d.idx.Watch(ctx)
}

// Submit writes data as a new JSON file, atomically: a hidden temporary
// file in the same directory, fsync, rename, fsync of the directory. The
// file is in the index before Submit returns.
func (d *Driver) Submit(_ context.Context, data json.RawMessage) (string, error) {
	if !d.cfg.Submit {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "submit: this directory does not accept submissions (DIR_SUBMIT=false)")
	}
	r := d.ref.Load().r
	sub := filepath.ToSlash(d.cfg.SubmitSubdir)
	base := source.NewName(submitPrefix, submitSuffix)
	name := joinRel(sub, base)
	tmp := joinRel(sub, "."+base+".tmp")
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil && sub != "" && notExist(err) {
		// The submission directory was removed: make it again.
		if err = r.MkdirAll(sub, 0o777); err == nil {
			f, err = r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		}
	}
	if err != nil {
		return "", source.Errorf(itemapi.ReasonInternal, "submit: create %s: %v", tmp, err)
	}
	fi, err := writeSync(f, data)
	if err != nil {
		_ = r.Remove(tmp)
		return "", source.Errorf(itemapi.ReasonInternal, "submit: write %s: %v", tmp, err)
	}
	if err := r.Rename(tmp, name); err != nil {
		_ = r.Remove(tmp)
		return "", source.Errorf(itemapi.ReasonInternal, "submit: rename %s: %v", tmp, err)
	}
	syncDir(r, dirOrDot(sub))
	// Complete by construction: listed at once, whatever DIR_SETTLE says.
	d.mu.Lock()
	delete(d.pending, name)
	d.idx.Put(name, makeInfo(fi.Size(), fi.ModTime().UnixNano(), d.mark))
	d.mu.Unlock()
	return name, nil
}

func writeSync(f *os.File, data []byte) (os.FileInfo, error) {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return fi, err
}

// syncDir makes a rename in dir durable; filesystems that cannot sync a
// directory are not an error.
func syncDir(r *os.Root, dir string) {
	if f, err := r.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

// Ack archives a finished item as DIR_ON_DONE says; it leaves the index at
// once.
func (d *Driver) Ack(_ context.Context, name string, outcome itemapi.Outcome) error {
	if d.cfg.OnDone == OnDoneKeep {
		return source.Errorf(itemapi.ReasonMethodNotAllowed, "ack: this directory keeps finished files in place (DIR_ON_DONE=keep); the caller keeps its own record of finished items")
	}
	if err := d.checkName(name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.idx.Get(name); !ok {
		return source.NotFound(name)
	}
	r := d.ref.Load().r
	var err error
	var where string
	if d.cfg.OnDone == OnDoneDelete {
		where = "delete"
		err = r.Remove(name)
	} else {
		ar := d.done
		if outcome == itemapi.Failed {
			ar = d.failed
		}
		where = "move to " + ar.path
		var archived string
		archived, err = d.move(r, ar, name)
		if err == nil && archived != name {
			d.log.Warn("archived under a numbered name: the archive already holds a file of this name", "item", name, "archive", ar.path, "archivedAs", archived)
		}
	}
	if err != nil {
		if notExist(err) {
			if classify(r, name).kind != kFile {
				d.forgetLocked(name)
				return source.Errorf(itemapi.ReasonNotFound, "item %q not found: the file is gone", name)
			}
		}
		return source.Errorf(itemapi.ReasonInternal, "%s: %v", where, err)
	}
	d.forgetLocked(name)
	return nil
}

// maxArchiveCopies bounds the numbered names tried for one archived file.
const maxArchiveCopies = 10000

// move renames the file name to the same relative path under the archive,
// never over a file already there: when that path is taken (the same name
// was archived before), the file becomes <base>.1, <base>.2, … — the first
// free one. It returns the path it was archived under, relative to the
// archive.
func (d *Driver) move(r *os.Root, ar *archive, name string) (string, error) {
	dir, base := path.Split(name)
	dir = dirOrDot(strings.TrimSuffix(dir, "/"))
	to, dstDir := ar.root, dir
	if to == nil {
		to, dstDir = r, path.Join(ar.rel, dir)
	}
	if dstDir != "." {
		if err := to.MkdirAll(dstDir, 0o777); err != nil {
			return "", err
		}
	}
	src, err := r.Open(dir)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := to.Open(dstDir)
	if err != nil {
		return "", err
	}
	defer dst.Close()
	for i := 0; i < maxArchiveCopies; i++ {
		target := base
		if i > 0 {
			target = base + "." + strconv.Itoa(i)
		}
		err := renameNoReplace(src, dst, base, target)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return path.Join(dir, target), nil
	}
	return "", fmt.Errorf("archive %s: %s and %d numbered copies of it are taken", ar.path, name, maxArchiveCopies)
}

// Ready reports whether the root is (still) a readable directory, and the
// initial scan is done.
func (d *Driver) Ready(context.Context) error {
	ref := d.ref.Load()
	fi, err := os.Stat(d.path)
	if err != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "DIR_ROOT: %v", err)
	}
	if !fi.IsDir() {
		return source.Errorf(itemapi.ReasonUnavailable, "DIR_ROOT %s is not a directory", d.path)
	}
	if !os.SameFile(fi, ref.id) {
		d.requestRescan()
		return source.Errorf(itemapi.ReasonUnavailable, "DIR_ROOT %s was replaced by another directory; reopening it", d.path)
	}
	f, err := ref.r.Open(".")
	if err != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "DIR_ROOT %s: %v", d.path, err)
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && err != io.EOF {
		return source.Errorf(itemapi.ReasonUnavailable, "DIR_ROOT %s is not readable: %v", d.path, err)
	}
	if !d.scanned.Load() {
		return source.Errorf(itemapi.ReasonUnavailable, "the initial scan of %s is not done yet", d.path)
	}
	return nil
}

// Len is the number of listed files.
func (d *Driver) Len() int { return d.idx.Len() }

// ErrorReason classifies the errors the driver did not classify itself.
func (d *Driver) ErrorReason(err error) itemapi.Reason {
	if notExist(err) {
		return itemapi.ReasonNotFound
	}
	return itemapi.ReasonInternal
}

// Close stops the background work and ends every watch stream.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		if d.watcher != nil {
			_ = d.watcher.Close()
		}
		d.wg.Wait()
		d.idx.Close()
		d.closeRoots()
	})
	return nil
}

func (d *Driver) closeRoots() {
	if ref := d.ref.Load(); ref != nil {
		ref.r.Close()
	}
	d.mu.Lock()
	for _, r := range d.oldRoots {
		r.Close()
	}
	d.oldRoots = nil
	d.mu.Unlock()
	for _, ar := range []*archive{d.done, d.failed} {
		if ar != nil && ar.root != nil {
			ar.root.Close()
		}
	}
}

func (d *Driver) requestRescan() {
	select {
	case d.rescanReq <- struct{}{}:
	default:
	}
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
