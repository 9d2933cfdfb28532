package projections

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReadDef: a projection's record at every version of its entity —
// definitions, pauses, a deletion and a definition again.
func TestReadDef(t *testing.T) {
	l, _ := testLog(t, time.Now(), time.Millisecond)
	e := DefEntity("p")
	appendOne(t, l, "x", "y", `1`)
	appendOne(t, l, TypeDefined, e, `{"name":"p","kind":"counter","by":"type"}`)
	appendOne(t, l, TypePaused, e, `null`)
	appendOne(t, l, TypeDefined, e, `{"name":"p","kind":"counter","by":"entity"}`)
	appendOne(t, l, TypeResumed, e, `null`)
	appendOne(t, l, TypeDeleted, e, `null`)
	appendOne(t, l, TypeDefined, e, `{"name":"p","kind":"counter","by":"hour"}`)
	for _, c := range []struct {
		at, version    uint64
		by             string
		paused, gone   bool
		pausedSeq, seq uint64
	}{
		{1, 1, "type", false, false, 0, 2},
		{2, 1, "type", true, false, 3, 3},
		{3, 3, "entity", true, false, 3, 4}, // a new version while paused stays paused
		{4, 3, "entity", false, false, 0, 5},
		{5, 3, "entity", false, true, 0, 6},
		{6, 6, "hour", false, false, 0, 7}, // defined again: versions go on
		{0, 6, "hour", false, false, 0, 7},
	} {
		d, err := ReadDef(l, "p", c.at)
		if err != nil {
			t.Fatalf("at %d: %v", c.at, err)
		}
		if d.Version != c.version || d.Def == nil || d.Def.By != c.by || d.Paused != c.paused || d.Deleted != c.gone || d.PausedSeq != c.pausedSeq || d.Seq != c.seq {
			t.Errorf("at %d: %+v, want %+v", c.at, d, c)
		}
	}
	if _, err := ReadDef(l, "p", 8); !errors.Is(err, ErrNoDefVersion) {
		t.Errorf("version 8: %v", err)
	}
	if _, err := ReadDef(l, "q", 0); !errors.Is(err, ErrNoProjection) {
		t.Errorf("no such projection: %v", err)
	}
	// A record whose definition this server cannot read says why.
	appendOne(t, l, TypeDefined, DefEntity("bad"), `{"name":"other","kind":"counter","by":"type"}`)
	if d, err := ReadDef(l, "bad", 0); err != nil || d.Def != nil || d.DefErr == nil || d.Active() {
		t.Errorf("a definition naming another projection: %+v %v", d, err)
	}
}

// TestListDefs: the catalog lists every projection entity, is caught up
// from the tail, and is rebuilt when its stamp is not on the chain.
func TestListDefs(t *testing.T) {
	l, _ := testLog(t, time.Now(), time.Millisecond)
	if names, err := ListDefs(l); err != nil || len(names) != 0 {
		t.Fatalf("empty log: %v %v", names, err)
	}
	appendOne(t, l, TypeDefined, DefEntity("b"), `{"name":"b","kind":"counter","by":"type"}`)
	appendOne(t, l, "other.type", DefEntity("not-a-def"), `1`) // only the reserved types count
	appendOne(t, l, "x", "y", `1`)
	names, err := ListDefs(l)
	if err != nil || !slices.Equal(names, []string{"b"}) {
		t.Fatalf("ListDefs: %v %v", names, err)
	}
	path := filepath.Join(l.Dir(), catalogDir, catalogFile)
	var c catalog
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &c) != nil || c.Seq != 3 {
		t.Fatalf("catalog: %+v %v", c, err)
	}
	appendOne(t, l, TypeDefined, DefEntity("a"), `{"name":"a","kind":"counter","by":"type"}`)
	if names, _ = ListDefs(l); !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("after the tail: %v", names)
	}
	// A catalog stamped with an event not on this chain (from another
	// log, or a log restored to an earlier point) is not believed.
	c = catalog{Format: 1, Seq: 4, ID: strings.Repeat("0", 64), Names: []string{"ghost"}}
	b, _ := json.Marshal(c)
	os.WriteFile(path, b, 0o600)
	if names, _ = ListDefs(l); !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("with a catalog off the chain: %v", names)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if names, _ = ListDefs(l); !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("with a garbage catalog: %v", names)
	}
}

// TestReadDefNarrow: the narrowing in force is the latest rebuilt record
// after the latest definition; a pause or a rebuild leaves the version
// as it is, {} clears the narrowing and a new version does too.
func TestReadDefNarrow(t *testing.T) {
	l, _ := testLog(t, time.Now(), time.Millisecond)
	e := DefEntity("p")
	from := time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("x", 3600))
	appendOne(t, l, TypeDefined, e, `{"name":"p","kind":"counter","by":"type"}`)
	appendOne(t, l, TypeRebuilt, e, string(NarrowData(RebuildOptions{From: from, Types: []string{"a"}, Resume: true})))
	appendOne(t, l, TypePaused, e, `null`)
	appendOne(t, l, TypeRebuilt, e, string(NarrowData(RebuildOptions{Types: []string{}})))
	appendOne(t, l, TypeRebuilt, e, `{"entity":"e/*"}`)
	appendOne(t, l, TypeDefined, e, `{"name":"p","kind":"counter","by":"entity"}`)
	appendOne(t, l, TypeRebuilt, e, `"not an object"`)
	for _, c := range []struct {
		at, version uint64
		narrow      string
	}{
		{1, 1, "null"},
		{2, 1, `{"from":"2026-11-22T09:00:00Z","types":["a"]}`},
		{3, 1, `{"from":"2026-11-22T09:00:00Z","types":["a"]}`},
		{4, 1, "null"},
		{5, 1, `{"entity":"e/*"}`},
		{6, 6, "null"},
		{7, 6, "null"}, // unreadable: the whole result
	} {
		d, err := ReadDef(l, "p", c.at)
		if err != nil {
			t.Fatalf("at %d: %v", c.at, err)
		}
		b, _ := json.Marshal(d.Narrow)
		dn, _ := json.Marshal(d.Def.Narrow)
		if d.Version != c.version || string(b) != c.narrow || string(dn) != c.narrow {
			t.Errorf("at %d: version %d, narrow %s (def %s); want %d, %s", c.at, d.Version, b, dn, c.version, c.narrow)
		}
	}
	if got := string(NarrowData(RebuildOptions{Resume: true})); got != "{}" {
		t.Errorf("no narrowing: %s", got)
	}
}

// TestReplaySteps: a replay moves on in steps, is cancelled by a marker
// when another process steps it, and goes on after a step ends short.
func TestReplaySteps(t *testing.T) {
	l, _ := testLog(t, time.Now(), time.Millisecond)
	for i := range 3000 {
		appendOne(t, l, "t"+string(rune('a'+i%3)), "e", `1`)
	}
	appendOne(t, l, TypeDefined, DefEntity("c"), `{"name":"c","kind":"counter","by":"type"}`)
	// The narrowing is recorded first, as the server does.
	appendOne(t, l, TypeRebuilt, DefEntity("c"), string(NarrowData(RebuildOptions{Types: []string{"ta"}})))
	d, err := ReadDef(l, "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	p := Open(l)
	rs := OpenReplays(l, p)
	r, err := rs.Start(d, RebuildOptions{Types: []string{"ta"}}, "test")
	if err != nil || r.State != ReplayPending || r.Total != 3002 {
		t.Fatalf("Start: %+v %v", r, err)
	}
	// A step whose context has ended does nothing lasting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r, err = rs.Step(ctx, r.ID, 0, nil); err != nil || r.Over() {
		t.Fatalf("a cancelled step: %+v %v", r, err)
	}
	var seen []string
	if r, err = rs.Step(context.Background(), r.ID, 0, func(r *Replay) { seen = append(seen, r.State) }); err != nil || r.State != ReplayCompleted || r.Done != r.Total {
		t.Fatalf("Step: %+v %v", r, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != ReplayCompleted {
		t.Errorf("progress: %v", seen)
	}
	a, err := p.Result(context.Background(), d.Def, d.Version, 0, time.Minute)
	if err != nil || string(a.Result) != `{"ta":1000}` {
		t.Errorf("result: %s %v", a.Result, err)
	}
	// Cancelled while another process holds its lock: a marker, which
	// the stepping process obeys.
	r2, _ := rs.Start(d, RebuildOptions{}, "test")
	f, err := rs.lock(r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rs.Cancel(r2.ID, false); err != nil || c.State != ReplayCancelled {
		t.Fatalf("Cancel while busy: %+v %v", c, err)
	}
	if got, _ := rs.Step(context.Background(), r2.ID, 0, nil); got.State != ReplayPending {
		t.Errorf("stepped while another holds it: %+v", got)
	}
	f.Close()
	if got, err := rs.Step(context.Background(), r2.ID, 0, nil); err != nil || got.State != ReplayCancelled {
		t.Errorf("after the marker: %+v %v", got, err)
	}
	// Deleted while busy: the stepping process removes it.
	r3, _ := rs.Start(d, RebuildOptions{}, "test")
	f, _ = rs.lock(r3.ID)
	rs.Cancel(r3.ID, true)
	f.Close()
	rs.Step(context.Background(), r3.ID, 0, nil)
	if _, err := rs.Get(r3.ID); !errors.Is(err, ErrNoReplay) {
		t.Errorf("deleted while busy: %v", err)
	}
	// A changed definition cancels the replay of the old one.
	r4, _ := rs.Start(d, RebuildOptions{}, "test")
	appendOne(t, l, TypeDefined, DefEntity("c"), `{"name":"c","kind":"counter","by":"entity"}`)
	if got, _ := rs.Step(context.Background(), r4.ID, 0, nil); got.State != ReplayCancelled || !strings.Contains(got.Error, "changed") {
		t.Errorf("after a new definition: %+v", got)
	}
	all, err := rs.List()
	if err != nil || len(all) != 3 {
		t.Errorf("List: %d %v", len(all), err)
	}
	// Past KeepReplays finished records, a start removes the oldest.
	for range KeepReplays {
		r, _ := rs.Start(d, RebuildOptions{}, "test")
		rs.Cancel(r.ID, false)
	}
	last, _ := rs.Start(d, RebuildOptions{}, "test")
	all, _ = rs.List()
	if len(all) != KeepReplays+1 || all[len(all)-1].ID != last.ID || all[0].ID == r.ID {
		t.Errorf("after %d more: %d records", KeepReplays+1, len(all))
	}
}
