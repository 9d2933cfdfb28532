package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"strata/jsonx"
	"strata/log"
)

func ev(entity, data, meta string) log.Proposed {
	p := log.Proposed{Type: "t", Entity: entity, Data: []byte(data), ExpectedVersion: -1}
	if meta != "" {
		p.Meta = []byte(meta)
	}
	return p
}

// TestApply: the default reducer merges, the entity API's markers replace
// and delete, and an erased event changes nothing.
func TestApply(t *testing.T) {
	for _, c := range []struct {
		state, data, meta string
		erased            bool
		want              string
		deleted           bool
	}{
		{"", `{"a":1}`, ``, false, `{"a":1}`, false},
		{`{"a":1,"b":2}`, `{"b":null,"c":{"d":3}}`, ``, false, `{"a":1,"c":{"d":3}}`, false},
		{`{"a":1}`, `[1]`, ``, false, `[1]`, false},
		{`{"a":1}`, `null`, ``, false, `null`, false},
		{`"s"`, `{"a":1}`, ``, false, `{"a":1}`, false},
		{`{"a":1}`, `{"b":2}`, `{"strata":"put"}`, false, `{"b":2}`, false},
		{`{"a":1}`, `{"b":2}`, `{"by":"x","strata":"delete"}`, false, `null`, true},
		{`{"a":1}`, `{"b":2}`, `{"strata":"other"}`, false, `{"a":1,"b":2}`, false},
		{`{"a":1}`, `{"b":2}`, `{"nested":{"strata":"delete"}}`, false, `{"a":1,"b":2}`, false},
		{`{"a":1}`, `{"b":2}`, `{"stra\u0074a":"delete"}`, false, `null`, true},
		{`{"a":1}`, `0123456789abcdef0123456789abcdef`, ``, true, `{"a":1}`, false},
	} {
		var state []byte
		if c.state != "" {
			state = []byte(c.state)
		}
		e := &log.Event{Entity: "e", Data: []byte(c.data), Erased: c.erased}
		if c.meta != "" {
			e.Meta = []byte(c.meta)
		}
		got, deleted, err := Apply(state, e)
		if err != nil || !sameJSON(got, c.want) || deleted != c.deleted {
			t.Errorf("Apply(%s, data %s meta %s) = %s %v %v; want %s %v", c.state, c.data, c.meta, got, deleted, err, c.want, c.deleted)
		}
	}
}

// TestStateAt reads states at every kind of point over a real log, and
// Fold from a base gives what a read from scratch gives.
func TestStateAt(t *testing.T) {
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ps []log.Proposed
	for i := 1; i <= 300; i++ {
		ps = append(ps, ev("n", fmt.Sprintf(`{"i":%d,"k%d":true}`, i, i%3), ""))
		if i%7 == 0 {
			ps = append(ps, ev("other", `1`, ""))
		}
	}
	res, err := l.Append(&log.Request{Events: ps})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64 // seqs[v-1]: the seq of version v of "n"
	for _, e := range res.Events {
		if e.Entity == "n" {
			seqs = append(seqs, e.Seq)
		}
	}
	want := func(v int) string {
		return fmt.Sprintf(`{"i":%d,"k1":true,"k2":true,"k0":true}`, v)
	}
	for _, v := range []int{3, 64, 65, 128, 299, 300} {
		s, err := StateAt(l, "n", Point{Version: uint64(v)})
		if err != nil || s.Version != uint64(v) || s.Seq != seqs[v-1] || !sameJSON(s.State, want(v)) {
			t.Fatalf("version %d: %+v %s %v", v, s, s.State, err)
		}
		seq := seqs[v-1] + 1 // an "other" event or the next version's seq
		s, err = StateAt(l, "n", Point{Seq: &seq})
		if err != nil || (s.Version != uint64(v) && s.Version != uint64(v+1)) {
			t.Fatalf("seq %d: %+v %v", seq, s, err)
		}
		base, err := Fold(l, "n", nil, seqs[v/2])
		if err != nil {
			t.Fatal(err)
		}
		s, err = Fold(l, "n", base, seqs[v-1])
		if err != nil || s.Version != uint64(v) || !sameJSON(s.State, want(v)) {
			t.Fatalf("fold from version %d to %d: %+v %v", base.Version, v, s, err)
		}
	}
	if _, err := StateAt(l, "n", Point{Version: 301}); !errors.Is(err, ErrNoVersion) {
		t.Errorf("version 301: %v", err)
	}
	if _, err := StateAt(l, "none", Point{}); !errors.Is(err, ErrNoEntity) {
		t.Errorf("no entity: %v", err)
	}
	page, more, err := History(l, "n", 250, 40)
	if err != nil || !more || len(page) != 40 || page[0].Version != 251 || !sameJSON(page[39].State, want(290)) || page[39].Event.Seq != seqs[289] {
		t.Errorf("history after 250: %d versions, more %v, %v", len(page), more, err)
	}
}

// sameJSON reports whether got is the JSON value want, member order aside.
func sameJSON(got []byte, want string) bool {
	var x, y any
	if json.Unmarshal(got, &x) != nil || json.Unmarshal([]byte(want), &y) != nil {
		return false
	}
	a, _ := json.Marshal(x) // maps marshal with sorted keys
	b, _ := json.Marshal(y)
	return string(a) == string(b)
}

// TestDiff: the patch between two versions, which applied to the first
// gives the second, and exact false where RFC 7386 cannot say it.
func TestDiff(t *testing.T) {
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(&log.Request{Events: []log.Proposed{
		ev("d", `{"a":1,"b":{"c":2,"d":3}}`, ""),
		ev("d", `{"b":{"c":null,"e":4},"f":[1]}`, ""),
		ev("d", `{"a":null}`, `{"strata":"put"}`),
	}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, to uint64
		patch    string
		exact    bool
	}{
		{0, 1, `{"a":1,"b":{"c":2,"d":3}}`, true},
		{1, 2, `{"b":{"c":null,"e":4},"f":[1]}`, true},
		{2, 1, ``, false},
		{2, 3, `{"a":null,"b":null,"f":null}`, false},
		{1, 0, `{"a":null,"b":null}`, false}, // to 0: the newest
	} {
		a, b, patch, exact, err := Diff(l, "d", c.from, c.to)
		if c.patch == "" {
			if !errors.Is(err, ErrBackwards) {
				t.Errorf("diff %d→%d: %v, want ErrBackwards", c.from, c.to, err)
			}
			continue
		}
		if err != nil || !sameJSON(patch, c.patch) || exact != c.exact || a.Version != c.from {
			t.Errorf("diff %d→%d: %s exact %v %v; want %s exact %v", c.from, c.to, patch, exact, err, c.patch, c.exact)
			continue
		}
		if exact {
			got, err := jsonx.MergePatch(nil, a.State, patch)
			if err != nil || !sameJSON(got, string(b.State)) {
				t.Errorf("diff %d→%d applied: %s %v, want %s", c.from, c.to, got, err, b.State)
			}
		}
	}
}
