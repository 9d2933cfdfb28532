package fileutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Fdatasync makes f's data durable, and its size, without its other
// metadata (times): what an append needs, at less cost than fsync.
func Fdatasync(f *os.File) error {
	if err := check(OpSync, f.Name()); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// Fsync makes f's data and metadata durable.
func Fsync(f *os.File) error {
	if err := check(OpSync, f.Name()); err != nil {
		return &os.PathError{Op: "fsync", Path: f.Name(), Err: err}
	}
	return f.Sync()
}

// SyncDir fsyncs a directory, making the creations, renames and removals
// in it durable.
func SyncDir(dir string) error {
	if err := check(OpSyncDir, dir); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
