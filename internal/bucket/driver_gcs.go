//go:build !itemq_no_gcs

package bucket

import _ "gocloud.dev/blob/gcsblob" // registers gs://; leave it out with -tags itemq_no_gcs
