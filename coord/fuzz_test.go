package coord

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzFiles: whatever bytes a mutex table, a cache entry or a broadcast
// ring holds (a crash, a disk error, someone's editor), no call panics or
// hangs; a lock either works (with a token above every token field in its
// page) or fails with an error, and a cache entry is whole or absent.
func FuzzFiles(f *testing.F) {
	seed := Mutexes{Dir: f.TempDir()}
	seed.Lock("k", time.Minute, t0)
	table, _ := os.ReadFile(filepath.Join(seed.Dir, mutexFile))
	f.Add(table, uint16(0))
	f.Add(encodeEntry([]byte(`{"a":1}`), t0.Add(time.Hour), t0), uint16(1))
	f.Add([]byte("STRBCAST"), uint16(2))
	// One directory and one ring for every input (a fresh 4 MiB ring an
	// input would make the fuzzer crawl); each input rewrites the files.
	dir := f.TempDir()
	var ring *Ring
	f.Fuzz(func(t *testing.T, b []byte, at uint16) {
		// The mutex table: b laid over a valid table at offset at.
		tb := make([]byte, mutexFileSize)
		copy(tb, table)
		copy(tb[min(int(at)*64, len(tb)):], b)
		os.WriteFile(filepath.Join(dir, mutexFile), tb, 0o600)
		m := Mutexes{Dir: dir, NoSync: true}
		if g, err := m.Lock("k", time.Minute, t0); err == nil {
			if g.Token == 0 {
				t.Fatal("token 0 granted")
			}
			m.Unlock("k", g.Token, t0)
		}
		// A cache entry.
		os.MkdirAll(filepath.Join(dir, cacheDir), 0o700)
		os.WriteFile(filepath.Join(dir, cacheDir, "e"), b, 0o600)
		os.Remove(filepath.Join(dir, cacheUsageFile))
		c := Cache{Dir: dir, MaxEntries: 10}
		if e, err := c.Get("e", t0); err == nil {
			if got, ok := decodeEntry(b); !ok || string(got.Value) != string(e.Value) {
				t.Fatalf("entry %q read as %q", b, e.Value)
			}
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		// A ring: b over its slots, behind a valid header.
		if ring == nil {
			var err error
			if ring, err = OpenRing(dir); err != nil {
				t.Fatal(err)
			}
		}
		r := ring
		copy(r.mem[ringHeaderSize+int(at)%(ringSlots*ringSlotSize):], b)
		if len(b) >= 8 {
			copy(r.mem[ringHeadOff:ringHeadOff+8], b[:8])
		}
		buf := make([]byte, MaxMessage)
		r.Read("c", 0, buf, func(Message) error { return nil })
		r.Post("c", []byte(`1`), t0)
	})
}
