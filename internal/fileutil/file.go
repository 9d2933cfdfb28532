package fileutil

import (
	"io"
	"os"
)

// OpenFile is os.OpenFile with a fault point when it may create the file,
// and with the permissions of what strata creates (perm.go) applied to perm.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := check(OpCreate, name); err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		perm = FileMode(perm)
	}
	f, err := os.OpenFile(name, flag, perm)
	if err == nil && flag&os.O_CREATE != 0 {
		fixGroup(f)
	}
	return f, err
}

// CreateTemp is os.CreateTemp with a fault point; the file gets perm
// (through FileMode), not CreateTemp's 0600.
func CreateTemp(dir, pattern string, perm os.FileMode) (*os.File, error) {
	if err := check(OpCreate, dir); err != nil {
		return nil, &os.PathError{Op: "createtemp", Path: dir, Err: err}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err = f.Chmod(FileMode(perm)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	fixGroup(f)
	return f, nil
}

// Mkdir is os.Mkdir with a fault point and the permissions of perm.go.
func Mkdir(name string, perm os.FileMode) error {
	if err := check(OpMkdir, name); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	if err := os.Mkdir(name, DirMode(perm)); err != nil {
		return err
	}
	return fixDirGroup(name)
}

// MkdirAll is os.MkdirAll with a fault point and the permissions of
// perm.go for every directory it creates.
func MkdirAll(name string, perm os.FileMode) error {
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return nil
	}
	if err := check(OpMkdir, name); err != nil {
		return &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return mkdirAll(name, DirMode(perm))
}

// WriteAt writes b to f at off, through a fault point.
func WriteAt(f *os.File, b []byte, off int64) (int, error) {
	if err := check(OpWrite, f.Name()); err != nil {
		if err != ErrZeroPage {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: err}
		}
		b = zeroPage(b, off)
	}
	return f.WriteAt(b, off)
}

// Write writes b to f at its current offset, through a fault point.
func Write(f *os.File, b []byte) (int, error) {
	if err := check(OpWrite, f.Name()); err != nil {
		if err != ErrZeroPage {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: err}
		}
		off, serr := f.Seek(0, io.SeekCurrent)
		if serr != nil {
			return 0, serr
		}
		b = zeroPage(b, off)
	}
	return f.Write(b)
}

// zeroPage returns a copy of b, written at off, with the first whole page
// it covers zeroed, or all of it if it covers none.
func zeroPage(b []byte, off int64) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	start := (off+PageSize-1)/PageSize*PageSize - off
	if start+PageSize > int64(len(c)) {
		clear(c)
	} else {
		clear(c[start : start+PageSize])
	}
	return c
}

// Truncate is f.Truncate through a fault point.
func Truncate(f *os.File, size int64) error {
	if err := check(OpTruncate, f.Name()); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	return f.Truncate(size)
}

// Rename is os.Rename through a fault point.
func Rename(from, to string) error {
	if err := check(OpRename, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return os.Rename(from, to)
}

// Remove is os.Remove through a fault point.
func Remove(name string) error {
	if err := check(OpRemove, name); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return os.Remove(name)
}

// Link is os.Link through a fault point (OpRename).
func Link(from, to string) error {
	if err := check(OpRename, to); err != nil {
		return &os.LinkError{Op: "link", Old: from, New: to, Err: err}
	}
	return os.Link(from, to)
}
