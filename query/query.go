// Package query answers reads of one tenant's log: a range of seqs narrowed
// by id bounds, time bounds, type and entity filters, and a page limit. It
// costs what it returns: bounds are resolved through the log's indexes
// (id → seq, time → seq by binary search), an exact entity is read along its
// own chain, and a scan stops as soon as the page is full.
package query

import (
	"errors"
	"path"
	"strings"

	"strata/log"
)

// Params is a read request. The zero value reads from the start.
type Params struct {
	From  *[32]byte // start after this event (exclusive)
	To    *[32]byte // stop at this event (inclusive)
	After uint64    // start after this seq
	Since *int64    // first time included (unix ns)
	Until *int64    // first time excluded (unix ns)
	// Type and Entity are exact names or globs (path.Match syntax: * ? [ ]),
	// "" for any. In an entity glob, * does not cross a "/".
	Type   string
	Entity string
	// Limit is the most events returned; must be positive.
	Limit int
}

// ErrFromNotFound and ErrToNotFound say a from/to id is not on this chain.
var (
	ErrFromNotFound = errors.New("from id is not on this chain")
	ErrToNotFound   = errors.New("to id is not on this chain")
)

// Page says where a read stopped.
type Page struct {
	Count int
	// Next is the seq to pass as After for the following page; 0 when the
	// read reached the end of what was asked.
	Next uint64
}

// IsGlob reports whether s uses glob syntax.
func IsGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// ValidPattern reports whether a type or entity filter is well formed.
func ValidPattern(s string) bool {
	_, err := path.Match(s, "")
	return err == nil
}

// Run calls emit for each event of the page, in seq order. The event is
// only valid during the call.
func Run(l *log.Log, p Params, emit func(*log.Event) error) (Page, error) {
	var pg Page
	after, last := p.After, l.Through()
	if p.From != nil {
		seq, err := l.Lookup(*p.From)
		if errors.Is(err, log.ErrNotFound) {
			return pg, ErrFromNotFound
		}
		if err != nil {
			return pg, err
		}
		after = max(after, seq)
	}
	if p.To != nil {
		seq, err := l.Lookup(*p.To)
		if errors.Is(err, log.ErrNotFound) {
			return pg, ErrToNotFound
		}
		if err != nil {
			return pg, err
		}
		last = min(last, seq)
	}
	if p.Since != nil {
		seq, err := l.SeqAtTime(*p.Since)
		if err != nil {
			return pg, err
		}
		after = max(after, seq-1)
	}
	if p.Until != nil {
		seq, err := l.SeqAtTime(*p.Until)
		if err != nil {
			return pg, err
		}
		last = min(last, seq-1)
	}
	if after >= last || p.Limit <= 0 {
		return pg, nil
	}
	if p.Entity != "" && !IsGlob(p.Entity) {
		return entityRun(l, p, after, last, emit)
	}
	it := l.Scan(after+1, last)
	for it.Next() {
		e := it.Event()
		if !matches(p.Type, e.Type) || !matches(p.Entity, e.Entity) {
			continue
		}
		if pg.Count == p.Limit {
			pg.Next = e.Seq - 1
			return pg, nil
		}
		if err := emit(e); err != nil {
			return pg, err
		}
		pg.Count++
	}
	return pg, it.Err()
}

func matches(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	if !IsGlob(pattern) {
		return pattern == s
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// entityRun reads one entity's events by walking its chain back from its
// newest event, so that it touches only that entity's records.
func entityRun(l *log.Log, p Params, after, last uint64, emit func(*log.Event) error) (Page, error) {
	var pg Page
	seq, err := l.EntityHead(p.Entity)
	if err != nil {
		return pg, err
	}
	var seqs []uint64
	for seq > after {
		e, err := l.Event(seq)
		if err != nil {
			return pg, err
		}
		if seq <= last && matches(p.Type, e.Type) {
			seqs = append(seqs, seq)
		}
		seq = e.PrevInEntity
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		if pg.Count == p.Limit {
			pg.Next = seqs[i+1]
			return pg, nil
		}
		e, err := l.Event(seqs[i])
		if err != nil {
			return pg, err
		}
		if err := emit(e); err != nil {
			return pg, err
		}
		pg.Count++
	}
	return pg, nil
}
