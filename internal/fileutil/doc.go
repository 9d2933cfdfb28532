// Package fileutil is every operating-system file operation strata's
// durable stores use, in one place: flock with a timeout, atomic replace
// and atomic create, fallocate, fdatasync and fsync of a directory, shared
// memory maps, and the permissions of what strata creates. Callers never
// touch a system call themselves; one file per job, as in etcd's
// client/pkg/fileutil.
//
// strata runs on Linux: it needs fallocate (to turn a full disk into an
// error before anything is written), fdatasync, flock and shared writable
// memory maps of one file by many processes. Other systems do not build:
// unsupported.go stops the compiler with a message that says so, rather
// than a binary that half works.
//
// Every operation that changes a file passes a fault point first (fault.go):
// a test installs a Fault with Inject and makes a write, an fsync, an
// fallocate, a rename … fail with the error it chooses (ENOSPC, EIO),
// leave a zeroed page behind a reported success, or see another boot id —
// without root, mounts or a full disk. With no Fault installed a fault
// point costs one atomic load.
package fileutil
