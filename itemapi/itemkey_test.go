package itemapi_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/itemq/itemq/itemapi"
)

func TestItemKeyReadable(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"clip-001.mp4", "clip-001.mp4"},
		{"videos/2024/a_b.MP4", "videos/2024/a_b.MP4"},
		{"a b", "a%20b"},
		{"100%", "100%25"},
		{"a/../b", "a/%2E%2E/b"},
		{"./a", "%2E/a"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
		{".hidden", ".hidden"},
		{"a//b", "a%2F%2Fb"},
		{"/abs", "%2Fabs"},
		{"dir/", "dir%2F"},
		{"/", "%2F"},
		{"é", "%C3%A9"},
		{"a?b#c", "a%3Fb%23c"},
		{`a\b`, "a%5Cb"},
		{"a%2Fb", "a%252Fb"},
	} {
		if got := itemapi.ItemKey(tc.name); got != tc.key {
			t.Errorf("ItemKey(%q) = %q, want %q", tc.name, got, tc.key)
		}
		back, err := itemapi.KeyToName(tc.key)
		if err != nil || back != tc.name {
			t.Errorf("KeyToName(%q) = %q, %v; want %q", tc.key, back, err, tc.name)
		}
	}
}

// Segments of a long name are cut so that each is a valid file name, never
// inside an escape, and the name comes back whole.
func TestItemKeyLongSegments(t *testing.T) {
	a255 := strings.Repeat("a", 255)
	if got := itemapi.ItemKey("d/" + a255); got != "d/"+a255 {
		t.Errorf("a 255-byte segment of safe bytes was changed: %q", got)
	}
	if got := itemapi.ItemKey(strings.Repeat("a", 256)); got != strings.Repeat("a", 254)+"%/aa" {
		t.Errorf("ItemKey(256×a) = %q", got)
	}
	for _, name := range []string{
		strings.Repeat(" ", 255), strings.Repeat("é", 127), strings.Repeat("a", 254) + "..", strings.Repeat("a", 255) + ".",
		strings.Repeat("ab ", 85), "x/" + strings.Repeat("\x01", 255) + "/y", strings.Repeat("a", 253) + " b", strings.Repeat("a", 252) + " b",
		strings.Repeat("%", 1000),
	} {
		checkKey(t, name, itemapi.ItemKey(name))
	}
}

func TestKeyToNameRejectsBadEscapes(t *testing.T) {
	if _, err := itemapi.KeyToName("a%zz"); err == nil {
		t.Fatal("KeyToName accepted a bad escape")
	}
}

// checkKey asserts the properties every item key has.
func checkKey(t *testing.T, name, key string) {
	t.Helper()
	back, err := itemapi.KeyToName(key)
	if err != nil || back != name {
		t.Fatalf("KeyToName(ItemKey(%q)) = %q, %v", name, back, err)
	}
	if key == "" {
		t.Fatalf("ItemKey(%q) is empty", name)
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		t.Fatalf("ItemKey(%q) = %q starts or ends with /", name, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > itemapi.MaxKeySegment {
			t.Fatalf("ItemKey(%q) = %q has segment %q", name, key, seg)
		}
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-/%", c) >= 0) {
			t.Fatalf("ItemKey(%q) = %q holds byte %q", name, key, c)
		}
	}
}

func FuzzItemKey(f *testing.F) {
	for _, s := range []string{strings.Repeat("a ", 200), strings.Repeat("a", 254) + "..", "a", "a/b", "a//b", "/", "//", ".", "..", "./..", "a/./b", "%", "%2F", "a b", "é/ü", "x/", "/x", "...", "\xff", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return // not a valid name; ItemKey("") is "" and that is fine
		}
		checkKey(t, name, itemapi.ItemKey(name))
	})
}

// TestItemKeyCollisionFree checks that distinct names give distinct keys
// over a set of names built to collide if escaping were lossy.
func TestItemKeyCollisionFree(t *testing.T) {
	parts := []string{"", "a", ".", "..", "/", "%", "%2F", "%2E", "2F", " ", "é"}
	seen := map[string]string{}
	var names []string
	for _, a := range parts {
		for _, b := range parts {
			for _, c := range parts {
				names = append(names, a+b+c, a+"/"+b+"/"+c)
			}
		}
	}
	for _, n := range names {
		if n == "" || !utf8.ValidString(n) {
			continue
		}
		k := itemapi.ItemKey(n)
		checkKey(t, n, k)
		if other, ok := seen[k]; ok && other != n {
			t.Fatalf("ItemKey(%q) == ItemKey(%q) == %q", n, other, k)
		}
		seen[k] = n
	}
}
