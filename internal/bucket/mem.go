package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

var (
	memMu      sync.Mutex
	memBuckets = map[string]*blob.Bucket{}
)

// memOpener serves mem://NAME: one in-memory bucket per name and process.
type memOpener struct{}

func (memOpener) OpenBucketURL(_ context.Context, u *url.URL) (*blob.Bucket, error) {
	for param := range u.Query() {
		return nil, fmt.Errorf("open bucket %v: invalid query parameter %q", u, param)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("open bucket %v: a bucket URL has no path", u)
	}
	return Mem(u.Host), nil
}

// Mem returns a handle on the process-wide in-memory bucket named name (the
// bucket of mem://name), creating it empty on first use. Each call returns a
// new handle that the caller closes; the objects stay.
func Mem(name string) *blob.Bucket {
	memMu.Lock()
	shared, ok := memBuckets[name]
	if !ok {
		shared = memblob.OpenBucket(nil)
		memBuckets[name] = shared
	}
	memMu.Unlock()
	return blob.NewBucket(&sharedDriver{b: shared})
}

// DropMem forgets the in-memory bucket named name: the next Mem or Open of
// mem://name starts empty. Handles already open keep the old objects.
func DropMem(name string) {
	memMu.Lock()
	delete(memBuckets, name)
	memMu.Unlock()
}

// sharedDriver is a driver.Bucket over a *blob.Bucket that is never closed
// through it, so that many *blob.Bucket handles can share one memblob.
type sharedDriver struct{ b *blob.Bucket }

// codeError keeps the gcerrors code of an error from the shared bucket
// without repeating its "blob (key …)" prefix when blob wraps it again.
type codeError struct {
	code gcerrors.ErrorCode
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func wrap(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	inner := errors.Unwrap(err)
	if inner == nil {
		inner = err
	}
	return &codeError{code: gcerrors.Code(err), err: inner}
}

var errNoSignedURL = &codeError{code: gcerrors.Unimplemented, err: errors.New("mem buckets have no signed URLs")}

func (d *sharedDriver) ErrorCode(err error) gcerrors.ErrorCode {
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return gcerrors.Code(err)
}

func (d *sharedDriver) As(any) bool             { return false }
func (d *sharedDriver) ErrorAs(error, any) bool { return false }
func (d *sharedDriver) Close() error            { return nil }

func (d *sharedDriver) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := d.b.Attributes(ctx, key)
	if err != nil {
		return nil, wrap(err)
	}
	return &driver.Attributes{
		CacheControl:       a.CacheControl,
		ContentDisposition: a.ContentDisposition,
		ContentEncoding:    a.ContentEncoding,
		ContentLanguage:    a.ContentLanguage,
		ContentType:        a.ContentType,
		Metadata:           a.Metadata,
		CreateTime:         a.CreateTime,
		ModTime:            a.ModTime,
		Size:               a.Size,
		MD5:                a.MD5,
		ETag:               a.ETag,
	}, nil
}

func (d *sharedDriver) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if opts.BeforeList != nil {
		if err := opts.BeforeList(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	token := opts.PageToken
	if len(token) == 0 {
		token = blob.FirstPageToken
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := d.b.ListPage(ctx, token, size, &blob.ListOptions{Prefix: opts.Prefix, Delimiter: opts.Delimiter})
	if err != nil {
		return nil, wrap(err)
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir})
	}
	return page, nil
}

func (d *sharedDriver) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if opts != nil && opts.BeforeRead != nil {
		if err := opts.BeforeRead(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	r, err := d.b.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, wrap(err)
	}
	return &sharedReader{r: r}, nil
}

type sharedReader struct{ r *blob.Reader }

func (r *sharedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = wrap(err)
	}
	return n, err
}
func (r *sharedReader) Close() error { return wrap(r.r.Close()) }
func (r *sharedReader) As(any) bool  { return false }
func (r *sharedReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.r.ContentType(), ModTime: r.r.ModTime(), Size: r.r.Size()}
}

func (d *sharedDriver) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if opts.BeforeWrite != nil {
		if err := opts.BeforeWrite(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	w, err := d.b.NewWriter(ctx, key, &blob.WriterOptions{
		CacheControl:       opts.CacheControl,
		ContentDisposition: opts.ContentDisposition,
		ContentEncoding:    opts.ContentEncoding,
		ContentLanguage:    opts.ContentLanguage,
		ContentType:        contentType,
		ContentMD5:         opts.ContentMD5,
		Metadata:           opts.Metadata,
		IfNotExist:         opts.IfNotExist,
	})
	if err != nil {
		return nil, wrap(err)
	}
	return &sharedWriter{w: w}, nil
}

type sharedWriter struct{ w *blob.Writer }

func (w *sharedWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	return n, wrap(err)
}
func (w *sharedWriter) Close() error { return wrap(w.w.Close()) }

func (d *sharedDriver) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if opts != nil && opts.BeforeCopy != nil {
		if err := opts.BeforeCopy(func(any) bool { return false }); err != nil {
			return err
		}
	}
	return wrap(d.b.Copy(ctx, dstKey, srcKey, nil))
}

func (d *sharedDriver) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if opts != nil && opts.BeforeDelete != nil {
		if err := opts.BeforeDelete(func(any) bool { return false }); err != nil {
			return err
		}
	}
	return wrap(d.b.Delete(ctx, key))
}

func (d *sharedDriver) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", errNoSignedURL
}
