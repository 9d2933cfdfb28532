package fileutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Preallocate reserves disk blocks for the n bytes of f at off without
// changing its size, so that a later write into them cannot fail for want
// of space: a full disk is reported here, before anything is written. On a
// file system that cannot reserve (EOPNOTSUPP) it does nothing, and the
// write will tell.
func Preallocate(f *os.File, off, n int64) error {
	err := fallocate(f, unix.FALLOC_FL_KEEP_SIZE, off, n)
	if unsupported(err) {
		return nil
	}
	return err
}

// Allocate gives f a size of at least size bytes, every block of it
// reserved. A store through a memory map cannot report a full disk — a
// store into a hole the file system cannot fill kills the process with
// SIGBUS — so mapped files are allocated whole first. Existing content is
// kept. Where the file system cannot reserve, the part past f's current
// size is written with zeros instead.
func Allocate(f *os.File, size int64) error {
	err := fallocate(f, 0, 0, size)
	if !unsupported(err) {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := st.Size(); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := WriteAt(f, zeros[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func fallocate(f *os.File, mode uint32, off, n int64) error {
	if err := check(OpPreallocate, f.Name()); err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	for {
		err := unix.Fallocate(int(f.Fd()), mode, off, n)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

// IsNoSpace reports a full disk or an exhausted quota (shared hosting).
func IsNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
