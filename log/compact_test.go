package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
