package coord

import (
	"errors"
	"fmt"
	"os"
	"time"

	"strata/internal/fileutil"
)

// MaxKey is the longest key, channel or lock name, in bytes.
const MaxKey = 128

// ErrInvalidKey: a key or channel name that is empty, too long, starts
// with a dot or holds a byte outside [A-Za-z0-9._:@-].
var ErrInvalidKey = errors.New("a key is 1 to 128 characters of A-Z a-z 0-9 . _ : @ - and does not start with a dot")

// ErrNoSpace wraps ENOSPC and EDQUOT: the disk (or the account's share of
// it) is full, and nothing was changed.
var ErrNoSpace = errors.New("no space left on device")

// ErrCorrupt: a file of this package does not hold what its format says,
// and is not one a crash could leave behind.
var ErrCorrupt = errors.New("coordination file is damaged")

// lockWait is how long a call waits for another process's flock on a
// file of this package before giving up with fileutil.ErrLockTimeout;
// holders keep it for a read, a write and at most one fdatasync.
const lockWait = 5 * time.Second

// ValidKey reports whether k may name a cache entry, a mutex or a
// channel. The characters are those safe as a file name and in a URL
// path segment without escaping; no leading dot, so no key is "." or
// ".." or a temporary file's name.
func ValidKey(k string) error {
	if len(k) == 0 || len(k) > MaxKey || k[0] == '.' {
		return ErrInvalidKey
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return ErrInvalidKey
		}
	}
	return nil
}

// wrapIO marks a full disk as ErrNoSpace, keeping the cause.
func wrapIO(op string, err error) error {
	if err == nil {
		return nil
	}
	if fileutil.IsNoSpace(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// openLocked opens (creating) path and takes its flock.
func openLocked(path string) (*os.File, error) {
	f, err := fileutil.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := fileutil.Lock(f, lockWait, nil); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fnv64 is FNV-1a: where a key goes in a table. No seed: every process
// must put a key in the same place.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
