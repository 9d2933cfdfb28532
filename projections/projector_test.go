package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"strata/log"
)

// testLog opens a log whose clock starts at start and moves step per
// append.
func testLog(t testing.TB, start time.Time, step time.Duration) (*log.Log, *time.Time) {
	t.Helper()
	now := start
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, &now
}

func mustDef(t testing.TB, js string) *Definition {
	t.Helper()
	d, err := ParseDefinition([]byte(js))
	if err != nil {
		t.Fatalf("ParseDefinition(%s): %v", js, err)
	}
	return d
}

func appendOne(t testing.TB, l *log.Log, typ, entity, data string) {
	t.Helper()
	if _, err := l.Append(&log.Request{Events: []log.Proposed{{Type: typ, Entity: entity, Data: []byte(data), ExpectedVersion: -1}}}); err != nil {
		t.Fatal(err)
	}
}

func TestCounterSmoke(t *testing.T) {
	l, now := testLog(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), 0)
	for i := 0; i < 10; i++ {
		*now = now.Add(40 * time.Minute)
		appendOne(t, l, []string{"order.placed", "order.paid"}[i%2], fmt.Sprintf("orders/%d", i%3), `{"amount":1.5}`)
	}
	p := Open(l)
	for _, c := range []struct{ def, want string }{
		{`{"name":"per-type","kind":"counter","by":"type"}`, `{"order.paid":5,"order.placed":5}`},
		{`{"name":"per-entity","kind":"counter","by":"entity"}`, `{"orders/0":4,"orders/1":3,"orders/2":3}`},
		{`{"name":"per-hour","kind":"counter","by":"hour","filter":{"types":["order.p*"]}}`, `{"2026-12-01T10:00:00Z":1,"2026-12-01T11:00:00Z":1,"2026-12-01T12:00:00Z":2,"2026-12-01T13:00:00Z":1,"2026-12-01T14:00:00Z":2,"2026-12-01T15:00:00Z":1,"2026-12-01T16:00:00Z":2}`},
	} {
		d := mustDef(t, c.def)
		for round := 0; round < 2; round++ {
			a, err := p.Result(context.Background(), d, 1, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(a.Result) != c.want || a.Seq != 10 || a.Behind {
				t.Errorf("%s round %d: %s seq %d behind %v; want %s", d.Name, round, a.Result, a.Seq, a.Behind, c.want)
			}
		}
		a, err := p.Result(context.Background(), d, 1, 4, 0)
		if err != nil || a.Seq != 4 {
			t.Fatalf("at 4: %+v %v", a, err)
		}
		t.Logf("%s at 4: %s", d.Name, a.Result)
		st, err := p.Status(d, 1)
		t.Logf("status %+v %v", st, err)
	}
	_, err := ParseDefinition([]byte(`{"name":"x","kind":"counter","by":"year"}`))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "by" {
		t.Errorf("bad by: %v", err)
	}
}

// TestCounterLoad: a by-name counter's saved form reads back whatever its
// names hold, sorted or not; a malformed one is an error.
func TestCounterLoad(t *testing.T) {
	d := mustDef(t, `{"name":"c","kind":"counter","by":"entity"}`)
	red, _ := NewReducer(d)
	c := red.(*counter)
	for i, name := range []string{"b", `q"uote`, `back\slash`, "ünï", "a", "b", "tab\there", "a"} {
		c.Apply(&log.Event{Entity: name, Seq: uint64(i + 1)})
	}
	saved, _ := c.Save()
	want := `{"a":2,"b":2,"back\\slash":1,"q\"uote":1,"tab\there":1,"ünï":1}`
	if string(saved) != want {
		t.Fatalf("saved %s; want %s", saved, want)
	}
	for _, b := range []string{want, `{"z":1,"a":2}`, `{}`} {
		r2, _ := NewReducer(d)
		if err := r2.Load([]byte(b)); err != nil {
			t.Fatalf("Load(%s): %v", b, err)
		}
		got, _ := r2.Result()
		var x, y map[string]uint64
		if json.Unmarshal(got, &x) != nil || json.Unmarshal([]byte(b), &y) != nil || fmt.Sprint(x) != fmt.Sprint(y) {
			t.Errorf("Load(%s) then Result = %s", b, got)
		}
		r2.(*counter).Apply(&log.Event{Entity: "new"})
		if got, _, _ := r2.Key("new"); string(got) != "1" {
			t.Errorf("after Load(%s), a new name: %s", b, got)
		}
	}
	for _, b := range []string{``, `{`, `{"a":}`, `{"a":1,}`, `{"a":-1}`, `{"a":1 "b":2}`, `{"a"1}`, `[1]`, `{"a":1.5}`, `{"a\q":1}`} {
		r2, _ := NewReducer(d)
		if err := r2.Load([]byte(b)); err == nil {
			t.Errorf("Load(%s) accepted", b)
		}
	}
}

// TestFunnelLoad: a funnel's saved form reads back; a malformed one is an
// error (and the engine then folds from the first event).
func TestFunnelLoad(t *testing.T) {
	d := mustDef(t, `{"name":"f","kind":"funnel","steps":["a","b","c"]}`)
	red, _ := NewReducer(d)
	for i, ev := range [][2]string{{"a", "x y"}, {"b", "x y"}, {"a", "ü/1"}, {"c", "x y"}, {"a", "z"}} {
		red.Apply(&log.Event{Type: ev[0], Entity: ev[1], Time: int64(i)})
	}
	saved, _ := red.Save()
	if want := "funnel 1\nx y\t3\t3\t0\nz\t1\t1\t4\nü/1\t1\t1\t2\n"; string(saved) != want {
		t.Fatalf("saved %q; want %q", saved, want)
	}
	r2, _ := NewReducer(d)
	if err := r2.Load(saved); err != nil {
		t.Fatal(err)
	}
	a, _ := red.Result()
	b, _ := r2.Result()
	if string(a) != string(b) {
		t.Errorf("after Load: %s; want %s", b, a)
	}
	for _, bad := range []string{"", "funnel 1\nx\t1\t1\n", "funnel 1\nx\t4\t1\t0\n", "funnel 1\nx\t1\t1\t0", "funnel 2\n", `{"entities":[]}`} {
		r3, _ := NewReducer(d)
		if err := r3.Load([]byte(bad)); err == nil {
			t.Errorf("Load(%q) accepted", bad)
		}
	}
}
