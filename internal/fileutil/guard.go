package fileutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// guardText is the .htaccess strata leaves in its data directory: if the
// directory ends up under a web root anyway, Apache refuses to serve
// anything in it (users, secrets, logs, blobs).
const guardText = `# Written by strata: this is its data directory. Never serve it.
Require all denied
`

// Guard makes sure dir holds a .htaccess that denies every request, and
// leaves one that exists alone.
func Guard(dir string) error {
	path := filepath.Join(dir, ".htaccess")
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	_, err = f.WriteString(guardText)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
