package projections

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"strata/internal/fileutil"
	"strata/log"
)

// Projection definitions are durable records in the tenant's own log, not
// caches: each projection is the entity DefEntityPrefix+<name>, whose
// events (written only by the server; clients may not append these types
// or to these entities) are:
//
//	TypeDefined  data: the definition as stored (a new definition version)
//	TypePaused   data: null — the result stays where it was
//	TypeResumed  data: null
//	TypeDeleted  data: null — the name may be defined again later
//	TypeRebuilt  data: the rebuild's narrowing, {"from","to","entity",
//	             "types"} (RebuildOptions), {} for none
//
// The definition's version is the entity version of its TypeDefined event,
// so GET /projections/<name>?version=n is the entity at version n, and
// versions are never reused: a projection deleted and defined again goes
// on counting. A pause, resume or rebuild does not change it. The
// narrowing the result folds with (Definition.Narrow) is that of the
// latest TypeRebuilt after the latest TypeDefined: a record, not a cache,
// so that deleting every cache does not change the answer. Why the tenant's own log rather than a system log: an
// offline copy (GET /events), a backup or a restore then carries the
// definitions with the events they read, and the chain verifies both.
const (
	DefEntityPrefix = "strata/projections/"
	TypeDefined     = "strata.projection.defined"
	TypeDeleted     = "strata.projection.deleted"
	TypePaused      = "strata.projection.paused"
	TypeResumed     = "strata.projection.resumed"
	TypeRebuilt     = "strata.projection.rebuilt"
)

// The prefixes of the definitions' entities and types, as bytes for the
// raw scan.
var (
	defEntityPrefix = []byte(DefEntityPrefix)
	defTypePrefix   = []byte("strata.projection.")
)

// Errors of ReadDef.
var (
	// ErrNoProjection: no projection of that name was ever defined (at
	// the version asked).
	ErrNoProjection = errors.New("no such projection")
	// ErrNoDefVersion: the projection has no such version.
	ErrNoDefVersion = errors.New("no such version of the projection")
)

// DefRecord is a projection's definition and lifecycle at one version of
// its entity.
type DefRecord struct {
	Name string
	// Version is the definition version: the entity version of the
	// TypeDefined event in force.
	Version uint64
	// EntityVersion is the version of the entity this record is as of
	// (Version, or a later pause, resume or delete).
	EntityVersion uint64
	Raw           []byte      // the definition as stored
	Def           *Definition // Raw parsed; nil if this server cannot read it (DefErr says why)
	DefErr        error
	Paused        bool
	PausedSeq     uint64 // the seq of the pause in force
	Deleted       bool
	// Seq, ID and Time are those of the entity's event at EntityVersion.
	Seq  uint64
	ID   [32]byte
	Time int64
	// Created is when the projection was first defined (since its last
	// deletion), Updated when Version was written.
	Created, Updated int64
	// Narrow is the narrowing in force (also Def.Narrow), nil for none.
	Narrow *RebuildOptions
}

// NarrowData is the data of a TypeRebuilt record of opt's narrowing.
func NarrowData(opt RebuildOptions) []byte {
	n := opt.Narrowing()
	if n == nil {
		return []byte("{}")
	}
	b, _ := json.Marshal(n)
	return b
}

// parseNarrow reads a TypeRebuilt record's data; nil for none, or data
// this server cannot read (then the result is the whole one, as before
// any rebuild).
func parseNarrow(data []byte) *RebuildOptions {
	var o RebuildOptions
	if json.Unmarshal(data, &o) != nil {
		return nil
	}
	return o.Narrowing()
}

// DefEntity is the entity that holds projection name's definitions.
func DefEntity(name string) string { return DefEntityPrefix + name }

// ReadDef returns projection name's record at entity version version (0:
// the newest), reading the entity's events: a handful, whatever the size
// of the log.
func ReadDef(l *log.Log, name string, version uint64) (*DefRecord, error) {
	it := l.ScanEntity(DefEntity(name), 0, ^uint64(0))
	var d *DefRecord
	for it.Next() {
		e := it.Event()
		if version > 0 && e.Version > version {
			break
		}
		if d == nil {
			d = &DefRecord{Name: name}
		}
		d.EntityVersion, d.Seq, d.ID, d.Time = e.Version, e.Seq, e.ID, e.Time
		switch e.Type {
		case TypeDefined:
			if d.Deleted || d.Version == 0 {
				d.Created, d.Paused, d.PausedSeq = e.Time, false, 0
			}
			d.Deleted = false
			d.Version, d.Updated = e.Version, e.Time
			d.Raw = append([]byte(nil), e.Data...)
			d.Narrow = nil // a new version is folded whole until rebuilt
		case TypeRebuilt:
			d.Narrow = parseNarrow(e.Data)
		case TypePaused:
			if !d.Paused {
				d.Paused, d.PausedSeq = true, e.Seq
			}
		case TypeResumed:
			d.Paused, d.PausedSeq = false, 0
		case TypeDeleted:
			d.Deleted, d.Paused, d.PausedSeq = true, false, 0
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	switch {
	case d == nil || d.Version == 0:
		return nil, ErrNoProjection
	case version > 0 && d.EntityVersion < version:
		return nil, ErrNoDefVersion
	}
	d.Def, d.DefErr = ParseDefinition(d.Raw)
	if d.DefErr == nil && d.Def.Name != name {
		d.Def, d.DefErr = nil, fmt.Errorf("stored definition names %q", d.Def.Name)
	}
	if d.Def != nil {
		d.Def.Narrow = d.Narrow
	}
	return d, nil
}

// Active reports whether the record's result should be kept current: it
// is defined, readable, not paused and not deleted.
func (d *DefRecord) Active() bool { return d.Def != nil && !d.Paused && !d.Deleted }

// catalogDir is the cache of the names of a tenant's projections, under
// the tenant's directory.
const catalogDir = "cache/projdefs"

// catalogFile holds, as JSON,
//
//	{"format":2,"seq":<n>,"id":"<64 hex>","names":["a","b",…],
//	 "states":{"orders":"orders/*",…}}
//
// the names of every projection entity with an event at or before seq,
// whose event id is id, and the entity globs of those whose newest
// definition is of kind state (see FORMAT.md). It is a cache: used only if
// that event is on the chain, caught up from the log after seq, rewritten
// atomically, deletable at any time.
const catalogFile = "catalog.json"

// catalogFormat is the catalog's format; a file of another is rebuilt.
const catalogFormat = 2

type catalog struct {
	Format int               `json:"format"`
	Seq    uint64            `json:"seq"`
	ID     string            `json:"id"`
	Names  []string          `json:"names"`
	States map[string]string `json:"states,omitempty"`
}

// ListDefs returns the names of every projection ever defined in l's
// tenant, deleted ones included, sorted: from the catalog cache caught up
// from the log tail (the whole log the first time).
func ListDefs(l *log.Log) ([]string, error) {
	c, err := loadCatalog(l)
	if err != nil {
		return nil, err
	}
	return c.Names, nil
}

// ListNames is ListDefs for other definitions kept the same way (consumers):
// the names after entityPrefix of every entity with an event whose type
// starts typePrefix, from a catalog cache of the same format in
// cacheDir (under the tenant's directory, e.g. "cache/consumerdefs").
func ListNames(l *log.Log, cacheDir, entityPrefix, typePrefix string) ([]string, error) {
	c, err := loadCatalogOf(l, catalogSpec{dir: cacheDir, entity: []byte(entityPrefix), typ: []byte(typePrefix)})
	if err != nil {
		return nil, err
	}
	return c.Names, nil
}

// catalogSpec says which definitions a catalog lists and where it is
// kept; states is set for projections' only (StateDef).
type catalogSpec struct {
	dir         string
	entity, typ []byte
	states      bool
}

// projCatalog is the catalog of projection definitions.
var projCatalog = catalogSpec{dir: catalogDir, entity: defEntityPrefix, typ: defTypePrefix, states: true}

// catalogRewrite is how far a catalog may fall behind the head before the
// reader that caught it up writes it again: rewriting it on every read
// after every append would make reads write.
const catalogRewrite = 4096

// loadCatalog returns the projections' catalog, caught up to the head.
func loadCatalog(l *log.Log) (*catalog, error) { return loadCatalogOf(l, projCatalog) }

// loadCatalogOf returns the catalog of spec, caught up to the head.
func loadCatalogOf(l *log.Log, spec catalogSpec) (*catalog, error) {
	path := filepath.Join(l.Dir(), spec.dir, catalogFile)
	var c catalog
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c) == nil && c.Format == catalogFormat && c.Seq > 0 {
		if e, err := l.Event(c.Seq); err != nil || hex.EncodeToString(e.ID[:]) != c.ID {
			c = catalog{} // not on this chain: start again
		}
	} else {
		c = catalog{}
	}
	through := l.Through()
	if through == c.Seq {
		return &c, nil
	}
	if c.Seq > through {
		c = catalog{}
	}
	from := c.Seq
	names := map[string]bool{}
	for _, n := range c.Names {
		names[n] = true
	}
	if c.States == nil && spec.states {
		c.States = map[string]string{}
	}
	changed := false
	// The raw scan reads a record's fields without decoding the event or
	// allocating: the catalog's catch-up costs what reading the tail does.
	it := l.ScanRaw(c.Seq+1, through)
	var last *log.Event
	for it.Next() {
		e := it.Raw()
		if bytes.HasPrefix(e.Entity, spec.entity) && bytes.HasPrefix(e.Type, spec.typ) {
			name := string(e.Entity[len(spec.entity):])
			names[name], changed = true, true
			switch {
			case !spec.states:
			case string(e.Type) == TypeDefined:
				var d struct{ Kind, Entity string }
				if json.Unmarshal(e.Data(), &d) == nil && d.Kind == "state" {
					c.States[name] = d.Entity
				} else {
					delete(c.States, name)
				}
			case string(e.Type) == TypeDeleted:
				delete(c.States, name)
			}
		}
		if e.Seq == through {
			last = &log.Event{Seq: e.Seq, ID: e.ID()}
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	c.Names = c.Names[:0]
	for n := range names {
		c.Names = append(c.Names, n)
	}
	slices.Sort(c.Names)
	if last != nil {
		c.Format, c.Seq, c.ID = catalogFormat, last.Seq, hex.EncodeToString(last.ID[:])
		// A failure to write the cache costs the next reader a scan, no
		// more; two writers racing both write what the log says.
		if changed || from == 0 || c.Seq-from >= catalogRewrite {
			if b, err := json.Marshal(c); err == nil && fileutil.MkdirAll(filepath.Dir(path), 0o700) == nil {
				fileutil.WriteFileNoSync(path, b, 0o600)
			}
		}
	}
	return &c, nil
}

// StateDef returns the projection of kind state whose entity glob matches
// entity (the first by name, if several do), or nil: the reducer that
// replaces the default merge for that entity's state (StateProjection).
// Paused, deleted and unreadable definitions do not count. Only the
// names whose glob matches are read.
func StateDef(l *log.Log, entity string) (*DefRecord, error) {
	c, err := loadCatalog(l)
	if err != nil || len(c.States) == 0 {
		return nil, err
	}
	for _, name := range c.Names {
		glob, ok := c.States[name]
		if !ok || !newMatcher(Filter{Entity: glob}).matchEntity([]byte(entity)) {
			continue
		}
		d, err := ReadDef(l, name, 0)
		if errors.Is(err, ErrNoProjection) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.Active() && d.Def.Kind == "state" {
			return d, nil
		}
	}
	return nil, nil
}
