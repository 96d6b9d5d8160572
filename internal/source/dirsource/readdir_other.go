//go:build !linux

package dirsource

import (
	"io/fs"
	"os"
)

// dirReader reads a directory opened through the root; off Linux, each
// entry comes with its lstat.
type dirReader struct{}

func (r *dirReader) reset() {}

// readBatch appends up to scanBatch entries of f to out. Hidden entries
// are skipped.
func (r *dirReader) readBatch(f *os.File, out []dirEnt) ([]dirEnt, error) {
	ents, err := f.ReadDir(scanBatch)
	for _, de := range ents {
		name := de.Name()
		if name == "" || name[0] == '.' {
			continue
		}
		e := dirEnt{base: name, statted: true}
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
		out = append(out, e)
	}
	return out, err
}

// statAt is never needed: readBatch states every entry.
func statAt(f *os.File, e *dirEnt) {}
