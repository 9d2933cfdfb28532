// Package shm maps small fixed-size files that every process on the
// machine shares (MAP_SHARED) and updates with atomic operations, without
// a lock: the request-rate table (quota) and the metrics counters
// (metrics) use it, so that CGI processes, which live for one request,
// still share what they count.
//
// What it promises:
//   - Open creates the file (0600) if it is missing, grows it to its size
//     if it is short (allocating the blocks, so a full disk is an error at
//     Open and not a fault on a later store), and writes the header over a
//     new, damaged or foreign one. Processes racing to create it are safe:
//     the file only ever grows, and they write the same header.
//   - Do runs a function on the mapping. A fault on it (the file was
//     truncated under the mapping, or the disk filled under a hole) is
//     caught: the file is mapped again, re-created or re-grown, and the
//     function runs once more. Do reports false when it could not run it
//     whole; callers treat the file as a cache and carry on without it.
package shm

import (
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"strata/internal/fileutil"
)

// File is one shared mapped file. It is safe for concurrent use.
type File struct {
	path   string
	size   int
	header []byte
	cur    atomic.Pointer[mapping] // nil once closed

	mu      sync.Mutex // guards remapping, retired and Close
	retired []*mapping // replaced by a remap; unmapped at Close, as other goroutines may still be using them
}

// mapping is one mmap of the file.
type mapping struct {
	mem []byte // size bytes, MAP_SHARED
}

// Open opens the file at path, creating it or growing it to size bytes,
// and maps it; header (at most size bytes) is what the file must begin
// with.
func Open(path string, size int, header []byte) (*File, error) {
	f := &File{path: path, size: size, header: header}
	m, err := f.mapFile()
	if err != nil {
		return nil, err
	}
	f.cur.Store(m)
	return f, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// mapFile opens, sizes and maps the file, and repairs its header.
func (f *File) mapFile() (*mapping, error) {
	fd, err := fileutil.OpenFile(f.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer fd.Close() // the mapping outlives the descriptor
	fi, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", f.path)
	}
	if fi.Size() < int64(f.size) {
		if err := fileutil.Truncate(fd, int64(f.size)); err != nil {
			return nil, fmt.Errorf("%s: size: %w", f.path, err)
		}
		if err := fileutil.Allocate(fd, int64(f.size)); err != nil {
			return nil, fmt.Errorf("%s: allocate: %w", f.path, err)
		}
	}
	mem, err := fileutil.Mmap(fd, f.size)
	if err != nil {
		return nil, fmt.Errorf("%s: map: %w", f.path, err)
	}
	m := &mapping{mem: mem}
	if !m.run(func(mem []byte) {
		if !bytes.Equal(mem[:len(f.header)], f.header) {
			copy(mem, f.header)
		}
	}) {
		fileutil.Munmap(mem)
		return nil, fmt.Errorf("%s: fault on the mapped file", f.path)
	}
	return m, nil
}

// Do runs fn on the mapped bytes (the whole file, header included). On a
// fault it maps the file again and runs fn once more, from the start. It
// returns false if fn could not run whole: the File is closed, or the file
// cannot be mapped again.
func (f *File) Do(fn func(mem []byte)) bool {
	for range 2 {
		m := f.cur.Load()
		if m == nil {
			return false
		}
		if m.run(fn) {
			return true
		}
		f.remap(m)
	}
	return false
}

// run runs fn on m and reports whether it ran without a fault.
func (m *mapping) run(fn func(mem []byte)) (ok bool) {
	defer catchFault(&ok)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fn(m.mem)
	return true
}

// catchFault turns a fault on the mapping into *ok = false; it must be
// deferred, with the fault mode set by the function deferring it.
func catchFault(ok *bool) {
	if e := recover(); e != nil {
		if _, fault := e.(interface{ Addr() uintptr }); !fault {
			panic(e)
		}
		*ok = false
	}
}

// remap replaces the mapping m, which faulted, with a fresh one of the
// file re-created or re-grown at its path. If that fails, m stays and the
// next Do tries again.
func (f *File) remap(m *mapping) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur.Load() != m { // closed, or another goroutine remapped
		return
	}
	fresh, err := f.mapFile()
	if err != nil {
		return
	}
	f.cur.Store(fresh)
	f.retired = append(f.retired, m)
}

// Close unmaps the file. Do after Close does nothing and returns false;
// no call may be in progress during Close.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.cur.Swap(nil)
	if m == nil {
		return nil
	}
	err := fileutil.Munmap(m.mem)
	for _, old := range f.retired {
		if uerr := fileutil.Munmap(old.mem); err == nil {
			err = uerr
		}
	}
	f.retired = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	return nil
}

// Word returns the 8-byte word of mem at off, for the sync/atomic
// functions; off must be a multiple of 8 (mappings are page-aligned).
func Word(mem []byte, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&mem[off]))
}
