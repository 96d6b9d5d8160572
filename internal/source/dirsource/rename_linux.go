package dirsource

import (
	"os"
	"path"
	"strings"
	"syscall"
)

// sameDevice reports whether two files are on the same filesystem.
func sameDevice(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev
}

func canRenameAcross() error { return nil }

// renameAcross renames the file rel of root from to the same relative path
// in root to, atomically (renameat(2) between the two parent directories,
// each opened through its root, so neither side can leave its root).
func renameAcross(from, to *os.Root, rel string) error {
	dir, base := path.Split(rel)
	dir = dirOrDot(strings.TrimSuffix(dir, "/"))
	src, err := from.Open(dir)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := to.Open(dir)
	if err != nil {
		return err
	}
	defer dst.Close()
	sc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	cerr := sc.Control(func(sfd uintptr) {
		cerr := dc.Control(func(dfd uintptr) {
			rerr = syscall.Renameat(int(sfd), base, int(dfd), base)
		})
		if rerr == nil {
			rerr = cerr
		}
	})
	if cerr != nil {
		return cerr
	}
	if rerr != nil {
		return &os.LinkError{Op: "renameat", Old: rel, New: rel, Err: rerr}
	}
	return nil
}
