package projections

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"strata/log"
)

// BenchmarkStateAt folds an entity of 10,000 events (merge patches of four
// members) from its first: the cost of a state read until the cache
// exists.
func BenchmarkStateAt(b *testing.B) {
	l, err := log.Open(b.TempDir(), log.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 10000
	var ps []log.Proposed
	for i := 0; i < n; i++ {
		ps = append(ps, ev("big", fmt.Sprintf(`{"n":%d,"k%d":"v","status":"s%d"}`, i, i%10, i%3), ""))
	}
	if _, err := l.Append(&log.Request{Events: ps}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := StateAt(l, "big", Point{})
		if err != nil || s.Version != n {
			b.Fatal(s, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}

// benchLog returns a log of n events shaped like tests/bench's (four types,
// 100,000 entities, a data object of eight members, ~190 bytes of input),
// built once per size.
var benchLogs = map[int]*log.Log{}

func benchLog(b *testing.B, n int) *log.Log {
	if l := benchLogs[n]; l != nil {
		return l
	}
	dir, err := os.MkdirTemp("", "strata-projbench")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l, err := log.Open(dir, log.Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	types := []string{"order.placed", "order.paid", "order.shipped", "user.created"}
	for done := 0; done < n; done += 1000 {
		ps := make([]log.Proposed, 0, 1000)
		for i := done; i < done+1000 && i < n; i++ {
			ps = append(ps, log.Proposed{Type: types[i%4], Entity: fmt.Sprintf("orders/%d", i%100000),
				Data:            fmt.Appendf(nil, `{"customer":"cust-%06d","sku":"SKU-%05d-BLK","qty":%d,"unit_price":"%d.%02d","currency":"EUR","channel":"web","note":"gift wrap","amount":%d.%02d}`, i%1000000, i%100000, 1+i%9, i%500, i%100, i%500, i%100),
				ExpectedVersion: -1})
		}
		now = now.Add(time.Minute)
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			b.Fatal(err)
		}
	}
	benchLogs[n] = l
	return l
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, l := range benchLogs {
		l.Close()
		os.RemoveAll(l.Dir())
	}
	os.Exit(code)
}

// BenchmarkCatchUp: a built-in kind folds a log of 1,000,000 events from
// nothing (no cache, budget unlimited): the catch-up rate.
func BenchmarkCatchUp(b *testing.B) {
	const n = 1000000
	l := benchLog(b, n)
	for _, js := range []string{
		`{"name":"per-type","kind":"counter","by":"type"}`,
		`{"name":"per-hour","kind":"counter","by":"hour"}`,
		`{"name":"per-entity","kind":"counter","by":"entity"}`,
		`{"name":"revenue","kind":"timeseries","path":".amount","op":"sum","bucket":"day","filter":{"types":["order.paid"]}}`,
		`{"name":"avg-all","kind":"timeseries","path":".amount","op":"avg","bucket":"hour"}`,
		`{"name":"qty","kind":"timeseries","path":".qty","op":"sum","bucket":"hour","filter":{"types":["order.*"]}}`,
		`{"name":"funnel","kind":"funnel","steps":["order.placed","order.paid","order.shipped"],"window":"7d"}`,
	} {
		d := mustDef(b, js)
		b.Run(d.Name, func(b *testing.B) {
			p := Open(l)
			p.CheckpointEvery = 1 << 40 // the fold alone
			for b.Loop() {
				p.Drop(d.Name)
				a, err := p.Result(context.Background(), d, 1, 0, time.Hour)
				if err != nil || a.Seq != n {
					b.Fatal(a, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRebuild: Rebuild of a counter over 1,000,000 events, with its
// checkpoints and progress.
func BenchmarkRebuild(b *testing.B) {
	const n = 1000000
	l := benchLog(b, n)
	d := mustDef(b, `{"name":"per-type","kind":"counter","by":"type"}`)
	p := Open(l)
	for b.Loop() {
		calls := 0
		if err := p.Rebuild(context.Background(), d, 1, RebuildOptions{}, func(done, total uint64) { calls++ }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultCached: a read with nothing to catch up by a new
// Projector (what a CGI request does): the engine's part of a result read.
func BenchmarkResultCached(b *testing.B) {
	l := benchLog(b, 100000)
	for _, js := range []string{
		`{"name":"per-type","kind":"counter","by":"type"}`,
		`{"name":"per-entity","kind":"counter","by":"entity"}`,
		`{"name":"revenue","kind":"timeseries","path":".amount","op":"sum","bucket":"hour"}`,
	} {
		d := mustDef(b, js)
		b.Run(d.Name, func(b *testing.B) {
			if _, err := Open(l).Result(context.Background(), d, 1, 0, 0); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				a, err := Open(l).Result(context.Background(), d, 1, 0, 0)
				if err != nil || a.Seq != 100000 {
					b.Fatal(a, err)
				}
			}
		})
	}
}

// BenchmarkResultOneNew: a read by a new Projector (CGI) with one event
// to catch up: the cache is loaded, the event folded, the result written
// out (and saved, when worth it).
func BenchmarkResultOneNew(b *testing.B) {
	l, _ := testLog(b, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	for done := 0; done < 100000; done += 1000 {
		var ps []log.Proposed
		for i := done; i < done+1000; i++ {
			ps = append(ps, log.Proposed{Type: "a", Entity: fmt.Sprintf("orders/%d", i), Data: []byte(`{"amount":1}`), ExpectedVersion: -1})
		}
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			b.Fatal(err)
		}
	}
	for _, js := range []string{
		`{"name":"per-type","kind":"counter","by":"type"}`,
		`{"name":"per-entity","kind":"counter","by":"entity"}`,
		`{"name":"funnel","kind":"funnel","steps":["a","b"],"window":"7d"}`,
	} {
		d := mustDef(b, js)
		b.Run(d.Name, func(b *testing.B) {
			if _, err := Open(l).Result(context.Background(), d, 1, 0, 0); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				appendOne(b, l, "a", "orders/1", `{"amount":1}`)
				b.StartTimer()
				if _, err := Open(l).Result(context.Background(), d, 1, 0, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
