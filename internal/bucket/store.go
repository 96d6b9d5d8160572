// Store: the operations of an executor run on the buckets it names.

package bucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/itemq/itemq/itemapi"
)

// DefaultStallTimeout ends a download that received nothing for this long.
const DefaultStallTimeout = 60 * time.Second

// Store reads and writes objects in buckets named by bucket URLs. It keeps
// each bucket it opens until Close. Each call is one attempt: callers retry
// Transient errors themselves. All methods are safe for concurrent use.
// Errors are *Error (see KindOf), or the context's error when ctx ended.
type Store struct {
	// StallTimeout ends a download that received nothing for this long
	// (a Transient error); 0 is DefaultStallTimeout.
	StallTimeout time.Duration

	mu      sync.Mutex
	buckets map[string]*blob.Bucket
	closed  bool
}

// NewStore returns a Store with no bucket open yet.
func NewStore() *Store { return &Store{buckets: map[string]*blob.Bucket{}} }

// Bucket opens the bucket at bucketURL, or returns the one already open.
// A URL gocloud refuses is a Permanent error.
func (s *Store) Bucket(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, Errorf(Permanent, "storage closed")
	}
	if b, ok := s.buckets[bucketURL]; ok {
		return b, nil
	}
	b, err := Open(ctx, withCreateDir(bucketURL))
	if err != nil {
		return nil, Classify(Permanent, err)
	}
	s.buckets[bucketURL] = b
	return b, nil
}

// withCreateDir makes a file:// bucket's directory on first use (an
// OUTPUT_URL of file:///results/run-7 need not exist beforehand), unless the
// URL says otherwise.
func withCreateDir(bucketURL string) string {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "file" {
		return bucketURL
	}
	q := u.Query()
	if _, set := q["create_dir"]; !set {
		q.Set("create_dir", "true")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Close closes every bucket the Store opened.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for u, b := range s.buckets {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close bucket %s: %w", RedactURL(u), err))
		}
		delete(s.buckets, u)
	}
	return errors.Join(errs...)
}

// Download writes the object at objectURL (an item's data.url, see
// itemapi.SplitObjectURL) to the local file, creating or truncating it, and
// returns the number of bytes written. An object larger than max bytes is a
// TooLarge error; a missing one NotFound; a download that receives nothing
// for StallTimeout a Transient error.
func (s *Store) Download(ctx context.Context, objectURL, file string, max int64) (int64, error) {
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return 0, Classify(Permanent, err)
	}
	local, isLocal := localFile(bucketURL, key)
	var b *blob.Bucket
	if !isLocal {
		if b, err = s.Bucket(ctx, bucketURL); err != nil {
			return 0, err
		}
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, Classify(Permanent, err) // the local disk: no retry helps
	}
	var n int64
	if isLocal {
		n, err = copyFile(ctx, local, f, max)
	} else {
		n, err = s.Get(ctx, b, key, f, max)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = Classify(Permanent, fmt.Errorf("write %s: %w", file, cerr))
	}
	return n, err
}

// localFile is the path of the file a file:// object URL names (its bucket
// is the file's directory, its key the base name), so that Download reads
// it directly: fileblob would escape a key with control characters (and
// look for another file), and fails on names of 250 bytes and more when it
// looks for their ".attrs" sidecar. Every file a directory source lists
// can be read this way.
func localFile(bucketURL, key string) (string, bool) {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "file" || u.Path == "" || key == "" || key == "." || key == ".." || strings.Contains(key, "/") {
		return "", false
	}
	return filepath.Join(filepath.FromSlash(u.Path), key), true
}

// copyFile copies the local file p to w: at most max bytes (else TooLarge).
func copyFile(ctx context.Context, p string, w io.Writer, max int64) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return 0, Errorf(NotFound, "open %s: %w", p, err)
		}
		return 0, Classify(Transient, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, Classify(Transient, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, Errorf(NotFound, "%s is not a regular file", p)
	}
	if fi.Size() > max {
		return 0, Errorf(TooLarge, "file %s is %d bytes, more than the limit of %d", p, fi.Size(), max)
	}
	limit := max
	if limit < math.MaxInt64 {
		limit++ // one byte more tells a file that grew past max
	}
	n, err := io.Copy(w, io.LimitReader(contextReader{ctx, f}, limit))
	switch {
	case err != nil && ctx.Err() != nil:
		return n, ctx.Err()
	case err != nil:
		return n, Classify(Transient, fmt.Errorf("read %s: %w", p, err))
	case n > max:
		return n, Errorf(TooLarge, "file %s is more than the limit of %d bytes", p, max)
	}
	return n, nil
}

// contextReader stops reading when ctx ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get copies the object key of b to w: at most max bytes (else TooLarge),
// a Transient error when nothing arrives for StallTimeout.
func (s *Store) Get(ctx context.Context, b *blob.Bucket, key string, w io.Writer, max int64) (int64, error) {
	stall := s.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	errStalled := fmt.Errorf("no data for %v", stall)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer t.Stop()

	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return 0, classify(err)
	}
	defer r.Close()
	if r.Size() > max {
		return 0, Errorf(TooLarge, "object %s is %d bytes, more than the limit of %d", key, r.Size(), max)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			t.Reset(stall)
			if n+int64(k) > max {
				return n, Errorf(TooLarge, "object %s is more than the limit of %d bytes", key, max)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return n, Errorf(Permanent, "write: %w", err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if context.Cause(ctx) == errStalled {
				return n, Errorf(Transient, "read %s: %w (%v)", key, rerr, errStalled)
			}
			return n, classify(fmt.Errorf("read %s: %w", key, rerr))
		}
	}
}

// Exists reports whether the object key exists in the bucket. On a file:// bucket, a file where a
// directory of the key would be means the object does not exist.
func (s *Store) Exists(ctx context.Context, bucketURL, key string) (bool, error) {
	b, err := s.Bucket(ctx, bucketURL)
	if err != nil {
		return false, err
	}
	ok, err := b.Exists(ctx, key)
	if errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	return ok, classify(err)
}

// Upload copies the local file to the object key in the bucket and returns
// the size and SHA-256 of what it uploaded; an empty contentType is chosen
// from the key's extension. Only a file in the way of a file://
// key (or a directory in the way of a file) is Permanent; every other
// failure is Transient.
func (s *Store) Upload(ctx context.Context, bucketURL, key, file, contentType string) (Object, error) {
	b, err := s.Bucket(ctx, bucketURL)
	if err != nil {
		return Object{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return Object{}, Classify(Transient, err)
	}
	defer f.Close()
	return Put(ctx, b, key, f, contentType)
}

// Put writes r to the object key of b and returns its size and SHA-256;
// an empty contentType is chosen from the key's extension. When ctx ends
// or r fails, the write is aborted and the object is not created.
func Put(ctx context.Context, b *blob.Bucket, key string, r io.Reader, contentType string) (Object, error) {
	if contentType == "" {
		contentType = mime.TypeByExtension(path.Ext(key))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return Object{}, uploadError(err)
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(r, h))
	if err != nil {
		cancel() // abort the write
		w.Close()
		return Object{}, uploadError(err)
	}
	if err := w.Close(); err != nil {
		return Object{}, uploadError(err)
	}
	return Object{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func uploadError(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		// file:// only: keys nest, and a file cannot also be a directory.
		return Errorf(Permanent, "%w (on a file:// bucket a file is in the way of the key's directory, or a directory in the way of a file)", err)
	}
	return Classify(Transient, err)
}

// Delete deletes the object key; a missing object is a NotFound error.
func (s *Store) Delete(ctx context.Context, bucketURL, key string) error {
	b, err := s.Bucket(ctx, bucketURL)
	if err != nil {
		return err
	}
	return classify(b.Delete(ctx, key))
}

// classify maps gocloud's error codes: NotFound, InvalidArgument
// (Permanent), everything else Transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return Classify(NotFound, err)
	case gcerrors.InvalidArgument:
		return Classify(Permanent, err)
	}
	return Classify(Transient, err)
}
