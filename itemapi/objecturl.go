package itemapi

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// SplitObjectURL splits the URL of one object (an item's data.url) into the
// gocloud.dev bucket URL that opens its bucket and the object's key:
//
//   - s3://, gs://, azblob://, mem:// — the host is the bucket, the path
//     without its leading "/" is the key, and the query (the bucket's
//     settings, e.g. endpoint=…&use_path_style=true) stays on the bucket URL;
//   - file:// — the parent directory is the bucket and the base name the key.
//
// Keys and paths are percent-decoded.
func SplitObjectURL(raw string) (bucketURL, key string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("object URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "s3", "gs", "azblob", "mem":
		key = strings.TrimPrefix(u.Path, "/")
		if u.Host == "" && u.Scheme != "mem" {
			return "", "", fmt.Errorf("object URL %q: no bucket (host)", raw)
		}
		if key == "" {
			return "", "", fmt.Errorf("object URL %q: no key (path)", raw)
		}
		if u.Host == "" {
			// mem:// (the unnamed bucket): url.URL would print "mem:".
			b := u.Scheme + "://"
			if u.RawQuery != "" {
				b += "?" + u.RawQuery
			}
			return b, key, nil
		}
		b := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
		return b.String(), key, nil
	case "file":
		if u.Path == "" || strings.HasSuffix(u.Path, "/") {
			return "", "", fmt.Errorf("object URL %q: no file name", raw)
		}
		dir, base := path.Split(u.Path)
		b := url.URL{Scheme: "file", Host: u.Host, Path: dir, RawQuery: u.RawQuery}
		// Every trailing slash goes ("/a//x" is the file x of "/a"), so
		// that joining and splitting again gives the same bucket (found by
		// fuzzing).
		if b.Path = strings.TrimRight(b.Path, "/"); b.Path == "" {
			b.Path = "/"
		}
		return b.String(), base, nil
	case "":
		return "", "", fmt.Errorf("object URL %q: no scheme", raw)
	}
	return "", "", fmt.Errorf("object URL %q: unsupported scheme %q (want s3, gs, azblob, file or mem)", raw, u.Scheme)
}

// JoinObjectURL is the inverse of SplitObjectURL: the URL of the object key
// in the bucket opened by bucketURL. For file:// buckets the key may hold
// "/" (the object is then in a subdirectory).
func JoinObjectURL(bucketURL, key string) (string, error) {
	u, err := url.Parse(bucketURL)
	if err != nil {
		return "", fmt.Errorf("bucket URL %q: %w", bucketURL, err)
	}
	if key == "" {
		return "", fmt.Errorf("bucket URL %q: empty key", bucketURL)
	}
	switch u.Scheme {
	case "s3", "gs", "azblob", "mem":
		if u.Path != "" && u.Path != "/" {
			return "", fmt.Errorf("bucket URL %q: a bucket URL has no path", bucketURL)
		}
		u.Path = "/" + key
	case "file":
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + key
	default:
		return "", fmt.Errorf("bucket URL %q: unsupported scheme %q (want s3, gs, azblob, file or mem)", bucketURL, u.Scheme)
	}
	u.RawPath = ""
	return u.String(), nil
}
