package blobsource

import (
	"context"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/blobs"
)

// openBucket opens BUCKET_URL the way every itemq binary opens bucket URLs
// (internal/blobs): mem://NAME is one shared bucket per process, file://
// writes no .attrs sidecars unless the URL asks for them.
var openBucket = func(ctx context.Context, url string) (*blob.Bucket, error) {
	return blobs.Open(ctx, url)
}
