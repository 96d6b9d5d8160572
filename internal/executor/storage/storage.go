// Package storage is what an executor needs of object storage, with no
// cloud SDK behind it: the Storage interface, the classification of its
// errors, and the redaction of secrets in bucket and object URLs.
//
// Two implementations exist: blobstore (gocloud.dev in the same process,
// used by the itemq-blob helper binary and by in-process tests) and
// blobclient (the itemq-blob helper as a child process, used by the
// executor binaries so that they do not link the cloud SDKs).
package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// Storage reads and writes objects in buckets named by gocloud.dev bucket
// URLs (s3://, gs://, azblob://, file://, mem://). Each call is one
// attempt: callers retry Transient errors themselves. All methods are safe
// for concurrent use. Errors are *Error (see KindOf), or the context's
// error when ctx ended.
type Storage interface {
	// Download writes the object at objectURL (an item's data.url, see
	// itemapi.SplitObjectURL) to the local file, creating or truncating
	// it, and returns the number of bytes written. An object larger than
	// max bytes is a TooLarge error; a missing one NotFound; a download
	// that receives nothing for a minute a Transient error.
	Download(ctx context.Context, objectURL, file string, max int64) (int64, error)
	// Exists reports whether the object key exists in the bucket.
	Exists(ctx context.Context, bucketURL, key string) (bool, error)
	// Upload copies the local file to the object key in the bucket and
	// returns the size and SHA-256 of what it uploaded. An empty
	// contentType is chosen from the key's extension.
	Upload(ctx context.Context, bucketURL, key, file, contentType string) (Object, error)
	// Delete deletes the object key; a missing object is a NotFound error.
	Delete(ctx context.Context, bucketURL, key string) error
	// Close releases what the Storage holds (open buckets, a helper
	// process). The Storage is not used after Close.
	Close() error
}

// Object is what Upload wrote.
type Object struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Kind classifies a storage error. Its values are the strings of the
// itemq-blob protocol.
type Kind string

const (
	// Transient: a timeout, a 5xx, a reset connection; trying again may work.
	Transient Kind = "transient"
	// NotFound: no such object.
	NotFound Kind = "not_found"
	// TooLarge: the object is larger than Download's max.
	TooLarge Kind = "too_large"
	// Permanent: the request itself is wrong (an unusable URL, an invalid
	// argument, a file in the way of a file:// key); trying again will not
	// help.
	Permanent Kind = "permanent"
	// Unavailable: the storage cannot be used at all (no itemq-blob
	// helper, or one that does not speak the protocol). Not the item's
	// fault, and retrying within the run does not help.
	Unavailable Kind = "unavailable"
)

// Error is a classified storage error.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the kind with a formatted message (%w
// wraps).
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// Classify wraps err as an *Error of the kind; nil stays nil, and an
// error that already is an *Error keeps its kind.
func Classify(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Kind: kind, Err: err}
}

// KindOf is the kind of the *Error in err's chain; Transient when there is
// none (a context error, an unclassified failure).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Transient
}

// RedactURL returns a URL for logs and errors: userinfo and query values
// that look like secrets (signatures, tokens, passwords, SAS fields) are
// replaced by "REDACTED".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			switch k {
			case "sig", "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
				"token", "access_token", "secret", "key", "password", "sv", "se", "sp":
				q.Set(k, "REDACTED")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
