package executor

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInputPolicy(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A link inside the allowed tree to a file outside it.
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(data, "in", "link")); err != nil {
		t.Fatal(err)
	}
	// A link to the allowed tree is an allowed prefix's other name.
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink(data, alias); err != nil {
		t.Fatal(err)
	}
	p, err := parseInputAllow(data + "/in, s3://media/videos/?region=eu-west-1,https://cdn.example.com/pub,gs://b")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"file://" + data + "/in/a.mp4", true},
		{"file://" + data + "/in", true},
		{"file://" + data + "/in/sub/b.mp4", true},
		{"file://" + data + "/in/../x", false},
		{"file://" + data + "/in/%2e%2e/x", false},
		{"file://" + data + "/inx", false},
		{"file://" + data + "/in/link", false},
		{"file:///etc/shadow", false},
		{"file:///proc/self/environ", false},
		{"file://" + alias + "/in/a.mp4", false}, // the prefix names data/in, not alias/in
		{"s3://media/videos/a.mp4?region=eu-west-1", true},
		{"s3://media/videos/a.mp4", false},                                            // other parameters: another place
		{"s3://media/videos/a.mp4?region=eu-west-1&endpoint=http://127.0.0.1", false}, // a server of the submitter's choice
		{"s3://media/other/a.mp4?region=eu-west-1", false},
		{"s3://MEDIA/videos/a.mp4?region=eu-west-1", true},
		{"gs://b/any/key", true},
		{"gs://c/any/key", false},
		{"https://cdn.example.com/pub/a.mp4?sig=1", true},
		{"https://cdn.example.com/pub", true},
		{"https://cdn.example.com/public/a.mp4", false},
		{"http://cdn.example.com/pub/a.mp4", false},
		{"https://cdn.example.com:8443/pub/a.mp4", false},
		{"http://127.0.0.1:8081/v1/items", false},
		{"http://169.254.169.254/latest/meta-data/", false},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		err = p.allowURL(u)
		if (err == nil) != c.ok {
			t.Errorf("%s: allowed %v, want %v (%v)", c.url, err == nil, c.ok, err)
		}
		if err != nil && (!IsPermanent(err) || !strings.Contains(err.Error(), InputAllowEnv)) {
			t.Errorf("%s: the refusal is not permanent or does not name the setting: %v", c.url, err)
		}
	}
	// An alias of the allowed directory, as a prefix, allows the real tree.
	pa, err := parseInputAllow(alias)
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.allowPath(data + "/in/a.mp4"); err != nil {
		t.Errorf("the real path under an aliased prefix: %v", err)
	}
	// Empty: nothing; "*": anything.
	none, _ := parseInputAllow("")
	if err := none.allowPath(data + "/in/a.mp4"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty policy: %v", err)
	}
	all, _ := parseInputAllow("*")
	if err := all.allowPath("/etc/shadow"); err != nil {
		t.Errorf("*: %v", err)
	}
	for _, bad := range []string{"ftp://x/", "file://relative", "https://", "https://h/?q=1", "s3:///k", "::"} {
		if _, err := parseInputAllow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
