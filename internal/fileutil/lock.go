package fileutil

import "errors"

// ErrLockTimeout: another holder kept a lock for longer than the caller
// waits. Packages wrap it in their own sentinel or return it as it is; the
// HTTP layer answers 503 with Retry-After for it.
var ErrLockTimeout = errors.New("timed out waiting for a lock")
