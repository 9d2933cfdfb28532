package projections

import (
	"context"
	"errors"
	"sort"

	"strata/log"
)

// Reducer folds the events of one projection into its result. The engine
// (Projector) feeds it, in log order, each event that passed the
// definition's filter, and saves and loads it at checkpoints; it never
// calls it from two goroutines at once.
type Reducer interface {
	// Apply folds one event. The event and its Data, Meta, Type and Entity
	// are valid only during the call: a reducer that keeps any of them
	// copies it. An error marks the projection failed at this event.
	Apply(e *log.Event) error
	// Result returns the whole result as compact JSON.
	Result() ([]byte, error)
	// Key returns one key's result, and false if there is no such key.
	Key(k string) ([]byte, bool, error)
	// Keys returns up to limit keys after after, sorted, and whether more
	// follow.
	Keys(after string, limit int) ([]string, bool, error)
	// Save returns the reducer's state as bytes Load takes back.
	Save() ([]byte, error)
	// Load replaces the reducer's state with one Save returned.
	Load(b []byte) error
}

// ErrNotKeyed is what Key and Keys return for a result without keys.
var ErrNotKeyed = errors.New("projection result has no keys")

// rawReducer is a Reducer that folds an event from its record without the
// event being decoded (log.RawEvent): the built-in kinds, so that catch-up
// costs no allocation per event.
type rawReducer interface {
	Reducer
	applyRaw(r *log.RawEvent) error
}

// ctxReducer is a Reducer whose Apply can be cut short (the jq kinds): the
// engine sets the context its Applys run under — the fold's, bounded by
// a read's deadline — and an Apply stopped because that context ended
// returns an error wrapping the context's error, having changed nothing.
// The engine then stops the fold before that event instead of marking the
// projection failed: the next read folds it.
type ctxReducer interface {
	Reducer
	setContext(ctx context.Context)
}

// resultSaver is a Reducer whose Save bytes are its Result: an answer with
// nothing to catch up is then the cached bytes, with no Load.
type resultSaver interface {
	saveIsResult()
}

// kind is one registered kind of projection.
type kind struct {
	validate   func(*Definition) error
	newReducer func(*Definition) (Reducer, error)
}

var kinds = map[string]kind{}

// RegisterKind adds a kind of projection: validate checks a definition of
// it (after the common fields; return a *FieldError), newReducer makes a
// fresh reducer for a valid definition. Call it from an init function; a
// kind registered twice panics.
func RegisterKind(name string, validate func(*Definition) error, newReducer func(*Definition) (Reducer, error)) {
	if _, dup := kinds[name]; dup {
		panic("projections: kind " + name + " registered twice")
	}
	kinds[name] = kind{validate: validate, newReducer: newReducer}
}

// KindNames returns the registered kinds, sorted.
func KindNames() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewReducer returns a fresh reducer for d, which must be valid.
func NewReducer(d *Definition) (Reducer, error) {
	k, ok := kinds[d.Kind]
	if !ok {
		return nil, fieldErr("kind", "is not a registered kind")
	}
	return k.newReducer(d)
}
