//go:build !linux

package dirsource

import (
	"errors"
	"os"
)

func sameDevice(a, b os.FileInfo) bool { return true }

func canRenameAcross() error {
	return errors.New("an archive directory outside DIR_ROOT is supported on Linux only; use a path inside DIR_ROOT")
}

func renameAcross(from, to *os.Root, rel string) error { return canRenameAcross() }
