package projections

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"strata/jsonx"
	"strata/log"
)

// Kind funnel follows entities through ordered steps, each an event type:
//
//	{"name":"signup","kind":"funnel",
//	 "steps":["user.created","user.verified","order.placed"],"window":"7d"}
//
// gives
//
//	{"steps":[{"type":"user.created","entities":10,"conversion":1},
//	          {"type":"user.verified","entities":6,"conversion":0.6},…],
//	 "window":"7d"}
//
// An entity reaches step 1 with an event of step 1's type; it reaches step
// k with an event of step k's type after (later in the log than) the event
// that took it to step k−1, and within window of its step-1 event
// (inclusive). Such a run of steps is an attempt: a step-1 event starts one
// when the entity has none under way — none yet, or the last one completed
// every step or outlived its window; a step-1 event during an attempt does
// not restart it. An entity counts once per step, for the furthest step any
// of its attempts reached. "entities" is how many entities reached the
// step; "conversion" is that over the previous step's (1 for the first
// step, 0 after a step nobody reached). Without a window there is no time
// limit. The result has no keys.
func init() {
	RegisterKind("funnel", validateFunnel, newFunnel)
}

// maxSteps bounds a funnel's steps.
const maxSteps = 32

func validateFunnel(d *Definition) error {
	if err := d.Only("steps", "window"); err != nil {
		return err
	}
	if len(d.Steps) < 2 || len(d.Steps) > maxSteps {
		return fieldErr("steps", "must be 2 to %d event types", maxSteps)
	}
	for i, s := range d.Steps {
		if s == "" || len(s) > 128 || !isWords(s) {
			return fieldErr(fmt.Sprintf("steps[%d]", i), "must be an event type")
		}
	}
	if d.Window != "" {
		if _, err := ParseWindow(d.Window); err != nil {
			return fieldErr("window", "%v", err)
		}
	}
	return nil
}

// progress is one entity's place in the funnel.
type progress struct {
	best uint8 // furthest step reached by any attempt (1-based; 0 none)
	cur  uint8 // steps reached by the current attempt
	t0   int64 // time of the current attempt's step-1 event
}

type funnel struct {
	steps   []string
	window  int64 // nanoseconds, 0 for none
	winText string
	ents    map[string]*progress
	reached []uint64 // reached[k]: entities whose best > k
}

func newFunnel(d *Definition) (Reducer, error) {
	f := &funnel{steps: d.Steps, winText: d.Window, ents: map[string]*progress{}, reached: make([]uint64, len(d.Steps))}
	if d.Window != "" {
		w, err := ParseWindow(d.Window)
		if err != nil {
			return nil, err
		}
		f.window = int64(w)
	}
	return f, nil
}

func (f *funnel) Apply(e *log.Event) error {
	f.add([]byte(e.Type), []byte(e.Entity), e.Time)
	return nil
}

func (f *funnel) applyRaw(r *log.RawEvent) error {
	f.add(r.Type, r.Entity, r.Time)
	return nil
}

func (f *funnel) add(typ, ent []byte, ns int64) {
	step := -1 // the first step of this type the entity could take
	first := string(typ) == f.steps[0]
	p := f.ents[string(ent)]
	if p != nil && p.cur > 0 && int(p.cur) < len(f.steps) && string(typ) == f.steps[p.cur] {
		if f.window == 0 || ns-p.t0 <= f.window {
			step = int(p.cur)
		}
	}
	if step < 0 {
		if !first {
			return
		}
		if p != nil && p.cur > 0 && int(p.cur) < len(f.steps) && (f.window == 0 || ns-p.t0 <= f.window) {
			return // an attempt is under way
		}
		if p == nil {
			p = &progress{}
			f.ents[string(ent)] = p
		}
		p.cur, p.t0 = 0, ns
		step = 0
	}
	p.cur = uint8(step + 1)
	if p.cur > p.best {
		f.reached[step]++
		p.best = p.cur
	}
}

func (f *funnel) Result() ([]byte, error) {
	b := []byte(`{"steps":[`)
	for i, s := range f.steps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":`...)
		b = jsonx.AppendString(b, s)
		b = fmt.Appendf(b, `,"entities":%d,"conversion":`, f.reached[i])
		conv := 1.0
		if i > 0 {
			conv = 0
			if f.reached[i-1] > 0 {
				conv = float64(f.reached[i]) / float64(f.reached[i-1])
			}
		}
		b = appendNumber(b, conv)
		b = append(b, '}')
	}
	b = append(b, ']')
	if f.winText != "" {
		b = append(b, `,"window":`...)
		b = jsonx.AppendString(b, f.winText)
	}
	return append(b, '}'), nil
}

func (f *funnel) Key(string) ([]byte, bool, error) { return nil, false, ErrNotKeyed }

func (f *funnel) Keys(string, int) ([]string, bool, error) { return nil, false, ErrNotKeyed }

// funnelSaveHead opens the saved form: then one line per entity that
// started the funnel, sorted by entity,
//
//	<entity> TAB <best step> TAB <current step> TAB <step-1 time, unix ns> LF
//
// An entity holds no control character (the event rule), so a tab and a
// newline cannot be part of one. Text, not JSON: a funnel of a million
// entities loads in a fraction of what encoding/json takes.
const funnelSaveHead = "funnel 1\n"

func (f *funnel) Save() ([]byte, error) {
	names := make([]string, 0, len(f.ents))
	for e := range f.ents {
		names = append(names, e)
	}
	sort.Strings(names)
	b := make([]byte, 0, len(funnelSaveHead)+len(names)*40)
	b = append(b, funnelSaveHead...)
	for _, e := range names {
		p := f.ents[e]
		b = append(b, e...)
		b = append(b, '\t')
		b = strconv.AppendUint(b, uint64(p.best), 10)
		b = append(b, '\t')
		b = strconv.AppendUint(b, uint64(p.cur), 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, p.t0, 10)
		b = append(b, '\n')
	}
	return b, nil
}

func (f *funnel) Load(b []byte) error {
	all, ok := strings.CutPrefix(string(b), funnelSaveHead)
	if !ok {
		return errors.New("load funnel: not a saved funnel")
	}
	n := strings.Count(all, "\n")
	f.ents = make(map[string]*progress, n)
	slab := make([]progress, n)
	clear(f.reached)
	for i := 0; i < n; i++ {
		line, rest, _ := strings.Cut(all, "\n")
		all = rest
		e, r1, ok1 := strings.Cut(line, "\t")
		bs, r2, ok2 := strings.Cut(r1, "\t")
		cs, ts, ok3 := strings.Cut(r2, "\t")
		best, err1 := strconv.ParseUint(bs, 10, 8)
		cur, err2 := strconv.ParseUint(cs, 10, 8)
		t0, err3 := strconv.ParseInt(ts, 10, 64)
		if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || err3 != nil || int(best) > len(f.steps) || int(cur) > len(f.steps) {
			return fmt.Errorf("load funnel: line %d is malformed", i+2)
		}
		p := &slab[i]
		*p = progress{best: uint8(best), cur: uint8(cur), t0: t0}
		f.ents[e] = p
		for k := 0; k < int(best); k++ {
			f.reached[k]++
		}
	}
	if all != "" {
		return errors.New("load funnel: the last line is cut short")
	}
	return nil
}
