package blobs

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"strata/internal/fileutil"
)

// lockWait is how long an operation waits for the usage lock before it
// gives up with ErrLockTimeout rather than hang a request forever. A
// variable for the tests.
var lockWait = 10 * time.Second

// lockUsage takes the usage lock: within the process a one-slot semaphore,
// across processes an exclusive flock on usage.lock (a new descriptor each
// time, since flock does not exclude holders of the same descriptor). It
// waits at most lockWait.
func (s *Store) lockUsage() (*os.File, error) {
	deadline := time.Now().Add(lockWait)
	select {
	case s.usageSem <- struct{}{}:
	default:
		t := time.NewTimer(lockWait)
		defer t.Stop()
		select {
		case s.usageSem <- struct{}{}:
		case <-t.C:
			return nil, fmt.Errorf("usage lock: %w", ErrLockTimeout)
		}
	}
	f, err := fileutil.OpenFile(filepath.Join(s.dir, usageLockName), os.O_RDWR|os.O_CREATE, 0o666)
	if err == nil {
		err = lockBy(f, deadline)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		<-s.usageSem
		return nil, fmt.Errorf("usage lock: %w", noSpace(err))
	}
	return f, nil
}

// unlockUsage releases what lockUsage took.
func (s *Store) unlockUsage(f *os.File) {
	f.Close() // releases the flock
	<-s.usageSem
}

// lockBy takes an exclusive flock on f, waiting until deadline at most: a
// request must not hang on a stuck holder.
func lockBy(f *os.File, deadline time.Time) error {
	err := fileutil.Lock(f, time.Until(deadline), nil)
	if err == fileutil.ErrLockTimeout {
		return ErrLockTimeout
	}
	return err
}
