package dirsource

import (
	"os"

	"golang.org/x/sys/unix"
)

// readBatch reads up to scanBatch entries of the directory f (opened
// through the root) and states each with fstatat(2) relative to f, without
// following a final symlink: a base name relative to a directory opened
// through the root cannot leave it, exactly as os.Root's own lstat. This
// allocates nothing per entry but its name, where os.File.ReadDir of a
// directory opened in an os.Root allocates a DirEntry and a FileInfo
// (~300 bytes) for each: the garbage of rescanning a million files.
// Hidden entries are skipped before they are stated.
func readBatch(f *os.File, buf []dirEnt) ([]dirEnt, error) {
	names, err := f.Readdirnames(scanBatch)
	if len(names) == 0 {
		return buf, err
	}
	rc, cerr := f.SyscallConn()
	if cerr != nil {
		return buf, cerr
	}
	cerr = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		for _, name := range names {
			if name == "" || name[0] == '.' {
				continue
			}
			var serr error
			for {
				serr = unix.Fstatat(int(fd), name, &st, unix.AT_SYMLINK_NOFOLLOW)
				if serr != unix.EINTR {
					break
				}
			}
			e := dirEnt{base: name}
			switch {
			case serr == unix.ENOENT:
				continue // removed since it was read
			case serr != nil:
				e.kind = kError
			default:
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFREG:
					e.kind, e.size, e.mtime = kFile, st.Size, st.Mtim.Nano()
				case unix.S_IFDIR:
					e.kind = kDir
				case unix.S_IFLNK:
					e.kind = kLink
				default:
					e.kind = kOther
				}
			}
			buf = append(buf, e)
		}
	})
	if cerr != nil {
		return buf, cerr
	}
	return buf, err
}
