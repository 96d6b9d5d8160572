// Errors of storage operations, classified by what a caller should do
// about them, and the redaction of secrets in URLs.

package bucket

import (
	"errors"
	"fmt"
	"net/url"
)

// Object is what Upload wrote.
type Object struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// Kind classifies a storage error.
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
