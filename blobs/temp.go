package blobs

import (
	"fmt"
	"os"
	"path/filepath"

	"strata/internal/fileutil"
)

// createTemp creates a new empty file in tmp/ named <kind>-<random>. The
// file is returned locked, and it is checked to still be in the directory
// after locking (a concurrent Open may have removed it between creation
// and lock).
func (s *Store) createTemp(kind string) (*os.File, error) {
	for range 100 {
		f, err := fileutil.CreateTemp(s.tmp, kind+"-*", 0o666)
		if err != nil {
			return nil, fmt.Errorf("create temp file: %w", noSpace(err))
		}
		ok, err := fileutil.TryLock(f)
		if err == nil && ok && stillThere(f) {
			return f, nil
		}
		f.Close()
		if err != nil {
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock temp file: %w", err)
		}
		// An Open holds or removed the file: try another name.
	}
	return nil, fmt.Errorf("create temp file in %s: no free name", s.tmp)
}

// stillThere reports whether the open file f is still the one at its name.
func stillThere(f *os.File) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(f.Name())
	return err == nil && os.SameFile(a, b)
}

// cleanTemp removes temp files left by interrupted uploads: those nobody
// holds locked.
// It is best effort: a file it cannot remove is left for the next Open.
func (s *Store) cleanTemp() error {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("clean temp files: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := filepath.Join(s.tmp, e.Name())
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		if ok, err := fileutil.TryLock(f); err == nil && ok && stillThere(f) {
			os.Remove(name)
		}
		f.Close()
	}
	return nil
}
