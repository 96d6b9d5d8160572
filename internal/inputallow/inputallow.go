// Package inputallow is the trust boundary between whoever submits items
// and an executor's own files, network and credentials: the places an
// item's data.url and data.path may name (EXECUTOR_INPUT_ALLOW, set by the
// manager from MANAGER_INPUT_ALLOW and its source's own location;
// docs/security.md). The executor enforces it; the manager parses it at
// start, so that a wrong value is an error there and not a dead letter for
// every item.
package inputallow

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Env is the executor's variable that holds the policy.
const Env = "EXECUTOR_INPUT_ALLOW"

// Policy is a parsed EXECUTOR_INPUT_ALLOW: a comma-separated list of
// URL prefixes (file:///data/videos/, s3://media/in/, https://cdn.example/),
// absolute paths (the same as their file:// URL), or "*" (anything). Empty:
// nothing may be read through data.url or data.path.
type Policy struct {
	any      bool
	prefixes []allowed
	raw      string
}

type allowed struct {
	scheme, host, query, path string
}

// Parse parses a policy; its errors name Env and the entry.
func Parse(s string) (Policy, error) {
	p := Policy{raw: s}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case e == "*":
			p.any = true
			continue
		case strings.HasPrefix(e, "/"):
			e = (&url.URL{Scheme: "file", Path: e}).String()
		}
		u, err := url.Parse(e)
		if err != nil {
			return p, fmt.Errorf("%s: %q: %w", Env, e, err)
		}
		a := allowed{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Host), path: u.Path}
		switch a.scheme {
		case "file":
			if !path.IsAbs(u.Path) {
				return p, fmt.Errorf("%s: %q: a file prefix needs an absolute path", Env, e)
			}
			a.path = cleanDir(u.Path)
		case "http", "https":
			if a.host == "" {
				return p, fmt.Errorf("%s: %q: no host", Env, e)
			}
			if u.RawQuery != "" {
				return p, fmt.Errorf("%s: %q: an http prefix has no query", Env, e)
			}
			if a.path == "" {
				a.path = "/"
			}
		case "s3", "gs", "azblob", "mem":
			if a.host == "" && a.scheme != "mem" {
				return p, fmt.Errorf("%s: %q: no bucket", Env, e)
			}
			a.query = u.Query().Encode()
			a.path = strings.TrimPrefix(a.path, "/")
		default:
			return p, fmt.Errorf("%s: %q: unsupported scheme (want file, http, https, s3, gs, azblob or mem; or * for anything)", Env, e)
		}
		p.prefixes = append(p.prefixes, a)
	}
	return p, nil
}

// cleanDir is p cleaned, with one trailing slash.
func cleanDir(p string) string {
	p = path.Clean(p)
	if p != "/" {
		p += "/"
	}
	return p
}

// underPrefix: name is prefix itself or below it. A prefix ending in "/"
// is a directory; any other prefix matches itself and what is below it as
// a directory ("in" allows "in" and "in/x", not "inx").
func underPrefix(name, prefix string) bool {
	if prefix == "" {
		return true // a whole bucket
	}
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(name, prefix) || name+"/" == prefix
	}
	return name == prefix || strings.HasPrefix(name, prefix+"/")
}

// URL reports why u (data.url) may not be read, or nil.
func (p Policy) URL(u *url.URL) error {
	if p.any {
		return nil
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	var name string
	switch scheme {
	case "file":
		return p.Path(u.Path)
	case "http", "https":
		name = u.Path
		if name == "" {
			name = "/"
		}
	default:
		name = strings.TrimPrefix(u.Path, "/")
	}
	query := u.Query().Encode()
	for _, a := range p.prefixes {
		if a.scheme != scheme || a.host != host {
			continue
		}
		if scheme != "http" && scheme != "https" && a.query != query {
			continue // a bucket's parameters (endpoint, region) are part of where it is
		}
		if underPrefix(name, a.path) {
			return nil
		}
	}
	return p.refusal(u.Redacted())
}

// Path reports why the local file p may not be read, or nil: p
// (cleaned) and, when it exists, the file it resolves to through symbolic
// links must both be under a file prefix.
func (p Policy) Path(name string) error {
	if p.any {
		return nil
	}
	if !path.IsAbs(name) {
		return fmt.Errorf("input %q: not an absolute path", name)
	}
	clean := path.Clean(name)
	if !p.underFile(clean) {
		return p.refusal(clean)
	}
	if real, err := filepath.EvalSymlinks(clean); err == nil && real != clean && !p.underFile(filepath.ToSlash(real)) {
		return p.refusal(fmt.Sprintf("%s (a link to %s)", clean, real))
	}
	return nil
}

func (p Policy) underFile(clean string) bool {
	for _, a := range p.prefixes {
		if a.scheme != "file" {
			continue
		}
		if underPrefix(clean, a.path) {
			return true
		}
		// The prefix itself may be a link (/data → /mnt/nfs/data).
		if real, err := filepath.EvalSymlinks(a.path); err == nil && underPrefix(clean, cleanDir(filepath.ToSlash(real))) {
			return true
		}
	}
	return false
}

func (p Policy) refusal(what string) error {
	if p.raw == "" {
		return fmt.Errorf("input %s refused: %s is empty, so items may not name inputs to read (the manager sets it from MANAGER_INPUT_ALLOW and its source's own location; docs/security.md)", what, Env)
	}
	return fmt.Errorf("input %s refused: it is not under %s=%s (docs/security.md)", what, Env, p.raw)
}
