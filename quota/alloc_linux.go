package quota

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate gives the first size bytes of f disk blocks, so that storing
// into the mapping never faults for want of space. File systems that cannot
// (EOPNOTSUPP) are left sparse: a fault there is caught by Allow.
func preallocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return nil
		}
		return err
	}
}
