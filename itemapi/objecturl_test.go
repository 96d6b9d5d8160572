package itemapi_test

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

func TestSplitObjectURL(t *testing.T) {
	for _, tc := range []struct{ url, bucket, key string }{
		{"s3://in/clips/a.mp4", "s3://in", "clips/a.mp4"},
		{"s3://in/clips/a.mp4?endpoint=http://127.0.0.1:9000&use_path_style=true", "s3://in?endpoint=http://127.0.0.1:9000&use_path_style=true", "clips/a.mp4"},
		{"gs://bkt/a%20b/c%25d%23e%3Ff.txt", "gs://bkt", "a b/c%d#e?f.txt"},
		{"azblob://ctr/x/y/z.bin?protocol=http&domain=localhost:10000", "azblob://ctr?protocol=http&domain=localhost:10000", "x/y/z.bin"},
		{"mem:///k", "mem://", "k"},
		{"mem://named/dir/k", "mem://named", "dir/k"},
		{"file:///data/in/a.mp4", "file:///data/in", "a.mp4"},
		{"file:///a.mp4", "file:///", "a.mp4"},
		{"file:///data/my%20videos/100%25%20done%23%3F.mp4", "file:///data/my%20videos", "100% done#?.mp4"},
	} {
		b, k, err := itemapi.SplitObjectURL(tc.url)
		if err != nil || b != tc.bucket || k != tc.key {
			t.Errorf("SplitObjectURL(%q) = %q, %q, %v; want %q, %q", tc.url, b, k, err, tc.bucket, tc.key)
			continue
		}
		// And back: the same object URL.
		u, err := itemapi.JoinObjectURL(b, k)
		if err != nil || u != tc.url {
			t.Errorf("JoinObjectURL(%q, %q) = %q, %v; want %q", b, k, u, err, tc.url)
		}
	}
}

func TestSplitObjectURLErrors(t *testing.T) {
	for _, raw := range []string{
		"", "clips/a.mp4", "http://host/a", "s3://in", "s3://in/", "s3:///key", "gs:///k", "file:///data/dir/", "file://", "s3://in/%zz", "mem://",
	} {
		if b, k, err := itemapi.SplitObjectURL(raw); err == nil {
			t.Errorf("SplitObjectURL(%q) = %q, %q; want an error", raw, b, k)
		}
	}
	for _, tc := range [][2]string{{"s3://in/path", "k"}, {"http://h", "k"}, {"s3://in", ""}, {"%zz", "k"}} {
		if u, err := itemapi.JoinObjectURL(tc[0], tc[1]); err == nil {
			t.Errorf("JoinObjectURL(%q, %q) = %q; want an error", tc[0], tc[1], u)
		}
	}
}

// TestObjectURLRoundTrip: Split(Join(bucket, key)) gives back the bucket
// and the key, for every scheme, with keys that need escaping.
func TestObjectURLRoundTrip(t *testing.T) {
	keys := []string{
		"a.mp4", "clips/2024/a.mp4", "a b/c d.mp4", "100%.txt", "%2F.txt", "a#b", "a?b=c&d", "日本/é.txt",
		"a+b", "semi;colon,comma", "x/../y", "./x", "trailing.", "//double", "/lead",
	}
	buckets := []string{
		"s3://in", "s3://in?endpoint=http://127.0.0.1:9000&use_path_style=true&region=us-east-1",
		"gs://bkt", "azblob://ctr?protocol=http", "mem://", "mem://named", "mem://?x=1",
	}
	for _, b := range buckets {
		for _, k := range keys {
			u, err := itemapi.JoinObjectURL(b, k)
			if err != nil {
				t.Errorf("JoinObjectURL(%q, %q): %v", b, k, err)
				continue
			}
			if strings.ContainsAny(u[strings.Index(u, "://")+3:], " #") {
				t.Errorf("JoinObjectURL(%q, %q) = %q is not escaped", b, k, u)
			}
			gb, gk, err := itemapi.SplitObjectURL(u)
			if err != nil || gb != b || gk != k {
				t.Errorf("SplitObjectURL(JoinObjectURL(%q, %q) = %q) = %q, %q, %v", b, k, u, gb, gk, err)
			}
		}
	}
	// file: the bucket is the parent directory, so a key with "/" comes
	// back as a deeper bucket and the base name; the object is the same.
	for _, dir := range []string{"/data", "/data/my videos", "/tmp/100%", "/"} {
		b := (&url.URL{Scheme: "file", Path: dir}).String()
		for _, k := range []string{"a.mp4", "sub dir/x#1?.mp4", "a/b/c%d.txt"} {
			u, err := itemapi.JoinObjectURL(b, k)
			if err != nil {
				t.Errorf("JoinObjectURL(%q, %q): %v", b, k, err)
				continue
			}
			gb, gk, err := itemapi.SplitObjectURL(u)
			if err != nil {
				t.Errorf("SplitObjectURL(%q): %v", u, err)
				continue
			}
			pb, err := url.Parse(gb)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := path.Join(pb.Path, gk), path.Join(dir, k); got != want {
				t.Errorf("file %q + %q → %q → %q + %q = %q, want %q", b, k, u, gb, gk, got, want)
			}
			if gk != path.Base(k) {
				t.Errorf("file key %q, want %q", gk, path.Base(k))
			}
			if again, err := itemapi.JoinObjectURL(gb, gk); err != nil || again != u {
				t.Errorf("JoinObjectURL(%q, %q) = %q, %v; want %q", gb, gk, again, err, u)
			}
		}
	}
}
