package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"

	"github.com/klauspost/compress/zstd"
)

// compactEntities is how many entities the test logs spread their events
// over, so that every entity has a stream crossing segments.
const compactEntities = 37

// fillLog appends n realistic events in requests of 50 to a log whose
// segments are small, so that it has several sealed ones.
func fillLog(tb testing.TB, l *Log, seed uint64, n int) {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	for done := 0; done < n; done += 50 {
		evs := realisticEvents(r, min(50, n-done))
		for i := range evs {
			evs[i].Entity = fmt.Sprintf("order-%d", r.IntN(compactEntities))
		}
		mustAppend(tb, l, evs...)
	}
}

// compactOpts makes segments of 64 KiB: ~120 events, two frames each.
var compactOpts = Options{NoSync: true, SegmentSize: 64 << 10}

// reads returns everything a reader can get from l, as one text: every
// event by seq, found again by id, every entity's stream, and the raw scan.
func reads(tb testing.TB, l *Log) string {
	tb.Helper()
	var b []byte
	through := l.Through()
	for seq := uint64(1); seq <= through; seq++ {
		e, err := l.Event(seq)
		if err != nil {
			tb.Fatalf("event %d: %v", seq, err)
		}
		if got, err := l.Lookup(e.ID); err != nil || got != seq {
			tb.Fatalf("lookup of seq %d's id: %d, %v", seq, got, err)
		}
		b = e.AppendJSON(b)
		b = append(b, '\n')
	}
	for i := 0; i < compactEntities; i++ {
		it := l.ScanEntity(fmt.Sprintf("order-%d", i), 0, through)
		for it.Next() {
			b = fmt.Appendf(b, "%d:%d ", i, it.Event().Seq)
		}
		if it.Err() != nil {
			tb.Fatalf("entity %d: %v", i, it.Err())
		}
	}
	it := l.ScanRaw(1, through)
	for it.Next() {
		r := it.Raw()
		b = fmt.Appendf(b, "%d %s %s %x %s\n", r.Seq, r.Type, r.Entity, r.ID(), r.Data())
	}
	if it.Err() != nil {
		tb.Fatalf("scan: %v", it.Err())
	}
	return string(b)
}

func segFiles(tb testing.TB, dir, ext string) []string {
	tb.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, logDirName, "*"+ext))
	return m
}

func TestCompactReadsTheSame(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 1200)
	before := reads(t, l)
	segs := segFiles(t, dir, segmentExt)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	orig := map[string][]byte{}
	for _, p := range segs {
		orig[p], _ = os.ReadFile(p)
	}
	bytesBefore, _ := l.Bytes()
	res, err := l.Compact(CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments != len(segs)-1 || res.BytesAfter*2 > res.BytesBefore {
		t.Fatalf("compact: %+v of %d segments", res, len(segs))
	}
	if got := segFiles(t, dir, zsegExt); len(got) != len(segs)-1 {
		t.Fatalf("%d .zseg files", len(got))
	}
	if got := reads(t, l); got != before {
		t.Fatal("reads differ after compaction")
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
	// The same in a fresh Log, which opens the .zseg files from the start.
	l2 := mustOpen(t, dir, compactOpts)
	if got := reads(t, l2); got != before {
		t.Fatal("reads differ in a new Log")
	}
	// Every .zseg is a plain zstd stream of the original bytes, for a
	// streaming decoder as for `zstd -d`.
	for _, p := range segs[:len(segs)-1] {
		zp := strings.TrimSuffix(p, segmentExt) + zsegExt
		f, err := os.Open(zp)
		if err != nil {
			t.Fatal(err)
		}
		d, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(d)
		d.Close()
		f.Close()
		if err != nil || !bytes.Equal(got, orig[p]) {
			t.Fatalf("%s does not stream-decode to the segment: %v", zp, err)
		}
	}
	// Sizes count what is on disk; stats add up.
	bytesAfter, _ := l.Bytes()
	if bytesAfter != bytesBefore-res.BytesBefore+res.BytesAfter {
		t.Fatalf("Bytes %d → %d, compaction %+v", bytesBefore, bytesAfter, res)
	}
	st, err := l.SegmentStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != len(segs) || st.Compressed != len(segs)-1 || st.Bytes != bytesAfter ||
		st.CompressedBytes != res.BytesAfter || st.CompressedLogicalBytes != res.BytesBefore || st.LogicalBytes != bytesBefore {
		t.Fatalf("stats %+v after %+v (bytes %d → %d)", st, res, bytesBefore, bytesAfter)
	}
	// Appends go on; a second compaction finds the newly sealed ones only.
	fillLog(t, l, 2, 300)
	res2, err := l.Compact(CompactOptions{})
	if err != nil || res2.Segments == 0 {
		t.Fatalf("second compaction: %+v, %v", res2, err)
	}
	if res3, err := l.Compact(CompactOptions{}); err != nil || res3.Segments != 0 {
		t.Fatalf("third compaction: %+v, %v", res3, err)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
}

func TestCompactSpans(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 600)
	spans, err := l.Spans(l.Through())
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]byte, len(spans))
	for i, sp := range spans {
		b, _ := os.ReadFile(sp.Path)
		want[i] = b[:sp.Size]
	}
	if _, err := l.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	// The spans taken before still open: OpenSpan finds the .zseg.
	check := func(spans []Span) {
		t.Helper()
		for i, sp := range spans {
			r, err := OpenSpan(sp)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, sp.Size)
			if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, want[i]) {
				t.Fatalf("span %s: %v", sp.Name, err)
			}
			r.Close()
		}
	}
	check(spans)
	after, err := l.Spans(l.Through())
	if err != nil {
		t.Fatal(err)
	}
	for i, sp := range after {
		if sp.Name != spans[i].Name || sp.Size != spans[i].Size {
			t.Fatalf("span %d: %+v, was %+v", i, sp, spans[i])
		}
		if i < len(after)-1 && !strings.HasSuffix(sp.Path, zsegExt) {
			t.Fatalf("span %d: path %s", i, sp.Path)
		}
	}
	check(after)
}

func TestCompactMinAgeAndBudget(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 600)
	if res, err := l.Compact(CompactOptions{MinAge: 1 << 40}); err != nil || res.Segments != 0 {
		t.Fatalf("min age: %+v %v", res, err)
	}
	var calls int
	var last, total int64
	res, err := l.Compact(CompactOptions{Budget: 1, Progress: func(d, t int64) { calls, last, total = calls+1, d, t }})
	if err != nil || res.Segments != 1 || res.Remaining == 0 {
		t.Fatalf("budget: %+v %v", res, err)
	}
	if calls == 0 || last != res.BytesBefore || total <= last {
		t.Fatalf("progress: %d calls, %d of %d", calls, last, total)
	}
}

func TestCompactBusy(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 300)
	lk, err := openLock(filepath.Join(dir, logDirName, compactLockName))
	if err != nil || !lk.tryLock() {
		t.Fatal("lock", err)
	}
	if _, err := l.Compact(CompactOptions{}); !errors.Is(err, ErrCompactBusy) {
		t.Fatalf("want ErrCompactBusy, got %v", err)
	}
	lk.close()
	if res, err := l.Compact(CompactOptions{}); err != nil || res.Segments == 0 {
		t.Fatalf("after: %+v %v", res, err)
	}
}

// TestCompactWhileWorking compacts while writers append and readers read
// in other goroutines, and a second compactor is turned away.
func TestCompactWhileWorking(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 600)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() { // a writer
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, 3))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(&Request{Events: realisticEvents(r, 20)}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() { // readers
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				through := l.Through()
				seq := 1 + r.Uint64N(through)
				e, err := l.Event(seq)
				if err == nil && e.Seq != seq {
					err = fmt.Errorf("event %d is seq %d", seq, e.Seq)
				}
				if err == nil {
					var got uint64
					if got, err = l.Lookup(e.ID); err == nil && got != seq {
						err = fmt.Errorf("lookup of %d: %d", seq, got)
					}
				}
				if err == nil {
					it := l.ScanRaw(1, through)
					for it.Next() {
					}
					err = it.Err()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	busy := 0
	for i := 0; i < 5; i++ {
		var wg2 sync.WaitGroup
		results := make([]error, 2)
		for c := range results {
			wg2.Add(1)
			go func() {
				defer wg2.Done()
				_, results[c] = l.Compact(CompactOptions{})
			}()
		}
		wg2.Wait()
		for _, err := range results {
			if errors.Is(err, ErrCompactBusy) {
				busy++
			} else if err != nil {
				t.Error(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if busy == 0 {
		t.Log("no compaction ran into the other (timing)")
	}
	if len(segFiles(t, dir, zsegExt)) == 0 {
		t.Fatal("nothing compacted")
	}
}

// heldSegs lists the files of dir/log this process has open whose names
// end in ext (a deleted one too).
func heldSegs(tb testing.TB, dir, ext string) []string {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skip("no /proc/self/fd")
	}
	var held []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, filepath.Join(dir, logDirName)) && strings.HasSuffix(strings.TrimSuffix(target, " (deleted)"), ext) {
			held = append(held, target)
		}
	}
	return held
}

// TestCompactOtherLog compacts through a second Log, as another process
// would: the first keeps reading the same bytes, moves onto the .zseg
// files, and closes the .seg files after the grace period, so their disk
// is freed.
func TestCompactOtherLog(t *testing.T) {
	defer func(g time.Duration) { retireGrace = g }(retireGrace)
	retireGrace = 50 * time.Millisecond
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 800)
	before := reads(t, l) // every segment open now
	if n := len(heldSegs(t, dir, segmentExt)); n < 5 {
		t.Fatalf("%d segments held open before", n)
	}
	other := mustOpen(t, dir, compactOpts)
	if res, err := other.Compact(CompactOptions{}); err != nil || res.Segments == 0 {
		t.Fatalf("compact: %+v %v", res, err)
	}
	if got := reads(t, l); got != before {
		t.Fatal("reads differ after another Log compacted")
	}
	if held := heldSegs(t, dir, zsegExt); len(held) == 0 {
		t.Fatal("the first Log did not move onto the .zseg files")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Only the active segment's .seg (never compressed; both Logs
		// have it) may stay open.
		segs := l.segments()
		active := filepath.Join(dir, logDirName, segmentName(segs[len(segs)-1].first))
		held := heldSegs(t, dir, segmentExt)
		if !slices.ContainsFunc(held, func(p string) bool { return p != active }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still open after the grace period: %v", held)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Appends and reads go on in both.
	fillLog(t, l, 2, 200)
	if got, want := reads(t, other), reads(t, l); got != want {
		t.Fatal("the two Logs read differently")
	}
}

// TestCompactFaults fails each step of a compaction before its rename:
// the .seg stays, no .zseg appears, reads are the same, and a later
// compaction succeeds.
func TestCompactFaults(t *testing.T) {
	for _, c := range []struct {
		name string
		op   fileutil.Op
		ext  string
		err  error
	}{
		{"create", fileutil.OpCreate, zsegTmpExt, syscall.EACCES},
		{"write ENOSPC", fileutil.OpWrite, zsegTmpExt, syscall.ENOSPC},
		{"fsync", fileutil.OpSync, zsegTmpExt, syscall.EIO},
		{"rename", fileutil.OpRename, zsegExt, syscall.EIO},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{SegmentSize: 64 << 10})
			fillLog(t, l, 1, 400)
			before := reads(t, l)
			segs := segFiles(t, dir, segmentExt)
			hit := 0
			undo := fileutil.Inject(func(op fileutil.Op, path string) error {
				if op == c.op && strings.HasSuffix(path, c.ext) {
					hit++
					return c.err
				}
				return nil
			})
			_, err := l.Compact(CompactOptions{})
			undo()
			if err == nil || hit == 0 || !errors.Is(err, c.err) {
				t.Fatalf("compact: %v (fault hit %d times)", err, hit)
			}
			if got := segFiles(t, dir, segmentExt); len(got) != len(segs) {
				t.Fatalf("%d .seg files, were %d", len(got), len(segs))
			}
			if z, tmp := segFiles(t, dir, zsegExt), segFiles(t, dir, zsegTmpExt); len(z)+len(tmp) != 0 {
				t.Fatalf("left %v %v", z, tmp)
			}
			if reads(t, l) != before || reads(t, mustOpen(t, dir, Options{})) != before {
				t.Fatal("reads differ")
			}
			if res, err := l.Compact(CompactOptions{}); err != nil || res.Segments != len(segs)-1 {
				t.Fatalf("later compaction: %+v %v", res, err)
			}
			if reads(t, l) != before {
				t.Fatal("reads differ after")
			}
		})
	}
}

// TestCompactInterrupted: a compaction that stopped between its rename and
// the removal of the .seg (both files present), or that was killed while
// writing (a .zseg.tmp), leaves a log that reads the same; the next
// compaction tidies up.
func TestCompactInterrupted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 64 << 10})
	fillLog(t, l, 1, 400)
	before := reads(t, l)
	segs := segFiles(t, dir, segmentExt)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpRemove && strings.HasSuffix(path, segmentExt) {
			return syscall.EIO
		}
		return nil
	})
	_, err := l.Compact(CompactOptions{})
	undo()
	if err == nil {
		t.Fatal("compaction did not fail")
	}
	if z := segFiles(t, dir, zsegExt); len(z) != 1 || len(segFiles(t, dir, segmentExt)) != len(segs) {
		t.Fatalf("want the first segment in both forms: %v", z)
	}
	// A killed compaction's temp file, which an open's recovery leaves to
	// the compactor.
	tmp := filepath.Join(dir, logDirName, zsegName(segFirst(t, segs[1]))+".tmp")
	if err := os.WriteFile(tmp, []byte("half a zstd frame"), 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir, Options{})
	if reads(t, l2) != before || reads(t, l) != before {
		t.Fatal("reads differ")
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("open removed a compaction's temp file: %v", err)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
	res, err := l2.Compact(CompactOptions{})
	if err != nil || res.Segments != len(segs)-2 {
		t.Fatalf("next compaction: %+v %v", res, err)
	}
	if got := segFiles(t, dir, segmentExt); len(got) != 1 {
		t.Fatalf(".seg files left: %v", got)
	}
	if got := segFiles(t, dir, zsegTmpExt); len(got) != 0 {
		t.Fatalf("temp files left: %v", got)
	}
	if reads(t, l) != before || reads(t, l2) != before {
		t.Fatal("reads differ after")
	}
}

func segFirst(tb testing.TB, path string) uint64 {
	first, ok := parseSegmentName(filepath.Base(path))
	if !ok {
		tb.Fatalf("not a segment: %s", path)
	}
	return first
}

// TestCompactDamage: a damaged .zseg is reported as ErrCorrupt naming it,
// by a read and by Verify, never a panic.
func TestCompactDamage(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"frame byte", func(b []byte) []byte {
			z := &zsegReader{}
			if err := z.readSeekTable(bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
			fr := z.frames[len(z.frames)/2]
			b[fr.coff+int64(fr.csize)/2] ^= 0x40
			return b
		}},
		{"seek table cut", func(b []byte) []byte { return b[:len(b)-5] }},
		{"seek table entry", func(b []byte) []byte {
			b[len(b)-seekFooterLen-seekEntryLen] ^= 1 // the last frame's compressed size
			return b
		}},
		{"truncated frames", func(b []byte) []byte {
			return append(b[:len(b)/3], b[len(b)-(len(b)/3):]...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, compactOpts)
			if err != nil {
				t.Fatal(err)
			}
			fillLog(t, l, 1, 400)
			if _, err := l.Compact(CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			zs := segFiles(t, dir, zsegExt)
			victim := zs[len(zs)/2]
			b, _ := os.ReadFile(victim)
			if err := os.WriteFile(victim, c.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(victim)
			_, err = Verify(dir)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
				t.Fatalf("verify: %v", err)
			}
			l, err = Open(dir, compactOpts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var bad error
			for seq := uint64(1); seq <= l.Through() && bad == nil; seq++ {
				_, bad = l.Event(seq)
			}
			if !errors.Is(bad, ErrCorrupt) || !strings.Contains(bad.Error(), name) {
				t.Fatalf("read: %v", bad)
			}
			it := l.ScanRaw(1, l.Through())
			for it.Next() {
			}
			if !errors.Is(it.Err(), ErrCorrupt) {
				t.Fatalf("scan: %v", it.Err())
			}
		})
	}
}

// TestCutAfterCompressed: a restore's cut in a compressed segment
// decompresses it (the last segment is never compressed) and removes the
// later ones, compressed or not; the log then reads and appends as before.
func TestCutAfterCompressed(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 800)
	want := map[uint64]string{}
	for seq := uint64(1); seq <= l.Through(); seq++ {
		e, _ := l.Event(seq)
		want[seq] = string(e.AppendJSON(nil))
	}
	if _, err := l.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	segs := l.segments()
	// Inside the third segment, compressed, at the end of a request (a
	// cut inside one leaves it torn, which the next open cuts back).
	cut := (segs[2].first + 49) / 50 * 50
	if cut >= segs[3].first-1 {
		t.Fatalf("no request ends inside segment %d", segs[2].first)
	}
	l.Close()
	if err := CutAfter(dir, cut); err != nil {
		t.Fatal(err)
	}
	ents, _ := listSegmentFiles(filepath.Join(dir, logDirName))
	if len(ents) != 3 || !ents[2].seg || ents[2].zseg || !ents[1].zseg || ents[1].seg {
		t.Fatalf("segments after the cut: %+v", ents)
	}
	l2 := mustOpen(t, dir, compactOpts)
	if l2.Through() != cut {
		t.Fatalf("through %d, want %d", l2.Through(), cut)
	}
	for seq := uint64(1); seq <= cut; seq++ {
		e, err := l2.Event(seq)
		if err != nil || string(e.AppendJSON(nil)) != want[seq] {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	fillLog(t, l2, 5, 100)
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
}

// TestCompactReindex: the indexes rebuild from compressed segments (a
// deleted index directory, and Reindex) to the same reads.
func TestCompactReindex(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, compactOpts)
	fillLog(t, l, 1, 600)
	before := reads(t, l)
	if _, err := l.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Reindex(); err != nil {
		t.Fatal(err)
	}
	if reads(t, l) != before {
		t.Fatal("reads differ after Reindex")
	}
	l.Close()
	if err := os.RemoveAll(filepath.Join(dir, indexDirName)); err != nil {
		t.Fatal(err)
	}
	if reads(t, mustOpen(t, dir, compactOpts)) != before {
		t.Fatal("reads differ after a rebuild at open")
	}
}
