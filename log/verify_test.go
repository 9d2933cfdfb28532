package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyParallelMatchesSequential checks the parallel Verify against
// the plain record-by-record walk it replaced (verifySequential, below):
// same report, same error, for a clean log, every kind of damage at many
// offsets — chunk boundaries included, with chunks made small — and torn
// tails with and without the head file.
func TestVerifyParallelMatchesSequential(t *testing.T) {
	defer func(n int) { verifyChunk = n }(verifyChunk)
	verifyChunk = 4 << 10
	dir := t.TempDir()
	l, err := Open(dir, Options{NoSync: true, SegmentSize: 48 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var evs []Proposed
		for j := 0; j < 1+r.IntN(4); j++ {
			pad := strings.Repeat("x", r.IntN(300))
			if i == 150 && j == 0 {
				pad = strings.Repeat("y", 3*verifyChunk) // a record longer than a chunk
			}
			evs = append(evs, ev("verify.test", fmt.Sprintf("e-%d", r.IntN(40)), fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)))
		}
		mustAppend(t, l, evs...)
	}
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	same := func(what string) {
		t.Helper()
		var n int
		want, werr := verifySequential(dir, func(done, total uint64) { n++ })
		var m int
		got, gerr := VerifyProgress(dir, func(done, total uint64) { m++ })
		if fmt.Sprint(werr) != fmt.Sprint(gerr) || fmt.Sprint(want) != fmt.Sprint(got) || (werr == nil && n != m) {
			t.Fatalf("%s:\nsequential %+v, %v (%d progress calls)\nparallel   %+v, %v (%d)", what, want, werr, n, got, gerr, m)
		}
		if werr != nil && !errors.Is(gerr, ErrCorrupt) {
			t.Fatalf("%s: %v does not wrap ErrCorrupt", what, gerr)
		}
	}
	same("clean")
	for _, seg := range segs {
		orig, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		offs := []int{0, 8, 63, 64, 65, 72}
		for off := 100; off < len(orig); off += 1500 + r.IntN(1500) {
			offs = append(offs, off)
		}
		for k := verifyChunk; k < len(orig); k += verifyChunk {
			offs = append(offs, k-1, k+3)
		}
		for _, off := range offs {
			if off >= len(orig) {
				continue
			}
			b := bytes.Clone(orig)
			b[off] ^= 0x5a
			write(t, seg, b)
			same(fmt.Sprintf("%s byte %d flipped", filepath.Base(seg), off))
			if off > 64 {
				write(t, seg, orig[:off])
				same(fmt.Sprintf("%s cut at %d", filepath.Base(seg), off))
				b = bytes.Clone(orig)
				clear(b[off:min(off+300, len(b))])
				write(t, seg, b)
				same(fmt.Sprintf("%s zeroed from %d", filepath.Base(seg), off))
			}
		}
		write(t, seg, orig)
	}
	// Torn tails where no head file says how far events were acknowledged.
	last := segs[len(segs)-1]
	orig, _ := os.ReadFile(last)
	os.RemoveAll(filepath.Join(dir, indexDirName))
	for off := 64; off < len(orig); off += 397 {
		b := bytes.Clone(orig)
		b[off] ^= 1
		write(t, last, b)
		same(fmt.Sprintf("no head file, last segment byte %d flipped", off))
		write(t, last, orig[:off])
		same(fmt.Sprintf("no head file, last segment cut at %d", off))
	}
	write(t, last, orig)
	// Compressed segments: read through their frames, in chunks that do
	// not end where frames do.
	l, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := l.Compact(CompactOptions{}); err != nil || res.Segments != len(segs)-1 {
		t.Fatalf("compact: %+v %v", res, err)
	}
	l.Close()
	same("compacted")
	zsegs, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.zseg"))
	z := zsegs[1]
	orig, _ = os.ReadFile(z)
	for _, off := range []int{len(orig) / 3, len(orig) / 2} {
		b := bytes.Clone(orig)
		b[off] ^= 0x20
		write(t, z, b)
		same(fmt.Sprintf("%s byte %d flipped", filepath.Base(z), off))
		if _, err := Verify(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s byte %d flipped: %v", filepath.Base(z), off, err)
		}
	}
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifySequential is VerifyProgress as it was before it went parallel:
// the reference TestVerifyParallelMatchesSequential holds it to.
func verifySequential(dir string, progress func(done, total uint64)) (*VerifyReport, error) {
	firsts, err := listSegments(filepath.Join(dir, logDirName))
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{}
	// The head file, if any, says how far events were acknowledged: a bad
	// record up to there is damage, not a torn write.
	var committed uint64
	known := false
	if b, err := os.ReadFile(filepath.Join(dir, indexDirName, headFileName)); err == nil && len(b) == headSize && string(b[:8]) == headMagic {
		committed = max(binary.LittleEndian.Uint64(b[headOffSynced:]), binary.LittleEndian.Uint64(b[headOffThrough:]))
		known = true
	}
	var prev [32]byte
	var lastTime int64
	type entPos struct{ version, seq uint64 }
	ents := map[string]entPos{}
	expect := uint64(1)
	var e Event
	// A request's records stand or fall together: open is the seq and
	// offset of the first record of a request whose last record is not read
	// yet (0 when none), whole what the report was before it.
	var open uint64
	var openAt int64
	var whole VerifyReport
	for i, first := range firsts {
		f, err := openSegFile(filepath.Join(dir, logDirName), first, false)
		if err != nil {
			return rep, err
		}
		name := f.path
		bad := func(format string, args ...any) error {
			f.Close()
			return fmt.Errorf("%w: %s: %s", ErrCorrupt, filepath.Base(name), fmt.Sprintf(format, args...))
		}
		var hb [segmentHeaderLen]byte
		if _, err := f.ReadAt(hb[:], 0); err != nil {
			return rep, bad("header: %v", err)
		}
		h, err := decodeSegmentHeader(hb[:])
		if err != nil {
			return rep, bad("%v", err)
		}
		if h.First != expect || h.Prev != prev {
			return rep, bad("starts at seq %d after %x; the chain is at seq %d after %x", h.First, h.Prev, expect, prev)
		}
		sc := newScanner(f, segmentHeaderLen)
		for {
			body, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = decodeBody(body, &e)
			}
			if err != nil {
				seq, cut := expect, at
				if open != 0 {
					seq, cut = open, openAt
					rep.Events, rep.Head = whole.Events, whole.Head
				}
				if why := judgeDamage(f, at, expect, seq, committed, known, i == len(firsts)-1, err); why != nil {
					return rep, bad("%v", why)
				}
				rep.TornTail = fmt.Sprintf("%s offset %d: %v", filepath.Base(name), cut, err)
				open = 0
				break
			}
			switch {
			case e.Seq != expect:
				return rep, bad("offset %d: seq %d where %d was due", at, e.Seq, expect)
			case e.Prev != prev:
				return rep, bad("seq %d: prev %x is not the id of seq %d (%x)", e.Seq, e.Prev, e.Seq-1, prev)
			case e.Time < lastTime:
				return rep, bad("seq %d: time %s is before the previous event's", e.Seq, FormatTime(e.Time))
			case ValidateType(e.Type) != nil || validStoredEntity(e.Entity) != nil:
				return rep, bad("seq %d: invalid type or entity", e.Seq)
			}
			if id := ComputeID(&e); id != e.ID {
				return rep, bad("seq %d: stored id %x but its fields hash to %x", e.Seq, e.ID, id)
			}
			p := ents[e.Entity]
			if e.Version != p.version+1 || e.PrevInEntity != p.seq {
				return rep, bad("seq %d: entity %q version %d (link %d) after version %d at seq %d", e.Seq, e.Entity, e.Version, e.PrevInEntity, p.version, p.seq)
			}
			ents[e.Entity] = entPos{e.Version, e.Seq}
			prev, lastTime = e.ID, e.Time
			rep.Events = e.Seq
			rep.Head = Head{Seq: e.Seq, ID: e.ID, Time: e.Time}
			expect++
			if progress != nil && e.Seq%verifyEvery == 0 {
				progress(e.Seq, committed)
			}
			switch {
			case !e.more:
				open, whole = 0, *rep
			case open == 0:
				open, openAt = e.Seq, at
			}
		}
		if open != 0 {
			switch {
			case i < len(firsts)-1:
				return rep, bad("ends inside the request that starts at seq %d", open)
			case open <= committed:
				return rep, bad("ends inside acknowledged seq %d's request", open)
			}
			rep.Events, rep.Head = whole.Events, whole.Head
			rep.TornTail = fmt.Sprintf("%s offset %d: the request from seq %d lacks its last records", filepath.Base(name), openAt, open)
		}
		f.Close()
	}
	return rep, nil
}
