//go:build !linux

package fileutil

// strata needs Linux: fallocate, fdatasync, flock and shared memory maps
// (see doc.go). On any other system the build stops here, naming the
// reason, instead of producing a binary that fails at run time.
var _ = strata_runs_on_Linux_only_it_needs_fallocate_fdatasync_flock_and_shared_mmap
