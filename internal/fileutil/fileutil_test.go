package fileutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestLockTimesOutAndExcludesOtherDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Lock(a, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var waits []int64
	err = Lock(b, 10*time.Millisecond, func(d int64) { waits = append(waits, d) })
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second descriptor: %v, want ErrLockTimeout", err)
	}
	if len(waits) != 2 || waits[0] != 1 || waits[1] != -1 {
		t.Errorf("waiting calls %v, want [1 -1]", waits)
	}
	if ok, err := TryLock(b); ok || err != nil {
		t.Fatalf("TryLock while held: %v, %v", ok, err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if ok, err := TryLock(b); !ok || err != nil {
		t.Fatalf("TryLock once free: %v, %v", ok, err)
	}
}

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, s := range []string{"one", "two"} {
		if err := WriteFile(path, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	// A failed rename leaves the old content and no temp file.
	undo := Inject(func(op Op, p string) error {
		if op == OpRename {
			return syscall.EIO
		}
		return nil
	})
	err := WriteFile(path, []byte("three"), 0o640)
	undo()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("injected EIO: got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Fatalf("after a failed replace: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files in the directory, want 1", len(ents))
	}
}

func TestCreateFileNeverReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := CreateFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(path, []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Fatalf("content %q", b)
	}
}

func TestInjectFailsEachFaultPoint(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFile(filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		op  Op
		run func() error
	}{
		{OpCreate, func() error { _, err := OpenFile(filepath.Join(dir, "g"), os.O_RDWR|os.O_CREATE, 0o644); return err }},
		{OpMkdir, func() error { return MkdirAll(filepath.Join(dir, "d", "e"), 0o755) }},
		{OpWrite, func() error { _, err := WriteAt(f, []byte("x"), 0); return err }},
		{OpSync, func() error { return Fdatasync(f) }},
		{OpSync, func() error { return Fsync(f) }},
		{OpSyncDir, func() error { return SyncDir(dir) }},
		{OpPreallocate, func() error { return Preallocate(f, 0, 4096) }},
		{OpTruncate, func() error { return Truncate(f, 0) }},
		{OpRename, func() error { return Rename(f.Name(), f.Name()+".x") }},
		{OpMmap, func() error { _, err := Mmap(f, 4096); return err }},
	} {
		undo := Inject(func(op Op, _ string) error {
			if op == c.op {
				return syscall.ENOSPC
			}
			return nil
		})
		err := c.run()
		undo()
		if !errors.Is(err, syscall.ENOSPC) || !IsNoSpace(err) {
			t.Errorf("%s: got %v, want ENOSPC", c.op, err)
		}
		if err := c.run(); err != nil && c.op != OpRename {
			t.Errorf("%s without a fault: %v", c.op, err)
		}
	}
}

func TestZeroPage(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 3*PageSize)
	for i := range data {
		data[i] = 0xab
	}
	undo := Inject(func(op Op, _ string) error {
		if op == OpWrite {
			return ErrZeroPage
		}
		return nil
	})
	n, err := WriteAt(f, data, 100)
	undo()
	if err != nil || n != len(data) {
		t.Fatalf("write: %d, %v", n, err)
	}
	got := make([]byte, len(data))
	f.ReadAt(got, 100)
	for i, c := range got {
		zero := i >= PageSize-100 && i < 2*PageSize-100 // the first whole page: file offsets 4096..8191
		if (c == 0) != zero {
			t.Fatalf("byte %d (file offset %d) is %#x", i, i+100, c)
		}
	}
	if data[PageSize] != 0xab {
		t.Fatal("the caller's buffer was changed")
	}
}

func TestSimulateReboot(t *testing.T) {
	before := string(BootID())
	undo := SimulateReboot()
	during := string(BootID())
	undo()
	if during == before || string(BootID()) != before {
		t.Fatalf("boot ids %q, %q, %q", before, during, BootID())
	}
}
