package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mustOpen opens a log in dir and closes it when the test ends, after
// checking that the chain verifies.
func mustOpen(tb testing.TB, dir string, opts Options) *Log {
	tb.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		l.Close()
		if _, err := Verify(dir); err != nil {
			tb.Errorf("verify after test: %v", err)
		}
	})
	return l
}

func ev(typ, entity, data string) Proposed {
	return Proposed{Type: typ, Entity: entity, Data: []byte(data), ExpectedVersion: -1}
}

func mustAppend(tb testing.TB, l *Log, events ...Proposed) *Result {
	tb.Helper()
	res, err := l.Append(&Request{Events: events})
	if err != nil {
		tb.Fatalf("append: %v", err)
	}
	return res
}

func TestAppendAndRead(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	res := mustAppend(t, l, ev("order.placed", "order-1", `{"sku":"A-1","qty":3}`), ev("order.paid", "order-1", `12345678901234567890`), ev("user.created", "u/1", `null`))
	if res.Stored != 3 || res.Head.Seq != 3 {
		t.Fatalf("stored %d head %d", res.Stored, res.Head.Seq)
	}
	want := []struct {
		seq, version uint64
		entity       string
	}{{1, 1, "order-1"}, {2, 2, "order-1"}, {3, 1, "u/1"}}
	for i, w := range want {
		e := res.Events[i]
		if e.Seq != w.seq || e.Version != w.version || e.Entity != w.entity {
			t.Errorf("event %d: seq %d version %d entity %q", i, e.Seq, e.Version, e.Entity)
		}
	}
	if res.Events[0].Prev != zeroID || res.Events[1].Prev != res.Events[0].ID {
		t.Error("prev links wrong")
	}
	for _, e := range res.Events {
		got, err := l.Event(e.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != e.ID || string(got.Data) != string(e.Data) {
			t.Errorf("seq %d read back differs", e.Seq)
		}
		seq, err := l.Lookup(e.ID)
		if err != nil || seq != e.Seq {
			t.Errorf("lookup %x: %d %v", e.ID[:4], seq, err)
		}
	}
	if _, err := l.Lookup([32]byte{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup of unknown id: %v", err)
	}
	if seq, _ := l.EntityHead("order-1"); seq != 2 {
		t.Errorf("entity head of order-1 = %d", seq)
	}
	if seq, _ := l.EntityHead("nobody"); seq != 0 {
		t.Errorf("entity head of nobody = %d", seq)
	}
	// Reopen: everything is still there.
	l.Close()
	l2 := mustOpen(t, dir, Options{})
	h, err := l2.Head()
	if err != nil || h.Seq != 3 || h.ID != res.Events[2].ID {
		t.Fatalf("head after reopen: %+v %v", h, err)
	}
	res2 := mustAppend(t, l2, ev("order.shipped", "order-1", `{}`))
	if e := res2.Events[0]; e.Version != 3 || e.PrevInEntity != 2 || e.Prev != h.ID {
		t.Errorf("after reopen: version %d link %d", e.Version, e.PrevInEntity)
	}
}

func TestPreconditions(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	p := ev("a.b", "e1", `1`)
	p.ExpectedVersion = 0
	mustAppend(t, l, p)
	_, err := l.Append(&Request{Events: []Proposed{p}})
	var vc *VersionConflictError
	if !errors.As(err, &vc) || vc.Current != 1 || vc.Expected != 0 {
		t.Fatalf("want version conflict at 1, got %v", err)
	}
	// A failed request stores nothing, not even its valid first event.
	ok := ev("a.b", "e2", `2`)
	if _, err := l.Append(&Request{Events: []Proposed{ok, p}}); err == nil {
		t.Fatal("batch with a conflict was accepted")
	}
	if l.Through() != 1 {
		t.Fatalf("through %d after a refused batch", l.Through())
	}
	h, _ := l.Head()
	stale := [32]byte{9}
	_, err = l.Append(&Request{Events: []Proposed{ok}, IfHead: &stale})
	var hc *HeadConflictError
	if !errors.As(err, &hc) || hc.Current.ID != h.ID {
		t.Fatalf("want head conflict, got %v", err)
	}
	if _, err := l.Append(&Request{Events: []Proposed{ok}, IfHead: &h.ID}); err != nil {
		t.Fatalf("If-Match with the right head: %v", err)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	p := ev("pay.made", "acct-1", `{"amount":"10.00"}`)
	p.Key = "c-77-1"
	first := mustAppend(t, l, p)
	again := mustAppend(t, l, p)
	if again.Stored != 0 || !again.Repeated[0] || again.Events[0].ID != first.Events[0].ID {
		t.Fatalf("repeat: stored %d repeated %v", again.Stored, again.Repeated)
	}
	l.Close()
	l = mustOpen(t, dir, Options{})
	other := p
	other.Data = []byte(`{"amount":"99.00"}`)
	_, err := l.Append(&Request{Events: []Proposed{other}})
	var kc *KeyConflictError
	if !errors.As(err, &kc) || kc.Existing.Seq != 1 {
		t.Fatalf("want key conflict, got %v", err)
	}
	// Within one request, the same key twice is one event.
	q := ev("x.y", "e", `1`)
	q.Key = "k2"
	res := mustAppend(t, l, q, q)
	if res.Stored != 1 || res.Events[1].ID != res.Events[0].ID {
		t.Fatalf("same key twice in one request: stored %d", res.Stored)
	}
}

func TestValidation(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	cases := []struct {
		p     Proposed
		field string
	}{
		{ev("Order.Placed", "e", `1`), "type"},
		{ev("order..placed", "e", `1`), "type"},
		{ev("order.", "e", `1`), "type"},
		{ev("", "e", `1`), "type"},
		{ev("a", "", `1`), "entity"},
		{ev("a", "bad\nentity", `1`), "entity"},
		{ev("a", "bad\xffutf8", `1`), "entity"},
		{ev("a", string(make([]byte, 300)), `1`), "entity"},
		{Proposed{Type: "a", Entity: "e", Data: []byte("1"), Key: "k\x00", ExpectedVersion: -1}, "key"},
		{Proposed{Type: "a", Entity: "e", Data: []byte("1"), Meta: []byte(`[1]`), ExpectedVersion: -1}, "meta"},
	}
	for _, c := range cases {
		_, err := l.Append(&Request{Events: []Proposed{ev("ok", "ok", "1"), c.p}})
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field || ie.Index != 1 {
			t.Errorf("%q/%q: want invalid %s at 1, got %v", c.p.Type, c.p.Entity, c.field, err)
		}
	}
	if l.Through() != 0 {
		t.Fatal("invalid requests stored events")
	}
}

func TestSegmentsAndGrowth(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 16 << 10, NoSync: true})
	var ids [][32]byte
	for i := 0; i < 100; i++ {
		var batch []Proposed
		for j := 0; j < 50; j++ {
			batch = append(batch, ev("thing.happened", fmt.Sprintf("ent-%d", (i*50+j)%777), fmt.Sprintf(`{"n":%d}`, i*50+j)))
		}
		res := mustAppend(t, l, batch...)
		for _, e := range res.Events {
			ids = append(ids, e.ID)
		}
	}
	segs, _ := listSegments(filepath.Join(dir, logDirName))
	if len(segs) < 10 {
		t.Fatalf("only %d segments", len(segs))
	}
	check := func(l *Log) {
		for i, id := range ids {
			seq, err := l.Lookup(id)
			if err != nil || seq != uint64(i+1) {
				t.Fatalf("lookup seq %d: %d %v", i+1, seq, err)
			}
		}
		n := uint64(0)
		it := l.Scan(1, 1<<62)
		for it.Next() {
			n++
			if it.Event().Seq != n {
				t.Fatalf("scan: seq %d at %d", it.Event().Seq, n)
			}
		}
		if it.Err() != nil || n != 5000 {
			t.Fatalf("scan read %d: %v", n, it.Err())
		}
		e, _ := l.Event(4999)
		if e.Entity != "ent-"+fmt.Sprint(4998%777) || e.Version != uint64(4998/777+1) {
			t.Fatalf("event 4999: %s v%d", e.Entity, e.Version)
		}
	}
	check(l)
	l.Close()
	// Every index is a cache: delete them all and reopen.
	if err := os.RemoveAll(filepath.Join(dir, indexDirName)); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir, Options{SegmentSize: 16 << 10, NoSync: true})
	check(l2)
	mustAppend(t, l2, ev("after.rebuild", "ent-1", `1`))
	if seq, _ := l2.EntityHead("ent-1"); seq != 5001 {
		t.Fatalf("entity head after rebuild %d", seq)
	}
}

func TestSeqAtTime(t *testing.T) {
	var now int64 = 1_700_000_000_000_000_000
	clock := func() time.Time { return time.Unix(0, now) }
	l := mustOpen(t, t.TempDir(), Options{Now: clock})
	for i := 0; i < 10; i++ {
		mustAppend(t, l, ev("t.tick", "clock", fmt.Sprint(i)))
		now += 1000
	}
	for _, c := range []struct {
		at   int64
		want uint64
	}{{0, 1}, {1_700_000_000_000_000_000, 1}, {1_700_000_000_000_000_001, 2}, {1_700_000_000_000_009_000, 10}, {1_800_000_000_000_000_000, 11}} {
		if got, err := l.SeqAtTime(c.at); err != nil || got != c.want {
			t.Errorf("SeqAtTime(%d) = %d %v, want %d", c.at, got, err, c.want)
		}
	}
	// The clock going back does not make time decrease.
	now -= 1_000_000
	res := mustAppend(t, l, ev("t.tick", "clock", "x"))
	if prev, _ := l.Event(10); res.Events[0].Time < prev.Time {
		t.Fatal("time decreased")
	}
}

// TestManyWriters has several Logs (as separate processes would) and many
// goroutines per Log append to one directory at once.
func TestManyWriters(t *testing.T) {
	dir := t.TempDir()
	const logs, perLog, each = 4, 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[[32]byte]bool{}
	for i := 0; i < logs; i++ {
		l := mustOpen(t, dir, Options{SegmentSize: 32 << 10})
		for j := 0; j < perLog; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < each; k++ {
					res, err := l.Append(&Request{Events: []Proposed{ev("w.rote", fmt.Sprintf("e%d", k%5), fmt.Sprintf(`[%d,%d,%d]`, i, j, k))}})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[res.Events[0].ID] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != logs*perLog*each || len(seen) != logs*perLog*each {
		t.Fatalf("verify counts %d events, %d acknowledged", rep.Events, len(seen))
	}
}

// TestLockYield: while one Log keeps its pipeline busy (and so the tenant
// lock held), another (a CGI process, say) still gets to append within its
// lock timeout. flock is not fair: without the yield the other would wait
// until it gave up, however long its timeout, so the generous default
// timeout is no timing assumption, and nothing here measures time.
func TestLockYield(t *testing.T) {
	dir := t.TempDir()
	busy := mustOpen(t, dir, Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }() // also after a failure, before the log closes
	var appended atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := busy.Append(&Request{Events: []Proposed{ev("busy.write", fmt.Sprint("b", g), "1")}}); err != nil {
					t.Error(err)
					return
				}
				appended.Add(1)
			}
		}()
	}
	// Busy for sure (not after a guessed sleep): groups are committing.
	for appended.Load() < 100 && !t.Failed() {
		time.Sleep(time.Millisecond)
	}
	other := mustOpen(t, dir, Options{})
	for i := 0; i < 5; i++ {
		if _, err := other.Append(&Request{Events: []Proposed{ev("other.write", "o", "1")}}); err != nil {
			t.Fatalf("append %d from the other log while one is busy: %v", i, err)
		}
	}
}

// TestGroupUndo: a request that fails inside a group commit leaves the
// group as the requests before it left it.
func TestGroupUndo(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	mustAppend(t, l, ev("seed.it", "e1", "1"))
	g := &group{l: l, seq: 1, prev: l.w.last.ID, time: l.w.last.Time, ents: map[string]entState{}, keys: map[string]*Event{}}
	prep := func(evs ...Proposed) *Request {
		for i := range evs {
			l.hashNames(&evs[i])
		}
		return &Request{Events: evs}
	}
	keyed := ev("k.v", "e3", "3")
	keyed.Key = "k-1"
	if _, err := g.add(prep(ev("a.b", "e1", "2"))); err != nil {
		t.Fatal(err)
	}
	bad := ev("a.b", "e1", "4")
	bad.ExpectedVersion = 7
	_, err := g.add(prep(ev("a.b", "e2", "x"), ev("a.b", "e1", "3"), keyed, bad))
	var vc *VersionConflictError
	if !errors.As(err, &vc) || vc.Current != 3 {
		t.Fatalf("want a version conflict at version 3, got %v", err)
	}
	if _, ok := g.ents["e2"]; ok {
		t.Error("the failed request's new entity stayed in the group")
	}
	if st := g.ents["e1"]; st.version != 2 {
		t.Errorf("e1 at version %d after the failed request, want 2", st.version)
	}
	if g.keys["k-1"] != nil {
		t.Error("the failed request's key stayed in the group")
	}
	if g.seq != 2 || len(g.events) != 1 {
		t.Errorf("group at seq %d with %d events", g.seq, len(g.events))
	}
}
