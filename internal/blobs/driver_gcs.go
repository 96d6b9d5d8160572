//go:build !itemq_no_gcs

package blobs

import _ "gocloud.dev/blob/gcsblob" // registers its URL scheme
