//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package blobs

import (
	"errors"
	"os"
	"strata/internal/fsx"
	"syscall"
)

// lockTemps: writers flock their temp files, and Open removes only the
// temp files it can lock.
const lockTemps = true

// tryLock takes an exclusive flock on f without waiting. It reports false
// if another open file holds it. Closing f releases it.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}

// isNoSpace reports a full disk or an exhausted quota (shared hosting).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// syncDir fsyncs a directory, making the renames in it durable.
func syncDir(dir string) error { return fsx.SyncDir(dir) }
