//go:build !itemq_no_s3

package blobs

import _ "gocloud.dev/blob/s3blob" // registers its URL scheme
