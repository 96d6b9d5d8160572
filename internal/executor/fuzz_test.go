package executor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

// FuzzReadItemFile: whatever a work item file holds, ReadItemFile returns
// a valid Item that reads back the same when written again (its data the
// same JSON value), or a permanent error on one line that names the file.
func FuzzReadItemFile(f *testing.F) {
	for _, s := range []string{
		`{"kind":"Item","apiVersion":"v1","name":"a","data":{"url":"file:///x"}}`,
		`{"kind":"Item","apiVersion":"v1","name":"a/b c","data":"text"}`,
		`{"kind":"Item","apiVersion":"v1","name":"","data":{}}`,
		`{"kind":"Item","apiVersion":"v2","name":"a","data":{}}`,
		`{"kind":"Item","apiVersion":"v1","name":"a","data":{}} {}`,
		`{"kind":"Item","apiVersion":"v1","name":"a\u0000b","data":{}}`,
		`[]`, `null`, ``, `{"kind":"Item"`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "item.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		it, n, err := ReadItemFile(p)
		if err != nil {
			if !IsPermanent(err) || strings.ContainsAny(err.Error(), "\n\r") || !strings.Contains(err.Error(), "work item file") {
				t.Fatalf("error %q: not permanent, not one line, or does not name the file", err)
			}
			return
		}
		if n != len(b) {
			t.Fatalf("read %d bytes of %d", n, len(b))
		}
		if err := it.Validate(); err != nil || itemapi.ValidateName(it.Name) != nil {
			t.Fatalf("accepted an invalid item %+v: %v", it, err)
		}
		again, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, again, 0o600); err != nil {
			t.Fatal(err)
		}
		// The same item: the same name and the same data (written again,
		// the JSON may be spelled otherwise: white space dropped, "<" and
		// ">" escaped).
		it2, _, err := ReadItemFile(p)
		if err != nil || it2.Name != it.Name || !reflect.DeepEqual(decode(t, it2.Data), decode(t, it.Data)) {
			t.Fatalf("%s read back as %+v, %v", again, it2, err)
		}
	})
}

func decode(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("data %q: %v", raw, err)
	}
	return v
}

// FuzzSafeFileName: whatever name or URL path an item gives its input, the
// local file name is one non-empty path segment of at most 200 safe bytes
// ([A-Za-z0-9._-]) that does not start with a dot (never ".", ".." or
// hidden), and a safe name stays as it is.
func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{"clips/a b.mp4", "..", "/", "x/.hidden", "é.mov", `a\b.mp4`, "", "a/", "...", "%2e%2e",
		strings.Repeat("a", 300) + ".mp4", strings.Repeat("b", 199) + "." + strings.Repeat("x", 30), "\x00.mp4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeFileName(in)
		if got == "" || len(got) > 200 || got[0] == '.' {
			t.Fatalf("SafeFileName(%q) = %q", in, got)
		}
		for i := 0; i < len(got); i++ {
			c := got[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("SafeFileName(%q) = %q: byte %q", in, got, c)
			}
		}
		if again := SafeFileName(got); again != got {
			t.Fatalf("SafeFileName(%q) = %q, then %q", in, got, again)
		}
	})
}
