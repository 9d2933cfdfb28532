package projections

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"strata/jsonx"
	"strata/log"
)

// An entity that a projection of kind state makes (StateProjection) has
// that projection's states on every entity route, not only GET
// /entities/<e>: its history and diffs are folded here from the entity's
// own events with the projection's reducer, which is exactly what the
// projection does for that entity — kind state is keyed by entity, so a
// key's state depends only on that entity's events that pass the filter
// (and the glob), in log order. That costs O(the entity's versions through
// the point), never the other entities' events a time travel of the
// projection would refold, and leaves the merge path (snapshots and all)
// untouched for entities no state projection makes. Snapshots hold merge
// states, so these folds start from the entity's first event.

// stateFold folds one entity's events with a state projection's reducer.
type stateFold struct {
	name   string
	entity string
	red    *jqReducer
	// sel passes the events the engine's run of the definition would: its
	// filter (strata.* types as the engine) and its narrowing (Narrow).
	sel  *run
	init []byte // the state before any event passed: init, or null
}

func newStateFold(ctx context.Context, d *DefRecord, entity string) (*stateFold, error) {
	if d.Def == nil || d.Def.Kind != "state" {
		return nil, fmt.Errorf("projection %s is not of kind state", d.Name)
	}
	red, err := newJQReducer(d.Def)
	if err != nil {
		return nil, err
	}
	f := &stateFold{name: d.Name, entity: entity, red: red.(*jqReducer), sel: &run{m: newMatcher(d.Def.Filter)}, init: null}
	f.sel.setOptions(d.Def.Narrow)
	if d.Def.Init != nil {
		f.init = d.Def.Init
	}
	f.red.setContext(ctx)
	return f, nil
}

// apply folds e if it passes the projection's filter and narrowing. A
// reducer error is the projection's *FailedError at e, as the engine would
// record it; a run cut short by the context is the context's error.
func (f *stateFold) apply(ctx context.Context, e *log.Event) error {
	if !f.sel.pass(&log.RawEvent{Type: []byte(e.Type), Entity: []byte(e.Entity), Time: e.Time}) {
		return nil
	}
	err := safeApply(f.red, e)
	switch {
	case err == nil:
		return nil
	case cutShort(err) && ctx.Err() != nil:
		return ctx.Err()
	}
	return &FailedError{Name: f.name, At: Stamp{Seq: e.Seq, ID: hex.EncodeToString(e.ID[:])}, Msg: err.Error()}
}

// state returns the entity's state as the projection has it now.
func (f *stateFold) state() ([]byte, error) {
	b, ok, err := f.red.Key(f.entity)
	if err != nil || !ok {
		return f.init, err
	}
	return b, nil
}

// step folds e into s (the entity's version before e) and makes s the
// version e makes; with encode, s.State is the projection's state after
// it ("null" for a tombstone, as the merge path: GET answers it gone).
func (f *stateFold) step(ctx context.Context, s *State, e *log.Event, encode bool) error {
	if err := f.apply(ctx, e); err != nil {
		return err
	}
	s.Deleted = opOf(e.Meta) == OpDelete
	s.Version, s.Seq, s.ID, s.Time = e.Version, e.Seq, e.ID, e.Time
	s.State = nil
	if !encode {
		return nil
	}
	if s.Deleted {
		s.State = null
		return nil
	}
	var err error
	s.State, err = f.state()
	return err
}

// StateHistory is History for an entity whose state projection d (of kind
// state, StateProjection) makes: each version's state is d's for the
// entity after that version's event. It folds the entity's events from
// its first through the page: O(versions), a jq run for each that passes
// d's filter.
func StateHistory(ctx context.Context, l *log.Log, d *DefRecord, entity string, after uint64, limit int) ([]*State, bool, error) {
	f, err := newStateFold(ctx, d, entity)
	if err != nil {
		return nil, false, err
	}
	var page []*State
	s := State{Entity: entity}
	it := l.ScanEntity(entity, 0, l.Through())
	for n := 1; it.Next(); n++ {
		e := it.Event()
		if e.Version > after && len(page) == limit {
			return page, true, nil
		}
		if err := f.step(ctx, &s, e, e.Version > after); err != nil {
			return nil, false, err
		}
		if e.Version > after {
			v := s
			v.Event = e
			page = append(page, &v)
		}
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, false, err
	}
	if s.Version == 0 {
		return nil, false, ErrNoEntity
	}
	return page, false, nil
}

// StateDiff is Diff for an entity whose state projection d makes: the
// projection's states at versions from (0: null, before the first event)
// and to (0: the newest) and the merge patch between them (jsonx.MergeDiff).
// It folds the entity's events from its first through to: O(versions).
func StateDiff(ctx context.Context, l *log.Log, d *DefRecord, entity string, from, to uint64) (a, b *State, patch []byte, exact bool, err error) {
	if to != 0 && from > to {
		return nil, nil, nil, false, fmt.Errorf("diff from version %d to %d: %w", from, to, ErrBackwards)
	}
	through := l.Through()
	toSeq, err := Point{Version: to}.bound(l, entity, through)
	if err != nil {
		return nil, nil, nil, false, err
	}
	if from > 0 {
		if _, err := (Point{Version: from}).bound(l, entity, through); err != nil {
			return nil, nil, nil, false, err
		}
	}
	f, err := newStateFold(ctx, d, entity)
	if err != nil {
		return nil, nil, nil, false, err
	}
	a = &State{Entity: entity, State: null}
	s := State{Entity: entity}
	it := l.ScanEntity(entity, 0, toSeq)
	for n := 1; it.Next(); n++ {
		e := it.Event()
		if err := f.step(ctx, &s, e, e.Version == from); err != nil {
			return nil, nil, nil, false, err
		}
		if e.Version == from {
			c := s
			a = &c
		}
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, false, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, nil, false, err
	}
	if s.Version == 0 {
		return nil, nil, nil, false, ErrNoEntity
	}
	if from > 0 && a.Version != from {
		return nil, nil, nil, false, ErrNoVersion
	}
	s.State = null
	if !s.Deleted {
		if s.State, err = f.state(); err != nil {
			return nil, nil, nil, false, err
		}
	}
	b = &s
	if patch, exact, err = jsonx.MergeDiff(nil, a.State, b.State); err != nil {
		return nil, nil, nil, false, fmt.Errorf("diff of %q from version %d to %d: %w", entity, from, to, err)
	}
	return a, b, patch, exact, nil
}

// stateViews gives a search the states of the entities state projections
// make: for each entity, the projection StateDef would find (the catalog
// read once per search, each definition once), and that projection's key
// at the index's stamp, from one catch-up per projection per search (a
// warm run in a long-running process) — so a page costs what GET
// /entities/<e> costs once per projection, plus a key lookup and encode
// per entity, and nothing for an entity no state glob matches.
type stateViews struct {
	l      *log.Log
	p      *Projector
	budget time.Duration
	loaded bool
	globs  []stateGlob
	runs   map[string]*run // by name, caught up at seq
	seq    uint64
}

type stateGlob struct {
	name string
	m    *matcher
	d    *DefRecord // read on first match; nil with read set: not active
	read bool
}

// def returns the state projection that makes entity, or nil.
func (v *stateViews) def(entity string) (*DefRecord, error) {
	if !v.loaded {
		c, err := loadCatalog(v.l)
		if err != nil {
			return nil, err
		}
		v.loaded = true
		for _, name := range c.Names {
			if glob, ok := c.States[name]; ok {
				v.globs = append(v.globs, stateGlob{name: name, m: newMatcher(Filter{Entity: glob})})
			}
		}
	}
	for i := range v.globs {
		g := &v.globs[i]
		if !g.m.matchEntity([]byte(entity)) {
			continue
		}
		if !g.read {
			d, err := ReadDef(v.l, g.name, 0)
			if err != nil && !errors.Is(err, ErrNoProjection) {
				return nil, err
			}
			g.read = true
			if err == nil && d.Active() && d.Def != nil && d.Def.Kind == "state" {
				g.d = d
			}
		}
		if g.d != nil {
			return g.d, nil
		}
	}
	return nil, nil
}

// reduce replaces s's merge state with that of the state projection that
// makes s's entity, if one does, at seq (the index's stamp); it sets
// s.Projection, and reports whether the projection was behind seq.
func (v *stateViews) reduce(ctx context.Context, s *State, seq uint64) (behind bool, err error) {
	d, err := v.def(s.Entity)
	if err != nil || d == nil {
		return false, err
	}
	if v.seq != seq {
		v.close()
		v.seq = seq
	}
	r := v.runs[d.Name]
	if r == nil {
		// Short of seq (out of budget), r.h.Seq says so below.
		if r, _, err = v.p.catchUp(ctx, d.Def, d.Version, max(seq, 1), v.budget); err != nil {
			return false, err
		}
		if err := r.ensure(); err != nil {
			v.p.release(r)
			return false, err
		}
		if v.runs == nil {
			v.runs = map[string]*run{}
		}
		v.runs[d.Name] = r
	}
	b, ok, err := r.red.Key(s.Entity)
	switch {
	case err != nil:
		return false, err
	case !ok: // none of its events passed the filter
		b = null
		if d.Def.Init != nil {
			b = d.Def.Init
		}
	}
	s.State, s.Projection = b, d.Name
	return r.h.Seq < seq, nil
}

// close gives the runs back to the Projector.
func (v *stateViews) close() {
	for _, r := range v.runs {
		v.p.release(r)
	}
	v.runs = nil
}

// FailedBy returns def's *FailedError if the projection fails at or before
// seq, nil if it does not: what its status records, or, when it has not
// folded through seq yet, what catching it up at the head (within budget,
// as a read at the head does) finds. A history or diff folds only the
// entity's own events; a failure at another entity's event, which fails
// every read of the projection past it, is found here.
func (p *Projector) FailedBy(ctx context.Context, def *Definition, version, seq uint64, budget time.Duration) error {
	st, err := p.Status(def, version)
	switch {
	case err != nil:
		return err
	case st.State == StateFailed && st.FailedAt != nil:
		if st.FailedAt.Seq > seq {
			return nil
		}
		return &FailedError{Name: def.Name, At: *st.FailedAt, Msg: st.LastError}
	case st.LastSeq >= seq:
		return nil
	}
	r, _, err := p.catchUp(ctx, def, version, 0, budget)
	var fe *FailedError
	switch {
	case err == nil:
		p.release(r)
		return nil
	case errors.As(err, &fe) && fe.At.Seq > seq:
		return nil
	}
	return err
}
