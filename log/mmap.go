package log

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
	"strata/internal/fileutil"
)

// mapping is a shared, writable memory map of a whole index file. Index
// files are shared between processes through the page cache: a store by one
// process is seen by every other at once, without a system call. A mapping
// with no mem is a file opened but not mapped: readers use pread (see
// hashIndex), and only a writer maps a hash index (Log.writable).
type mapping struct {
	f   *os.File
	mem []byte
}

// mapped reports whether m is mapped.
func (m *mapping) mapped() bool { return m.mem != nil }

// mapFile maps f, which must already have its final size.
func mapFile(f *os.File, size int) (*mapping, error) {
	mem, err := fileutil.Mmap(f, size)
	if err != nil {
		return nil, err
	}
	// The writer inserts at random.
	fileutil.AdviseRandom(mem)
	return &mapping{f: f, mem: mem}, nil
}

// u64 returns the 8-byte word at off (which must be 8-aligned) for atomic
// access: readers in other goroutines and processes race with the writer by
// design, and an aligned 8-byte load or store is never torn.
func (m *mapping) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&m.mem[off])) }

func (m *mapping) load(off int) uint64 { return atomic.LoadUint64(m.u64(off)) }

func (m *mapping) store(off int, v uint64) { atomic.StoreUint64(m.u64(off), v) }

// sync writes dirty pages to disk.
func (m *mapping) sync() error {
	if m.mem == nil {
		return nil // nothing was stored through a map
	}
	return fileutil.Msync(m.mem, m.f.Name())
}

// release drops this process's page-table entries for the mapping. The data
// stays in the page cache (dirty pages of a shared file mapping are not
// lost), so this only gives back the resident memory of a replaced map.
func (m *mapping) release() {
	if m.mem != nil {
		fileutil.Release(m.mem)
	}
}

// unmap gives back m's address space; m's file stays open, for pread.
func (m *mapping) unmap() {
	if m.mem != nil {
		fileutil.Munmap(m.mem)
		m.mem = nil
	}
}

func (m *mapping) close() error {
	var err error
	if m.mem != nil {
		err = fileutil.Munmap(m.mem)
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// errBadIndex marks an index file that is missing or is not what it should
// be: rebuilding it from the log cures that.
var errBadIndex = errors.New("index file missing or invalid")

// transient reports an error that says nothing of the files, only of this
// process: it may not map, open or read them now (a memory limit, too many
// open files, no permission). Recovery must never rebuild over one: the
// indexes are fine, and every other process still reads them.
func transient(err error) bool {
	for _, e := range []error{unix.ENOMEM, unix.EMFILE, unix.ENFILE, unix.EACCES, unix.EPERM, unix.EAGAIN, unix.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
