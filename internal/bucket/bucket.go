// Package bucket is itemq's one package for object storage: it opens
// gocloud.dev buckets by URL (s3://, gs://, azblob://, file://, mem://) in
// the calling process, and its Store does what an executor needs of them
// (download with a cap, exists, upload with a checksum, delete) with
// errors classified by Kind. The sources (internal/source/blobsource), the
// executors and the itemq command all use it.
//
// It differs from gocloud's default URL mux in two ways that matter to
// itemq:
//
//   - mem://NAME is one named in-memory bucket per process: every Open of the
//     same URL sees the same objects (gocloud's own mem:// opener returns a
//     fresh, empty bucket each time). Closing a bucket returned by Open does
//     not clear or close the shared one. mem:// without a name is the bucket
//     named "".
//   - file:// buckets do not write gocloud's ".attrs" sidecar files by
//     default (fileblob's metadata=skip), so a directory that receives
//     results holds just those results. Content types and metadata are then
//     not stored; add "metadata=" (empty) to the URL to get the sidecars back.
//     Temporary files are written next to the object (fileblob's
//     no_tmp_dir), so writes work when the directory is on another
//     filesystem than TMPDIR (a container's volume and its tmpfs).
//
// The cloud drivers are registered by small files guarded by build tags, so
// that a binary may leave some out: build with -tags itemq_no_s3,
// itemq_no_gcs or itemq_no_azure (file:// and mem:// are always there).
// Schemes says which a binary has.
//
// Object URLs (an item's data.url) are split with itemapi.SplitObjectURL.
package bucket

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/itemq/itemq/itemapi"
)

// Open opens the bucket at a gocloud.dev bucket URL. The caller closes it.
func Open(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	b, err := Mux().OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RedactURL(bucketURL), err)
	}
	return b, nil
}

// OpenObject opens the bucket holding the object at objectURL (see
// itemapi.SplitObjectURL) and returns it with the object's key.
func OpenObject(ctx context.Context, objectURL string) (*blob.Bucket, string, error) {
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return nil, "", err
	}
	b, err := Open(ctx, bucketURL)
	if err != nil {
		return nil, "", err
	}
	return b, key, nil
}

var (
	muxOnce sync.Once
	mux     *blob.URLMux
)

// Mux is the URL mux behind Open, for code that takes a *blob.URLMux. It
// serves mem:// and file:// as described in the package documentation and
// passes every other scheme registered on gocloud's default mux through.
func Mux() *blob.URLMux {
	muxOnce.Do(func() {
		mux = new(blob.URLMux)
		for _, s := range blob.DefaultURLMux().BucketSchemes() {
			switch s {
			case memblob.Scheme, fileblob.Scheme:
			default:
				mux.RegisterBucket(s, defaultOpener{})
			}
		}
		mux.RegisterBucket(memblob.Scheme, memOpener{})
		mux.RegisterBucket(fileblob.Scheme, fileOpener{})
	})
	return mux
}

type defaultOpener struct{}

func (defaultOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return blob.DefaultURLMux().OpenBucketURL(ctx, u)
}

type fileOpener struct{}

func (fileOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	// NoTempDir: write temporary files next to their final name, so that the
	// rename that completes a write never crosses filesystems (a bucket on a
	// volume, TMPDIR on a tmpfs: EXDEV). A write killed half-way leaves a
	// "*.tmp" file there; it is never mistaken for an object of the result,
	// which _SUCCESS.json lists.
	o := &fileblob.URLOpener{Options: fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true}}
	return o.OpenBucketURL(ctx, u)
}

// Schemes lists the bucket URL schemes this binary serves, sorted.
func Schemes() []string {
	s := Mux().BucketSchemes()
	slices.Sort(s)
	return s
}
