package projections

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"strata/internal/jq"
	"strata/log"
	"strata/query"
)

// Kinds custom and state fold events with a user's jq program (gojq,
// through internal/jq and its limits).
//
//	{"name":"spend","kind":"custom","init":0,
//	 "reduce":"$state + $event.data.amount",
//	 "key":"$event.data.customer",
//	 "filter":{"types":["order.paid"],"entity":"orders/*"}}
//	{"name":"orders","kind":"state","entity":"orders/*",
//	 "init":{"total":0},"reduce":"$state | .total += $event.data.amount"}
//
// What the programs see:
//
//   - $event: the event as GET /events serves it — {"id","prev","seq",
//     "time","type","entity","version","key" (when set),"data","meta"
//     (when set)}; an erased event has "data":null and "erased":true.
//   - $state: the state the event folds into — init (default null) for
//     the first event of a key (or of the projection, without a key),
//     then what reduce returned for the event before.
//   - $key: the event's key (kind custom with a key program; the entity
//     for kind state; null otherwise).
//   - reduce's input (.) is $state, as in jq's reduce; key's input is
//     $event. reduce's first output is the new state (the rest are not
//     run); no output is an error.
//   - key's first output is the key: a string as is, a number or boolean
//     as its JSON text, null or no output skips the event; an array or
//     object is an error.
//
// Results: without a key, the state; with one (and for kind state, keyed
// by entity), an object from each key to its state, members sorted, each
// member a key of GET …/result/<key>. Kind state folds only the events of
// entities that match its "entity" glob (and its filter, if it has one).
//
// A program that fails at an event (error/1, a type error, no output, a
// limit of jq.DefaultLimits) fails the projection at that event; the error
// says which program and why. A run stopped by its read's deadline or
// context is no failure (ctxReducer): the event is the next read's. A
// memory limit is declared only when a second try, alone, trips it too
// (package jq): others' allocations do not fail a projection.
func init() {
	RegisterKind("custom", validateCustom, newJQReducer)
	RegisterKind("state", validateState, newJQReducer)
}

// Variables of the programs, in the order Run takes their values.
var (
	reduceVars = []string{"state", "event", "key"}
	keyVars    = []string{"event"}
)

func validateCustom(d *Definition) error {
	if err := d.Only("init", "reduce", "key"); err != nil {
		return err
	}
	_, err := compileJQ(d)
	return err
}

func validateState(d *Definition) error {
	if err := d.Only("init", "reduce", "entity"); err != nil {
		return err
	}
	if d.Entity == "" {
		return fieldErr("entity", "is required: the entities (a glob such as \"orders/*\") whose state this reducer makes")
	}
	if len(d.Entity) > 256 || !query.ValidPattern(d.Entity) {
		return fieldErr("entity", "must be an entity or a glob such as \"orders/*\"")
	}
	_, err := compileJQ(d)
	return err
}

// jqPrograms is a definition compiled.
type jqPrograms struct {
	reduce *jq.Program
	key    *jq.Program // nil: not keyed by a program
	init   any
	shape  eventShape
}

// eventShape is what of $event the programs can read, so that an event's
// value is built with only that: decoding data into jq values is most of
// a small reducer's cost, and a reducer reads a member or two of it.
type eventShape struct {
	all    bool            // anything: the whole event
	fields map[string]bool // else: these top-level fields
	// data lists the members of data read, when data is read only as
	// $event.data.<member> (nil: all of data, if fields has data).
	data []string
}

// shapeOf finds what programs read of $event, from their text: sound
// because a program reaches the event only through the variable $event
// (reduce's input is $state; a key program is read as such only when it is
// a plain path $event.a.b…, whose input is unused). If every occurrence of
// $event is followed by .<name>, those names are the fields read (an
// occurrence inside a string or a comment only adds to them); any other
// use ($event | keys, $event[...], "\($event)") reads the whole event.
// Likewise for data's members, through $event.data.<name>.
func shapeOf(reduce, key string) eventShape {
	if key != "" && !isPlainEventPath(key) {
		return eventShape{all: true}
	}
	sh := eventShape{fields: map[string]bool{}}
	dataAll := false
	for _, src := range []string{reduce, key} {
		for i := 0; ; {
			j := strings.Index(src[i:], "$event")
			if j < 0 {
				break
			}
			i += j + len("$event")
			if i < len(src) && isIdentByte(src[i]) {
				continue // $eventful: another variable
			}
			name, n := dotIdent(src[i:])
			if n == 0 {
				return eventShape{all: true}
			}
			i += n
			sh.fields[name] = true
			if name != "data" {
				continue
			}
			if member, n := dotIdent(src[i:]); n == 0 {
				dataAll = true
			} else if !slices.Contains(sh.data, member) {
				sh.data = append(sh.data, member)
			}
		}
	}
	if dataAll {
		sh.data = nil
	}
	return sh
}

// isPlainEventPath reports whether src is $event.a.b… (one name or more),
// spaces around it allowed. (No regexp: compiling one at init would cost
// every process.)
func isPlainEventPath(src string) bool {
	s, ok := strings.CutPrefix(strings.TrimSpace(src), "$event")
	if !ok || s == "" {
		return false
	}
	for s != "" {
		_, n := dotIdent(s)
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return true
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// dotIdent reads ".name" at the start of s: the name and the bytes read,
// 0 if s does not start so.
func dotIdent(s string) (string, int) {
	if len(s) < 2 || s[0] != '.' || !isIdentByte(s[1]) || '0' <= s[1] && s[1] <= '9' {
		return "", 0
	}
	n := 2
	for n < len(s) && isIdentByte(s[n]) {
		n++
	}
	return s[1:n], n
}

func compileJQ(d *Definition) (*jqPrograms, error) {
	if d.Reduce == "" {
		return nil, fieldErr("reduce", "is required: a jq program that returns the new state from $state and $event")
	}
	var p jqPrograms
	var err error
	if p.reduce, err = jq.Compile(d.Reduce, reduceVars...); err != nil {
		return nil, fieldErr("reduce", "%v", err)
	}
	if d.Key != "" {
		if p.key, err = jq.Compile(d.Key, keyVars...); err != nil {
			return nil, fieldErr("key", "%v", err)
		}
	}
	if d.Init != nil {
		if p.init, err = jq.Decode(d.Init); err != nil {
			return nil, fieldErr("init", "must be a JSON value")
		}
	}
	p.shape = shapeOf(d.Reduce, d.Key)
	return &p, nil
}

// jqReducer is the Reducer of kinds custom and state.
type jqReducer struct {
	jqPrograms
	entity *matcher // kind state: the entities it folds
	keyed  bool
	one    any            // the state, not keyed
	states map[string]any // the states by key, keyed
	ctx    context.Context
	vals   [3]any // Run's variable values, reused
	keys   []string
	growth growth
}

// growth bounds how much a jq projection's state may grow the heap during
// one catch-up: each run is held to jq.DefaultLimits, but a state that
// keeps what every run adds (". + [\"x\" * 1e6]") would otherwise grow
// without end across events and take the process down. Every 256 events
// or 10 ms, the heap (runtime.ReadMemStats, ~10 µs) is compared with the
// heap at the catch-up's first event (an event more than a second after
// the last one starts a new catch-up); past maxGrowth, checked again
// after a collection, the projection fails. The heap is the process's:
// what other work in it keeps alive counts too.
type growth struct {
	max        uint64 // 8 × jq.DefaultLimits.Memory (512 MB)
	last, read int64  // when the last event came, when the heap was read
	n          int    // events since the heap was read
	base       uint64
	mem        runtime.MemStats
}

func (g *growth) check() error {
	now := time.Now().UnixNano()
	fresh := now-g.last > int64(time.Second)
	g.last = now
	if fresh {
		runtime.ReadMemStats(&g.mem)
		g.base, g.read, g.n = g.mem.HeapAlloc, now, 0
		return nil
	}
	if g.n++; g.n < 256 && now-g.read < int64(10*time.Millisecond) {
		return nil
	}
	g.read, g.n = now, 0
	if runtime.ReadMemStats(&g.mem); g.mem.HeapAlloc <= g.base+g.max {
		return nil
	}
	runtime.GC()
	if runtime.ReadMemStats(&g.mem); g.mem.HeapAlloc <= g.base+g.max {
		return nil
	}
	return &jq.LimitError{Limit: "memory", Detail: fmt.Sprintf("the projection's state grew the heap by %d MB in this catch-up, more than %d MB", (g.mem.HeapAlloc-g.base)>>20, g.max>>20)}
}

func newJQReducer(d *Definition) (Reducer, error) {
	p, err := compileJQ(d)
	if err != nil {
		return nil, err
	}
	r := &jqReducer{jqPrograms: *p, keyed: p.key != nil, ctx: context.Background()}
	r.growth.max = 8 * uint64(max(jq.DefaultLimits.Memory, 1<<20))
	if d.Kind == "state" {
		r.entity = newMatcher(Filter{Entity: d.Entity})
		r.keyed = true
	}
	r.reset()
	return r, nil
}

func (r *jqReducer) reset() {
	r.one, r.states, r.keys = r.init, map[string]any{}, nil
}

func (r *jqReducer) saveIsResult() {}

func (r *jqReducer) setContext(ctx context.Context) { r.ctx = ctx }

// eventValue is e as GET /events serves it, as a jq value: all of it,
// or what sh says the programs read.
func eventValue(e *log.Event, sh *eventShape) (any, error) {
	want := func(f string) bool { return sh.all || sh.fields[f] }
	n := 8 // a map of up to 8 is one allocation, no table
	if !sh.all {
		n = len(sh.fields)
	} else if e.Key != "" {
		n++
	}
	if e.Meta != nil && sh.all {
		n++
	}
	ev := make(map[string]any, n)
	if !sh.all && !sh.fields["id"] && !sh.fields["prev"] {
		if want("time") {
			var buf [40]byte
			ev["time"] = string(log.AppendTime(buf[:0], e.Time))
		}
	} else {
		// id, prev and time: one string, three slices of it.
		var buf [64 + 64 + 40]byte
		b := hex.AppendEncode(buf[:0], e.ID[:])
		b = hex.AppendEncode(b, e.Prev[:])
		s := string(log.AppendTime(b, e.Time))
		for _, f := range [...]struct {
			name string
			v    string
		}{{"id", s[:64]}, {"prev", s[64:128]}, {"time", s[128:]}} {
			if want(f.name) {
				ev[f.name] = f.v
			}
		}
	}
	if want("seq") {
		ev["seq"] = uintValue(e.Seq)
	}
	if want("type") {
		ev["type"] = e.Type
	}
	if want("entity") {
		ev["entity"] = e.Entity
	}
	if want("version") {
		ev["version"] = uintValue(e.Version)
	}
	if e.Key != "" && want("key") {
		ev["key"] = e.Key
	}
	switch {
	case e.Erased:
		ev["data"], ev["erased"] = nil, true
	case want("data"):
		var data any
		var err error
		if sh.all || sh.data == nil {
			data, err = jq.Decode(e.Data)
		} else {
			data, err = jq.DecodeMembers(e.Data, sh.data)
		}
		if err != nil {
			return nil, fmt.Errorf("data of event %d: %w", e.Seq, err)
		}
		ev["data"] = data
	}
	if e.Meta != nil && want("meta") {
		meta, err := jq.Decode(e.Meta)
		if err != nil {
			return nil, fmt.Errorf("meta of event %d: %w", e.Seq, err)
		}
		ev["meta"] = meta
	}
	return ev, nil
}

func uintValue(n uint64) any {
	if n <= 1<<62 {
		return int(n)
	}
	v, _ := jq.Decode(strconv.AppendUint(nil, n, 10))
	return v
}

func (r *jqReducer) Apply(e *log.Event) error {
	if r.entity != nil && !r.entity.matchEntity([]byte(e.Entity)) {
		return nil
	}
	ev, err := eventValue(e, &r.shape)
	if err != nil {
		return err
	}
	var key any
	var k string
	switch {
	case r.entity != nil:
		k = e.Entity
		key = k
	case r.key != nil:
		v, err := r.key.Run(r.ctx, ev, ev)
		if errors.Is(err, jq.ErrNoValue) || err == nil && v == nil {
			return nil // no key: the event is skipped
		}
		if err != nil {
			return fmt.Errorf("key program: %w", err)
		}
		if k, err = keyString(v); err != nil {
			return err
		}
		key = v // boxed already
		if _, ok := v.(string); !ok {
			key = k
		}
	}
	state := r.one
	if r.keyed {
		var ok bool
		if state, ok = r.states[k]; !ok {
			state = r.init
		}
	}
	r.vals = [3]any{state, ev, key}
	next, err := r.reduce.Run(r.ctx, state, r.vals[:]...)
	r.vals = [3]any{}
	if err != nil {
		return fmt.Errorf("reduce program: %w", err)
	}
	if !r.keyed {
		r.one = next
	} else {
		if _, ok := r.states[k]; !ok {
			r.keys = nil // a new key: the sorted keys are stale
		}
		r.states[k] = next
	}
	if err := r.growth.check(); err != nil {
		return fmt.Errorf("reduce program: %w", err)
	}
	return nil
}

// keyString turns a key program's output into a key.
func keyString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []any, map[string]any:
		return "", fmt.Errorf("key program: a key must be a string, a number or a boolean, not %s", jqType(v))
	}
	b, err := jq.Encode(v)
	return string(b), err
}

func jqType(v any) string {
	if _, ok := v.([]any); ok {
		return "an array"
	}
	return "an object"
}

func (r *jqReducer) Result() ([]byte, error) {
	if !r.keyed {
		return jq.Encode(r.one)
	}
	return jq.Encode(r.states)
}

func (r *jqReducer) Key(k string) ([]byte, bool, error) {
	if !r.keyed {
		return nil, false, ErrNotKeyed
	}
	v, ok := r.states[k]
	if !ok {
		return nil, false, nil
	}
	b, err := jq.Encode(v)
	return b, err == nil, err
}

func (r *jqReducer) Keys(after string, limit int) ([]string, bool, error) {
	if !r.keyed {
		return nil, false, ErrNotKeyed
	}
	if r.keys == nil {
		r.keys = make([]string, 0, len(r.states))
		for k := range r.states {
			r.keys = append(r.keys, k)
		}
		slices.Sort(r.keys)
	}
	return pageKeys(r.keys, after, limit)
}

func (r *jqReducer) Save() ([]byte, error) { return r.Result() }

func (r *jqReducer) Load(b []byte) error {
	v, err := jq.Decode(b)
	if err != nil {
		return fmt.Errorf("load jq projection: %w", err)
	}
	r.reset()
	if !r.keyed {
		r.one = v
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("load jq projection: a keyed result is not an object")
	}
	r.states = m
	return nil
}

// StateProjection returns the projection of kind state that makes
// entity's state in GET /entities/<entity>: an active one (not paused,
// not deleted) whose entity glob matches it, the first by name; nil if
// there is none, and the entity's state is the default merge. Cost: the
// catalog of names, which keeps the state kinds' globs (a cache), and one
// definition read per glob that matches (StateDef).
func StateProjection(l *log.Log, entity string) (*DefRecord, error) {
	return StateDef(l, entity)
}
