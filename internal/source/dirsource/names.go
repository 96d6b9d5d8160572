package dirsource

import (
	"path"
	"strings"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// ignoredBase reports whether a file or directory of this base name is never
// an item (nor searched for items): hidden files and directories, and the
// temporary files of writers that rename when they are done.
func ignoredBase(base string, dir bool) bool {
	if base == "" || base[0] == '.' {
		return true
	}
	if !dir && (strings.HasSuffix(base, ".tmp") || strings.HasSuffix(base, ".part")) {
		return true
	}
	return false
}

// checkName decides whether name could be the name of an item of this
// directory, without touching the filesystem. Names that are not a clean
// relative path (absolute, backslash, empty or dot segments) are a
// BadRequest; clean paths that the driver never lists (hidden, temporary,
// archived, not matching DIR_PATTERN) are a NotFound. Nothing that passes
// can name a path outside the root, and every file access goes through an
// os.Root besides.
func (d *Driver) checkName(name string) error {
	if err := itemapi.ValidateName(name); err != nil {
		return source.Errorf(itemapi.ReasonBadRequest, "%v", err)
	}
	if name[0] == '/' {
		return source.Errorf(itemapi.ReasonBadRequest, "item name %q is an absolute path; names are paths relative to the directory", name)
	}
	if strings.IndexByte(name, '\\') >= 0 {
		return source.Errorf(itemapi.ReasonBadRequest, "item name %q contains a backslash", name)
	}
	hidden := false
	for rest := name; ; {
		seg, more, found := strings.Cut(rest, "/")
		switch {
		case seg == "":
			return source.Errorf(itemapi.ReasonBadRequest, "item name %q has an empty path segment", name)
		case seg == "." || seg == "..":
			return source.Errorf(itemapi.ReasonBadRequest, "item name %q has a %q path segment", name, seg)
		case ignoredBase(seg, found):
			hidden = true
		}
		if !found {
			break
		}
		rest = more
	}
	if hidden {
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: hidden and temporary files (.*, *.tmp, *.part) are not items", name)
	}
	if d.inArchive(name) {
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: it is inside an archive directory", name)
	}
	dir, base := path.Split(name)
	if dir != "" && !d.cfg.Recursive {
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: DIR_RECURSIVE is false", name)
	}
	if ok, _ := path.Match(d.cfg.Pattern, base); !ok {
		return source.Errorf(itemapi.ReasonNotFound, "item %q not found: it does not match DIR_PATTERN %q", name, d.cfg.Pattern)
	}
	return nil
}

// inArchive reports whether rel is (inside) an archive directory that lies
// within the root.
func (d *Driver) inArchive(rel string) bool {
	for _, a := range d.excluded {
		if rel == a || (len(rel) > len(a) && rel[len(a)] == '/' && rel[:len(a)] == a) {
			return true
		}
	}
	return false
}

// eligibleDir reports whether the scan descends into the directory rel
// (base is its last segment).
func (d *Driver) eligibleDir(rel, base string) bool {
	return d.cfg.Recursive && !ignoredBase(base, true) && !d.inArchive(rel)
}

// eligibleFile reports whether a regular file at rel (base its last segment,
// in a directory the scan descends into) is an item once settled.
func (d *Driver) eligibleFile(rel, base string) bool {
	if ignoredBase(base, false) {
		return false
	}
	if ok, _ := path.Match(d.cfg.Pattern, base); !ok {
		return false
	}
	// Names the API could not serve (not UTF-8, too long, backslashes) are
	// left out rather than listed and then refused: logged once, and
	// counted in itemq_dir_refused_files_total{reason="name"}.
	if why := unservableName(rel); why != "" {
		d.refuse(rel, refusedName, why)
		return false
	}
	return true
}

func joinRel(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

func dirOrDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
