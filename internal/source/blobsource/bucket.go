package blobsource

import (
	"context"

	"gocloud.dev/blob"
	// The providers BUCKET_URL can name.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"
)

// openBucket opens a bucket URL with gocloud's default URL mux.
//
// TODO(blobs): switch to internal/blobs.Open once it lands, so that mem://
// names one shared bucket per process, as it does for the executors.
var openBucket = func(ctx context.Context, url string) (*blob.Bucket, error) {
	return blob.OpenBucket(ctx, url)
}
