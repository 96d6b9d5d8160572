package httpapi

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/itemq/itemq/itemapi"
)

// Query parses a request's query string strictly: a malformed escape such
// as %zz is a BadRequest Status naming the parameter, where
// url.URL.Query would silently drop the pair (so ?continue=%zz would read
// as "no token", and ?outcome=%zz as the default outcome).
func Query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "query %q: %v", shorten(r.URL.RawQuery), err)
	}
	return q, nil
}

// PathName reads an item name from the escaped path of r after prefix
// (e.g. "/v1/items/"): path-unescaped, so %2F is a "/" inside the name, and
// checked with itemapi.ValidateName. Errors are BadRequest Status documents.
func PathName(r *http.Request, prefix string) (string, error) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		return "", itemapi.NewStatus(itemapi.ReasonNotFound, "no such route")
	}
	name, err := url.PathUnescape(rest)
	if err != nil {
		return "", itemapi.NewStatus(itemapi.ReasonBadRequest, "item name %q: bad escaping: %v", shorten(rest), err)
	}
	if err := itemapi.ValidateName(name); err != nil {
		return "", itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
	}
	return name, nil
}

// ReadBody reads a request body of at most limit bytes. A body over the
// limit (by its Content-Length, before reading anything, or as it is read)
// is a TooLarge Status; a body that cannot be read (the client went, or
// the server's read timeout passed) a BadRequest.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, itemapi.NewStatus(itemapi.ReasonTooLarge, "body is %d bytes, more than the limit of %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, itemapi.NewStatus(itemapi.ReasonTooLarge, "body is more than the limit of %d bytes", limit)
	case err != nil:
		return nil, itemapi.NewStatus(itemapi.ReasonBadRequest, "read body: %v", err)
	}
	return b, nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 7235 §2.1: "bearer" and
// "BEARER" are "Bearer"), and spaces around the token are not part of it.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// RequireBearer checks that r carries the bearer token want (compared in
// constant time). It returns nil when want is empty (no token configured),
// else an Unauthorized Status when the token is missing or wrong; the
// ErrorHandler adds the WWW-Authenticate header.
func RequireBearer(r *http.Request, want string) error {
	if want == "" {
		return nil
	}
	got, ok := BearerToken(r)
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return itemapi.NewStatus(itemapi.ReasonUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
