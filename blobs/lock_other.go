//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package blobs

import (
	"errors"
	"os"
	"syscall"
)

// lockTemps: no file locks here; Open removes only stale temp files.
const lockTemps = false

func tryLock(*os.File) (bool, error) { return true, nil }

// syncDir is a no-op: directories cannot be fsynced on these systems.
func syncDir(string) error { return nil }

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
