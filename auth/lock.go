package auth

import (
	"errors"
	"fmt"
	"os"
	"time"

	"strata/internal/fileutil"
)

// errLockTimeout: another process held a lock for longer than we wait. It
// matches fileutil.ErrLockTimeout, which the HTTP layer answers with 503.
var errLockTimeout = fmt.Errorf("auth: %w", fileutil.ErrLockTimeout)

// flock takes an exclusive flock on f, waiting at most wait, so a process
// that hangs while holding the lock cannot hang everyone else.
func flock(f *os.File, wait time.Duration) error {
	err := fileutil.Lock(f, wait, nil)
	if errors.Is(err, fileutil.ErrLockTimeout) {
		return errLockTimeout
	}
	return err
}
