package projections

import (
	"bytes"
	"path"
	"strings"
	"unsafe"

	"strata/query"
)

// reservedPrefix starts the types only the server writes (definitions):
// a projection sees them only if a type pattern of its filter names them.
const reservedPrefix = "strata."

// matcher is a Filter ready to test records: the answer for each type is
// remembered, and common entity globs ("orders/*") are a prefix test.
type matcher struct {
	types  []string // nil: any type
	strata bool     // a type pattern names strata.* types
	seen   map[string]bool

	entity string // "" any
	glob   bool   // entity is a glob
	prefix string // entity is prefix + "*": the fast test
	simple bool   // prefix is set
}

// maxSeenTypes bounds the remembered type answers.
const maxSeenTypes = 4096

// Matches returns f's test of an event's type and entity, as a projection
// with that filter sees events (strata.* types only when a pattern names
// them). It remembers answers: one per goroutine.
func (f Filter) Matches() func(typ, entity string) bool {
	m := newMatcher(f)
	return func(typ, entity string) bool {
		// The bytes are only read during the call, never kept.
		return m.match(unsafe.Slice(unsafe.StringData(typ), len(typ)), unsafe.Slice(unsafe.StringData(entity), len(entity)))
	}
}

func newMatcher(f Filter) *matcher {
	m := &matcher{types: f.Types, entity: f.Entity, seen: map[string]bool{}}
	for _, t := range f.Types {
		if strings.HasPrefix(t, reservedPrefix) {
			m.strata = true
		}
	}
	m.setEntity()
	return m
}

func (m *matcher) setEntity() {
	m.glob = query.IsGlob(m.entity)
	if m.glob {
		if p, ok := strings.CutSuffix(m.entity, "*"); ok && !query.IsGlob(p) {
			m.prefix, m.simple = p, true
		}
	}
}

// match reports whether an event of type typ and entity ent passes.
func (m *matcher) match(typ, ent []byte) bool {
	return m.matchType(typ) && m.matchEntity(ent)
}

func (m *matcher) matchType(typ []byte) bool {
	if m.types == nil {
		return !bytes.HasPrefix(typ, []byte(reservedPrefix))
	}
	if ok, known := m.seen[string(typ)]; known {
		return ok
	}
	ok := m.typeOK(string(typ))
	if len(m.seen) < maxSeenTypes {
		m.seen[string(typ)] = ok
	}
	return ok
}

func (m *matcher) typeOK(typ string) bool {
	if strings.HasPrefix(typ, reservedPrefix) && !m.strata {
		return false
	}
	if m.types == nil {
		return true
	}
	for _, p := range m.types {
		if p == typ {
			return true
		}
		if query.IsGlob(p) {
			if ok, _ := path.Match(p, typ); ok {
				return true
			}
		}
	}
	return false
}

func (m *matcher) matchEntity(ent []byte) bool {
	switch {
	case m.entity == "":
		return true
	case !m.glob:
		return string(ent) == m.entity
	case m.simple:
		return bytes.HasPrefix(ent, []byte(m.prefix)) && bytes.IndexByte(ent[len(m.prefix):], '/') < 0
	}
	if len(ent) == 0 {
		return false
	}
	// The string is only read during the call, never kept.
	ok, _ := path.Match(m.entity, unsafe.String(&ent[0], len(ent)))
	return ok
}
