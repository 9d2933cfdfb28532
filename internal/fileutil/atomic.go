package fileutil

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data atomically: a reader sees the old
// content or the new, never a mix, and after a crash the file holds one of
// them. It writes a temporary file beside path (".<name>.*.tmp", which a
// store's open may sweep away), fsyncs it, renames it over path and fsyncs
// the directory.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

// WriteFileNoSync is WriteFile without either fsync. UNSAFE: after a
// machine crash the file may be empty or missing. For stores opened with
// their NoSync option only.
func WriteFileNoSync(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

func writeFile(path string, data []byte, perm os.FileMode, noSync bool) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, perm, noSync)
	if err != nil {
		return err
	}
	if err := Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if noSync {
		return nil
	}
	return SyncDir(dir)
}

// CreateFile writes a new file at path atomically, and fails with an
// error matching fs.ErrExist if path exists: the content goes to a
// temporary file, which is fsynced and then hard-linked to path (link,
// unlike rename, fails if path exists), and the directory is fsynced.
// Processes racing to create one file thus all see the winner's whole.
func CreateFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, perm, false)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := Link(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// writeTemp writes data to a new temporary file in dir and returns its
// name; it is fsynced unless noSync.
func writeTemp(dir, base string, data []byte, perm os.FileMode, noSync bool) (string, error) {
	f, err := CreateTemp(dir, "."+base+".*.tmp", perm)
	if err != nil {
		return "", err
	}
	_, err = Write(f, data)
	if err == nil && !noSync {
		err = Fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
