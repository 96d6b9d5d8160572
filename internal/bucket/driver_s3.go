//go:build !itemq_no_s3

package bucket

import _ "gocloud.dev/blob/s3blob" // registers s3://; leave it out with -tags itemq_no_s3
