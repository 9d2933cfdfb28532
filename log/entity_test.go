package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// TestScanEntity reads one entity of a long stream from many points and
// checks each read against a scan of the whole log, and its cost: at most
// the events it returns plus a checkpoint's stride and a binary search.
func TestScanEntity(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{NoSync: true})
	var all []uint64 // seqs of entity "big"
	for i := 0; i < 30; i++ {
		var ps []Proposed
		for j := 0; j < 100; j++ {
			ent := fmt.Sprintf("small-%d", j%5)
			if j%3 != 0 {
				ent = "big"
			}
			ps = append(ps, ev("s.e", ent, fmt.Sprint(i*100+j)))
		}
		for _, e := range mustAppend(t, l, ps...).Events {
			if e.Entity == "big" {
				all = append(all, e.Seq)
			}
		}
	}
	through := l.Through()
	read := func(after, to uint64, limit int) ([]uint64, uint64) {
		before := l.RecordsRead()
		var got []uint64
		it := l.ScanEntity("big", after, to)
		for len(got) < limit && it.Next() {
			got = append(got, it.Event().Seq)
		}
		if err := it.Err(); err != nil {
			t.Fatalf("after %d to %d: %v", after, to, err)
		}
		return got, l.RecordsRead() - before
	}
	want := func(after, to uint64, limit int) []uint64 {
		var w []uint64
		for _, s := range all {
			if s > after && s <= to && len(w) < limit {
				w = append(w, s)
			}
		}
		return w
	}
	for _, after := range []uint64{0, 1, 2, 150, 1000, 1999, 2500, all[len(all)-2], all[len(all)-1], through} {
		for _, to := range []uint64{through, 2000, 151} {
			for _, limit := range []int{1, 10, 100, 5000} {
				got, cost := read(after, to, limit)
				if w := want(after, to, limit); !slices.Equal(got, w) {
					t.Fatalf("after %d to %d limit %d: %v, want %v", after, to, limit, got, w)
				}
				// Returned events, one stride walked back, the head, a
				// binary search over the checkpoints, and the newest
				// event's walk in EntityHead.
				if bound := uint64(len(got)+2*versionStride+16) + 2; cost > bound {
					t.Errorf("after %d to %d limit %d: read %d records for %d events (bound %d)", after, to, limit, cost, len(got), bound)
				}
			}
		}
	}

	// Without checkpoints (an older strata's index) the read is slower
	// but the same.
	empty, err := createHashIndex(filepath.Join(t.TempDir(), "v.hix"), kindVersions, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.vmu.Lock()
	l.setView(l.v().with(empty))
	l.vmu.Unlock()
	for _, after := range []uint64{0, 1000, through} {
		got, _ := read(after, through, 50)
		if w := want(after, through, 50); !slices.Equal(got, w) {
			t.Fatalf("without checkpoints, after %d: %v, want %v", after, got, w)
		}
	}
}

// TestEntityVersion finds every version of an entity interleaved with
// others, at a cost bounded by the checkpoint stride, and refuses versions
// the entity does not have.
func TestEntityVersion(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{NoSync: true})
	var all []uint64 // all[v-1]: the seq of version v of "big"
	for i := 0; i < 5; i++ {
		var ps []Proposed
		for j := 0; j < 100; j++ {
			ent := "big"
			if j%4 == 0 {
				ent = "other"
			}
			ps = append(ps, ev("s.e", ent, fmt.Sprint(i*100+j)))
		}
		for _, e := range mustAppend(t, l, ps...).Events {
			if e.Entity == "big" {
				all = append(all, e.Seq)
			}
		}
	}
	for v := uint64(1); v <= uint64(len(all)); v++ {
		before := l.RecordsRead()
		seq, err := l.EntityVersion("big", v)
		if err != nil || seq != all[v-1] {
			t.Fatalf("version %d: seq %d, %v; want %d", v, seq, err, all[v-1])
		}
		// The head, a checkpoint lookup's reads, one stride walked back.
		if cost := l.RecordsRead() - before; cost > 2*versionStride+4 {
			t.Errorf("version %d cost %d reads", v, cost)
		}
	}
	for _, c := range []struct {
		entity  string
		version uint64
	}{{"big", 0}, {"big", uint64(len(all)) + 1}, {"none", 1}} {
		if _, err := l.EntityVersion(c.entity, c.version); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s version %d: %v, want ErrNotFound", c.entity, c.version, err)
		}
	}
}

// TestOldStrideRebuilt: an index directory whose versions table was written
// with another checkpoint stride (every 64th version, its header's stride
// zero: strata before the stride was recorded) is rebuilt once at the next
// open, and every entity page and version reads the same as before.
func TestOldStrideRebuilt(t *testing.T) {
	dir, _ := rebuildFixture(t, 3000)
	type page struct {
		entity string
		after  uint64
	}
	read := func(l *Log) (map[page][]uint64, map[string][]uint64) {
		pages, versions := map[page][]uint64{}, map[string][]uint64{}
		for i := 0; i < 13; i++ {
			ent := fmt.Sprintf("e%d", i)
			for _, after := range []uint64{0, 1, 500, 1300, 2990} {
				it := l.ScanEntity(ent, after, l.Through())
				for n := 0; n < 10 && it.Next(); n++ {
					pages[page{ent, after}] = append(pages[page{ent, after}], it.Event().Seq)
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
			for v := uint64(1); ; v++ {
				seq, err := l.EntityVersion(ent, v)
				if errors.Is(err, ErrNotFound) {
					break
				} else if err != nil {
					t.Fatalf("%s version %d: %v", ent, v, err)
				}
				versions[ent] = append(versions[ent], seq)
			}
		}
		return pages, versions
	}
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pages, versions := read(l)
	if len(versions["e0"]) < 2*64 {
		t.Fatalf("fixture too small: %d versions of e0", len(versions["e0"]))
	}

	// Put an old table in place: a checkpoint every 64th version, header
	// stride zero.
	path := filepath.Join(dir, indexDirName, hixNames[kindVersions])
	old, err := createHashIndex(path+".old", kindVersions, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for it := l.Scan(1, l.Through()); it.Next(); {
		if e := it.Event(); e.Version%64 == 0 {
			old.insert(old.versionTag(e.Entity, e.Version), e.Seq)
		}
	}
	if _, err := old.m.f.WriteAt(make([]byte, 4), hixOffStride); err != nil {
		t.Fatal(err)
	}
	old.close()
	l.Close()
	if err := os.Rename(path+".old", path); err != nil {
		t.Fatal(err)
	}
	if _, err := openHashIndex(path, kindVersions); !errors.Is(err, errBadIndex) {
		t.Fatalf("old stride opened: %v, want errBadIndex", err)
	}

	l = mustOpen(t, dir, Options{NoSync: true})
	h, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, seqs := range versions {
		want += uint64(len(seqs)) / versionStride
	}
	if stride := binary.LittleEndian.Uint32(h[hixOffStride:]); stride != versionStride {
		t.Errorf("rebuilt table's stride %d, want %d", stride, versionStride)
	}
	if got := binary.LittleEndian.Uint64(h[hixOffUsed:]); got != want {
		t.Errorf("rebuilt table holds %d checkpoints, want %d", got, want)
	}
	gotPages, gotVersions := read(l)
	if !reflect.DeepEqual(gotPages, pages) || !reflect.DeepEqual(gotVersions, versions) {
		t.Fatal("entity reads differ after the rebuild")
	}
	// And they cost what the new stride says.
	before := l.RecordsRead()
	if _, err := l.EntityVersion("e0", 3); err != nil {
		t.Fatal(err)
	}
	if cost := l.RecordsRead() - before; cost > versionStride+4 {
		t.Errorf("EntityVersion read %d records", cost)
	}
}
