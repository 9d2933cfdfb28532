package fileutil

import (
	"errors"
	"sync/atomic"
)

// Op names a fault point: a kind of file-system step a Fault can fail.
type Op string

// The fault points.
const (
	OpCreate      Op = "create"      // creating a file (OpenFile with O_CREATE, temp files)
	OpMkdir       Op = "mkdir"       // creating a directory
	OpWrite       Op = "write"       // write, pwrite
	OpSync        Op = "sync"        // fsync and fdatasync of a file
	OpSyncDir     Op = "syncdir"     // fsync of a directory
	OpPreallocate Op = "preallocate" // fallocate
	OpTruncate    Op = "truncate"    // ftruncate
	OpRename      Op = "rename"      // rename, link
	OpRemove      Op = "remove"      // removing a file
	OpMmap        Op = "mmap"        // mapping a file
	OpMsync       Op = "msync"       // writing a mapping's pages to disk
)

// Fault decides the fate of one operation: it is called with the fault
// point and the path of the file (or directory) and returns nil to let the
// operation run, or the error to fail it with (nothing is done then). For
// OpWrite it may also return ErrZeroPage.
type Fault func(op Op, path string) error

// ErrZeroPage, returned by a Fault for an OpWrite, makes the write report
// success while a 4 KiB page of what it wrote reads back as zeros: the
// first whole page it covers, or all it wrote if it covers none. That is
// what a power cut can leave after fallocate-then-write, where the file's
// size reached the disk and one of its pages did not.
var ErrZeroPage = errors.New("fileutil: zero page (injected)")

// PageSize is the page ErrZeroPage zeroes.
const PageSize = 4096

var fault atomic.Pointer[Fault]

// Inject installs f as the process's Fault until the returned function is
// called. For tests only; tests that inject must not run in parallel with
// other tests of their package that touch files.
func Inject(f Fault) (undo func()) {
	fault.Store(&f)
	return func() { fault.Store(nil) }
}

// check runs the installed Fault, if any, for op on path.
func check(op Op, path string) error {
	if p := fault.Load(); p != nil {
		return (*p)(op, path)
	}
	return nil
}

// bootOverride, when set, replaces the kernel's boot id (SimulateReboot).
var bootOverride atomic.Pointer[string]

// SimulateReboot makes BootID answer a new value until the returned
// function is called, so a test sees what a process after a machine
// restart sees. For tests only.
func SimulateReboot() (undo func()) {
	prev := bootOverride.Load()
	id := "simulated-reboot"
	if prev != nil {
		id = *prev + "+"
	}
	bootOverride.Store(&id)
	return func() { bootOverride.Store(prev) }
}
