package shm

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// Two Files on one path share their bytes; a file truncated under a
// mapping faults, is mapped again (re-grown, header rewritten) and the
// function runs whole; after Close, Do runs nothing.
func TestSharedRemapClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "table")
	hdr := []byte("TESTHDR\x00")
	a, err := Open(path, 8192, hdr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, 8192, hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Do(func(mem []byte) { atomic.AddUint64(Word(mem, 4096), 7) })
	var got uint64
	b.Do(func(mem []byte) { got = atomic.LoadUint64(Word(mem, 4096)) })
	if got != 7 {
		t.Errorf("b sees %d, want 7", got)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	runs := 0
	if !a.Do(func(mem []byte) { runs++; atomic.AddUint64(Word(mem, 4096), 1) }) {
		t.Fatal("Do after truncation failed")
	}
	if runs != 2 {
		t.Errorf("fn ran %d times, want 2 (one fault, one whole run)", runs)
	}
	if f, _ := os.ReadFile(path); len(f) != 8192 || !bytes.HasPrefix(f, hdr) {
		t.Errorf("file after remap: %d bytes, header %q", len(f), f[:min(8, len(f))])
	}
	a.Close()
	if a.Do(func([]byte) { t.Error("ran after Close") }) {
		t.Error("Do after Close reported true")
	}
	if _, err := Open(filepath.Join(path, "x"), 8192, hdr); err == nil {
		t.Error("Open under a file succeeded")
	}
}
