//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package quota

import (
	"os"
	"unsafe"
)

// mapFile, without mmap, gives process-local memory: the limit then holds
// per process, not per machine. The file is still created, so the layout
// is the same everywhere.
func mapFile(_ *os.File, size int) ([]byte, error) {
	words := make([]uint64, (size+7)/8) // 8-byte aligned for sync/atomic
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size), nil
}

func unmapFile([]byte) error { return nil }
