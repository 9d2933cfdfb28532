package log

import (
	"errors"
	"fmt"
	"path/filepath"
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
