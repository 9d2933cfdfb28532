package log

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// tornFixture builds a log with four committed events and returns its
// directory, plus the bytes a fifth append writes to the segment: the
// record a crash may leave half-written.
func tornFixture(t *testing.T) (base string, tail []byte) {
	t.Helper()
	base = t.TempDir()
	l, err := Open(base, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		mustAppend(t, l, ev("torn.test", "e", fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), 40))))
	}
	l.Close()
	full := t.TempDir()
	copyDir(t, base, full)
	l, err = Open(full, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, ev("torn.test", "e", `{"i":4,"the":"fifth"}`))
	l.Close()
	before := readFile(t, segPath(base))
	after := readFile(t, segPath(full))
	return base, after[len(before):]
}

func segPath(dir string) string { return filepath.Join(dir, logDirName, segmentName(1)) }

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// withTail makes a copy of base whose segment ends in tail (uncommitted:
// the indexes never saw it, as after a crash mid-write).
func withTail(t *testing.T, base string, tail []byte) string {
	dir := t.TempDir()
	copyDir(t, base, dir)
	f, err := os.OpenFile(segPath(dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(tail)
	f.Close()
	return dir
}

// TestTornTailEveryOffset cuts the last record at every byte offset: the
// log reopens at the last whole record, keeps the cut bytes in a .broken
// file, and takes appends again.
func TestTornTailEveryOffset(t *testing.T) {
	base, tail := tornFixture(t)
	for cut := 0; cut <= len(tail); cut++ {
		dir := withTail(t, base, tail[:cut])
		l, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		want := uint64(4)
		if cut == len(tail) {
			want = 5 // whole: a writer died after its write, before indexing
		}
		if got := l.Through(); got != want {
			t.Fatalf("cut %d: through %d, want %d", cut, got, want)
		}
		broken, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.broken-*"))
		if (cut > 0 && cut < len(tail)) != (len(broken) == 1) {
			t.Fatalf("cut %d: %d .broken files", cut, len(broken))
		}
		if len(broken) == 1 && !bytes.Equal(readFile(t, broken[0]), tail[:cut]) {
			t.Fatalf("cut %d: .broken file does not hold the cut bytes", cut)
		}
		res := mustAppend(t, l, ev("after.crash", "e", `1`))
		if res.Events[0].Seq != want+1 || res.Events[0].Version != want+1 {
			t.Fatalf("cut %d: next append got seq %d version %d", cut, res.Events[0].Seq, res.Events[0].Version)
		}
		l.Close()
		if rep, err := Verify(dir); err != nil || rep.Events != want+1 {
			t.Fatalf("cut %d: verify: %v %+v", cut, err, rep)
		}
	}
}

// TestTornTailBitFlips flips every bit of an uncommitted last record: it
// never verifies as a whole record, so it is cut like a torn write.
func TestTornTailBitFlips(t *testing.T) {
	base, tail := tornFixture(t)
	for i := 0; i < len(tail); i++ {
		for bit := 0; bit < 8; bit += 3 {
			flipped := bytes.Clone(tail)
			flipped[i] ^= 1 << bit
			dir := withTail(t, base, flipped)
			l, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Fatalf("byte %d bit %d: open: %v", i, bit, err)
			}
			if got := l.Through(); got != 4 {
				t.Fatalf("byte %d bit %d: through %d", i, bit, got)
			}
			l.Close()
			if _, err := Verify(dir); err != nil {
				t.Fatalf("byte %d bit %d: verify: %v", i, bit, err)
			}
		}
	}
}

// TestDamageInTheMiddle flips a byte inside a committed record: reads of it
// and Verify report ErrCorrupt, a rebuild refuses to cut, and nothing is
// truncated.
func TestDamageInTheMiddle(t *testing.T) {
	base, _ := tornFixture(t)
	seg := readFile(t, segPath(base))
	off := segmentHeaderLen + 8 + recordSize(&Event{})/2 // inside record 1's body
	for _, name := range []string{"index intact", "index deleted", "last record"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, base, dir)
			damaged := bytes.Clone(seg)
			at := off
			if name == "last record" {
				at = len(seg) - 3
			}
			damaged[at] ^= 0x40
			os.WriteFile(segPath(dir), damaged, 0o644)
			if name == "index deleted" {
				os.RemoveAll(filepath.Join(dir, indexDirName))
			}
			if _, err := Verify(dir); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verify: want ErrCorrupt, got %v", err)
			}
			l, err := Open(dir, Options{NoSync: true})
			switch {
			case name == "index intact":
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if _, err := l.Event(1); !errors.Is(err, errBadCRC) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read of the damaged record: %v", err)
				}
				l.Close()
			case err == nil:
				l.Close()
				t.Fatal("open of a log with a damaged acknowledged record succeeded")
			case !errors.Is(err, ErrCorrupt):
				t.Fatalf("open: want ErrCorrupt, got %v", err)
			}
			if got := readFile(t, segPath(dir)); !bytes.Equal(got, damaged) {
				t.Fatal("the damaged segment was changed")
			}
		})
	}
}
