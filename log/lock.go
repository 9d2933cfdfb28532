package log

import (
	"errors"
	"os"
	"time"

	"strata/internal/fileutil"
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
	f, err := fileutil.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &fileLock{f: f}, nil
}

// lock takes the lock, giving up with ErrLockTimeout after timeout.
// waiting, if not nil, is called with +1 when the lock is first found taken
// and with -1 when the wait ends, so that a long-running holder can see
// that someone waits and let go.
func (l *fileLock) lock(timeout time.Duration, waiting func(delta int64)) error {
	err := fileutil.Lock(l.f, timeout, waiting)
	if errors.Is(err, fileutil.ErrLockTimeout) {
		return ErrLockTimeout
	}
	return err
}

// tryLock takes the lock if it is free, without waiting.
func (l *fileLock) tryLock() bool {
	ok, err := fileutil.TryLock(l.f)
	return ok && err == nil
}

func (l *fileLock) unlock() error { return fileutil.Unlock(l.f) }

func (l *fileLock) close() error { return l.f.Close() }
