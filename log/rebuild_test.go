package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"strata/internal/fileutil"
)

// rebuildFixture fills a new log with n events over a few entities, some
// keyed, and returns its directory and the events' ids by seq-1.
func rebuildFixture(t *testing.T, n int) (string, [][32]byte) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ids [][32]byte
	for i := 0; i < n; i += 100 {
		var ps []Proposed
		for j := i; j < i+100 && j < n; j++ {
			p := ev("re.built", fmt.Sprintf("e%d", j%13), fmt.Sprintf(`{"j":%d}`, j))
			if j%3 == 0 {
				p.Key = fmt.Sprintf("k%d", j)
			}
			ps = append(ps, p)
		}
		for _, e := range mustAppend(t, l, ps...).Events {
			ids = append(ids, e.ID)
		}
	}
	return dir, ids
}

// seesAll fails unless l serves every one of ids: the head, each id, each
// event, the entities' heads, a scan.
func seesAll(t *testing.T, who string, l *Log, ids [][32]byte) {
	t.Helper()
	n := uint64(len(ids))
	if got := l.Through(); got != n {
		t.Fatalf("%s: through %d, want %d", who, got, n)
	}
	if h, err := l.Head(); err != nil || h.ID != ids[n-1] {
		t.Fatalf("%s: head %x %v", who, h.ID[:4], err)
	}
	for i := 0; i < len(ids); i += 37 {
		if seq, err := l.Lookup(ids[i]); err != nil || seq != uint64(i+1) {
			t.Fatalf("%s: lookup of seq %d: %d %v", who, i+1, seq, err)
		}
	}
	if seq, err := l.EntityHead(fmt.Sprintf("e%d", (n-1)%13)); err != nil || seq != n {
		t.Fatalf("%s: entity head %d %v, want %d", who, seq, err, n)
	}
	count := uint64(0)
	for it := l.Scan(1, n); it.Next(); count++ {
	}
	if count != n {
		t.Fatalf("%s: scan read %d of %d", who, count, n)
	}
}

// stopBuildAt makes rebuilds stop (as if killed) at their first progress
// mark at or past seq, and records the marks made.
func stopBuildAt(t *testing.T, chunk int, seq uint64, marks *[]uint64) {
	t.Helper()
	old := buildChunk
	buildChunk = chunk
	buildMarked = func(s uint64) error {
		*marks = append(*marks, s)
		if s >= seq {
			return errors.New("killed")
		}
		return nil
	}
	t.Cleanup(func() { buildChunk, buildMarked = old, nil })
}

// TestReindexNeverUnpublishes: a rebuild that dies midway leaves every
// reader — one that had the log open, and one that opens it after — seeing
// every event, and the next rebuild resumes where it stopped.
func TestReindexNeverUnpublishes(t *testing.T) {
	dir, ids := rebuildFixture(t, 3000)
	reader := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	seesAll(t, "reader", reader, ids)
	var marks []uint64
	stopBuildAt(t, 250, 1500, &marks)

	w, err := Open(dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Reindex(); err == nil {
		t.Fatal("the stopped rebuild reported success")
	}
	w.Close()
	seesAll(t, "reader during the rebuild", reader, ids)
	other := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	seesAll(t, "a log opened after the failed rebuild", other, ids)

	// The next rebuild resumes past the last mark.
	marks = nil
	buildMarked = func(s uint64) error { marks = append(marks, s); return nil }
	w = mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if err := w.Reindex(); err != nil {
		t.Fatal(err)
	}
	if len(marks) == 0 || marks[0] != 1750 {
		t.Fatalf("resumed rebuild marked %v, want a first mark at 1750", marks)
	}
	if _, err := os.Stat(filepath.Join(dir, indexDirName, buildDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("build directory left behind: %v", err)
	}
	seesAll(t, "the rebuilder", w, ids)
	seesAll(t, "reader after the rebuild", reader, ids)
	// The readers follow the new tables: an append after it is found.
	res := mustAppend(t, w, ev("after.rebuild", fmt.Sprintf("e%d", len(ids)%13), `1`))
	ids = append(ids, res.Events[0].ID)
	seesAll(t, "reader after an append", reader, ids)
	seesAll(t, "other after an append", other, ids)
}

// TestKilledRebuildsMakeProgress: the index directory is gone, and each
// process that opens the log is killed partway through the rebuild (a CGI
// time limit). Each resumes where the last stopped, and the third
// finishes.
func TestKilledRebuildsMakeProgress(t *testing.T) {
	dir, ids := rebuildFixture(t, 3000)
	if err := os.RemoveAll(filepath.Join(dir, indexDirName)); err != nil {
		t.Fatal(err)
	}
	var marks []uint64
	for i, stop := range []uint64{1000, 2000} {
		stopBuildAt(t, 500, stop, &marks)
		if l, err := Open(dir, Options{NoSync: true, SegmentSize: 64 << 10}); err == nil {
			l.Close()
			t.Fatalf("open %d finished a rebuild that was stopped", i)
		}
	}
	if want := []uint64{500, 1000, 1500, 2000}; fmt.Sprint(marks) != fmt.Sprint(want) {
		t.Fatalf("the stopped rebuilds marked %v, want %v (each resuming)", marks, want)
	}
	marks = nil
	buildMarked = func(s uint64) error { marks = append(marks, s); return nil }
	l := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if fmt.Sprint(marks) != "[2500 3000]" {
		t.Fatalf("the third rebuild marked %v, want [2500 3000]", marks)
	}
	seesAll(t, "after three opens", l, ids)
}

// TestMapFailureRebuildsNothing: a process that may not map the indexes (a
// memory limit) fails to open the log, and leaves the head, the offsets and
// the tables as they were for everyone else.
func TestMapFailureRebuildsNothing(t *testing.T) {
	dir, ids := rebuildFixture(t, 3000)
	reader := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	before := indexFiles(t, dir)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpMmap {
			return unix.ENOMEM // as under a shared host's ulimit -v
		}
		return nil
	})
	l, err := Open(dir, Options{NoSync: true, SegmentSize: 64 << 10})
	undo()
	if err == nil {
		l.Close()
		t.Fatal("open succeeded without mapping anything")
	}
	if !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("open: %v, want ENOMEM", err)
	}
	if after := indexFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("index files changed:\n%v\n%v", before, after)
	}
	seesAll(t, "reader", reader, ids)
	seesAll(t, "a later open", mustOpen(t, dir, Options{NoSync: true}), ids)
}

// indexFiles lists index/ by name, size and inode.
func indexFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, indexDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		st, err := os.Stat(filepath.Join(dir, indexDirName, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d %d", e.Name(), st.Size(), st.Sys().(*syscall.Stat_t).Ino))
	}
	return out
}

// TestReaderNeedsNoMap: a process that may not map the hash indexes (a
// shared host's ulimit -v on a big tenant) still opens the log and serves
// every read through pread; its appends fail, changing nothing, and work
// again once it may map.
func TestReaderNeedsNoMap(t *testing.T) {
	dir, ids := rebuildFixture(t, 3000)
	before := indexFiles(t, dir)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpMmap && filepath.Ext(path) == ".hix" {
			return unix.ENOMEM
		}
		return nil
	})
	defer undo()
	l := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	seesAll(t, "a reader that may not map", l, ids)
	it := l.ScanEntity("e3", 1000, l.Through())
	if !it.Next() || it.Event().Entity != "e3" || it.Event().Seq <= 1000 {
		t.Fatalf("entity read without maps: %v", it.Err())
	}
	if _, err := l.Append(&Request{Events: []Proposed{ev("no.map", "e1", `1`)}}); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("append without maps: %v, want ENOMEM", err)
	}
	if after := indexFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("index files changed:\n%v\n%v", before, after)
	}
	undo()
	res := mustAppend(t, l, ev("no.map", fmt.Sprintf("e%d", len(ids)%13), `1`))
	seesAll(t, "after the append", l, append(ids, res.Events[0].ID))
}

// TestBuildGrowsInOneMap: a rebuild maps a table's bigger copy only after
// it has unmapped the table itself, so its address space is the biggest
// table's, not twice that. A CGI process under a shared host's ulimit -v
// (1 GB, a 3M-event tenant) otherwise failed at the same doubling every
// time it resumed the build, and never finished it.
func TestBuildGrowsInOneMap(t *testing.T) {
	dir, ids := rebuildFixture(t, 12000)
	old := buildChunk
	buildChunk = 500
	t.Cleanup(func() { buildChunk = old })
	build := filepath.Join(dir, indexDirName, buildDirName)
	grows := 0
	var both []string
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op != fileutil.OpMmap || filepath.Dir(path) != build || !strings.HasSuffix(path, ".grow.tmp") {
			return nil
		}
		grows++
		table := strings.TrimSuffix(path, ".grow.tmp")
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Error(err)
			return nil
		}
		for _, line := range strings.Split(string(maps), "\n") {
			if strings.HasSuffix(line, " "+table) {
				both = append(both, filepath.Base(table))
				break
			}
		}
		return nil
	})
	defer undo()
	l := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if err := l.Reindex(); err != nil {
		t.Fatal(err)
	}
	undo()
	if grows == 0 {
		t.Fatal("the rebuild grew no table: the test tests nothing")
	}
	if len(both) > 0 {
		t.Fatalf("%d of %d grows mapped the old table beside the new: %v", len(both), grows, both)
	}
	seesAll(t, "after the rebuild", l, ids)
}

// TestIndexDeletedUnderWriter: the index directory is deleted under a
// writer that has the log open (a server), which rebuilds it on its next
// append; then another process opens the log and appends too. Each must
// read what the other wrote. The writer used to go on with the offsets
// files it had open — deleted, so the rebuilt directory had none, the next
// process made new ones, and from then on neither read the other's
// offsets: the server answered its head with a 500 (read at seq N: EOF).
func TestIndexDeletedUnderWriter(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 4 << 10}
	w := mustOpen(t, dir, opts)
	for i := 0; i < 50; i += 10 {
		mustAppend(t, w, faultEvents(i, 10)...)
	}
	if err := os.RemoveAll(filepath.Join(dir, indexDirName)); err != nil {
		t.Fatal(err)
	}
	w.w.checked = time.Time{} // as a second later: the writer looks again
	mustAppend(t, w, faultEvents(50, 1)...)
	segs, err := listSegments(filepath.Join(dir, logDirName))
	if err != nil || len(segs) < 2 {
		t.Fatalf("fixture: %d segments, %v", len(segs), err)
	}
	for _, first := range segs {
		if _, err := os.Stat(w.offsetsPath(first)); err != nil {
			t.Errorf("after the rebuild: %v", err)
		}
	}
	other := mustOpen(t, dir, opts)
	mustAppend(t, other, faultEvents(51, 1)...)
	mustAppend(t, w, faultEvents(52, 1)...)
	for _, l := range []*Log{w, other} {
		if h, err := l.Head(); err != nil || h.Seq != 53 {
			t.Fatalf("head: %d, %v", h.Seq, err)
		}
		for seq := uint64(1); seq <= 53; seq++ {
			if _, err := l.Event(seq); err != nil {
				t.Fatalf("event %d: %v", seq, err)
			}
		}
	}
}

// TestRecoverAfterIndexGrew: a process's view of the hash indexes is stale
// when it takes the lock to recover — Open saw bytes past the head (a
// writer at work), found the lock free a moment later and waited for it
// to repair, while other writers grew (replaced) an index. Recovery maps
// the indexes there now. It used to fail, "ids.hix was replaced since it
// was opened": a CGI request's 500 under concurrent appends.
func TestRecoverAfterIndexGrew(t *testing.T) {
	dir, ids := rebuildFixture(t, 100)
	r := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	w := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	gen := r.v().gen
	add := func(l *Log, n int) {
		var ps []Proposed
		for j := len(ids); j < len(ids)+n; j++ {
			ps = append(ps, ev("re.built", fmt.Sprintf("e%d", j%13), fmt.Sprintf(`{"j":%d}`, j)))
		}
		for _, e := range mustAppend(t, l, ps...).Events {
			ids = append(ids, e.ID)
		}
	}
	for len(ids) < 6000 {
		add(w, 500)
	}
	if w.v().head.gen() == gen {
		t.Fatal("no index grew: the test tests nothing")
	}
	if err := r.withLock(r.recoverLocked); err != nil {
		t.Fatalf("recovery with a stale view: %v", err)
	}
	seesAll(t, "the recovered process", r, ids)
	add(r, 1)
	seesAll(t, "the other writer", w, ids)
}

// TestEntitiesTableSize: a full rebuild sizes the entities table for the
// entities there are, not for a chunk of events each taken for a new one;
// and a log whose versions say no event began an entity (forged, but with
// its hashes right) is indexed whole all the same, the table grown as it
// fills rather than overfilled (a full table's probe would never end).
func TestEntitiesTableSize(t *testing.T) {
	dir, ids := rebuildFixture(t, 20000) // 13 entities
	l := mustOpen(t, dir, Options{NoSync: true, SegmentSize: 64 << 10})
	if err := l.Reindex(); err != nil {
		t.Fatal(err)
	}
	seesAll(t, "after the rebuild", l, ids)
	if slots := l.v().ents.slots(); slots != hixMinSlots {
		t.Fatalf("entities table of %d slots for 13 entities, want %d", slots, hixMinSlots)
	}

	var events []*Event
	for i := range 3 * hixMinSlots {
		e := &Event{Seq: uint64(i + 1), Entity: fmt.Sprintf("forged-%d", i), Version: 7, PrevInEntity: 3}
		binary.LittleEndian.PutUint64(e.ID[:], uint64(i+1)<<8|0xab)
		events = append(events, e)
	}
	b := &build{tables: &view{}}
	for _, k := range kinds {
		x, err := createHashIndex(filepath.Join(t.TempDir(), hixNames[k]), k, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.tables = b.tables.with(x)
	}
	defer b.close()
	if n := need(events, false); n[kindEntities] != 0 {
		t.Fatalf("need counts %d new entities: the test tests nothing", n[kindEntities])
	}
	if err := b.add(events); err != nil {
		t.Fatal(err)
	}
	ents := b.tables.ents
	if ents.used() != uint64(len(events)) || ents.used() > ents.slots()/2 {
		t.Fatalf("entities table: %d used of %d slots, want %d at most half full", ents.used(), ents.slots(), len(events))
	}
	for _, e := range events {
		if seq, _ := ents.entity(ents.hashString(e.Entity)); seq != e.Seq {
			t.Fatalf("%s: seq %d, want %d", e.Entity, seq, e.Seq)
		}
	}
}

// TestSyncCoversOtherWriters: the synced mark says every index page up to
// it is on disk, whoever wrote it; so the process that marks it syncs the
// offsets of segments other processes filled since the last mark (which
// it never opened) and the tables as they are now (another grew one).
// It used to sync only its own: after a machine crash, recovery trusted
// offsets that may never have reached the disk.
func TestSyncCoversOtherWriters(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4 << 10}
	a := mustOpen(t, dir, opts)
	b := mustOpen(t, dir, opts)
	mustAppend(t, a, faultEvents(0, 1)...)
	for i := 1; i < 6000; i += 500 {
		mustAppend(t, b, faultEvents(i, 500)...)
	}
	mark := a.v().head.synced()
	segs, err := listSegments(filepath.Join(dir, logDirName))
	if err != nil || len(segs) < 10 {
		t.Fatalf("fixture: %d segments, %v", len(segs), err)
	}
	synced := map[string]bool{}
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync {
			synced[path] = true
		}
		return nil
	})
	defer undo()
	if err := a.withLock(a.syncIndexesLocked); err != nil {
		t.Fatal(err)
	}
	undo()
	for i, first := range segs {
		if i+1 < len(segs) && segs[i+1]-1 <= mark {
			continue
		}
		if !synced[a.offsetsPath(first)] {
			t.Errorf("offsets of segment %d (after the mark %d) not synced", first, mark)
		}
	}
	if v := a.v(); v.gen != v.head.gen() {
		t.Errorf("synced tables of gen %d, the head is at %d", v.gen, v.head.gen())
	}
	if got := a.v().head.synced(); got != 6001 {
		t.Errorf("synced mark %d, want 6001", got)
	}
}

// TestOpenWriterFinished: Open sees bytes past the committed head (a
// writer between its write and its publication), then finds the lock free
// — the writer finished meanwhile. It looks again, holding the lock, and
// serves what is committed; it does not recover (a needless replay and
// fsyncs, in a CGI request that only reads).
func TestOpenWriterFinished(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	w := mustOpen(t, dir, opts)
	mustAppend(t, w, faultEvents(0, 10)...)
	head := w.v().head
	head.setThrough(9) // as if seq 10 were written, not yet published
	syncs := 0
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync || op == fileutil.OpMsync {
			syncs++
		}
		return nil
	})
	defer undo()
	pastHeadSeen = func() { head.setThrough(10) } // published
	defer func() { pastHeadSeen = nil }()
	r := mustOpen(t, dir, opts)
	pastHeadSeen = nil
	undo()
	if syncs != 0 {
		t.Errorf("Open synced %d times: it recovered a log a writer had left whole", syncs)
	}
	if h, err := r.Head(); err != nil || h.Seq != 10 {
		t.Fatalf("head %d, %v", h.Seq, err)
	}
}
