package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"strata/internal/jq"
	"strata/log"
)

// TestJQKinds: custom (keyed and not) and state projections over a small
// log, whole results, keys, time travel, and a restart from the cache.
func TestJQKinds(t *testing.T) {
	l, now := testLog(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), 0)
	for i := 0; i < 12; i++ {
		*now = now.Add(time.Minute)
		typ := []string{"order.placed", "order.paid", "order.paid"}[i%3]
		appendOne(t, l, typ, fmt.Sprintf("orders/%d", i%4), fmt.Sprintf(`{"amount":%d,"customer":"c%d"}`, i, i%2))
	}
	appendOne(t, l, "user.created", "users/1", `{"name":"x"}`)
	for _, c := range []struct{ def, want string }{
		{`{"name":"spend","kind":"custom","init":0,"reduce":"$state + $event.data.amount","key":"$event.data.customer","filter":{"types":["order.paid"],"entity":"orders/*"}}`,
			`{"c0":24,"c1":24}`},
		{`{"name":"total","kind":"custom","init":0,"reduce":". + $event.data.amount","filter":{"types":["order.paid"]}}`, `48`},
		{`{"name":"seqs","kind":"custom","init":[],"reduce":". + [$event.seq]","filter":{"types":["user.*"]}}`, `[13]`},
		{`{"name":"count","kind":"custom","reduce":"(. // 0) + 1"}`, `13`},
		{`{"name":"by-type","kind":"custom","init":0,"reduce":". + 1","key":"$event.type"}`, `{"order.paid":8,"order.placed":4,"user.created":1}`},
		{`{"name":"odd","kind":"custom","init":0,"reduce":". + 1","key":"if $event.seq % 2 == 1 then $event.seq else null end"}`, `{"1":1,"11":1,"13":1,"3":1,"5":1,"7":1,"9":1}`},
		{`{"name":"orders","kind":"state","entity":"orders/*","init":{"n":0},"reduce":".n += 1 | .last = $event.version | .key = $key"}`,
			`{"orders/0":{"key":"orders/0","last":3,"n":3},"orders/1":{"key":"orders/1","last":3,"n":3},"orders/2":{"key":"orders/2","last":3,"n":3},"orders/3":{"key":"orders/3","last":3,"n":3}}`},
	} {
		d := mustDef(t, c.def)
		p := Open(l)
		for round := 0; round < 2; round++ { // 2: from the cache
			a, err := p.Result(context.Background(), d, 1, 0, 0)
			if err != nil {
				t.Fatalf("%s: %v", d.Name, err)
			}
			if string(a.Result) != c.want || a.Seq != 13 {
				t.Errorf("%s round %d: %s at %d; want %s", d.Name, round, a.Result, a.Seq, c.want)
			}
			p = Open(l)
		}
	}
	spend := mustDef(t, `{"name":"spend","kind":"custom","init":0,"reduce":"$state + $event.data.amount","key":"$event.data.customer","filter":{"types":["order.paid"]}}`)
	p := Open(l)
	if a, err := p.Key(context.Background(), spend, 1, "c1", 0, 0); err != nil || string(a.Result) != "24" {
		t.Errorf("key c1: %+v %v", a, err)
	}
	if keys, more, _, err := p.Keys(context.Background(), spend, 1, "", 1, 0); err != nil || !more || strings.Join(keys, ",") != "c0" {
		t.Errorf("keys: %v %v %v", keys, more, err)
	}
	if a, err := p.Result(context.Background(), spend, 1, 6, 0); err != nil || string(a.Result) != `{"c0":6,"c1":6}` {
		t.Errorf("at 6: %+v %v", a, err)
	}
	// The whole event as served.
	ev := mustDef(t, `{"name":"ev","kind":"custom","reduce":"$event | del(.id, .prev) | .idlen = ($event.id|length)","filter":{"types":["user.*"]}}`)
	a, err := Open(l).Result(context.Background(), ev, 1, 0, 0)
	want := `{"data":{"name":"x"},"entity":"users/1","idlen":64,"seq":13,"time":"2026-12-01T10:12:00.000000000Z","type":"user.created","version":1}`
	if err != nil || string(a.Result) != want {
		t.Errorf("event: %s %v; want %s", a.Result, err, want)
	}
}

// TestJQKindDefinitions: bad programs and fields are FieldErrors naming the
// field, with jq's message.
func TestJQKindDefinitions(t *testing.T) {
	for def, field := range map[string]string{
		`{"name":"a","kind":"custom"}`:                                      "reduce",
		`{"name":"a","kind":"custom","reduce":"1 +"}`:                       "reduce",
		`{"name":"a","kind":"custom","reduce":"$nope"}`:                     "reduce",
		`{"name":"a","kind":"custom","reduce":"1","key":"foo(1)"}`:          "key",
		`{"name":"a","kind":"custom","reduce":"1","key":"input"}`:           "key",
		`{"name":"a","kind":"custom","reduce":"1","entity":"x/*"}`:          "entity",
		`{"name":"a","kind":"custom","reduce":"1","by":"type"}`:             "by",
		`{"name":"a","kind":"state","reduce":"1"}`:                          "entity",
		`{"name":"a","kind":"state","reduce":"1","entity":"x/*","key":"1"}`: "key",
		`{"name":"a","kind":"state","entity":"x/*"}`:                        "reduce",
	} {
		_, err := ParseDefinition([]byte(def))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v; want a FieldError on %s", def, err, field)
		}
	}
	_, err := ParseDefinition([]byte(`{"name":"a","kind":"custom","reduce":". +"}`))
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF at line 1, column 4") {
		t.Errorf("jq's message: %v", err)
	}
}

// TestJQKindFailures: a reducer that errs or goes past a limit fails its
// projection at the event that broke it; other projections go on, and so
// does the next run of the same program.
func TestJQKindFailures(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	appendOne(t, l, "a", "e/1", `{"n":1}`)
	appendOne(t, l, "a", "e/1", `{"n":"x"}`)
	appendOne(t, l, "b", "e/2", `{"n":3}`)
	saved := jq.DefaultLimits
	jq.DefaultLimits = jq.Limits{Time: 2 * time.Second, Memory: 16 << 20, Depth: 200}
	defer func() { jq.DefaultLimits = saved }()
	p := Open(l)
	for _, c := range []struct{ reduce, msg string }{
		{`$state + $event.data.n`, `reduce program: cannot add: number (1) and string ("x")`},
		{`if $event.data.n == "x" then error("bad n") else 0 end`, `reduce program: bad n`},
		{`if $event.data.n == "x" then last(range(1e15)) else 0 end`, `reduce program: jq program stopped: past its time limit`},
		{`if $event.data.n == "x" then [range(1e9)] else 0 end`, `reduce program: jq program stopped: past its memory limit`},
		{`def f: [f]; if $event.data.n == "x" then f else 0 end`, `reduce program: jq program stopped: past its depth limit`},
		{`if $event.data.n == "x" then empty else 0 end`, `reduce program: jq program produced no value`},
	} {
		d := mustDef(t, fmt.Sprintf(`{"name":"f","kind":"custom","init":0,"reduce":%q}`, c.reduce))
		_, err := p.Result(context.Background(), d, 1, 0, time.Minute) // a budget past the time limit: that stops it
		var fe *FailedError
		if !errors.As(err, &fe) || fe.At.Seq != 2 || !strings.HasPrefix(fe.Msg, c.msg) {
			t.Errorf("%s: %v; want failed at 2 with %q", c.reduce, err, c.msg)
		}
		good := mustDef(t, `{"name":"g","kind":"custom","init":0,"reduce":". + 1"}`)
		if a, err := p.Result(context.Background(), good, 1, 0, 0); err != nil || string(a.Result) != "3" {
			t.Errorf("after %s, another projection: %+v %v", c.reduce, a, err)
		}
		p.Drop("f")
	}
}

// jqBenchReducer is make bench's 3-line reducer (figure 14).
const jqBenchDef = `{"name":"by-channel","kind":"custom","init":{"n":0,"qty":0,"last":null},
	"reduce":"{n: (.n + 1),\n qty: (.qty + $event.data.qty),\n last: $event.time}",
	"key":"$event.data.channel"}`

// BenchmarkJQCatchUp folds a custom jq projection over events shaped like
// make bench's (eight data members), from no cache.
func BenchmarkJQCatchUp(b *testing.B) {
	l, _ := testLog(b, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	const n = 200000
	for done := 0; done < n; done += 1000 {
		var ps []log.Proposed
		for i := done; i < done+1000; i++ {
			ps = append(ps, log.Proposed{Type: "order.placed", Entity: fmt.Sprintf("order-%d", i%250000), ExpectedVersion: -1,
				Data: fmt.Appendf(nil, `{"customer":"cust-%06d","sku":"SKU-%05d-BLK","qty":%d,"unit_price":"%d.%02d","currency":"EUR","channel":"%s","note":"gift wrap"}`,
					i*7919%1000000, i%100000, 1+i%9, 1+i%500, i%100, []string{"web", "ios", "android", "pos", "partner-api"}[i%5])})
		}
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			b.Fatal(err)
		}
	}
	d := mustDef(b, jqBenchDef)
	p := Open(l)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Drop(d.Name)
		if _, err := p.Result(context.Background(), d, 1, 0, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "events/cpu-s")
}

// TestEventShape: what the programs read of $event, and that a partial
// event gives each program what the whole one does.
func TestEventShape(t *testing.T) {
	for _, c := range []struct{ reduce, key, want string }{
		{`$state + $event.data.amount`, ``, `data[amount]`},
		{`. + $event.data.amount + ($event.data.n // 0)`, `$event.data.customer`, `data[amount n customer]`},
		{`.last = $event.time | .n += $event.data.qty`, ` $event.type `, `data[qty] time type`},
		{`$event.data | .a`, ``, `data`},
		{`$event.data.a + ($event.data | length)`, ``, `data`},
		{`$eventful + $event.seq`, ``, `seq`},
		{`$event | keys`, ``, `all`},
		{`"\($event)"`, ``, `all`},
		{`$event["data"]`, ``, `all`},
		{`$event .data`, ``, `all`},
		{`.`, `.data.customer`, `all`},
		{`.`, `$event.data.customer | ascii_downcase`, `all`},
		{`.`, ``, ``},
	} {
		sh := shapeOf(c.reduce, c.key)
		var got []string
		if sh.all {
			got = []string{"all"}
		}
		for f := range sh.fields {
			if f == "data" && sh.data != nil {
				f = "data[" + strings.Join(sh.data, " ") + "]"
			}
			got = append(got, f)
		}
		slices.Sort(got)
		if strings.Join(got, " ") != c.want {
			t.Errorf("shapeOf(%q, %q) = %v; want %s", c.reduce, c.key, got, c.want)
		}
	}
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Second)
	appendOne(t, l, "a", "e/1", `{"amount":1,"customer":"x","n":2,"z":[1,{"q":"w"}]}`)
	appendOne(t, l, "a", "e/2", `[1,2]`)
	appendOne(t, l, "b", "e/1", `{"amount":2.5,"customer":"y","amount":3}`)
	for _, def := range []string{
		`{"name":"a","kind":"custom","reduce":". + [$event.data.amount?, $event.data.nope?, $event.seq]","init":[]}`,
		`{"name":"b","kind":"custom","reduce":". + [$event.data.customer?]","init":[],"key":"$event.entity"}`,
		`{"name":"c","kind":"custom","reduce":"[$event.time, $event.type, $event.version, $event.key]","key":"$event.data.customer?"}`,
	} {
		d := mustDef(t, def)
		a, err := Open(l).Result(context.Background(), d, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := newJQReducer(d)
		if err != nil {
			t.Fatal(err)
		}
		r.(*jqReducer).shape = eventShape{all: true}
		for _, e := range events(t, l, 3) {
			if err := r.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
		whole, _ := r.Result()
		if string(a.Result) != string(whole) {
			t.Errorf("%s: partial events give %s, whole ones %s", d.Name, a.Result, whole)
		}
	}
}

// TestJQStateGrowth: a state that keeps a megabyte of every event fails
// its projection once it grew the heap past its bound, instead of growing
// without end; the process and another projection go on.
func TestJQStateGrowth(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 300)
	saved := jq.DefaultLimits
	jq.DefaultLimits.Memory = 4 << 20 // the bound: 8 × 4 MB
	defer func() { jq.DefaultLimits = saved }()
	p := Open(l)
	d := mustDef(t, `{"name":"hoard","kind":"custom","init":[],"reduce":". + [\"x\" * 1000000 + ($event.seq | tostring)]"}`)
	_, err := p.Result(context.Background(), d, 1, 0, 0)
	var fe *FailedError
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "past its memory limit") || fe.At.Seq > 100 {
		t.Fatalf("%v; want failed with a memory limit before seq 100", err)
	}
	t.Logf("failed at %d: %s", fe.At.Seq, fe.Msg)
	if a, err := p.Result(context.Background(), mustDef(t, `{"name":"n","kind":"custom","init":0,"reduce":". + 1"}`), 1, 0, 0); err != nil || string(a.Result) != "300" {
		t.Errorf("another projection: %+v %v", a, err)
	}
}

// TestJQBudget: a jq event that may legally take 400 ms stops at the
// read's deadline (or its context's end) instead of overrunning it: the
// read answers Behind at the event before (its real seq and id), is not
// failed, saves its progress, and the next read goes on from there. Every
// read gets past at least one event, however short its budget; an event
// past its own time limit still fails. A rebuild stops mid-event too.
func TestJQBudget(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Second)
	for i := 0; i < 6; i++ {
		appendOne(t, l, "a", "e/1", `{"s":0.4}`)
	}
	slow := `{"name":"slow","kind":"custom","init":0,"reduce":"now as $t | first(range(1e9) | select(now > $t + $event.data.s)) | $state + 1"}`
	d := mustDef(t, slow)
	ctx := context.Background()
	for i, budget := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond} {
		a, err := Open(l).Result(ctx, d, 1, 0, budget) // no warm run: from the saved progress
		want := uint64(i + 1)
		if err != nil || !a.Behind || a.Seq != want || string(a.Result) != fmt.Sprint(want) {
			t.Fatalf("read %d (budget %v): %+v %v; want behind at %d", i+1, budget, a, err, want)
		}
		if e, _ := l.Event(want); a.ID != e.IDString() {
			t.Errorf("read %d: id %s; want event %d's", i+1, a.ID, want)
		}
	}
	p := Open(l)
	if st, err := p.Status(d, 1); err != nil || st.State != StateRunning || st.LastSeq != 2 || st.Errors != 0 {
		t.Errorf("status: %+v %v", st, err)
	}
	// The request gone mid-event: behind where it was, not failed.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if a, err := p.Result(cctx, d, 1, 0, time.Minute); err != nil || !a.Behind || a.Seq != 2 {
		t.Errorf("cancelled: %+v %v; want behind at 2", a, err)
	}
	if a, err := p.Result(ctx, d, 1, 0, time.Minute); err != nil || a.Behind || a.Seq != 6 || string(a.Result) != "6" {
		t.Errorf("caught up: %+v %v", a, err)
	}
	// A rebuild whose context ends mid-event stops there too, resumable.
	cctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := p.Rebuild(cctx, d, 1, RebuildOptions{}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("rebuild cut short: %v", err)
	}
	if st, err := p.Status(d, 1); err != nil || st.State != StateRebuilding || st.LastSeq != 0 || st.Errors != 0 {
		t.Errorf("status after the rebuild cut short: %+v %v", st, err)
	}
	// Past its own limit (300 ms here) an event fails, whatever the budget.
	saved := jq.DefaultLimits
	jq.DefaultLimits.Time = 300 * time.Millisecond
	defer func() { jq.DefaultLimits = saved }()
	d = mustDef(t, strings.Replace(slow, `"slow"`, `"slower"`, 1))
	_, err := p.Result(ctx, d, 1, 0, 100*time.Millisecond)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.At.Seq != 1 || !strings.Contains(fe.Msg, "past its time limit") {
		t.Errorf("past its limit: %v; want failed at 1", err)
	}
}

// TestJQMemoryOfOthers: a legitimate reducer (a 70 KB value, 300 ms) is
// not failed for a memory limit because another goroutine — a large
// append in flight — allocates and holds 100 MB while it runs.
func TestJQMemoryOfOthers(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Second)
	appendOne(t, l, "a", "e/1", `{}`)
	d := mustDef(t, `{"name":"big","kind":"custom","init":0,"reduce":"now as $t | first(range(1e9) | select(now > $t + 0.3)) | (\"x\" * 70000 | length)"}`)
	held := make(chan []byte, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // the run is under way
		held <- make([]byte, 100<<20)
	}()
	a, err := Open(l).Result(context.Background(), d, 1, 0, time.Minute)
	hog := <-held
	if err != nil || string(a.Result) != "70000" {
		t.Errorf("%+v %v; want 70000", a, err)
	}
	runtime.KeepAlive(hog)
}
