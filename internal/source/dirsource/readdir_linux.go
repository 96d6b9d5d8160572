package dirsource

import (
	"encoding/binary"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dirReader reads a directory opened through the root with getdents(2),
// which reports each entry's type: a rescan then states only the files it
// does not know yet (new files), not every file. On NFS that is the
// difference between a READDIR and a GETATTR per file. Nothing is allocated
// per entry but its name.
type dirReader struct {
	buf      []byte
	off, end int
}

func (r *dirReader) reset() { r.off, r.end = 0, 0 }

// Offsets in struct linux_dirent64.
const (
	direntReclen = 16
	direntType   = 18
	direntName   = 19
)

// readBatch appends up to scanBatch entries of f to out, with the type
// getdents reports (kUnknown when the filesystem does not say; statAt
// finds out). Hidden entries are skipped.
func (r *dirReader) readBatch(f *os.File, out []dirEnt) ([]dirEnt, error) {
	if r.buf == nil {
		r.buf = make([]byte, 32<<10)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return out, err
	}
	for len(out) < scanBatch {
		if r.off >= r.end {
			var n int
			var rerr error
			if cerr := rc.Control(func(fd uintptr) {
				for {
					n, rerr = syscall.ReadDirent(int(fd), r.buf)
					if rerr != syscall.EINTR {
						return
					}
				}
			}); cerr != nil {
				return out, cerr
			}
			if rerr != nil {
				return out, rerr
			}
			if n <= 0 {
				return out, io.EOF
			}
			r.off, r.end = 0, n
		}
		rec := r.buf[r.off:r.end]
		if len(rec) < direntName {
			return out, io.ErrUnexpectedEOF
		}
		reclen := int(binary.NativeEndian.Uint16(rec[direntReclen:]))
		if reclen < direntName || reclen > len(rec) {
			return out, io.ErrUnexpectedEOF
		}
		r.off += reclen
		name := rec[direntName:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if len(name) == 0 || name[0] == '.' {
			continue // ".", "..", hidden
		}
		e := dirEnt{base: string(name)}
		switch rec[direntType] {
		case syscall.DT_REG:
			e.kind = kFile // not stated yet
		case syscall.DT_DIR:
			e.kind = kDir
		case syscall.DT_LNK:
			e.kind = kLink
		case syscall.DT_UNKNOWN:
			e.kind = kUnknown
		default:
			e.kind = kOther
		}
		out = append(out, e)
	}
	return out, nil
}

// statAt states the entry e of the directory f with fstatat(2), without
// following a final symlink. A base name relative to a directory opened
// through the root cannot leave it, exactly as os.Root's own lstat.
func statAt(f *os.File, e *dirEnt) {
	rc, err := f.SyscallConn()
	if err != nil {
		e.kind = kError
		return
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fstatat(int(fd), e.base, &st, unix.AT_SYMLINK_NOFOLLOW)
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		serr = err
	}
	e.statted = true
	switch {
	case serr == unix.ENOENT:
		e.kind = kMissing
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
}
