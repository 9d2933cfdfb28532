package fileutil

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive flock on f, waiting at most timeout, and returns
// ErrLockTimeout after that. flock itself cannot time out, so Lock polls
// with LOCK_NB, with a pause that grows from 20 µs to 2 ms: a waiting CGI
// process neither spins nor sleeps long past the holder's release, and a
// holder that hangs cannot hang everyone else. waiting, if not nil, is
// called with +1 when the lock is first found taken and with -1 when the
// wait ends, so that a long-running holder can see that someone waits.
//
// flock locks belong to the open file description: two descriptors opened
// separately exclude each other even within one process, while two holders
// of one descriptor do not.
func Lock(f *os.File, timeout time.Duration, waiting func(delta int64)) error {
	deadline := time.Now().Add(timeout)
	pause := 20 * time.Microsecond
	announced := false
	defer func() {
		if announced {
			waiting(-1)
		}
	}()
	for {
		ok, err := TryLock(f)
		if err != nil || ok {
			return err
		}
		if !announced && waiting != nil {
			announced = true
			waiting(+1)
		}
		if time.Now().After(deadline) {
			return ErrLockTimeout
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Millisecond)
	}
}

// TryLock takes an exclusive flock on f if it is free, without waiting. It
// reports false if another open file holds it.
func TryLock(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		}
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
}

// Unlock releases a flock taken through f. Closing f releases it too.
func Unlock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_UN)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
