package dirsource

import (
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

// FuzzCheckName: a name the directory driver accepts is a clean, local,
// slash-separated path that the API can serve, outside the archives, and
// the scan's own test (eligibleFile) agrees with the API's (checkName).
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"a", "a/b.json", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", ".done/x", ".done", "sub/.x", "x.tmp", "x.part",
		"a/", "\xff", "a\x00b", ".", "..", "done/x", "ü/ß.json", "C:\\x", strings.Repeat("a/", 600)} {
		f.Add(s)
	}
	d := &Driver{cfg: Config{Pattern: "*", Recursive: true}, excluded: []string{".done", "archive/bad"}, refused: newRefusals()}
	d.log = slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, name string) {
		err := d.checkName(name)
		if err != nil {
			if r := itemapi.ReasonOf(err); r != itemapi.ReasonBadRequest && r != itemapi.ReasonNotFound {
				t.Fatalf("checkName(%q): %v has reason %q", name, err, r)
			}
			return
		}
		if itemapi.ValidateName(name) != nil || strings.ContainsRune(name, '\\') {
			t.Fatalf("checkName accepted %q, which the API cannot serve", name)
		}
		if !filepath.IsLocal(name) || path.Clean(name) != name || strings.HasPrefix(name, "/") {
			t.Fatalf("checkName accepted %q, not a clean local path", name)
		}
		if d.inArchive(name) {
			t.Fatalf("checkName accepted %q, inside an archive", name)
		}
		for _, seg := range strings.Split(name, "/") {
			if ignoredBase(seg, false) && seg != path.Base(name) || seg == "" || seg[0] == '.' {
				t.Fatalf("checkName accepted %q with the segment %q", name, seg)
			}
		}
		if !d.eligibleFile(name, path.Base(name)) {
			t.Fatalf("checkName accepts %q but the scan would not list it", name)
		}
	})
}
