package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"strata/log"
	"strata/projections"
)

// measureStateKind is figure 15: the routes of an entity a state
// projection makes, in process over a log of 20,000 events (10,000
// entities, one of them with 1,000 versions): a 1,000-version history
// page folded with the jq reducer (15a, beside the merge's, 15b), and a
// 1,000-entity search page answered with the projection's states, warm
// (15c, a long-running server's) and from a new Projector (15d, a CGI
// request's, which loads the result), beside the merge's (15e).
func (b *bench) measureStateKind() {
	const target = "target ≤ 50 ms a page"
	fail := func(err error) { b.rep.errorRow("15a", "state projection entity routes", target, err) }
	dir := filepath.Join(b.work, "statekind")
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		fail(err)
		return
	}
	defer os.RemoveAll(dir)
	defer l.Close()
	def := `{"name":"o","kind":"state","entity":"orders/*","init":{"n":0},"reduce":"{n: (.n + 1), sum: ((.sum // 0) + $event.data.v)}"}`
	ps := []log.Proposed{{Type: projections.TypeDefined, Entity: projections.DefEntity("o"), Data: []byte(def), ExpectedVersion: -1}}
	for i := range 20000 {
		ent := fmt.Sprintf("orders/%d", i%10000)
		switch {
		case i < 1000:
			ent = "orders/big"
		case i%2 == 1:
			ent = fmt.Sprintf("users/%d", i%10000)
		}
		ps = append(ps, log.Proposed{Type: "a", Entity: ent, Data: fmt.Appendf(nil, `{"v":%d}`, i), ExpectedVersion: -1})
		if len(ps) == 1000 {
			if _, err := l.Append(&log.Request{Events: ps}); err != nil {
				fail(err)
				return
			}
			ps = nil
		}
	}
	d, err := projections.StateDef(l, "orders/big")
	if err != nil || d == nil {
		fail(fmt.Errorf("no state projection: %v", err))
		return
	}
	ctx := context.Background()
	p := projections.Open(l)
	if _, err := projections.OpenIndex(l).States(p, time.Minute).Search(ctx, "", "", 1, nil); err != nil {
		fail(err)
		return
	}
	for _, m := range []struct {
		num, name string
		run       func() error
	}{
		{"15a", "state projection entity history, a 1,000-version page (jq fold of the entity's events)", func() error {
			_, _, err := projections.StateHistory(ctx, l, d, "orders/big", 0, 1000)
			return err
		}},
		{"15b", "(context) the merge's history, the same page", func() error {
			_, _, err := projections.NewReader(l, projections.DefaultSnapshotEvery).History(ctx, "orders/big", 0, 1000)
			return err
		}},
		{"15c", "search page of 1,000 state-projection entities, warm (long-running server)", func() error {
			_, err := projections.OpenIndex(l).States(p, time.Minute).Search(ctx, "orders/", "", 1000, nil)
			return err
		}},
		{"15d", "search page of 1,000 state-projection entities, new Projector (CGI)", func() error {
			_, err := projections.OpenIndex(l).States(projections.Open(l), time.Minute).Search(ctx, "orders/", "", 1000, nil)
			return err
		}},
		{"15e", "(context) search page of 1,000 merge entities, States on", func() error {
			_, err := projections.OpenIndex(l).States(p, time.Minute).Search(ctx, "users/", "", 1000, nil)
			return err
		}},
	} {
		var ds []time.Duration
		for range 21 {
			t0 := time.Now()
			if err := m.run(); err != nil {
				b.rep.errorRow(m.num, m.name, target, err)
				break
			}
			ds = append(ds, time.Since(t0))
		}
		if len(ds) < 21 {
			continue
		}
		sortDurations(ds)
		p50 := percentile(ds, 50)
		v := verdict(p50 <= 50*time.Millisecond)
		if m.num == "15b" || m.num == "15e" {
			v = info
		}
		b.rep.add(&row{num: m.num, name: m.name, value: fmt.Sprintf("p50 %.2f ms", ms64(p50)), target: target, verdict: v,
			notes: []string{"in process, 21 runs over a log of 20,000 events (10,000 entities; orders/big has 1,000 versions); the reducer {n: (.n + 1), sum: …}"}})
	}
}
