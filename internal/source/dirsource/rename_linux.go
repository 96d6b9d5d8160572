package dirsource

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sameDevice reports whether two files are on the same filesystem.
func sameDevice(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev
}

func canRenameAcross() error { return nil }

// renameNoReplace renames the file srcBase of the directory src to dstBase
// in the directory dst, atomically, failing with an error that is
// fs.ErrExist when dstBase exists: renameat2(RENAME_NOREPLACE), or, where
// the filesystem lacks it (older NFS), linkat (which never replaces) then
// unlinkat of the source.
func renameNoReplace(src, dst *os.File, srcBase, dstBase string) error {
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
			rerr = unix.Renameat2(int(sfd), srcBase, int(dfd), dstBase, unix.RENAME_NOREPLACE)
			if errors.Is(rerr, unix.EINVAL) || errors.Is(rerr, unix.ENOSYS) || errors.Is(rerr, unix.EOPNOTSUPP) {
				rerr = unix.Linkat(int(sfd), srcBase, int(dfd), dstBase, 0)
				if rerr == nil {
					rerr = unix.Unlinkat(int(sfd), srcBase, 0)
				}
			}
		})
		if rerr == nil {
			rerr = cerr
		}
	})
	if cerr != nil {
		return cerr
	}
	if rerr != nil {
		return &os.LinkError{Op: "rename", Old: srcBase, New: dstBase, Err: rerr}
	}
	return nil
}
