//go:build !itemq_no_azure

package bucket

import _ "gocloud.dev/blob/azureblob" // registers azblob://; leave it out with -tags itemq_no_azure
