//go:build !linux

package dirsource

import (
	"io/fs"
	"os"
)

// readBatch reads up to scanBatch entries of the directory f (opened
// through the root), each with its lstat.
func readBatch(f *os.File, buf []dirEnt) ([]dirEnt, error) {
	ents, err := f.ReadDir(scanBatch)
	for _, de := range ents {
		name := de.Name()
		if name == "" || name[0] == '.' {
			continue
		}
		e := dirEnt{base: name}
		switch t := de.Type(); {
		case t.IsDir():
			e.kind = kDir
		case t&fs.ModeSymlink != 0:
			e.kind = kLink
		case t.IsRegular():
			fi, ierr := de.Info()
			if ierr != nil {
				e.kind = kError
			} else {
				e.kind, e.size, e.mtime = kFile, fi.Size(), fi.ModTime().UnixNano()
			}
		default:
			e.kind = kOther
		}
		buf = append(buf, e)
	}
	return buf, err
}
