package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"strata/internal/fileutil"
)

// secretLen is the size of the installation's session secret.
const secretLen = 32

// LoadOrCreateSecret returns the secret in the file at path, making one of
// 32 random bytes (mode 0600, directory 0700) if there is none. Processes
// that race to make it all end up with the same one: each writes its own
// candidate to a temporary file and links it into place, which — unlike a
// rename — fails if another got there first; the losers then read the
// winner's.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := readSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	s := make([]byte, secretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if err := fileutil.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	if err := createFile(path, s); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	return readSecret(path)
}

// readSecret reads the secret file, refusing one of the wrong size (a
// truncated or foreign file must not sign sessions).
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if len(b) != secretLen {
		return nil, fmt.Errorf("secret file %s holds %d bytes, not %d: remove it to make a new one (every session ends)", path, len(b), secretLen)
	}
	return b, nil
}
