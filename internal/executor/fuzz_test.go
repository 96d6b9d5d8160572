package executor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

// FuzzReadItemFile: whatever a work item file holds, ReadItemFile returns
// a valid Item that reads back the same when written again, or a permanent
// error on one line that names the file.
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
		it2, _, err := ReadItemFile(p)
		if err != nil || it2.Name != it.Name || string(it2.Data) != string(it.Data) {
			t.Fatalf("%s read back as %+v, %v", again, it2, err)
		}
	})
}
