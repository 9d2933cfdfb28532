package fileutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// Mmap maps the first size bytes of f shared and writable: a store by one
// process is seen by every other that maps the file, through the page
// cache, without a system call. f should be allocated (Allocate) first.
func Mmap(f *os.File, size int) ([]byte, error) {
	if err := check(OpMmap, f.Name()); err != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	return b, nil
}

// Munmap unmaps b.
func Munmap(b []byte) error { return unix.Munmap(b) }

// Msync writes b's dirty pages to disk; name is the mapped file's, for
// errors and faults.
func Msync(b []byte, name string) error {
	if err := check(OpMsync, name); err != nil {
		return &os.PathError{Op: "msync", Path: name, Err: err}
	}
	if err := unix.Msync(b, unix.MS_SYNC); err != nil {
		return &os.PathError{Op: "msync", Path: name, Err: err}
	}
	return nil
}

// AdviseRandom tells the kernel b is read at random: read-ahead around a
// fault would only fill memory with pages nobody asked for.
func AdviseRandom(b []byte) { unix.Madvise(b, unix.MADV_RANDOM) }

// Release drops this process's page-table entries for b. The data stays
// in the page cache (dirty pages of a shared file mapping are not lost):
// only the resident memory goes.
func Release(b []byte) { unix.Madvise(b, unix.MADV_DONTNEED) }
