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
//   - every other byte is %XX (upper-case hex), "%" included.
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
	return b.String()
}

// KeyToName reverses ItemKey.
func KeyToName(key string) (string, error) {
	name, err := url.PathUnescape(key)
	if err != nil {
		return "", fmt.Errorf("item key %q: %w", key, err)
	}
	return name, nil
}

func keySafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
