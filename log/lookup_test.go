package log

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLookupReportsDamage: an id whose record cannot be read is damage to
// report (ErrCorrupt: the server's operator must look), not an id that is
// not on the chain (a client would be told its saved id is on another
// history: 404 not_on_chain instead of a fault).
func TestLookupReportsDamage(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	res := mustAppend(t, l, ev("t.a", "e", `"first"`), ev("t.a", "e", `"second-marker"`), ev("t.a", "e", `"third"`))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("second-marker"))
	if i < 0 {
		t.Fatal("record not found in the segment")
	}
	b[i] ^= 0x20 // the record's checksum no longer holds
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Lookup(res.Events[1].ID)
	if err == nil || errors.Is(err, ErrNotFound) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lookup of a damaged record: %v, want ErrCorrupt", err)
	}
	if seq, err := l.Lookup(res.Events[2].ID); err != nil || seq != 3 {
		t.Fatalf("lookup of a whole record: %d %v", seq, err)
	}
}
