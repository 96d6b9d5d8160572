// Command initcost does nothing but link internal/blobs (gocloud.dev/blob
// and its s3, gcs, azure, file and mem drivers). The executor benchmark
// runs it to tell the start-up cost of those packages' initialisation from
// the executor's own work. It is not shipped.
package main

import _ "github.com/itemq/itemq/internal/blobs"

func main() {}
