package log

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockFileName is the file every writer of a tenant flocks.
const lockFileName = "lock"

// fileLock is an exclusive flock on <tenant>/lock. flock locks belong to the
// open file description, so two fileLocks in one process exclude each other
// just as two processes do.
type fileLock struct {
	f *os.File
}

func openLock(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &fileLock{f: f}, nil
}

// lock takes the lock, polling with a growing pause so that a waiting CGI
// process neither spins nor sleeps long past the holder's release; it gives
// up with ErrLockTimeout after timeout. waiting, if not nil, is called with
// +1 when the lock is first found taken and with -1 when the wait ends, so
// that a long-running holder can see that someone waits and let go.
func (l *fileLock) lock(timeout time.Duration, waiting func(delta int64)) error {
	deadline := time.Now().Add(timeout)
	pause := 20 * time.Microsecond
	announced := false
	defer func() {
		if announced {
			waiting(-1)
		}
	}()
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !announced && waiting != nil {
			announced = true
			waiting(+1)
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrLockTimeout
		}
		time.Sleep(pause)
		if pause < 2*time.Millisecond {
			pause *= 2
		}
	}
}

// tryLock takes the lock if it is free, without waiting.
func (l *fileLock) tryLock() bool {
	return unix.Flock(int(l.f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

func (l *fileLock) unlock() error { return unix.Flock(int(l.f.Fd()), unix.LOCK_UN) }

func (l *fileLock) close() error { return l.f.Close() }
