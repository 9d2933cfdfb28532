// Package query answers reads of one tenant's log: a range of seqs narrowed
// by id bounds, time bounds, type and entity filters, and a page limit. It
// costs what it returns: bounds are resolved through the log's indexes
// (id → seq, time → seq by binary search), an exact entity is read forward
// along its own chain from the nearest checkpoint (log.ScanEntity), and a
// scan stops as soon as the page is full — or when it has read its budget
// of bytes (Params.Budget), so a filter that matches little costs a bounded
// amount per request, and the page's Next says where to go on.
package query

import (
	"context"
	"errors"
	"path"
	"strings"

	"strata/log"
)

// Params is a read request. The zero value reads from the start.
type Params struct {
	// From starts the read after this event (exclusive); the zero id, the
	// prev of seq 1, is the start of every chain: from the beginning.
	From *[32]byte
	// To stops the read at this event (inclusive); the zero id stands
	// before seq 1, so a read to it is empty.
	To    *[32]byte
	After uint64 // start after this seq
	Since *int64 // first time included (unix ns)
	Until *int64 // first time excluded (unix ns)
	// Type and Entity are exact names or globs (path.Match syntax: * ? [ ]),
	// "" for any. In an entity glob, * does not cross a "/".
	Type   string
	Entity string
	// Match, if set, is one more test every event must pass (a consumer's
	// filter); it makes the read a filtered one, bounded by Budget.
	Match func(typ, entity string) bool
	// Limit is the most events returned; must be positive.
	Limit int
	// Budget bounds the bytes of records a filtered read may look at
	// (DefaultBudget when 0). Past it the page ends, maybe empty, and its
	// Next says where to go on.
	Budget int64
}

// DefaultBudget is the bytes of records one filtered read looks at, at
// most: about half a second of scanning on a slow shared host.
const DefaultBudget = 16 << 20

// ErrFromNotFound and ErrToNotFound say a from/to id is not on this chain.
var (
	ErrFromNotFound = errors.New("from id is not on this chain")
	ErrToNotFound   = errors.New("to id is not on this chain")
)

// zeroID is the prev of seq 1: the id every chain starts from, and the
// head of an empty log (GET /head, If-Match).
var zeroID [32]byte

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

// Plan is a read with its bounds resolved, ready to run.
type Plan struct {
	l           *log.Log
	p           Params
	after, last uint64
	// seqs is the page of an exact-entity read, found ahead of running it.
	seqs   []uint64
	next   uint64
	known  bool
	entity bool
}

// Prepare resolves a read's bounds through the indexes (id → seq, time →
// seq) and, where it is cheap, where the page will end.
func Prepare(l *log.Log, p Params) (*Plan, error) {
	if p.Budget <= 0 {
		p.Budget = DefaultBudget
	}
	pl := &Plan{l: l, p: p, after: p.After, last: l.Through()}
	if p.To != nil && *p.To == zeroID {
		pl.last = 0
	}
	if p.From != nil && *p.From != zeroID {
		seq, err := l.Lookup(*p.From)
		if errors.Is(err, log.ErrNotFound) {
			return nil, ErrFromNotFound
		}
		if err != nil {
			return nil, err
		}
		pl.after = max(pl.after, seq)
	}
	if p.To != nil && *p.To != zeroID {
		seq, err := l.Lookup(*p.To)
		if errors.Is(err, log.ErrNotFound) {
			return nil, ErrToNotFound
		}
		if err != nil {
			return nil, err
		}
		pl.last = min(pl.last, seq)
	}
	if p.Since != nil {
		seq, err := l.SeqAtTime(*p.Since)
		if err != nil {
			return nil, err
		}
		pl.after = max(pl.after, seq-1)
	}
	if p.Until != nil {
		seq, err := l.SeqAtTime(*p.Until)
		if err != nil {
			return nil, err
		}
		pl.last = min(pl.last, seq-1)
	}
	if pl.after >= pl.last || p.Limit <= 0 {
		pl.known = true
		return pl, nil
	}
	switch {
	case p.Entity != "" && !IsGlob(p.Entity):
		pl.entity = true
		if err := pl.entitySeqs(); err != nil {
			return nil, err
		}
	case p.Type == "" && p.Entity == "" && p.Match == nil:
		// Every seq in range matches: the page is the next Limit seqs.
		pl.known = true
		if pl.last-pl.after > uint64(p.Limit) {
			pl.next = pl.after + uint64(p.Limit)
		}
	}
	return pl, nil
}

// Next says where the following page starts (0: there is none), if that
// is known before running; a filtered scan only knows when it has run.
func (pl *Plan) Next() (next uint64, known bool) { return pl.next, pl.known }

// Run calls emit for each event of the page, in seq order, until the page
// is full or emit returns ErrPageFull (the caller's buffer is full: the page
// ends before that event). The event is only valid during the call.
func (pl *Plan) Run(emit func(*log.Event) error) (Page, error) {
	return pl.RunContext(context.Background(), emit)
}

// RunContext is Run that stops with ctx's error once ctx is done (the
// client went away).
func (pl *Plan) RunContext(ctx context.Context, emit func(*log.Event) error) (Page, error) {
	var pg Page
	if pl.after >= pl.last || pl.p.Limit <= 0 {
		return pg, nil
	}
	if pl.entity {
		return pl.runEntity(ctx, emit)
	}
	filtered := pl.p.Type != "" || pl.p.Entity != "" || pl.p.Match != nil
	it := pl.l.Scan(pl.after+1, pl.last)
	for n := 0; it.Next(); n++ {
		e := it.Event()
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return pg, err
			}
		}
		if !matches(pl.p.Type, e.Type) || !matches(pl.p.Entity, e.Entity) || pl.p.Match != nil && !pl.p.Match(e.Type, e.Entity) {
			if filtered && it.Bytes() >= pl.p.Budget && e.Seq < pl.last {
				pg.Next = e.Seq // looked at through here; go on after it
				return pg, nil
			}
			continue
		}
		if pg.Count == pl.p.Limit {
			pg.Next = e.Seq - 1
			return pg, nil
		}
		if err := emit(e); err != nil {
			if errors.Is(err, ErrPageFull) && pg.Count > 0 {
				pg.Next = e.Seq - 1
				return pg, nil
			}
			return pg, err
		}
		pg.Count++
		if filtered && it.Bytes() >= pl.p.Budget && e.Seq < pl.last {
			pg.Next = e.Seq
			return pg, nil
		}
	}
	return pg, it.Err()
}

// ErrPageFull is returned by an emit function to end the page early.
var ErrPageFull = errors.New("page full")

// Run prepares and runs a read in one step.
func Run(l *log.Log, p Params, emit func(*log.Event) error) (Page, error) {
	pl, err := Prepare(l, p)
	if err != nil {
		return Page{}, err
	}
	return pl.Run(emit)
}

// Match reports whether s (a type or an entity) matches a filter as a
// read applies it: "" matches anything, a glob by path.Match, else the
// exact name. For readers that filter events on their own (a live stream).
func Match(pattern, s string) bool { return matches(pattern, s) }

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

// entitySeqs finds the page of an exact-entity read by reading the
// entity's events forward from after (log.ScanEntity), touching its records
// only, at most Limit matches and the Budget's bytes.
func (pl *Plan) entitySeqs() error {
	it := pl.l.ScanEntity(pl.p.Entity, pl.after, pl.last)
	var seqs []uint64
	for it.Next() {
		e := it.Event()
		if !matches(pl.p.Type, e.Type) || pl.p.Match != nil && !pl.p.Match(e.Type, e.Entity) {
			if it.Bytes() >= pl.p.Budget && e.Seq < pl.last {
				pl.next = e.Seq
				break
			}
			continue
		}
		if len(seqs) == pl.p.Limit {
			pl.next = seqs[len(seqs)-1]
			break
		}
		seqs = append(seqs, e.Seq)
		if it.Bytes() >= pl.p.Budget && e.Seq < pl.last {
			pl.next = e.Seq
			break
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	pl.seqs, pl.known = seqs, true
	return nil
}

func (pl *Plan) runEntity(ctx context.Context, emit func(*log.Event) error) (Page, error) {
	var pg Page
	for i, seq := range pl.seqs {
		if err := ctx.Err(); err != nil {
			return pg, err
		}
		e, err := pl.l.Event(seq)
		if err != nil {
			return pg, err
		}
		if err := emit(e); err != nil {
			if errors.Is(err, ErrPageFull) && i > 0 {
				pg.Next = pl.seqs[i-1]
				return pg, nil
			}
			return pg, err
		}
		pg.Count++
	}
	pg.Next = pl.next
	return pg, nil
}
