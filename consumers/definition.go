package consumers

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"strata/log"
	"strata/projections"
)

// Consumer definitions are the entity DefEntityPrefix+<name> of the
// tenant's log, written only by the server (clients may append neither
// these types nor to these entities):
//
//	TypeDefined  data: the definition as stored, {"filter":{…},"after":n}
//	             or {"filter":{…},"from":"<id>"}
//	TypeDeleted  data: null — the name may be defined again later
const (
	DefEntityPrefix = "strata/consumers/"
	TypeDefined     = "strata.consumer.defined"
	TypeDeleted     = "strata.consumer.deleted"
	typePrefix      = "strata.consumer."
)

// catalogDir is the cache of the consumers' names (projections.ListNames).
const catalogDir = "cache/consumerdefs"

// ErrNoConsumer: no consumer of that name was ever defined.
var ErrNoConsumer = errors.New("no such consumer")

// ValidName reports whether s is a consumer name: as a projection name,
// lowercase letters and digits joined by single '.', '_' or '-', at most
// 64 bytes — safe in a path, a file name and an entity.
func ValidName(s string) bool { return projections.ValidName(s) }

// DefEntity is the entity that holds consumer name's definitions.
func DefEntity(name string) string { return DefEntityPrefix + name }

// Definition is what a client defines: the events the consumer gets, and
// where a new consumer starts (after seq After, or after event From).
type Definition struct {
	Filter projections.Filter `json:"filter,omitzero"`
	After  uint64             `json:"after,omitempty"`
	From   string             `json:"from,omitempty"`
}

// FieldError says which field of a definition is wrong and why.
type FieldError = projections.FieldError

// ParseDefinition decodes and checks a definition (body: one JSON object;
// a "name" member must be name). hasStart says whether it gave after or
// from: a PUT that gives neither keeps the stored start.
func ParseDefinition(body []byte, name string) (def *Definition, hasStart bool, err error) {
	var in struct {
		Name   *string            `json:"name"`
		Filter projections.Filter `json:"filter"`
		After  *uint64            `json:"after"`
		From   *string            `json:"from"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, false, projections.DecodeError(err)
	}
	if dec.More() {
		return nil, false, &FieldError{Field: "body", Msg: "must be one JSON object"}
	}
	if in.Name != nil && *in.Name != name {
		return nil, false, &FieldError{Field: "name", Msg: "is " + strconv.Quote(*in.Name) + " but the path names " + strconv.Quote(name)}
	}
	if err := in.Filter.Check(); err != nil {
		return nil, false, err
	}
	if len(in.Filter.Types) == 0 {
		in.Filter.Types = nil // [] is no type filter, as absent: one stored form
	}
	d := &Definition{Filter: in.Filter}
	switch {
	case in.After != nil && in.From != nil:
		return nil, false, &FieldError{Field: "from", Msg: "give after or from, not both"}
	case in.From != nil:
		if _, ok := log.ParseID(*in.From); !ok {
			return nil, false, &FieldError{Field: "from", Msg: "must be an event id (64 lowercase hex)"}
		}
		d.From = *in.From
		if d.From == zeroHex {
			d.From = "" // the start of every chain: after 0
		}
	case in.After != nil:
		d.After = *in.After
	}
	return d, in.After != nil || in.From != nil, nil
}

// zeroHex is the id before seq 1 (a constant: nothing is built at init,
// which every CGI request pays).
const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

// Marshal is the definition as stored: one form for one definition, so
// that a PUT of the same definition again is seen to be the same.
func (d *Definition) Marshal() []byte {
	b, _ := json.Marshal(d) // plain strings and numbers: cannot fail
	return b
}

// sameStart reports whether a and b start at the same point.
func (d *Definition) sameStart(o *Definition) bool { return d.After == o.After && d.From == o.From }

// Start resolves where the consumer starts in l: a seq and its id. A from
// id no longer on the chain is an error.
func (d *Definition) Start(l *log.Log) (Position, error) {
	if d.From == "" {
		return positionAt(l, d.After)
	}
	id, _ := log.ParseID(d.From)
	seq, err := l.Lookup(id)
	if err != nil {
		return Position{}, fmt.Errorf("consumer start %s: %w", d.From, err)
	}
	return Position{Seq: seq, ID: id}, nil
}

// Record is a consumer's definition as the log has it now.
type Record struct {
	Name string
	Def  *Definition // nil if this server cannot read it (DefErr says why)
	// DefErr says why Def is nil.
	DefErr error
	Raw    []byte
	// Version is the entity version of the TypeDefined record in force;
	// StartVersion that of the one that set its start point (the first
	// definition, or a later one with another after/from). A position
	// belongs to one StartVersion.
	Version, StartVersion uint64
	// EntityVersion is the version of the entity's newest event.
	EntityVersion uint64
	Deleted       bool
	// Seq and ID are those of the entity's newest event.
	Seq              uint64
	ID               [32]byte
	Created, Updated int64
}

// IDString is the hex of r.ID.
func (r *Record) IDString() string { return hex.EncodeToString(r.ID[:]) }

// ReadDef returns consumer name's definition, reading its entity's events:
// a handful, whatever the size of the log.
func ReadDef(l *log.Log, name string) (*Record, error) {
	it := l.ScanEntity(DefEntity(name), 0, ^uint64(0))
	var r *Record
	var prev *Definition
	for it.Next() {
		e := it.Event()
		if r == nil {
			r = &Record{Name: name}
		}
		r.EntityVersion, r.Seq, r.ID = e.Version, e.Seq, e.ID
		switch e.Type {
		case TypeDefined:
			def, _, err := ParseDefinition(e.Data, name)
			if r.Deleted || r.Version == 0 {
				r.Created, r.StartVersion, prev = e.Time, e.Version, nil
			}
			if err == nil && prev != nil && !def.sameStart(prev) {
				r.StartVersion = e.Version
			}
			r.Deleted = false
			r.Version, r.Updated = e.Version, e.Time
			r.Raw = append([]byte(nil), e.Data...)
			r.Def, r.DefErr, prev = def, err, def
		case TypeDeleted:
			r.Deleted = true
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if r == nil || r.Version == 0 {
		return nil, ErrNoConsumer
	}
	return r, nil
}

// List returns the newest record of every consumer defined and not
// deleted in l's tenant, sorted by name.
func List(l *log.Log) ([]*Record, error) {
	names, err := projections.ListNames(l, catalogDir, DefEntityPrefix, typePrefix)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, n := range names {
		r, err := ReadDef(l, n)
		if errors.Is(err, ErrNoConsumer) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !r.Deleted {
			out = append(out, r)
		}
	}
	return out, nil
}
