package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"strata/log"
	"strata/projections"
)

// measureJQ is figure 14: a custom jq projection (a 3-line reducer, keyed)
// folding the 1,000,000-event log the binary built (figure 6's), in
// process like figure 12: Projector.Result at the head with no cache, so
// every event's data is decoded into jq values and both programs (key and
// reduce) run once per event, checkpoints written. Rows 14b and 14c are
// context: the same reducer written with jq's update operators (each
// copies the state object), and an unkeyed one-liner.
func (b *bench) measureJQ() {
	const target = "target ≥ 250,000 events/s"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("14", "custom jq projection catch-up", target, err)
		return
	}
	dir := filepath.Join(ds.data, "tenants", "default")
	l, err := log.Open(dir, log.Options{})
	if err != nil {
		b.rep.errorRow("14", "custom jq projection catch-up", target, err)
		return
	}
	defer l.Close()
	defer os.RemoveAll(filepath.Join(dir, "cache", "projections"))
	n := l.Through()
	p := projections.Open(l)
	ctx := context.Background()
	for _, m := range []struct{ num, name, def string }{
		{"14", "custom jq projection catch-up, a 3-line reducer keyed by channel",
			`{"name":"by-channel","kind":"custom","init":{"n":0,"qty":0,"last":null},"key":"$event.data.channel",
			  "reduce":"{n: (.n + 1),\n qty: (.qty + $event.data.qty),\n last: $event.time}"}`},
		{"14b", "(context) the same reducer with update operators (.n += 1 | …)",
			`{"name":"by-channel-upd","kind":"custom","init":{"n":0,"qty":0,"last":null},"key":"$event.data.channel",
			  "reduce":".n += 1\n| .qty += $event.data.qty\n| .last = $event.time"}`},
		{"14c", "(context) unkeyed one-liner, $state + $event.data.qty",
			`{"name":"qty","kind":"custom","init":0,"reduce":"$state + $event.data.qty"}`},
	} {
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
		v := verdict(rate >= 250000)
		if m.num != "14" {
			v = info
		}
		b.rep.add(&row{num: m.num, name: m.name, value: commas(int64(rate)) + " events/s", target: target, verdict: v,
			notes: []string{fmt.Sprintf("median of 3 folds of %s events from no cache (cache dropped before each): each event's data decoded into jq values, the key and reduce programs run once per event (internal/jq, limits on), checkpoints every %d seqs; in process on the log the binary built", commas(int64(n)), projections.DefaultCheckpointEvery),
				fmt.Sprintf("%s events per CPU-second of the fold (garbage collection included, on up to %d cores); other processes used %.2f of %d cores meanwhile", commas(int64(f.perCPU)), numCPU(), others, numCPU())}})
	}
}
