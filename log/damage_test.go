package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// groupFixture builds a log of n committed events and returns its
// directory, plus the bytes one more request of m events writes to the
// segment: an unacknowledged group, as a power cut may leave it.
func groupFixture(t *testing.T, n, m int) (base string, group []byte) {
	t.Helper()
	pad := string(bytes.Repeat([]byte("x"), 150))
	batch := func(from, count int) []Proposed {
		var ps []Proposed
		for i := from; i < from+count; i++ {
			ps = append(ps, ev("zero.page", fmt.Sprintf("e%d", i%7), fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)))
		}
		return ps
	}
	base = t.TempDir()
	l, err := Open(base, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		mustAppend(t, l, batch(i, min(10, n-i))...)
	}
	l.Close()
	full := t.TempDir()
	copyDir(t, base, full)
	l, err = Open(full, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, batch(n, m)...)
	l.Close()
	before := readFile(t, segPath(base))
	after := readFile(t, segPath(full))
	return base, after[len(before):]
}

// zeroPage zeroes the first whole 4 KiB page of the file at p that starts
// at or after from and ends at least a record's length before to, and
// returns its offset.
func zeroPage(t *testing.T, p string, from, to int64) int64 {
	t.Helper()
	at := (from + 4095) &^ 4095
	if at+4096+512 > to {
		t.Fatalf("no whole page between %d and %d", from, to)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), at); err != nil {
		t.Fatal(err)
	}
	return at
}

// otherBoot stamps dir's head file with another machine run's boot id and
// clears its synced mark: what a power cut leaves for the next boot.
func otherBoot(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, indexDirName, headFileName)
	b := readFile(t, p)
	copy(b[headOffBoot:headOffBoot+headBootLen], "a-boot-before-the-power-cut\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	clear(b[headOffSynced : headOffSynced+8])
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestZeroPageInUnacknowledgedGroup: committed events, then a group that
// was written but never acknowledged, with a zeroed 4 KiB page in its middle
// and whole records after it. Past the acknowledged point nothing was
// promised: Open cuts from the first bad record (keeping a .broken copy)
// instead of refusing, and the log takes appends again.
func TestZeroPageInUnacknowledgedGroup(t *testing.T) {
	const committed = 60
	base, group := groupFixture(t, committed, 80)
	for _, name := range []string{"same boot", "after a power cut"} {
		t.Run(name, func(t *testing.T) {
			dir := withTail(t, base, group)
			if name != "same boot" {
				otherBoot(t, dir)
			}
			end := int64(len(readFile(t, segPath(dir))))
			at := zeroPage(t, segPath(dir), end-int64(len(group)), end)
			var logged bytes.Buffer
			defer slog.SetDefault(slog.Default())
			slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
			l, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			// The request is cut whole, though some of its records before
			// the zeroed page are whole: all or none.
			got := l.Through()
			if got != committed {
				t.Fatalf("through %d, want %d", got, committed)
			}
			e, err := l.Event(got)
			if err != nil {
				t.Fatal(err)
			}
			seg := readFile(t, segPath(dir))
			if want := end - int64(len(group)); int64(len(seg)) != want {
				t.Fatalf("segment is %d bytes, want %d (cut where the request starts)", len(seg), want)
			}
			if int64(len(seg)) > at {
				t.Fatalf("segment is %d bytes, still reaches the zeroed page at %d", len(seg), at)
			}
			broken, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.broken-*"))
			if len(broken) != 1 || len(readFile(t, broken[0]))+len(seg) != int(end) {
				t.Fatalf(".broken files %v do not hold the cut bytes", broken)
			}
			// The operator learns of the cut, and where the copy is.
			if w := fmt.Sprintf("offset=%d bytes=%d copy=%s", len(seg), int(end)-len(seg), filepath.Base(broken[0])); !strings.Contains(logged.String(), w) {
				t.Fatalf("log %q lacks %q", logged.String(), w)
			}
			res := mustAppend(t, l, ev("after.cut", e.Entity, `1`))
			if res.Events[0].Seq != got+1 || res.Events[0].Prev != e.ID {
				t.Fatalf("next append: seq %d", res.Events[0].Seq)
			}
			l.Close()
			if rep, err := Verify(dir); err != nil || rep.Events != got+1 {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}

// seqAt returns the seq of the first record of segment bytes seg that
// reaches offset at or past it.
func seqAt(t *testing.T, seg []byte, at int64) uint64 {
	t.Helper()
	seq := uint64(1)
	for off := int64(segmentHeaderLen); off+recordHeaderLen <= int64(len(seg)); seq++ {
		off += recordHeaderLen + int64(binary.LittleEndian.Uint32(seg[off:]))
		if off > at {
			return seq
		}
	}
	t.Fatalf("no record reaches offset %d", at)
	return 0
}

// TestZeroPageBeforeAcknowledged: the same zeroed page among acknowledged
// events is damage, not a torn tail: Open reports ErrCorrupt and cuts
// nothing — after a power cut (the indexes are replayed from the start and
// meet it) and when the head file is lost (nobody knows what was
// acknowledged, and whole records follow the hole).
func TestZeroPageBeforeAcknowledged(t *testing.T) {
	base, group := groupFixture(t, 60, 80)
	for _, name := range []string{"after a power cut", "head file lost"} {
		t.Run(name, func(t *testing.T) {
			dir := withTail(t, base, group)
			committedEnd := int64(len(readFile(t, segPath(base))))
			at := zeroPage(t, segPath(dir), segmentHeaderLen, committedEnd)
			// The report names the first record the page reaches, not the
			// first of its request.
			hit := regexp.MustCompile(fmt.Sprintf(`\bseq %d\b`, seqAt(t, readFile(t, segPath(base)), at)))
			if name == "head file lost" {
				os.RemoveAll(filepath.Join(dir, indexDirName))
			} else {
				otherBoot(t, dir)
			}
			damaged := readFile(t, segPath(dir))
			l, err := Open(dir, Options{NoSync: true})
			if err == nil {
				l.Close()
				t.Fatal("open succeeded over a zeroed page among acknowledged events")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: want ErrCorrupt, got %v", err)
			}
			if !hit.MatchString(err.Error()) {
				t.Fatalf("open: %v; want it to name %s", err, hit)
			}
			if _, err := Verify(dir); !errors.Is(err, ErrCorrupt) || !hit.MatchString(err.Error()) {
				t.Fatalf("verify: %v; want ErrCorrupt naming %s", err, hit)
			}
			if got := readFile(t, segPath(dir)); !bytes.Equal(got, damaged) {
				t.Fatal("the damaged segment was changed")
			}
			if broken, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.broken-*")); len(broken) != 0 {
				t.Fatalf("cut: %v", broken)
			}
		})
	}
}

// TestTornRequestOffsets cuts a three-event request at every record
// boundary and byte offsets between: recovery keeps all three or none,
// keeps a .broken copy of what it cut, and Verify reports the same.
func TestTornRequestOffsets(t *testing.T) {
	base, group := groupFixture(t, 20, 3)
	var cuts []int
	for at := 0; at < len(group); at += recordHeaderLen + int(binary.LittleEndian.Uint32(group[at:])) {
		cuts = append(cuts, at, at+1, at+recordHeaderLen+1)
	}
	for cut := 2; cut < len(group); cut += 13 {
		cuts = append(cuts, cut)
	}
	cuts = append(cuts, len(group)-1, len(group))
	for _, cut := range cuts {
		dir := withTail(t, base, group[:cut])
		rep, err := Verify(dir)
		want := uint64(20)
		if cut == len(group) {
			want = 23
		}
		if err != nil || rep.Events != want || (cut > 0 && cut < len(group)) != (rep.TornTail != "") {
			t.Fatalf("cut %d: verify before open: %v %+v", cut, err, rep)
		}
		l, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		if got := l.Through(); got != want {
			t.Fatalf("cut %d: through %d, want %d", cut, got, want)
		}
		broken, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.broken-*"))
		if (cut > 0 && cut < len(group)) != (len(broken) == 1) {
			t.Fatalf("cut %d: %d .broken files", cut, len(broken))
		}
		if len(broken) == 1 && !bytes.Equal(readFile(t, broken[0]), group[:cut]) {
			t.Fatalf("cut %d: .broken file does not hold the cut bytes", cut)
		}
		res := mustAppend(t, l, ev("after.crash", "e1", `1`))
		if res.Events[0].Seq != want+1 {
			t.Fatalf("cut %d: next append got seq %d", cut, res.Events[0].Seq)
		}
		l.Close()
		if rep, err := Verify(dir); err != nil || rep.Events != want+1 || rep.TornTail != "" {
			t.Fatalf("cut %d: verify: %v %+v", cut, err, rep)
		}
	}
}
