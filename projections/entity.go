package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"strata/jsonx"
	"strata/log"
)

// MetaOp is the meta member that names what an event does to its entity's
// state, when it does more than merge its data: OpPut or OpDelete. The
// entity API stamps it on the events it writes; a client appending events
// itself may use it too.
const MetaOp = "strata"

// Values of MetaOp.
const (
	OpPut    = "put"    // the data replaces the state
	OpDelete = "delete" // the entity is deleted (a tombstone)
)

// Errors of StateAt, History and Fold.
var (
	// ErrNoEntity: the entity has no event at or before the point asked.
	ErrNoEntity = errors.New("no such entity")
	// ErrNoVersion: the entity has no such version.
	ErrNoVersion = errors.New("no such version of the entity")
	// ErrNotOnChain: the event id of a point is not on this chain.
	ErrNotOnChain = errors.New("event id is not on this chain")
	// ErrBackwards: a diff's from version is after its to version.
	ErrBackwards = errors.New("from version is after to version")
)

// State is an entity's state at one of its versions.
type State struct {
	Entity  string
	Version uint64
	// Seq, ID and Time are those of the event that made this version.
	Seq  uint64
	ID   [32]byte
	Time int64
	// State is the state as JSON, "null" when deleted.
	State []byte
	// Deleted says the version is a tombstone.
	Deleted bool
	// Event made this version (set by History).
	Event *log.Event
	// Projection names the projection of kind state that made State
	// (set by a search of an Index with States); "" for the merge.
	Projection string
}

var null = []byte("null")

// Apply folds event e into state (JSON; nil for none yet) and returns the
// state after it and whether e deletes the entity.
func Apply(state []byte, e *log.Event) ([]byte, bool, error) {
	switch opOf(e.Meta) {
	case OpDelete:
		return null, true, nil
	case OpPut:
		if e.Erased {
			return state, false, nil
		}
		return e.Data, false, nil
	}
	if e.Erased {
		return state, false, nil
	}
	if state == nil {
		state = null
	}
	next, err := jsonx.MergePatch(nil, state, e.Data)
	if err != nil {
		return nil, false, fmt.Errorf("merge event %d of %q: %w", e.Seq, e.Entity, err)
	}
	return next, false, nil
}

// opOf returns meta's MetaOp member, "" without one.
func opOf(meta []byte) string {
	if !bytes.Contains(meta, []byte(`"`+MetaOp+`"`)) && bytes.IndexByte(meta, '\\') < 0 {
		return "" // the common case, without decoding meta
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	var op string
	if json.Unmarshal(m[MetaOp], &op) != nil {
		return ""
	}
	return op
}

// Point is where in the log a state is asked for: at most one field set;
// none is the newest state.
type Point struct {
	Version uint64    // a version of the entity (≥ 1)
	Seq     *uint64   // a seq of the log
	At      *[32]byte // an event id on the chain
	AsOf    *int64    // a time, unix nanoseconds
}

// bound returns the highest seq of the log the state at p may reflect: for
// a version, the seq of the entity's event of that version.
func (p Point) bound(l *log.Log, entity string, through uint64) (uint64, error) {
	switch {
	case p.Version != 0:
		seq, err := l.EntityVersion(entity, p.Version)
		if errors.Is(err, log.ErrNotFound) {
			if head, herr := l.EntityHead(entity); herr == nil && head == 0 {
				return 0, ErrNoEntity
			}
			return 0, ErrNoVersion
		}
		return seq, err
	case p.Seq != nil:
		return min(*p.Seq, through), nil
	case p.At != nil:
		seq, err := l.Lookup(*p.At)
		if errors.Is(err, log.ErrNotFound) {
			return 0, ErrNotOnChain
		}
		return min(seq, through), err
	case p.AsOf != nil:
		if *p.AsOf == 1<<63-1 {
			return through, nil
		}
		seq, err := l.SeqAtTime(*p.AsOf + 1) // the first event after the time
		return min(seq-1, through), err
	}
	return through, nil
}

// StateAt returns entity's state at point p of l, read through the
// snapshots with automatic ones every DefaultSnapshotEvery versions (see
// Reader).
func StateAt(l *log.Log, entity string, p Point) (*State, error) {
	return NewReader(l, DefaultSnapshotEvery).StateAt(context.Background(), entity, p)
}

// Fold returns entity's state through seq to: base (nil: none, read from
// the entity's first event) with every event of the entity after base.Seq
// and at most to applied. A cache or snapshot supplies base to spare the
// reads before it; base must be the entity's state at base.Seq. It writes
// no snapshot; Reader.Fold does.
func Fold(l *log.Log, entity string, base *State, to uint64) (*State, error) {
	return (&Reader{l: l}).Fold(context.Background(), entity, base, to)
}

// apply makes s the version that e makes.
func (s *State) apply(e *log.Event) error {
	state, deleted, err := Apply(s.State, e)
	if err != nil {
		return err
	}
	s.State, s.Deleted = state, deleted
	s.Version, s.Seq, s.ID, s.Time = e.Version, e.Seq, e.ID, e.Time
	return nil
}

// History is Reader.History with the default snapshot interval.
func History(l *log.Log, entity string, after uint64, limit int) ([]*State, bool, error) {
	return NewReader(l, DefaultSnapshotEvery).History(context.Background(), entity, after, limit)
}

// Diff is Reader.Diff with the default snapshot interval.
func Diff(l *log.Log, entity string, from, to uint64) (a, b *State, patch []byte, exact bool, err error) {
	return NewReader(l, DefaultSnapshotEvery).Diff(context.Background(), entity, from, to)
}
