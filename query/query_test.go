package query_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"strata/log"
	"strata/query"
)

// base is the time of seq 0; seq n is appended at base + n seconds.
var base = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(seq int) int64 { return base.Add(time.Duration(seq) * time.Second).UnixNano() }

// fixture is the log every test reads: one event per append, so seq n has
// the time at(n).
var fixture = []struct{ entity, typ string }{
	1:  {"books/1", "book.added"},
	2:  {"books/2", "book.added"},
	3:  {"books/1/pages/1", "page.added"},
	4:  {"authors/1", "author.added"},
	5:  {"books/1", "book.renamed"},
	6:  {"books/2", "book.removed"},
	7:  {"books/10", "book.added"},
	8:  {"books/1", "book.renamed"},
	9:  {"authors/1", "author.renamed"},
	10: {"books/1/pages/1", "page.removed"},
}

// mustOpen opens a log in a new directory with the fixture's events and
// returns it and the events' ids by seq.
func mustOpen(t testing.TB) (*log.Log, [][32]byte) {
	t.Helper()
	n := 0
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true, Now: func() time.Time { return base.Add(time.Duration(n) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ids := make([][32]byte, len(fixture))
	for seq := 1; seq < len(fixture); seq++ {
		n = seq
		f := fixture[seq]
		res, err := l.Append(&log.Request{Events: []log.Proposed{{Type: f.typ, Entity: f.entity, Data: fmt.Appendf(nil, "%d", seq), ExpectedVersion: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := res.Events[0]; e.Seq != uint64(seq) || e.Time != at(seq) {
			t.Fatalf("fixture event %d has seq %d time %d", seq, e.Seq, e.Time)
		}
		ids[seq] = res.Events[0].ID
	}
	return l, ids
}

// run reads p and returns the seqs, the page, and what the plan knew of
// Next before running.
func run(t testing.TB, l *log.Log, p query.Params) (seqs []int, pg query.Page, next uint64, known bool) {
	t.Helper()
	pl, err := query.Prepare(l, p)
	if err != nil {
		t.Fatalf("Prepare(%+v): %v", p, err)
	}
	next, known = pl.Next()
	pg, err = pl.Run(func(e *log.Event) error {
		if f := fixture[e.Seq]; e.Entity != f.entity || e.Type != f.typ || string(e.Data) != fmt.Sprint(e.Seq) {
			t.Errorf("seq %d: %s %s %s, not the fixture's", e.Seq, e.Entity, e.Type, e.Data)
		}
		seqs = append(seqs, int(e.Seq))
		return nil
	})
	if err != nil {
		t.Fatalf("Run(%+v): %v", p, err)
	}
	if pg.Count != len(seqs) {
		t.Errorf("%+v: Page.Count %d, emitted %d", p, pg.Count, len(seqs))
	}
	return seqs, pg, next, known
}

func span(a, b int) []int {
	var s []int
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

func TestBoundsAndFilters(t *testing.T) {
	l, ids := mustOpen(t)
	id := func(seq int) *[32]byte { return &ids[seq] }
	ns := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		p    query.Params
		want []int
	}{
		{"all", query.Params{}, span(1, 10)},
		{"after", query.Params{After: 3}, span(4, 10)},
		{"after the end", query.Params{After: 10}, nil},
		{"after past the end", query.Params{After: 99}, nil},
		{"from", query.Params{From: id(3)}, span(4, 10)},
		{"from the head", query.Params{From: id(10)}, nil},
		{"to", query.Params{To: id(5)}, span(1, 5)},
		{"from to", query.Params{From: id(2), To: id(6)}, span(3, 6)},
		{"to before from", query.Params{From: id(6), To: id(2)}, nil},
		{"from and a later after", query.Params{From: id(3), After: 5}, span(6, 10)},
		{"from and an earlier after", query.Params{From: id(5), After: 2}, span(6, 10)},
		{"since, inclusive", query.Params{Since: ns(at(4))}, span(4, 10)},
		{"since between", query.Params{Since: ns(at(4) + 1)}, span(5, 10)},
		{"since before all", query.Params{Since: ns(at(0))}, span(1, 10)},
		{"since after all", query.Params{Since: ns(at(11))}, nil},
		{"until, exclusive", query.Params{Until: ns(at(4))}, span(1, 3)},
		{"until between", query.Params{Until: ns(at(4) + 1)}, span(1, 4)},
		{"until before all", query.Params{Until: ns(at(1))}, nil},
		{"since until", query.Params{Since: ns(at(3)), Until: ns(at(7))}, span(3, 6)},
		{"since and to", query.Params{Since: ns(at(3)), To: id(4)}, span(3, 4)},
		{"type", query.Params{Type: "book.added"}, []int{1, 2, 7}},
		{"type glob", query.Params{Type: "book.*"}, []int{1, 2, 5, 6, 7, 8}},
		{"type glob suffix", query.Params{Type: "*.added"}, []int{1, 2, 3, 4, 7}},
		{"type unknown", query.Params{Type: "nope"}, nil},
		{"entity", query.Params{Entity: "books/1"}, []int{1, 5, 8}},
		{"entity with a slash", query.Params{Entity: "books/1/pages/1"}, []int{3, 10}},
		{"entity unknown", query.Params{Entity: "books/3"}, nil},
		{"entity glob does not cross /", query.Params{Entity: "books/*"}, []int{1, 2, 5, 6, 7, 8}},
		{"entity glob prefix", query.Params{Entity: "books/1*"}, []int{1, 5, 7, 8}},
		{"entity glob deeper", query.Params{Entity: "books/*/pages/*"}, []int{3, 10}},
		{"entity glob ?", query.Params{Entity: "books/?"}, []int{1, 2, 5, 6, 8}},
		{"entity glob class", query.Params{Entity: "[ab]*/1"}, []int{1, 4, 5, 8, 9}},
		{"entity * matches no path", query.Params{Entity: "*"}, nil},
		{"entity and type", query.Params{Entity: "books/1", Type: "book.renamed"}, []int{5, 8}},
		{"entity glob and type", query.Params{Entity: "books/*", Type: "book.re*"}, []int{5, 6, 8}},
		{"entity and after", query.Params{Entity: "books/1", After: 1}, []int{5, 8}},
		{"entity and to", query.Params{Entity: "books/1", To: id(7)}, []int{1, 5}},
		{"entity and from to", query.Params{Entity: "books/1", From: id(1), To: id(5)}, []int{5}},
		{"entity and since until", query.Params{Entity: "books/1", Since: ns(at(2)), Until: ns(at(8))}, []int{5}},
		{"type and bounds", query.Params{Type: "book.*", After: 2, To: id(7)}, []int{5, 6, 7}},
	} {
		tc.p.Limit = 100
		got, pg, next, known := run(t, l, tc.p)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: seqs %v, want %v", tc.name, got, tc.want)
		}
		if pg.Next != 0 || known && next != 0 {
			t.Errorf("%s: Next %d (planned %d, known %v) on a page that holds everything", tc.name, pg.Next, next, known)
		}
	}
}

// TestPaging reads each query a page at a time, following Page.Next as
// After, and checks the pages, Next, and Plan.Next where it is known.
func TestPaging(t *testing.T) {
	l, _ := mustOpen(t)
	for _, tc := range []struct {
		name  string
		p     query.Params
		pages [][]int
		known bool // Plan.Next is known before running
	}{
		{"all by 3", query.Params{Limit: 3}, [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10}}, true},
		{"all by 5", query.Params{Limit: 5}, [][]int{span(1, 5), span(6, 10)}, true},
		{"all by 10", query.Params{Limit: 10}, [][]int{span(1, 10)}, true},
		{"all by 1", query.Params{Limit: 1}, [][]int{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}}, true},
		{"type by 2", query.Params{Type: "book.*", Limit: 2}, [][]int{{1, 2}, {5, 6}, {7, 8}}, false},
		{"entity glob by 2", query.Params{Entity: "books/*", Limit: 2}, [][]int{{1, 2}, {5, 6}, {7, 8}}, false},
		{"entity by 2", query.Params{Entity: "books/1", Limit: 2}, [][]int{{1, 5}, {8}}, true},
		{"entity by 1", query.Params{Entity: "books/1", Limit: 1}, [][]int{{1}, {5}, {8}}, true},
		{"entity and type by 1", query.Params{Entity: "books/1", Type: "book.renamed", Limit: 1}, [][]int{{5}, {8}}, true},
	} {
		p := tc.p
		for i, want := range tc.pages {
			got, pg, next, known := run(t, l, p)
			if !slices.Equal(got, want) {
				t.Errorf("%s page %d (after %d): %v, want %v", tc.name, i, p.After, got, want)
				break
			}
			if known != tc.known {
				t.Errorf("%s page %d: Plan.Next known %v, want %v", tc.name, i, known, tc.known)
			}
			last := i == len(tc.pages)-1
			switch {
			case last && pg.Next != 0:
				t.Errorf("%s: last page has Next %d", tc.name, pg.Next)
			case !last && pg.Next == 0:
				t.Errorf("%s page %d: Next 0, but more follow", tc.name, i)
			case !last && (pg.Next < uint64(want[len(want)-1]) || pg.Next >= uint64(tc.pages[i+1][0])):
				t.Errorf("%s page %d: Next %d, not in [%d, %d)", tc.name, i, pg.Next, want[len(want)-1], tc.pages[i+1][0])
			}
			if known && next != pg.Next {
				t.Errorf("%s page %d: Plan.Next %d, Page.Next %d", tc.name, i, next, pg.Next)
			}
			p.After = pg.Next
		}
	}
}

// TestPageFull: an emit that returns ErrPageFull ends the page before that
// event, with Next pointing at it, on every read path.
func TestPageFull(t *testing.T) {
	l, _ := mustOpen(t)
	for _, tc := range []struct {
		name string
		p    query.Params
		take int // events accepted before ErrPageFull
		want uint64
	}{
		{"scan", query.Params{Limit: 100}, 3, 3},
		{"filtered scan", query.Params{Type: "book.*", Limit: 100}, 2, 4},
		{"entity glob", query.Params{Entity: "books/*", Limit: 100}, 3, 5},
		{"entity", query.Params{Entity: "books/1", Limit: 100}, 1, 4},
	} {
		n := 0
		pg, err := query.Run(l, tc.p, func(e *log.Event) error {
			if n == tc.take {
				return query.ErrPageFull
			}
			n++
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v, want the page to end early", tc.name, err)
			continue
		}
		// Next may be anywhere from the last event sent to just before the
		// refused one; it must not skip the refused one.
		if pg.Count != tc.take || pg.Next == 0 || pg.Next > tc.want {
			t.Errorf("%s: page %+v, want Count %d and 0 < Next ≤ %d", tc.name, pg, tc.take, tc.want)
		}
	}

	// Refusing the very first event is an error: an empty page cannot say
	// where to go on.
	_, err := query.Run(l, query.Params{Limit: 100}, func(*log.Event) error { return query.ErrPageFull })
	if !errors.Is(err, query.ErrPageFull) {
		t.Errorf("ErrPageFull on the first event: %v", err)
	}
	// Any other emit error ends the read with that error.
	boom := errors.New("boom")
	for _, p := range []query.Params{{Limit: 5}, {Entity: "books/1", Limit: 5}, {Type: "book.*", Limit: 5}} {
		if _, err := query.Run(l, p, func(*log.Event) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("%+v: emit error %v, want boom", p, err)
		}
	}
}

func TestNotOnChain(t *testing.T) {
	l, ids := mustOpen(t)
	other := ids[3]
	other[5] ^= 1
	if _, err := query.Prepare(l, query.Params{From: &other, Limit: 10}); !errors.Is(err, query.ErrFromNotFound) {
		t.Errorf("from an unknown id: %v, want ErrFromNotFound", err)
	}
	if _, err := query.Prepare(l, query.Params{To: &other, Limit: 10}); !errors.Is(err, query.ErrToNotFound) {
		t.Errorf("to an unknown id: %v, want ErrToNotFound", err)
	}
	// On an empty log every id is unknown.
	empty, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if _, err := query.Prepare(empty, query.Params{From: &ids[1], Limit: 10}); !errors.Is(err, query.ErrFromNotFound) {
		t.Errorf("from on an empty log: %v, want ErrFromNotFound", err)
	}
	if got, _, _, _ := run(t, empty, query.Params{Limit: 10}); len(got) != 0 {
		t.Errorf("empty log read %v", got)
	}
}

// TestZeroID: the zero id (the prev of seq 1, the head of an empty log) is
// on every chain. from=<zero> reads from the beginning, on an empty log and
// after; to=<zero> stands before seq 1, so its read is empty.
func TestZeroID(t *testing.T) {
	var zero [32]byte
	l, _ := mustOpen(t)
	if got, _, _, _ := run(t, l, query.Params{From: &zero, Limit: 3}); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("from zero: %v, want [1 2 3]", got)
	}
	if got, _, _, _ := run(t, l, query.Params{From: &zero, Entity: "books/1", Limit: 10}); !slices.Equal(got, []int{1, 5, 8}) {
		t.Errorf("from zero, one entity: %v", got)
	}
	if got, _, _, _ := run(t, l, query.Params{To: &zero, Limit: 10}); len(got) != 0 {
		t.Errorf("to zero: %v, want nothing", got)
	}
	empty, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	for _, p := range []query.Params{{From: &zero, Limit: 10}, {To: &zero, Limit: 10}, {From: &zero, To: &zero, Limit: 10}} {
		if got, _, _, _ := run(t, empty, p); len(got) != 0 {
			t.Errorf("%+v on an empty log: %v", p, got)
		}
	}
}

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		s           string
		glob, valid bool
	}{
		{"order.placed", false, true},
		{"books/42", false, true},
		{"books/*", true, true},
		{"order.?", true, true},
		{"[ab]", true, true},
		{"[", true, false},
		{"books/[a-", true, false},
		{`a\`, true, false},
	} {
		if got := query.IsGlob(tc.s); got != tc.glob {
			t.Errorf("IsGlob(%q) = %v", tc.s, got)
		}
		if got := query.ValidPattern(tc.s); got != tc.valid {
			t.Errorf("ValidPattern(%q) = %v", tc.s, got)
		}
	}
}

// bigLog appends n events, every tenth to entity "hot" of type "rare.one"
// when rare, the rest spread over other entities, and returns the log.
func bigLog(t *testing.T, n int) *log.Log {
	t.Helper()
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := 0; i < n; i += 500 {
		var ps []log.Proposed
		for j := i; j < i+500; j++ {
			p := log.Proposed{Type: "common.one", Entity: fmt.Sprintf("e%d", j%17), Data: []byte(`{"pad":"` + strings.Repeat("p", 100) + `"}`), ExpectedVersion: -1}
			if j%2 == 0 {
				p.Entity = "hot"
			}
			if j == n-3 {
				p.Type = "rare.one"
			}
			ps = append(ps, p)
		}
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestEntityReadCost: an exact-entity read costs what it returns, from the
// start of a long stream or from the middle, not the length of the stream.
func TestEntityReadCost(t *testing.T) {
	l := bigLog(t, 20000)
	for _, after := range []uint64{0, 7001, 19990} {
		before := l.RecordsRead()
		var got []uint64
		pg, err := query.Run(l, query.Params{Entity: "hot", After: after, Limit: 1}, func(e *log.Event) error {
			got = append(got, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		cost := l.RecordsRead() - before
		if len(got) != 1 || got[0] <= after || got[0] > after+2 || pg.Next != got[0] {
			t.Fatalf("after %d: %v, page %+v", after, got, pg)
		}
		if cost > 200 {
			t.Errorf("after %d: limit=1 read %d records of a 10,000-event entity", after, cost)
		}
	}
}

// TestFilteredScanBudget: a filter that matches little reads its budget and
// ends the page (empty if need be) with a Next to go on from; following the
// pages finds exactly what one unbounded read finds.
func TestFilteredScanBudget(t *testing.T) {
	l := bigLog(t, 20000)
	const budget = 64 << 10
	var got []uint64
	after, pages := uint64(0), 0
	for {
		before := l.RecordsRead()
		pg, err := query.Run(l, query.Params{Type: "rare.*", After: after, Limit: 10, Budget: budget}, func(e *log.Event) error {
			got = append(got, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if cost := l.RecordsRead() - before; cost > 1000 {
			t.Fatalf("page %d read %d records, past a %d-byte budget", pages, cost, budget)
		}
		if pg.Next == 0 {
			break
		}
		if pg.Next <= after {
			t.Fatalf("page %d: next %d does not move past %d", pages, pg.Next, after)
		}
		after = pg.Next
	}
	if len(got) != 1 || got[0] != 19998 || pages < 10 {
		t.Fatalf("found %v in %d pages", got, pages)
	}
	// The same bound on one entity's stream with a type filter.
	before := l.RecordsRead()
	pg, err := query.Run(l, query.Params{Entity: "hot", Type: "rare.*", Limit: 10, Budget: budget}, func(*log.Event) error { return nil })
	if err != nil || pg.Count != 0 || pg.Next == 0 {
		t.Fatalf("entity page %+v %v, want empty with a next", pg, err)
	}
	if cost := l.RecordsRead() - before; cost > 1000 {
		t.Fatalf("entity page read %d records", cost)
	}
}

// TestScanCancelled: a read whose client went away stops.
func TestScanCancelled(t *testing.T) {
	l := bigLog(t, 20000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pl, err := query.Prepare(l, query.Params{Type: "rare.*", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	before := l.RecordsRead()
	if _, err := pl.RunContext(ctx, func(*log.Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	if cost := l.RecordsRead() - before; cost > 256 {
		t.Fatalf("cancelled read went on for %d records", cost)
	}
}
