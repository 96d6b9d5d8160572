package itemapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxNameBytes is the longest item name, in bytes.
const MaxNameBytes = 1024

// ValidateName checks the rules every item name follows: non-empty, at most
// MaxNameBytes bytes, valid UTF-8, no NUL. Sources may add rules of their own.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("item name is empty")
	case len(name) > MaxNameBytes:
		return fmt.Errorf("item name is %d bytes, longer than %d", len(name), MaxNameBytes)
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("item name contains NUL")
	case !utf8.ValidString(name):
		return errors.New("item name is not valid UTF-8")
	}
	return nil
}

// EscapeName path-escapes a name for use as one URL path segment: a "/"
// inside the name becomes %2F, and the names "." and ".." become %2E and
// %2E%2E (clients and proxies would otherwise resolve them as dot segments).
func EscapeName(name string) string {
	switch name {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(name)
}

// ItemPath is the URL path of one item: /v1/items/{escaped name}.
func ItemPath(name string) string {
	return "/v1/items/" + EscapeName(name)
}
