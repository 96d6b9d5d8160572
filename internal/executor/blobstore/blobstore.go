// Package blobstore is the in-process storage.Storage: gocloud.dev buckets
// opened with internal/blobs. The itemq-blob helper serves it to the
// executors (which do not link the cloud SDKs themselves), and in-process
// tests use it directly (mem:// buckets exist only inside one process).
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/itemq/itemq/internal/blobs"
	"github.com/itemq/itemq/internal/executor/storage"
	"github.com/itemq/itemq/itemapi"
)

// DefaultStallTimeout ends a download that received nothing for this long.
const DefaultStallTimeout = 60 * time.Second

// Store is a storage.Storage over gocloud.dev. It keeps each bucket it
// opens until Close.
type Store struct {
	// StallTimeout ends a download that received nothing for this long
	// (a Transient error); 0 is DefaultStallTimeout.
	StallTimeout time.Duration

	mu      sync.Mutex
	buckets map[string]*blob.Bucket
	closed  bool
}

var _ storage.Storage = (*Store)(nil)

// New returns a Store with no bucket open yet.
func New() *Store { return &Store{buckets: map[string]*blob.Bucket{}} }

// Bucket opens the bucket at bucketURL, or returns the one already open.
// A URL gocloud refuses is a Permanent error.
func (s *Store) Bucket(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, storage.Errorf(storage.Permanent, "storage closed")
	}
	if b, ok := s.buckets[bucketURL]; ok {
		return b, nil
	}
	b, err := blobs.Open(ctx, withCreateDir(bucketURL))
	if err != nil {
		return nil, storage.Classify(storage.Permanent, err)
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
			errs = append(errs, fmt.Errorf("close bucket %s: %w", storage.RedactURL(u), err))
		}
		delete(s.buckets, u)
	}
	return errors.Join(errs...)
}

// Download implements storage.Storage.
func (s *Store) Download(ctx context.Context, objectURL, file string, max int64) (int64, error) {
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return 0, storage.Classify(storage.Permanent, err)
	}
	b, err := s.Bucket(ctx, bucketURL)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, storage.Classify(storage.Permanent, err) // the local disk: no retry helps
	}
	n, err := s.Get(ctx, b, key, f, max)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = storage.Classify(storage.Permanent, fmt.Errorf("write %s: %w", file, cerr))
	}
	return n, err
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
		return 0, storage.Errorf(storage.TooLarge, "object %s is %d bytes, more than the limit of %d", key, r.Size(), max)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			t.Reset(stall)
			if n+int64(k) > max {
				return n, storage.Errorf(storage.TooLarge, "object %s is more than the limit of %d bytes", key, max)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return n, storage.Errorf(storage.Permanent, "write: %w", err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if context.Cause(ctx) == errStalled {
				return n, storage.Errorf(storage.Transient, "read %s: %w (%v)", key, rerr, errStalled)
			}
			return n, classify(fmt.Errorf("read %s: %w", key, rerr))
		}
	}
}

// Exists implements storage.Storage. On a file:// bucket, a file where a
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

// Upload implements storage.Storage. Only a file in the way of a file://
// key (or a directory in the way of a file) is Permanent; every other
// failure is Transient.
func (s *Store) Upload(ctx context.Context, bucketURL, key, file, contentType string) (storage.Object, error) {
	b, err := s.Bucket(ctx, bucketURL)
	if err != nil {
		return storage.Object{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return storage.Object{}, storage.Classify(storage.Transient, err)
	}
	defer f.Close()
	return Put(ctx, b, key, f, contentType)
}

// Put writes r to the object key of b and returns its size and SHA-256;
// an empty contentType is chosen from the key's extension. When ctx ends
// or r fails, the write is aborted and the object is not created.
func Put(ctx context.Context, b *blob.Bucket, key string, r io.Reader, contentType string) (storage.Object, error) {
	if contentType == "" {
		contentType = mime.TypeByExtension(path.Ext(key))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return storage.Object{}, uploadError(err)
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(r, h))
	if err != nil {
		cancel() // abort the write
		w.Close()
		return storage.Object{}, uploadError(err)
	}
	if err := w.Close(); err != nil {
		return storage.Object{}, uploadError(err)
	}
	return storage.Object{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func uploadError(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		// file:// only: keys nest, and a file cannot also be a directory.
		return storage.Errorf(storage.Permanent, "%w (on a file:// bucket a file is in the way of the key's directory, or a directory in the way of a file)", err)
	}
	return storage.Classify(storage.Transient, err)
}

// Delete implements storage.Storage.
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
		return storage.Classify(storage.NotFound, err)
	case gcerrors.InvalidArgument:
		return storage.Classify(storage.Permanent, err)
	}
	return storage.Classify(storage.Transient, err)
}
