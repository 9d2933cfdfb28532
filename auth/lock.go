package auth

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// lockExclusive is flock's exclusive mode; all of this package's locks are.
const lockExclusive = unix.LOCK_EX

// errLockTimeout: another process held a lock for longer than we wait.
var errLockTimeout = errors.New("timed out waiting for a lock")

// flock takes a flock(2) lock (how: unix.LOCK_SH or unix.LOCK_EX) on fd,
// waiting at most wait: polling with LOCK_NB rather than blocking, so a
// process that hangs while holding the lock cannot hang everyone else.
func flock(fd int, how int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	pause := 200 * time.Microsecond
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("flock: %w", err)
		}
		if time.Now().After(deadline) {
			return errLockTimeout
		}
		time.Sleep(pause)
		if pause < 20*time.Millisecond {
			pause *= 2
		}
	}
}

// funlock releases a flock.
func funlock(fd int) { unix.Flock(fd, unix.LOCK_UN) }
