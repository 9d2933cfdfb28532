//go:build !linux

package quota

import "os"

// preallocate is a no-op off Linux: the file stays sparse, and a fault on
// a full disk is caught by Allow, which then fails open.
func preallocate(*os.File, int64) error { return nil }
