// Command itemq-bucket is the bucket ambassador: it serves the v1 item API
// over the objects of a bucket on S3 (or an S3-compatible server), Google
// Cloud Storage, Azure Blob Storage, a local directory or memory. See
// docs/bucket.md for its configuration.
package main

import (
	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source/blobsource"
)

func main() {
	ambassador.Main("itemq-bucket", blobsource.Open)
}
