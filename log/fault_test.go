package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"strata/internal/fileutil"
)

// Tests of what the log does when the file system fails under it, driven
// through fileutil's fault points: no root, no mounts, no full disk. None
// of them runs in parallel, since a fault is installed process-wide.

// step is one fault point an append passed: the operation and the file.
type step struct {
	op   fileutil.Op
	file string
}

func (s step) String() string { return fmt.Sprintf("%s %s", s.op, s.file) }

// faultScenario is a log in some state and an append to make of it.
type faultScenario struct {
	name  string
	opts  Options
	setup int // events appended first, in one request
	batch int // events of the append under test
}

var faultScenarios = []faultScenario{
	// The first append: the first segment is created.
	{name: "first", batch: 3},
	// An append into the active segment.
	{name: "plain", setup: 5, batch: 3},
	// An append that seals the segment and starts the next.
	{name: "new segment", opts: Options{SegmentSize: 512}, setup: 5, batch: 3},
	// An append that grows the hash indexes (a table is full at half its
	// hixMinSlots slots).
	{name: "index growth", setup: hixMinSlots/2 - 10, batch: 20},
}

func faultEvents(from, n int) []Proposed {
	evs := make([]Proposed, n)
	for i := range evs {
		evs[i] = ev("fault.test", fmt.Sprintf("e-%d", from+i), fmt.Sprintf(`{"i":%d,"pad":"%s"}`, from+i, strings.Repeat("x", 60)))
		evs[i].Key = fmt.Sprintf("k-%d", from+i)
	}
	return evs
}

// base builds the scenario's log before the append under test, once, and
// returns a function that makes a fresh copy of it.
func (sc faultScenario) base(t *testing.T) func() string {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, sc.opts)
	if err != nil {
		t.Fatal(err)
	}
	if sc.setup > 0 {
		mustAppend(t, l, faultEvents(0, sc.setup)...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return func() string {
		c := t.TempDir()
		copyDir(t, dir, c)
		return c
	}
}

// steps records the fault points the scenario's append passes.
func (sc faultScenario) steps(t *testing.T, fresh func() string) []step {
	t.Helper()
	l, err := Open(fresh(), sc.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var steps []step
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		steps = append(steps, step{op, filepath.Base(path)})
		return nil
	})
	_, err = l.Append(&Request{Events: faultEvents(sc.setup, sc.batch)})
	undo()
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// failAt installs a Fault that fails the n-th fault point passed (counting
// from 0) with err.
func failAt(n int, err error) (undo func()) {
	i := 0
	return fileutil.Inject(func(fileutil.Op, string) error {
		i++
		if i-1 == n {
			return err
		}
		return nil
	})
}

// TestAppendNoSpaceAtEveryStep fills the disk at each file-system step of
// an append in turn — creating a segment, growing an index, reserving
// space, writing, syncing, publishing — and checks that the append fails
// with ErrNoSpace (507), that nothing acknowledged is lost, and that the
// log takes appends again: at once if the failure came before the first
// byte of the segment was written (refuse), after a reopen otherwise
// (fail: the log refuses appends until then).
func TestAppendNoSpaceAtEveryStep(t *testing.T) {
	for _, sc := range faultScenarios {
		t.Run(sc.name, func(t *testing.T) {
			fresh := sc.base(t)
			steps := sc.steps(t, fresh)
			if len(steps) == 0 {
				t.Fatal("the append passed no fault point")
			}
			written := false // the step fails at or after the segment write
			for n, st := range steps {
				if st.op == fileutil.OpWrite && strings.HasSuffix(st.file, segmentExt) {
					written = true
				}
				t.Run(fmt.Sprintf("%d %s", n, st), func(t *testing.T) {
					dir := fresh()
					l, err := Open(dir, sc.opts)
					if err != nil {
						t.Fatal(err)
					}
					undo := failAt(n, syscall.ENOSPC)
					_, err = l.Append(&Request{Events: faultEvents(sc.setup, sc.batch)})
					undo()
					if !errors.Is(err, ErrNoSpace) {
						l.Close()
						t.Fatalf("append with the disk full at %s: %v, want ErrNoSpace", st, err)
					}
					next := faultEvents(sc.setup+sc.batch, 1)
					_, err = l.Append(&Request{Events: next})
					switch {
					case err == nil:
					case !written:
						l.Close()
						t.Fatalf("after a refused append (nothing written), the next one failed: %v", err)
					case !errors.Is(err, ErrFailed):
						l.Close()
						t.Fatalf("after a failed write, the next append: %v, want ErrFailed", err)
					}
					failed := err != nil
					l.Close()
					l = mustOpen(t, dir, sc.opts)
					if failed {
						mustAppend(t, l, next...)
					}
					checkAcknowledged(t, l, sc.setup)
				})
			}
			if !written {
				t.Fatalf("no segment write among the steps %v", steps)
			}
		})
	}
}

// checkAcknowledged checks that the first n fault events are all in l,
// found by seq, id and entity.
func checkAcknowledged(t *testing.T, l *Log, n int) {
	t.Helper()
	h, err := l.Head()
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq < uint64(n) {
		t.Fatalf("head at seq %d, before the %d acknowledged", h.Seq, n)
	}
	for _, seq := range []uint64{1, uint64(n) / 2, uint64(n)} {
		if seq == 0 {
			continue
		}
		e, err := l.Event(seq)
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		if got, err := l.Lookup(e.ID); err != nil || got != seq {
			t.Fatalf("lookup of event %d's id: %d, %v", seq, got, err)
		}
		if got, err := l.EntityHead(e.Entity); err != nil || got != seq {
			t.Fatalf("entity %s: head %d, %v; want %d", e.Entity, got, err, seq)
		}
	}
}

// TestFailedFsyncFailStop: an fsync that fails leaves the page cache in a
// state nobody knows (a later fsync may succeed without the lost pages), so
// the log stops taking appends — every later one fails with ErrFailed —
// until it is reopened, and after the reopen the chain is whole.
func TestFailedFsyncFailStop(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, faultEvents(0, 5)...)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync && strings.HasSuffix(path, segmentExt) {
			return syscall.EIO
		}
		return nil
	})
	_, err = l.Append(&Request{Events: faultEvents(5, 1)})
	undo()
	if err == nil || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append whose fsync fails: %v, want EIO", err)
	}
	for i := range 2 {
		if _, err := l.Append(&Request{Events: faultEvents(6+i, 1)}); !errors.Is(err, ErrFailed) {
			t.Fatalf("append %d after the failed fsync: %v, want ErrFailed", i, err)
		}
	}
	if h, _ := l.Head(); h.Seq != 5 {
		t.Fatalf("readers see seq %d, want the 5 acknowledged", h.Seq)
	}
	l.Close()
	l = mustOpen(t, dir, Options{})
	mustAppend(t, l, faultEvents(10, 1)...)
	checkAcknowledged(t, l, 5)
}

// TestZeroPageTornTail: an append whose write left a zeroed page (the
// file's size reached the disk, one page of it did not) and whose fsync
// failed was never acknowledged; after a machine restart, the reopened
// log cuts it as a torn tail, keeping a .broken copy, and goes on from the
// acknowledged events — whether the hole ends the file or whole records
// follow it (what fallocate-then-write leaves after a power cut).
func TestZeroPageTornTail(t *testing.T) {
	for _, c := range []struct {
		name   string
		events []Proposed
	}{
		// One record of about a page: the write covers no whole page, so
		// all of it reads back as zeros.
		{"hole at the end", []Proposed{ev("fault.test", "big", fmt.Sprintf(`{"pad":"%s"}`, strings.Repeat("y", 3000)))}},
		// 100 records of ~130 bytes: a page in the middle is zeros, whole
		// records follow it.
		{"whole records after the hole", faultEvents(5, 100)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, l, faultEvents(0, 5)...)
			// The indexes on disk, as the periodic sync leaves them: after
			// the restart, the five events are known acknowledged.
			if err := l.withLock(l.syncIndexesLocked); err != nil {
				t.Fatal(err)
			}
			undo := fileutil.Inject(func(op fileutil.Op, path string) error {
				switch {
				case op == fileutil.OpWrite && strings.HasSuffix(path, segmentExt):
					return fileutil.ErrZeroPage
				case op == fileutil.OpSync && strings.HasSuffix(path, segmentExt):
					return syscall.EIO
				}
				return nil
			})
			_, err = l.Append(&Request{Events: c.events})
			undo()
			if err == nil {
				t.Fatal("the append whose fsync failed succeeded")
			}
			l.Close()
			defer fileutil.SimulateReboot()()
			l = mustOpen(t, dir, Options{})
			checkAcknowledged(t, l, 5)
			if h, _ := l.Head(); h.Seq != 5 {
				t.Fatalf("head at %d after the torn tail, want 5", h.Seq)
			}
			broken, _ := filepath.Glob(filepath.Join(dir, logDirName, "*.broken-*"))
			if len(broken) != 1 {
				t.Fatalf("%d .broken copies of the torn tail, want 1", len(broken))
			}
			mustAppend(t, l, faultEvents(200, 1)...)
		})
	}
}

// TestZeroPageAcknowledgedIsCorruption: a zeroed page inside events that
// were acknowledged (the disk lied about the fsync) is damage to report,
// never a tail to cut.
func TestZeroPageAcknowledgedIsCorruption(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, faultEvents(0, 2)...)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpWrite && strings.HasSuffix(path, segmentExt) {
			return fileutil.ErrZeroPage
		}
		return nil
	})
	// 100 records of ~130 bytes: the zeroed page is in the middle.
	_, err = l.Append(&Request{Events: faultEvents(2, 100)})
	undo()
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, faultEvents(102, 1)...)
	l.Close()
	if _, err := Verify(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify: %v, want ErrCorrupt", err)
	}
	before := readFile(t, segPath(dir))
	l, err = Open(dir, Options{})
	if err == nil {
		// Open trusts the indexes it finds whole; reading the damaged
		// events must fail, not serve zeros.
		_, rerr := l.Event(40)
		l.Close()
		if rerr == nil {
			t.Fatal("a zeroed acknowledged event was read without an error")
		}
	} else if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
	if after := readFile(t, segPath(dir)); len(after) != len(before) {
		t.Fatalf("the segment was cut from %d to %d bytes", len(before), len(after))
	}
}

// TestMachineRestartReplaysIndexes: the indexes are written to the page
// cache and synced seldom; a machine crash may lose the pages after the
// synced mark. A head stamped with another boot id is therefore trusted
// only up to that mark, and the rest is replayed from the log. The test
// zeroes the hash tables (the pages a crash lost) and restarts the
// "machine": every event must be found again.
func TestMachineRestartReplaysIndexes(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, faultEvents(0, 50)...)
	l.Close() // no SyncOnClose: the synced mark stays at 0
	for _, name := range hixNames {
		path := filepath.Join(dir, indexDirName, name)
		b := readFile(t, path)
		clear(b[hixHeaderLen:])
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer fileutil.SimulateReboot()()
	l = mustOpen(t, dir, Options{})
	checkAcknowledged(t, l, 50)
	for i := 0; i < 50; i++ {
		e, err := l.Event(uint64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := l.Lookup(e.ID); err != nil || seq != e.Seq {
			t.Fatalf("event %d not found by id after the restart: %d, %v", e.Seq, seq, err)
		}
	}
	mustAppend(t, l, faultEvents(50, 1)...)
}

// TestAppendAfterRestartStampsBoot: after a machine restart, a log whose
// indexes were all on disk (synced up to its head) opens without a replay,
// still stamped with the old boot; its first append stamps this boot, or
// a process crash later in this boot would have the next open distrust
// every index page after the old synced mark and replay from there.
func TestAppendAfterRestartStampsBoot(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SyncOnClose: true})
	mustAppend(t, l, faultEvents(0, 5)...)
	l.Close()
	defer fileutil.SimulateReboot()()
	l = mustOpen(t, dir, Options{})
	if sameBoot(l.v().head) {
		t.Fatal("the head was stamped with this boot before any append: the test tests nothing")
	}
	mustAppend(t, l, faultEvents(5, 1)...)
	if !sameBoot(l.v().head) {
		t.Fatal("an append after the restart left the head stamped with the old boot")
	}
	checkAcknowledged(t, l, 6)
}
