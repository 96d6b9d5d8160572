package blobsource

import (
	"context"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/bucket"
)

// openBucket opens BUCKET_URL the way every itemq binary opens bucket URLs
// (internal/bucket): mem://NAME is one shared bucket per process, file://
// writes no .attrs sidecars unless the URL asks for them.
var openBucket = func(ctx context.Context, url string) (*blob.Bucket, error) {
	return bucket.Open(ctx, url)
}
