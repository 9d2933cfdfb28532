package projections

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"strata/log"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenDefs are the definitions whose results over
// testdata/projections.ndjson are pinned in
// testdata/projections.golden.json. Regenerate only on purpose, and read
// the diff: go test ./projections -run Golden -update.
var goldenDefs = []string{
	`{"name":"per-type","kind":"counter","by":"type"}`,
	`{"name":"per-entity","kind":"counter","by":"entity","filter":{"entity":"orders/*"}}`,
	`{"name":"one-entity","kind":"counter","by":"type","filter":{"entity":"users/3"}}`,
	`{"name":"per-minute","kind":"counter","by":"minute","filter":{"types":["user.created"]}}`,
	`{"name":"per-hour","kind":"counter","by":"hour","filter":{"types":["order.placed","user.*"]}}`,
	`{"name":"per-day","kind":"counter","by":"day"}`,
	`{"name":"per-week","kind":"counter","by":"week"}`,
	`{"name":"per-month","kind":"counter","by":"month","filter":{"types":["order.*"]}}`,
	`{"name":"definitions","kind":"counter","by":"type","filter":{"types":["strata.*"]}}`,
	`{"name":"revenue","kind":"timeseries","path":".amount","op":"sum","bucket":"day","filter":{"types":["order.paid"]}}`,
	`{"name":"paid-avg","kind":"timeseries","path":".amount","op":"avg","bucket":"month","filter":{"types":["order.paid"]}}`,
	`{"name":"paid-min","kind":"timeseries","path":".amount","op":"min","bucket":"week","filter":{"types":["order.paid"]}}`,
	`{"name":"paid-max","kind":"timeseries","path":".amount","op":"max","bucket":"week","filter":{"types":["order.paid"]}}`,
	`{"name":"paid-count","kind":"timeseries","path":".amount","op":"count","bucket":"day","filter":{"types":["order.paid"]}}`,
	`{"name":"all-count","kind":"timeseries","op":"count","bucket":"hour","filter":{"entity":"orders/*"}}`,
	`{"name":"nested","kind":"timeseries","path":".payment.amount","op":"sum","bucket":"day"}`,
	`{"name":"signup","kind":"funnel","steps":["user.created","user.verified","order.placed"],"window":"7d"}`,
	`{"name":"signup-ever","kind":"funnel","steps":["user.created","user.verified","order.placed"]}`,
	`{"name":"signup-hour","kind":"funnel","steps":["user.created","user.verified"],"window":"1h"}`,
	`{"name":"jq-paid","kind":"custom","init":0,"reduce":"$state + (($event.data.amount | numbers) // 0)","key":"$event.entity","filter":{"types":["order.paid"]}}`,
	`{"name":"jq-last3","kind":"custom","init":[],"reduce":". + [[$event.seq, $event.type, $event.version]] | .[-3:]"}`,
	`{"name":"jq-by-version","kind":"custom","init":0,"reduce":". + 1","key":"$event.version"}`,
	`{"name":"jq-customers","kind":"custom","init":[],"reduce":". + [$event.seq]","key":"$event.data.customer?"}`,
	`{"name":"jq-users","kind":"state","entity":"users/*","init":{"events":0},"reduce":". * ($event.data // {}) | .events += 1 | .last = $event.type"}`,
}

// goldenPoints are the seqs whose results the golden file pins besides the
// head.
var goldenPoints = []uint64{4, 13, 25}

// loadGoldenLog appends testdata/projections.ndjson to a new log, each
// event at the time its line gives ("time" is not an event field a client
// sends: the test's clock serves it).
func loadGoldenLog(t testing.TB) (*log.Log, []*log.Event) {
	t.Helper()
	f, err := os.Open("../testdata/projections.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, now := testLog(t, time.Time{}, 0)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Time   time.Time       `json:"time"`
			Type   string          `json:"type"`
			Entity string          `json:"entity"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		*now = line.Time
		appendOne(t, l, line.Type, line.Entity, string(line.Data))
	}
	return l, events(t, l, l.Through())
}

// reference folds evs[:at] through the Reducer interface alone (decoded
// events, the path a jq kind takes), with the filter applied the slow way.
func reference(t testing.TB, d *Definition, evs []*log.Event, at uint64) string {
	t.Helper()
	red, err := NewReducer(d)
	if err != nil {
		t.Fatal(err)
	}
	m := newMatcher(d.Filter)
	for _, e := range evs[:at] {
		if m.match([]byte(e.Type), []byte(e.Entity)) {
			if err := red.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := red.Result()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type goldenEntry struct {
	Result json.RawMessage            `json:"result"`
	At     map[string]json.RawMessage `json:"at"`
}

// TestGolden: every built-in kind's result over the fixed log, at the head
// and at points, is the pinned one; and the same from scratch, from
// checkpoints, from a warm cache, after deleting the cache, after a
// rebuild, and through decoded events.
func TestGolden(t *testing.T) {
	l, evs := loadGoldenLog(t)
	n := uint64(len(evs))
	ctx := context.Background()
	golden := map[string]*goldenEntry{}
	goldenPath := "../testdata/projections.golden.json"
	if !*update {
		b, err := os.ReadFile(goldenPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &golden); err != nil {
			t.Fatal(err)
		}
	}
	// p is one process's projector (warm runs kept between reads, as in
	// a long-running server); cgi makes a new one per read, as a CGI
	// request does.
	p := Open(l)
	p.CheckpointEvery = 4
	cgi := func() *Projector {
		q := Open(l)
		q.CheckpointEvery = 4
		return q
	}
	for _, js := range goldenDefs {
		d := mustDef(t, js)
		result := func(at uint64) string {
			t.Helper()
			a, err := cgi().Result(ctx, d, 1, at, time.Minute)
			if err != nil {
				t.Fatalf("%s at %d: %v", d.Name, at, err)
			}
			want := min(at, n)
			if at == 0 {
				want = n
			}
			if a.Behind || a.Seq != want || (want > 0 && a.ID != evs[want-1].IDString()) || (want == 0 && a.ID != "") {
				t.Fatalf("%s at %d: stamped %d %s behind %v; want %d", d.Name, at, a.Seq, a.ID, a.Behind, want)
			}
			return string(a.Result)
		}
		// From scratch, at the head, then from the warm cache.
		head := result(0)
		if *update {
			golden[d.Name] = &goldenEntry{Result: json.RawMessage(head), At: map[string]json.RawMessage{}}
			for _, s := range goldenPoints {
				golden[d.Name].At[fmt.Sprint(s)] = json.RawMessage(reference(t, d, evs, s))
			}
		}
		g := golden[d.Name]
		if g == nil {
			t.Fatalf("%s: not in %s (-update)", d.Name, goldenPath)
		}
		if head != string(g.Result) {
			t.Errorf("%s: result %s; golden %s", d.Name, head, g.Result)
		}
		for _, s := range goldenPoints {
			if got := result(s); got != string(g.At[fmt.Sprint(s)]) {
				t.Errorf("%s at %d: %s; golden %s", d.Name, s, got, g.At[fmt.Sprint(s)])
			}
		}
		for i := 0; i < 2; i++ {
			if got := result(0); got != head {
				t.Errorf("%s from the cache: %s; want %s", d.Name, got, head)
			}
			if a, err := p.Result(ctx, d, 1, 0, time.Minute); err != nil || string(a.Result) != head || a.Seq != n {
				t.Errorf("%s warm: %+v %v; want %s", d.Name, a, err, head)
			}
		}
		// Every point, from checkpoints, equals the reference fold.
		dir := p.versionDir(d.Name, 1)
		if cps, _ := checkpoints(dir); len(cps) != int(n/4) {
			t.Errorf("%s: checkpoints %v", d.Name, cps)
		}
		for s := uint64(0); s <= n+1; s++ {
			want := reference(t, d, evs, min(s, n))
			if s == 0 {
				want = head
			}
			if got := result(s); got != want {
				t.Errorf("%s at %d: %s; reference %s", d.Name, s, got, want)
			}
		}
		// Only checkpoints left (the result file gone): still the same.
		if err := os.Remove(filepath.Join(dir, resultFileName)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []uint64{3, 9, 0} {
			want := head
			if s != 0 {
				want = reference(t, d, evs, s)
			}
			if got := result(s); got != want {
				t.Errorf("%s at %d from checkpoints: %s; want %s", d.Name, s, got, want)
			}
		}
		// The whole cache gone, then a rebuild.
		if err := p.Drop(d.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: after Drop: %v", d.Name, err)
		}
		if got := result(0); got != head {
			t.Errorf("%s after Drop: %s; want %s", d.Name, got, head)
		}
		var last [2]uint64
		if err := p.Rebuild(ctx, d, 1, RebuildOptions{}, func(done, total uint64) { last = [2]uint64{done, total} }); err != nil {
			t.Fatal(err)
		}
		if last != [2]uint64{n, n} {
			t.Errorf("%s rebuild: last progress %v", d.Name, last)
		}
		if got := result(0); got != head {
			t.Errorf("%s after Rebuild: %s; want %s", d.Name, got, head)
		}
		if got := reference(t, d, evs, n); got != head {
			t.Errorf("%s: decoded events give %s; records %s", d.Name, got, head)
		}
		st, err := p.Status(d, 1)
		if err != nil || st.State != StateRunning || st.LastSeq != n {
			t.Errorf("%s status: %+v %v", d.Name, st, err)
		}
	}
	if *update {
		var b bytes.Buffer
		b.WriteString("{\n")
		for i, js := range goldenDefs {
			d := mustDef(t, js)
			g := golden[d.Name]
			at, _ := json.Marshal(g.At)
			fmt.Fprintf(&b, "%q: {\"result\": %s,\n  \"at\": %s}", d.Name, g.Result, at)
			if i < len(goldenDefs)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString("}\n")
		if err := os.WriteFile(goldenPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
