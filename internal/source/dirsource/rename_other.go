//go:build !linux

package dirsource

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

func sameDevice(a, b os.FileInfo) bool { return true }

func canRenameAcross() error {
	return errors.New("an archive directory outside DIR_ROOT is supported on Linux only; use a path inside DIR_ROOT")
}

// renameNoReplace is a check then a rename here (not atomic against a
// concurrent writer of the same archive name).
func renameNoReplace(src, dst *os.File, srcBase, dstBase string) error {
	to := filepath.Join(dst.Name(), dstBase)
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: srcBase, New: dstBase, Err: fs.ErrExist}
	}
	return os.Rename(filepath.Join(src.Name(), srcBase), to)
}
