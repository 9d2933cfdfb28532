//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package quota

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the first size bytes of f, shared with every other process
// that maps it.
func mapFile(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func unmapFile(b []byte) error { return unix.Munmap(b) }
