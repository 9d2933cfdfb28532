package fileutil

import (
	"bytes"
	"os"
	"sync"
)

// BootID names this run of the machine, or is nil where the kernel offers
// no boot id. What is written to the page cache without fsync survives a
// process crash and may not survive a machine crash: a file stamped with
// another boot id than today's has been through one.
func BootID() []byte {
	if p := bootOverride.Load(); p != nil {
		return []byte(*p)
	}
	return kernelBootID()
}

var kernelBootID = sync.OnceValue(func() []byte {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil
	}
	return bytes.TrimSpace(b)
})
