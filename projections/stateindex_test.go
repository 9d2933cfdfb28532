package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"strata/log"
)

// indexLog appends n entities under "a/" (every 7th deleted after), a few
// under "b/" and "ab", and returns the log.
func indexLog(t testing.TB, dir string, n int) *log.Log {
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var ps []log.Proposed
	for i := 0; i < n; i++ {
		ps = append(ps, ev(fmt.Sprintf("a/%04d", i), fmt.Sprintf(`{"i":%d,"big":%v}`, i, i%2 == 0), ""))
	}
	for i := 0; i < n; i += 3 {
		ps = append(ps, ev(fmt.Sprintf("a/%04d", i), `{"touched":true}`, ""))
	}
	for i := 0; i < n; i += 7 {
		ps = append(ps, ev(fmt.Sprintf("a/%04d", i), `null`, `{"strata":"delete"}`))
	}
	ps = append(ps, ev("ab", `1`, ""), ev("b/1", `{"b":1}`, ""), ev("b/2", `[2]`, `{"strata":"put"}`))
	if _, err := l.Append(&log.Request{Events: ps}); err != nil {
		t.Fatal(err)
	}
	return l
}

// searchAll pages through a search and checks every page against the
// states read one by one.
func searchAll(t *testing.T, l *log.Log, prefix string, limit int) []string {
	t.Helper()
	ix := OpenIndex(l)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		res, err := ix.Search(context.Background(), prefix, after, limit, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Seq != l.Through() || res.Behind {
			t.Fatalf("search stamped %d (behind %v), log at %d", res.Seq, res.Behind, l.Through())
		}
		if len(res.States) > limit {
			t.Fatalf("page of %d, limit %d", len(res.States), limit)
		}
		for _, s := range res.States {
			want, err := (&Reader{l: l}).Fold(context.Background(), s.Entity, nil, l.Through())
			if err != nil || !sameState(s, want) || s.Deleted {
				t.Fatalf("%s: index %+v %s, state %+v %v", s.Entity, s, s.State, want, err)
			}
			got = append(got, s.Entity)
		}
		if res.Next == "" {
			return got
		}
		after = res.Next
		if pages > 1000 {
			t.Fatal("no end to the pages")
		}
	}
}

func wantEntities(n int) []string {
	var want []string
	for i := 0; i < n; i++ {
		if i%7 != 0 {
			want = append(want, fmt.Sprintf("a/%04d", i))
		}
	}
	return want
}

func TestStateIndex(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	l := indexLog(t, dir, n)
	want := wantEntities(n)
	for _, limit := range []int{1000, 37, 5000} {
		got := searchAll(t, l, "a/", limit)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("limit %d: %d entities, want %d", limit, len(got), len(want))
		}
	}
	if got := searchAll(t, l, "b/", 1); fmt.Sprint(got) != "[b/1 b/2]" {
		t.Fatalf("prefix b/: %v", got)
	}
	if got := searchAll(t, l, "", 100); len(got) != len(want)+3 || got[len(got)-3] != "ab" {
		t.Fatalf("every entity: %d, last %v", len(got), got[len(got)-3:])
	}
	// Appends after the index: caught up on the next search.
	if _, err := l.Append(&log.Request{Events: []log.Proposed{ev("a/0001", `{"later":1}`, ""), ev("a/0007", `{"back":1}`, `{"strata":"put"}`)}}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "a/0007")
	got := searchAll(t, l, "a/", 500)
	if len(got) != len(want) {
		t.Fatalf("after appends: %d entities, want %d", len(got), len(want))
	}
	// A damaged or foreign index is rebuilt; the answers stay.
	path := filepath.Join(dir, "cache", indexDir, indexName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other := indexLog(t, t.TempDir(), n)
	searchAll(t, other, "", 2000)
	foreign, _ := os.ReadFile(filepath.Join(other.Dir(), "cache", indexDir, indexName))
	for name, bad := range map[string][]byte{
		"flipped block":   append(append([]byte{}, b[:100]...), append([]byte{b[100] ^ 1}, b[101:]...)...),
		"flipped trailer": append(append([]byte{}, b[:len(b)-1]...), b[len(b)-1]^1),
		"truncated":       b[:len(b)/2],
		"empty":           nil,
		"foreign":         foreign,
	} {
		os.WriteFile(path, bad, 0o644)
		if got := searchAll(t, l, "a/", 700); len(got) != len(want) {
			t.Fatalf("%s: %d entities, want %d", name, len(got), len(want))
		}
	}
}

// TestStateIndexFilter: a filter picks states; a page never looks at more
// than MaxIndexScan entries.
func TestStateIndexFilter(t *testing.T) {
	l := indexLog(t, t.TempDir(), 500)
	ix := OpenIndex(l)
	res, err := ix.Search(context.Background(), "a/", "", 10, func(s *State) (bool, error) {
		return string(s.State) == `{"i":3,"big":false,"touched":true}`, nil
	})
	if err != nil || len(res.States) != 1 || res.States[0].Entity != "a/0003" {
		t.Fatalf("filtered: %+v %v", res, err)
	}
	res, err = ix.Search(context.Background(), "a/0", "a/0100", 3, nil)
	if err != nil || len(res.States) != 3 || res.States[0].Entity != "a/0101" || res.Next != "a/0103" {
		t.Fatalf("after a/0100: %+v %v", res, err)
	}
}

// TestStateIndexIncremental: rounds of random appends (new entities
// anywhere in the order, changes, deletes, puts), each followed by a
// search: the index caught up block by block answers exactly the states
// the log folds to, every entity there once.
func TestStateIndexIncremental(t *testing.T) {
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	live := map[string]bool{}
	pad := strings.Repeat("x", 300) // blocks of ~100 entries
	for round := 0; round < 12; round++ {
		var ps []log.Proposed
		for i := 0; i < 1+rng.IntN(400); i++ {
			name := fmt.Sprintf("e/%05d", rng.IntN(5000))
			switch rng.IntN(10) {
			case 0:
				if live[name] {
					ps = append(ps, ev(name, `null`, `{"strata":"delete"}`))
					live[name] = false
				}
			case 1:
				ps = append(ps, ev(name, fmt.Sprintf(`{"put":%d}`, round), `{"strata":"put"}`))
				live[name] = true
			default:
				ps = append(ps, ev(name, fmt.Sprintf(`{"r%d":%d,"pad":%q}`, round%4, i, pad), ""))
				live[name] = true
			}
		}
		if len(ps) > 0 {
			if _, err := l.Append(&log.Request{Events: ps}); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for name, ok := range live {
			if ok {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		if got := searchAll(t, l, "e/", 1000); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: %d entities, want %d", round, len(got), len(want))
		}
	}
}

// TestCachesConcurrent: two handles on one log (as two processes would
// have) read states, time travel and search while a third appends; every
// answer is what a fold of the log through its own stamp gives, whichever
// process wrote the caches it started from, and the caches left behind
// serve the final state.
func TestCachesConcurrent(t *testing.T) {
	dir := t.TempDir()
	w := snapLog(t, dir, 10)
	var hs []*log.Log
	for i := 0; i < 2; i++ {
		l, err := log.Open(dir, log.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		hs = append(hs, l)
	}
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan error, 16)
	for g, l := range hs {
		go func() {
			r, ix := NewReader(l, 16), OpenIndex(l)
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				s, err := r.StateAt(ctx, "n", Point{})
				if err != nil {
					errs <- err
					return
				}
				if want, err := (&Reader{l: l}).Fold(ctx, "n", nil, s.Seq); err != nil || !sameState(s, want) {
					errs <- fmt.Errorf("reader %d: state at seq %d differs from its fold (%v)", g, s.Seq, err)
					return
				}
				v := uint64(1 + i%int(s.Version))
				if tv, err := r.StateAt(ctx, "n", Point{Version: v}); err != nil || tv.Version != v {
					errs <- fmt.Errorf("reader %d: version %d: %v", g, v, err)
					return
				}
				res, err := ix.Search(ctx, "", "", 100, nil)
				if err != nil {
					errs <- err
					return
				}
				for _, st := range res.States {
					if want, err := (&Reader{l: l}).Fold(ctx, st.Entity, nil, res.Seq); err != nil || !sameState(st, want) {
						errs <- fmt.Errorf("reader %d: search stamped %d: %s differs from its fold (%v)", g, res.Seq, st.Entity, err)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		if _, err := w.Append(&log.Request{Events: []log.Proposed{
			ev("n", fmt.Sprintf(`{"i":%d}`, i), ""), ev(fmt.Sprintf("o/%d", i%7), `{"x":1}`, ""),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range hs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	final, err := NewReader(hs[0], 16).StateAt(ctx, "n", Point{})
	if err != nil || !sameState(final, scratch(t, hs[0], final.Version)) || final.Seq != hs[0].Through()-1 {
		t.Fatalf("final state: %+v %v", final, err)
	}
	got := searchAll(t, hs[1], "", 3)
	if len(got) != 9 {
		t.Fatalf("final search: %v", got)
	}
}
