package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"strata/log"
	"strata/projections"
)

// measureProjections is figures 12 and 13: built-in projections folding the
// 1,000,000-event log the binary built (figure 6's), in process — the
// engine (package projections) linked into the bench and opened on the
// tenant's directory, as any mode of the binary runs it; the page cache is
// warm. Catch-up: a projection with no cache read at the head (one
// Projector.Result, checkpoints written). Rebuild: Projector.Rebuild with a
// progress callback.
func (b *bench) measureProjections() {
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("12", "built-in projection catch-up", "target ≥ 2,000,000 events/s", err)
		return
	}
	dir := filepath.Join(ds.data, "tenants", "default")
	l, err := log.Open(dir, log.Options{})
	if err != nil {
		b.rep.errorRow("12", "built-in projection catch-up", "target ≥ 2,000,000 events/s", err)
		return
	}
	defer l.Close()
	defer os.RemoveAll(filepath.Join(dir, "cache", "projections"))
	n := l.Through()
	p := projections.Open(l)
	ctx := context.Background()
	for _, m := range []struct{ num, name, def string }{
		{"12", "built-in projection catch-up, counter by type", `{"name":"per-type","kind":"counter","by":"type"}`},
		{"12b", "built-in projection catch-up, timeseries sum of .qty per hour", `{"name":"qty","kind":"timeseries","path":".qty","op":"sum","bucket":"hour","filter":{"types":["order.*"]}}`},
		{"12c", "(context) catch-up, counter by entity (250,000 keys)", `{"name":"per-entity","kind":"counter","by":"entity"}`},
		{"12d", "(context) catch-up, funnel of three steps, 7d", `{"name":"funnel","kind":"funnel","steps":["cart.item_added","order.placed","order.paid"],"window":"7d"}`},
	} {
		const target = "target ≥ 2,000,000 events/s"
		def, err := projections.ParseDefinition([]byte(m.def))
		if err != nil {
			b.rep.errorRow(m.num, m.name, target, err)
			continue
		}
		f, err := measureFold(ctx, p, def, n)
		if err != nil {
			b.rep.errorRow(m.num, m.name, target, err)
			continue
		}
		rate, others := f.rate, f.others
		v := verdict(rate >= 2e6)
		if m.num == "12c" || m.num == "12d" {
			v = info
		}
		b.rep.add(&row{num: m.num, name: m.name, value: commas(int64(rate)) + " events/s", target: target, verdict: v,
			notes: []string{fmt.Sprintf("median of 3 folds of %s events from no cache (cache dropped before each), checkpoints every %d seqs written; in process on the log the binary built", commas(int64(n)), projections.DefaultCheckpointEvery),
				fmt.Sprintf("%s events per CPU-second of the fold (one core); other processes used %.2f of %d cores meanwhile", commas(int64(f.perCPU)), others, numCPU())}})
	}

	// Time travel: the result at random seqs, each read by a new Projector
	// (as a CGI request would), from the nearest checkpoint.
	if def, err := projections.ParseDefinition([]byte(`{"name":"per-type","kind":"counter","by":"type"}`)); err == nil {
		if _, err = p.Result(ctx, def, 1, 0, time.Hour); err == nil {
			var lat []time.Duration
			for i := uint64(1); i <= 21 && err == nil; i++ {
				at := i * 47629 % n
				t0 := time.Now()
				var a *projections.Answer
				a, err = projections.Open(l).Result(ctx, def, 1, at, time.Hour)
				lat = append(lat, time.Since(t0))
				if err == nil && a.Seq != at {
					err = fmt.Errorf("time travel to %d answered %d", at, a.Seq)
				}
			}
			if err == nil {
				slices.Sort(lat)
				b.rep.add(&row{num: "12e", name: "(context) time travel of a counter's result to a random seq", value: fmt.Sprintf("p50 %.3f ms", ms64(percentile(lat, 50))), target: "—", verdict: info,
					notes: []string{fmt.Sprintf("21 Projector.Result at seqs spread over the log, each by a new Projector (as CGI), from the nearest checkpoint (every %d seqs) plus a fold of the rest; max %.3f ms", projections.DefaultCheckpointEvery, ms64(lat[len(lat)-1]))}})
			}
		}
		if err != nil {
			b.rep.errorRow("12e", "(context) time travel of a counter's result", "—", err)
		}
	}

	const target = "target ≤ 1 s, with progress"
	def, _ := projections.ParseDefinition([]byte(`{"name":"per-type","kind":"counter","by":"type"}`))
	var runs []time.Duration
	var calls int
	for i := 0; i < 3 && err == nil; i++ {
		calls = 0
		t0 := time.Now()
		err = p.Rebuild(ctx, def, 1, projections.RebuildOptions{}, func(done, total uint64) { calls++ })
		runs = append(runs, time.Since(t0))
	}
	if err != nil {
		b.rep.errorRow("13", "rebuild of a built-in projection over 1,000,000 events", target, err)
		return
	}
	slices.Sort(runs)
	b.rep.add(&row{num: "13", name: "rebuild of a built-in projection over 1,000,000 events", value: fmt.Sprintf("%.3f s", runs[1].Seconds()), target: target,
		verdict: verdict(runs[1] <= time.Second),
		notes:   []string{fmt.Sprintf("median of 3 Projector.Rebuild of a counter by type over %s events, checkpoints and %d progress calls per run; in process", commas(int64(n)), calls)}})
}

// foldRate is how figures 12 and 14 measure a catch-up: three folds of
// the whole log from no cache (the cache dropped before each), the median's
// rate, the events per CPU-second of the three, and how many cores other
// processes used meanwhile (the wall rate depends on the machine's load).
type foldRate struct{ rate, perCPU, others float64 }

func measureFold(ctx context.Context, p *projections.Projector, def *projections.Definition, n uint64) (foldRate, error) {
	var runs []time.Duration
	cpu0, wall0 := selfCPU(), time.Now()
	busy0, total0 := machineTicks()
	for i := 0; i < 3; i++ {
		if err := p.Drop(def.Name); err != nil {
			return foldRate{}, err
		}
		t0 := time.Now()
		a, err := p.Result(ctx, def, 1, 0, time.Hour)
		runs = append(runs, time.Since(t0))
		if err != nil {
			return foldRate{}, err
		}
		if a.Seq != n || a.Behind {
			return foldRate{}, fmt.Errorf("answered seq %d behind %v, want %d", a.Seq, a.Behind, n)
		}
	}
	cpu, wall := (selfCPU() - cpu0).Seconds(), time.Since(wall0).Seconds()
	busy, total := machineTicks()
	slices.Sort(runs)
	return foldRate{
		rate:   float64(n) / runs[1].Seconds(),
		perCPU: 3 * float64(n) / cpu,
		others: max(0, float64(busy-busy0)/float64(max(1, total-total0))*float64(numCPU())-cpu/wall),
	}, nil
}
