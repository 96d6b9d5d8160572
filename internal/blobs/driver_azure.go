//go:build !itemq_no_azure

package blobs

import _ "gocloud.dev/blob/azureblob" // registers its URL scheme
