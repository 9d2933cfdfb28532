package projections

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"strata/internal/fileutil"
	"strata/log"
)

// snapLog is a log whose entity "n" has n versions (each merging three
// members), with events of "other" between them.
func snapLog(t testing.TB, dir string, n int) *log.Log {
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var ps []log.Proposed
	for i := 1; i <= n; i++ {
		ps = append(ps, ev("n", fmt.Sprintf(`{"i":%d,"k%d":%d}`, i, i%5, i), ""))
		if i%3 == 0 {
			ps = append(ps, ev("other", fmt.Sprintf(`{"j":%d}`, i), ""))
		}
	}
	if _, err := l.Append(&log.Request{Events: ps}); err != nil {
		t.Fatal(err)
	}
	return l
}

// scratch is the state of "n" at version v folded from its first event,
// writing nothing.
func scratch(t testing.TB, l *log.Log, v uint64) *State {
	seq, err := l.EntityVersion("n", v)
	if err != nil {
		t.Fatal(err)
	}
	s, err := (&Reader{l: l}).Fold(context.Background(), "n", nil, seq)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameState(a, b *State) bool {
	return a.Version == b.Version && a.Seq == b.Seq && a.ID == b.ID && a.Time == b.Time &&
		string(a.State) == string(b.State) && a.Deleted == b.Deleted
}

// TestSnapshotStates: states read through snapshots are the states folded
// from scratch, at every kind of point, and cost what follows the nearest
// snapshot.
func TestSnapshotStates(t *testing.T) {
	const n = 1000
	l := snapLog(t, t.TempDir(), n)
	r := NewReader(l, 64)
	ctx := context.Background()
	head, err := r.StateAt(ctx, "n", Point{})
	if err != nil || !sameState(head, scratch(t, l, n)) {
		t.Fatalf("head: %+v %v", head, err)
	}
	list, more, err := r.Snapshots("n", 0, 100)
	if err != nil || more || len(list) != n/64 {
		t.Fatalf("after one read: %d snapshots, more %v, %v; want %d", len(list), more, err, n/64)
	}
	for i, s := range list {
		if s.Version != uint64(64*(i+1)) || s.Kind != KindAuto || s.Entity != "n" || s.Size == 0 {
			t.Fatalf("snapshot %d: %+v", i, s)
		}
	}
	for _, v := range []uint64{1, 63, 64, 65, 500, 639, 640, 999, 1000} {
		before := l.RecordsRead()
		s, err := r.StateAt(ctx, "n", Point{Version: v})
		// Finding the version's seq costs up to a checkpoint stride of
		// reads; the fold at most the interval.
		if reads := l.RecordsRead() - before; reads > 3*64+16 { // the version, the checkpoint chunk, the fold
			t.Errorf("version %d: %d records read", v, reads)
		}
		if err != nil || !sameState(s, scratch(t, l, v)) {
			t.Fatalf("version %d: %+v %v", v, s, err)
		}
		seq := s.Seq
		if s2, err := r.StateAt(ctx, "n", Point{Seq: &seq}); err != nil || !sameState(s2, s) {
			t.Fatalf("seq %d: %+v %v", seq, s2, err)
		}
	}
	before := l.RecordsRead()
	if s, err := r.StateAt(ctx, "n", Point{}); err != nil || !sameState(s, head) {
		t.Fatalf("head again: %v", err)
	}
	if reads := l.RecordsRead() - before; reads > 3 {
		t.Errorf("head read from the latest-state cache: %d records read", reads)
	}
	page, more, err := r.History(ctx, "n", 700, 10)
	if err != nil || !more || len(page) != 10 || !sameState(page[9], scratch(t, l, 710)) {
		t.Errorf("history after 700: %d, %v", len(page), err)
	}
	a, b, _, _, err := r.Diff(ctx, "n", 300, 900)
	if err != nil || !sameState(a, scratch(t, l, 300)) || !sameState(b, scratch(t, l, 900)) {
		t.Errorf("diff 300→900: %v", err)
	}
}

// TestSnapshotDamage: a damaged, truncated, foreign or deleted snapshot is
// ignored and replaced; the answer never changes.
func TestSnapshotDamage(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	l := snapLog(t, dir, n)
	r := NewReader(l, 64)
	ctx := context.Background()
	want := scratch(t, l, n)
	if _, err := r.StateAt(ctx, "n", Point{}); err != nil {
		t.Fatal(err)
	}
	edir := entityDir(dir, "n")
	files, _ := listSnapshots(dir, "n")
	if len(files) != 4 {
		t.Fatalf("%d snapshot files, want 4", len(files))
	}
	// A foreign log's snapshots: the same entity and versions, other ids.
	other := t.TempDir()
	ol := snapLog(t, other, n) // the same seqs and versions, other times and ids
	if _, err := NewReader(ol, 64).StateAt(ctx, "n", Point{}); err != nil {
		t.Fatal(err)
	}
	damage := map[string]func(path string){
		"flipped": func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o644)
		},
		"truncated": func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/3], 0o644)
		},
		"empty":   func(p string) { os.WriteFile(p, nil, 0o644) },
		"deleted": func(p string) { os.Remove(p) },
		"foreign": func(p string) {
			b, err := os.ReadFile(filepath.Join(entityDir(other, "n"), filepath.Base(p)))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, b, 0o644)
		},
	}
	for name, hurt := range damage {
		for _, f := range append(files, snapFile{name: latestName}) {
			hurt(filepath.Join(edir, f.name))
		}
		for _, v := range []uint64{n, 200, 128, 5} {
			p := Point{Version: v}
			if v == n {
				p = Point{}
			}
			s, err := r.StateAt(ctx, "n", p)
			if err != nil || !sameState(s, scratch(t, l, v)) {
				t.Fatalf("%s snapshots, version %d: %+v %v", name, v, s, err)
			}
		}
		// The head read wrote the snapshots again, whole.
		for _, f := range files {
			if s, _, err := readSnapshot(l, filepath.Join(edir, f.name), "n"); s == nil || err != nil {
				t.Errorf("%s: snapshot %s not replaced (%v)", name, f.name, err)
			}
		}
		if s, _, _ := readSnapshot(l, filepath.Join(edir, latestName), "n"); s == nil || !sameState(s, want) {
			t.Errorf("%s: latest-state cache not replaced", name)
		}
	}
}

// TestSnapshotManual: a manual snapshot of any version is listed, used and
// the latest; a tombstone is snapshotted as deleted.
func TestSnapshotManual(t *testing.T) {
	l := snapLog(t, t.TempDir(), 100)
	r := NewReader(l, 0) // automatic snapshots off
	ctx := context.Background()
	info, err := r.Snapshot(ctx, "n")
	if err != nil || info.Version != 100 || info.Kind != KindManual {
		t.Fatalf("manual snapshot: %+v %v", info, err)
	}
	if _, err := r.Snapshot(ctx, "none"); !errors.Is(err, ErrNoEntity) {
		t.Errorf("snapshot of no entity: %v", err)
	}
	if _, _, err := r.LatestSnapshot("other-none"); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("latest of none: %v", err)
	}
	if _, err := l.Append(&log.Request{Events: []log.Proposed{ev("n", `{}`, `{"strata":"delete"}`)}}); err != nil {
		t.Fatal(err)
	}
	info, err = r.Snapshot(ctx, "n")
	if err != nil || info.Version != 101 || !info.Deleted {
		t.Fatalf("snapshot of a tombstone: %+v %v", info, err)
	}
	s, latest, err := r.LatestSnapshot("n")
	if err != nil || latest.Version != 101 || !s.Deleted || string(s.State) != "null" {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	list, _, _ := r.Snapshots("n", 0, 10)
	if len(list) != 2 || list[0].Version != 100 {
		t.Fatalf("list: %+v", list)
	}
	before := l.RecordsRead()
	s, err = r.StateAt(ctx, "n", Point{Version: 100})
	if reads := l.RecordsRead() - before; reads > 8 {
		t.Errorf("version 100 from its manual snapshot: %d records read", reads)
	}
	if err != nil || !sameState(s, scratch(t, l, 100)) {
		t.Fatal(err)
	}
}

// TestFoldContext: a fold stops when its context ends.
func TestFoldContext(t *testing.T) {
	l := snapLog(t, t.TempDir(), 2000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewReader(l, 0).StateAt(ctx, "n", Point{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fold: %v", err)
	}
}

// TestCacheWritesFail: with every file-system step of writing a cache
// failing in turn (a full disk, a read-only cache directory), states,
// manual snapshots aside, and searches still answer right, and nothing
// half-written is left.
func TestCacheWritesFail(t *testing.T) {
	dir := t.TempDir()
	l := snapLog(t, dir, 500)
	ctx := context.Background()
	want := scratch(t, l, 500)
	for _, op := range []fileutil.Op{fileutil.OpCreate, fileutil.OpWrite, fileutil.OpRename, fileutil.OpMkdir} {
		undo := fileutil.Inject(func(o fileutil.Op, path string) error {
			if o == op && strings.Contains(path, "cache") {
				return syscall.ENOSPC
			}
			return nil
		})
		s, err := NewReader(l, 64).StateAt(ctx, "n", Point{})
		mid, merr := NewReader(l, 64).StateAt(ctx, "n", Point{Version: 250})
		res, serr := OpenIndex(l).Search(ctx, "", "", 10, nil)
		_, snapErr := NewReader(l, 64).Snapshot(ctx, "n")
		undo()
		if err != nil || !sameState(s, want) || merr != nil || !sameState(mid, scratch(t, l, 250)) {
			t.Errorf("%s failing: state %v, version 250 %v", op, err, merr)
		}
		if serr != nil || len(res.States) != 2 || !sameState(res.States[0], want) {
			t.Errorf("%s failing: search %+v %v", op, res, serr)
		}
		if snapErr == nil {
			t.Errorf("%s failing: a manual snapshot reported written", op)
		}
		filepath.Walk(filepath.Join(dir, "cache"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(p, ".tmp") {
				t.Errorf("%s failing: left %s", op, p)
			}
			return nil
		})
		os.RemoveAll(filepath.Join(dir, "cache"))
	}
}
