package itemapi

import (
	"fmt"
	"net/url"
	"strings"
)

// ItemKey turns an item name into the key under which its results are stored
// (OUTPUT_URL/<item key>/). It is readable for ordinary names, safe as an
// object key and as a relative file path, and collision-free (it is
// reversible with KeyToName):
//
//   - bytes in A-Z a-z 0-9 . _ - are kept;
//   - "/" is kept when it separates two non-empty segments, else it is %2F
//     (so "a//b", "/a" and "a/" cannot collapse into "a/b" or "a");
//   - a segment that is exactly "." or ".." becomes %2E or %2E%2E;
//   - every other byte is %XX (upper-case hex), "%" included;
//   - a segment longer than MaxKeySegment bytes (a file name of 255 bytes
//     becomes up to 765 with escapes) is cut into pieces of at most
//     MaxKeySegment bytes, each but the last ending in a bare "%" (the only
//     "%" not followed by two hex digits) before the "/": so every segment
//     is a valid file name on common filesystems (file:// OUTPUT_URLs).
func ItemKey(name string) string {
	var b strings.Builder
	b.Grow(len(name) + len(name)/4)
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		if i > 0 {
			// A separator survives only between two non-empty segments.
			if segs[i-1] != "" && seg != "" {
				b.WriteByte('/')
			} else {
				b.WriteString("%2F")
			}
		}
		if seg == "." || seg == ".." {
			b.WriteString(strings.Repeat("%2E", len(seg)))
			continue
		}
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if keySafe(c) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	key := b.String()
	if len(key) <= MaxKeySegment {
		return key
	}
	var cut strings.Builder
	for i, seg := range strings.Split(key, "/") {
		if i > 0 {
			cut.WriteByte('/')
		}
		writeCut(&cut, seg)
	}
	return cut.String()
}

// MaxKeySegment is the longest segment (between two "/") of an item key:
// the longest file name of common filesystems.
const MaxKeySegment = 255

// writeCut writes an encoded segment, cut into pieces of at most
// MaxKeySegment bytes joined by "%/" when it is longer, never inside a %XX
// escape. A last piece "." or ".." is written %2E or %2E%2E.
func writeCut(b *strings.Builder, enc string) {
	for len(enc) > MaxKeySegment {
		cut := MaxKeySegment - 1 // room for the "%"
		if enc[cut-1] == '%' {
			cut--
		} else if enc[cut-2] == '%' {
			cut -= 2
		}
		b.WriteString(enc[:cut])
		b.WriteString("%/")
		enc = enc[cut:]
	}
	if enc == "." || enc == ".." {
		enc = strings.Repeat("%2E", len(enc))
	}
	b.WriteString(enc)
}

// KeyToName reverses ItemKey.
func KeyToName(key string) (string, error) {
	name, err := url.PathUnescape(strings.ReplaceAll(key, "%/", ""))
	if err != nil {
		return "", fmt.Errorf("item key %q: %w", key, err)
	}
	return name, nil
}

func keySafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
