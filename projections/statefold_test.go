package projections

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestStateFoldAgreesWithKey: for every version of every entity a state
// projection makes, StateHistory's state is the one Projector.Key gives at
// that version's seq (time travel through checkpoints), StateDiff's ends
// are those states, and a search with States answers Key's state at the
// head — through a type filter, events of other entities and of the
// reserved types in between, and a reducer that reads the whole event.
func TestStateFoldAgreesWithKey(t *testing.T) {
	l, _ := testLog(t, time.Now(), time.Millisecond)
	def := `{"name":"o","kind":"state","entity":"orders/*","init":{"n":0},` +
		`"reduce":".n += 1 | .sum += ($event.data.v // 0) | .seqs += [$event | .seq] | .t = $event.type",` +
		`"filter":{"types":["a","b"]}}`
	appendOne(t, l, TypeDefined, DefEntity("o"), def)
	for i := range 120 {
		appendOne(t, l, []string{"a", "b", "c"}[i%3], fmt.Sprintf("orders/%d", i%7), fmt.Sprintf(`{"v":%d}`, i))
		if i%11 == 0 {
			appendOne(t, l, "a", "other", `{"v":1}`)
		}
	}
	d, err := StateDef(l, "orders/3")
	if err != nil || d == nil {
		t.Fatalf("StateDef: %v %v", d, err)
	}
	p := Open(l)
	p.CheckpointEvery = 16
	ctx := context.Background()
	for e := range 8 {
		entity := fmt.Sprintf("orders/%d", e)
		hist, more, err := StateHistory(ctx, l, d, entity, 0, 1000)
		if e == 7 {
			if !errors.Is(err, ErrNoEntity) {
				t.Errorf("%s: %v", entity, err)
			}
			continue
		}
		if err != nil || more || len(hist) == 0 {
			t.Fatalf("%s: %d versions, more %v, %v", entity, len(hist), more, err)
		}
		for _, s := range hist {
			want := string(d.Def.Init)
			a, err := p.Key(ctx, d.Def, d.Version, entity, s.Seq, time.Minute)
			switch {
			case err == nil:
				want = string(a.Result)
			case !errors.Is(err, ErrNoKey):
				t.Fatal(err)
			}
			if string(s.State) != want {
				t.Errorf("%s version %d: %s; Key %s", entity, s.Version, s.State, want)
			}
		}
		from, to := uint64(len(hist)/3), uint64(len(hist)-1)
		a, b, _, _, err := StateDiff(ctx, l, d, entity, from, to)
		if err != nil || b.Version != to || string(b.State) != string(hist[to-1].State) || from > 0 && string(a.State) != string(hist[from-1].State) {
			t.Errorf("%s diff %d..%d: %v %v %v", entity, from, to, a, b, err)
		}
	}
	res, err := OpenIndex(l).States(p, time.Minute).Search(ctx, "orders/", "", 100, nil)
	if err != nil || len(res.States) != 7 || res.Behind {
		t.Fatalf("search: %+v %v", res, err)
	}
	for _, s := range res.States {
		a, err := p.Key(ctx, d.Def, d.Version, s.Entity, 0, time.Minute)
		if err != nil || string(a.Result) != string(s.State) || s.Projection != "o" {
			t.Errorf("search %s: %s by %q; Key %v %v", s.Entity, s.State, s.Projection, a, err)
		}
	}
	if res, err := OpenIndex(l).States(p, 0).Search(ctx, "other", "", 100, nil); err != nil || len(res.States) != 1 || res.States[0].Projection != "" || string(res.States[0].State) != `{"v":1}` {
		t.Errorf("a merge entity: %+v %v", res, err)
	}
}
