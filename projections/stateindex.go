package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// The state index (projections/FORMAT.md "State index"): the current state
// of every entity of a tenant, sorted by entity, in one file
// <tenant>/cache/entities/index, for GET /entities?prefix=&where=. It is a
// cache like every other: stamped with the seq and id of the last event it
// reflects, used only if that event is on the chain, caught up from the
// log's tail when read (at most MaxIndexCatchUp events per call, so no
// request does unbounded work), rewritten atomically whole when it caught
// up anything, deletable at any time.
//
// A read of a page costs the file's block table and the blocks the page
// touches, not the whole index; a catch-up costs the events it applies,
// the blocks they touch, and a byte copy of the rest of the file (16 ms
// for 100,000 entities, 11 MB): a tenant of millions of entities appending
// constantly would want a delta file, which is left for later.
const (
	indexDir   = "entities"
	indexName  = "index"
	indexMagic = "STIDX001"
	// blockTarget is the size at which a block of entries is closed.
	blockTarget = 32 << 10
)

// MaxIndexCatchUp is the most events one call applies to the state index;
// past it the answer reflects the index so far and says it is behind.
const MaxIndexCatchUp = 200000

// MaxIndexScan is the most entries one search looks at (each passed to its
// filter); past it the page ends early with a cursor to go on from.
const MaxIndexScan = 20000

// castagnoli is the CRC-32C table, made on first use: made at init it cost
// every process (every CGI request) 0.15–0.2 ms and 9 KB (inittrace).
func castagnoli() *crc32.Table {
	castagnoliOnce.Do(func() { castagnoliTab = crc32.MakeTable(crc32.Castagnoli) })
	return castagnoliTab
}

var (
	castagnoliOnce sync.Once
	castagnoliTab  *crc32.Table
)

// Index is a tenant's state index.
type Index struct {
	l     *log.Log
	path  string
	views *stateViews // nil: merge states only
}

// OpenIndex returns l's state index; nothing is read until a search.
func OpenIndex(l *log.Log) *Index {
	return &Index{l: l, path: filepath.Join(l.Dir(), "cache", indexDir, indexName)}
}

// States makes x's searches answer, for each entity a projection of kind
// state makes (StateProjection), that projection's state at the index's
// stamp (State.Projection names it) — the state GET /entities/<e>
// answers — and pass that state to the search's filter; p computes it,
// caught up within budget (0: DefaultBudget). The index itself holds the
// merge states (it is one cache for every definition); an entity's
// version, seq, id, time and deletion are its own as always.
func (x *Index) States(p *Projector, budget time.Duration) *Index {
	x.views = &stateViews{l: x.l, p: p, budget: budget}
	return x
}

// indexFile is the block table of an index file.
type indexFile struct {
	size   uint64 // the file's
	seq    uint64
	id     [32]byte
	count  uint64
	blocks []blockRef
	f      *os.File
}

type blockRef struct {
	first    string // the block's first entity
	off, len uint64
	crc      uint32
}

// SearchResult is a page of a search.
type SearchResult struct {
	States []*State
	// Next is the entity to go on after; "" when the search is complete.
	Next string
	// Seq and ID are the stamp of the index the page was read from.
	Seq uint64
	ID  [32]byte
	// Behind says the log has events the index did not reach in this call,
	// or (States) a state projection's states are short of the index's
	// stamp: it could not catch up within its budget.
	Behind bool
}

// Search returns up to limit current states of entities that start with
// prefix and sort after after (byte order), not deleted, for which match
// (nil: every one) says true. It catches the index up first.
func (x *Index) Search(ctx context.Context, prefix, after string, limit int, match func(*State) (bool, error)) (*SearchResult, error) {
	if x.views != nil {
		defer x.views.close()
	}
	through := x.l.Through()
	f := x.open()
	if f != nil {
		defer f.f.Close()
	}
	res := &SearchResult{}
	if f != nil && f.seq == through {
		res.Seq, res.ID = f.seq, f.id
		err := x.searchFile(ctx, f, prefix, after, limit, match, res)
		if errors.Is(err, errBadIndex) {
			os.Remove(x.path)
			return x.Search(ctx, prefix, after, limit, match)
		}
		return res, err
	}
	changed, seq, id, err := x.catchUp(ctx, f, through)
	if errors.Is(err, errBadIndex) {
		os.Remove(x.path)
		return x.Search(ctx, prefix, after, limit, match)
	}
	if err != nil {
		return nil, err
	}
	res.Seq, res.ID, res.Behind = seq, id, seq < through
	err = x.scan(ctx, func(yield func(*State) (bool, error)) error {
		return merged(f, changed, max(prefix, after), yield)
	}, prefix, after, limit, match, res)
	if errors.Is(err, errBadIndex) {
		os.Remove(x.path)
		return x.Search(ctx, prefix, after, limit, match)
	}
	return res, err
}

// merged yields, in entity order from start on, the entries of f (nil:
// none) with changed (sorted by entity) in place of or between them.
func merged(f *indexFile, changed []*State, start string, yield func(*State) (bool, error)) error {
	j := sort.Search(len(changed), func(j int) bool { return changed[j].Entity >= start })
	i := 0
	if f != nil {
		i = max(sort.Search(len(f.blocks), func(i int) bool { return f.blocks[i].first > start })-1, 0)
	}
	for ; f != nil && i < len(f.blocks); i++ {
		states, err := f.block(i)
		if err != nil {
			return err
		}
		for _, s := range states {
			for ; j < len(changed) && changed[j].Entity < s.Entity; j++ {
				if more, err := yield(changed[j]); !more || err != nil {
					return err
				}
			}
			if j < len(changed) && changed[j].Entity == s.Entity {
				s = changed[j]
				j++
			}
			if more, err := yield(s); !more || err != nil {
				return err
			}
		}
	}
	for ; j < len(changed); j++ {
		if more, err := yield(changed[j]); !more || err != nil {
			return err
		}
	}
	return nil
}

// scan feeds entries from each (in entity order, from the search's start)
// through the search's filters into res.
func (x *Index) scan(ctx context.Context, each func(yield func(*State) (bool, error)) error, prefix, after string, limit int, match func(*State) (bool, error), res *SearchResult) error {
	looked, last := 0, "" // entries looked at, and the last of them
	return each(func(s *State) (bool, error) {
		if s.Entity <= after || s.Entity < prefix {
			return true, nil // before the start: the first block holds some
		}
		if !strings.HasPrefix(s.Entity, prefix) {
			return false, nil // sorted: past the prefix
		}
		if len(res.States) == limit || looked == MaxIndexScan {
			res.Next = last // every entity up to it is answered or passed over
			return false, nil
		}
		prev := last
		looked, last = looked+1, s.Entity
		if looked%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		if s.Deleted {
			return true, nil
		}
		if x.views != nil {
			behind, err := x.views.reduce(ctx, s, res.Seq)
			if err != nil {
				return false, err
			}
			res.Behind = res.Behind || behind
		}
		if match != nil {
			ok, err := match(s)
			if errors.Is(err, ErrEndPage) && prev != "" {
				res.Next = prev // s is not looked at: the next page starts with it
				return false, nil
			}
			if err != nil || !ok {
				return err == nil, err
			}
		}
		res.States = append(res.States, s)
		return true, nil
	})
}

// ErrEndPage, returned by a search's filter, ends the page before the
// entity it was asked about (a filter out of its time budget, say); the
// page's Next then resumes with that entity. Returned for the first entity
// looked at, it is an error like any other: a page must make progress.
var ErrEndPage = errors.New("end of the page")

var errBadIndex = errors.New("state index is damaged")

// open reads the index file's block table; nil if there is none, it is
// damaged, or its stamp is not on the chain (it is removed then).
func (x *Index) open() *indexFile {
	f, err := os.Open(x.path)
	if err != nil {
		return nil
	}
	ix, err := readTable(f)
	if err == nil && ix.seq > 0 {
		if ix.seq > x.l.Through() {
			err = errBadIndex
		} else if e, rerr := x.l.Event(ix.seq); rerr != nil || e.ID != ix.id {
			err = errBadIndex
		}
	}
	if err != nil {
		f.Close()
		os.Remove(x.path)
		return nil
	}
	ix.f = f
	return ix
}

// readTable reads an index file's trailer and block table:
//
//	trailer (last 16 bytes): table offset uint64 LE | table length uint32 LE | CRC-32C of the table
//	table: magic | seq uvarint | id 32 bytes | entries uvarint | blocks uvarint
//	       | per block: first entity (uvarint length, bytes) | offset uvarint | length uvarint | CRC-32C uint32 LE
func readTable(f *os.File) (*indexFile, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() < 16 {
		return nil, errBadIndex
	}
	var tr [16]byte
	if _, err := f.ReadAt(tr[:], fi.Size()-16); err != nil {
		return nil, errBadIndex
	}
	off, n := binary.LittleEndian.Uint64(tr[:8]), binary.LittleEndian.Uint32(tr[8:12])
	if off+uint64(n)+16 != uint64(fi.Size()) {
		return nil, errBadIndex
	}
	t := make([]byte, n)
	if _, err := f.ReadAt(t, int64(off)); err != nil || crc32.Checksum(t, castagnoli()) != binary.LittleEndian.Uint32(tr[12:]) {
		return nil, errBadIndex
	}
	d := &decoder{b: t}
	if string(d.next(len(indexMagic))) != indexMagic {
		return nil, errBadIndex
	}
	ix := &indexFile{size: uint64(fi.Size()), seq: d.uvarint()}
	copy(ix.id[:], d.next(32))
	ix.count = d.uvarint()
	nb := d.uvarint()
	if d.err != nil || nb > uint64(len(t)) {
		return nil, errBadIndex
	}
	for i := uint64(0); i < nb && d.err == nil; i++ {
		first := string(d.bytes())
		bo, bl := d.uvarint(), d.uvarint()
		crc := binary.LittleEndian.Uint32(d.next(4))
		if bo+bl > off {
			return nil, errBadIndex
		}
		ix.blocks = append(ix.blocks, blockRef{first, bo, bl, crc})
	}
	if d.err != nil {
		return nil, errBadIndex
	}
	return ix, nil
}

// block reads and decodes block i of f.
func (f *indexFile) block(i int) ([]*State, error) {
	ref := f.blocks[i]
	b := make([]byte, ref.len)
	if n, err := f.f.ReadAt(b, int64(ref.off)); n < len(b) {
		return nil, errors.Join(errBadIndex, err)
	}
	if crc32.Checksum(b, castagnoli()) != ref.crc {
		return nil, errBadIndex
	}
	var out []*State
	d := &decoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		s := &State{Entity: string(d.bytes()), Version: d.uvarint(), Seq: d.uvarint()}
		copy(s.ID[:], d.next(32))
		s.Time = int64(d.uvarint())
		s.Deleted = d.next(1)[0] == 1
		s.State = bytes.Clone(d.bytes())
		out = append(out, s)
	}
	if d.err != nil {
		return nil, errBadIndex
	}
	return out, nil
}

// searchFile answers a search from f's blocks, reading from the block
// that holds the start on.
func (x *Index) searchFile(ctx context.Context, f *indexFile, prefix, after string, limit int, match func(*State) (bool, error), res *SearchResult) error {
	start := max(prefix, after)
	i := sort.Search(len(f.blocks), func(i int) bool { return f.blocks[i].first > start })
	i = max(i-1, 0)
	return x.scan(ctx, func(yield func(*State) (bool, error)) error {
		for ; i < len(f.blocks); i++ {
			states, err := f.block(i)
			if err != nil {
				return err
			}
			for _, s := range states {
				if more, err := yield(s); !more || err != nil {
					return err
				}
			}
		}
		return nil
	}, prefix, after, limit, match, res)
}

// catchUp applies the log's events after f's stamp (f nil: from the
// first), at most MaxIndexCatchUp of them through through, to the states
// of the entities they touch — each read from f's block that holds it —
// and returns those states sorted by entity and the stamp they reach. If
// it applied any, it writes the index anew: blocks with no touched entity
// are copied as they are (checked, not decoded), the others re-encoded,
// so a catch-up costs the events, their blocks and a copy of the file.
func (x *Index) catchUp(ctx context.Context, f *indexFile, through uint64) ([]*State, uint64, [32]byte, error) {
	var seq uint64
	var id [32]byte
	if f != nil {
		seq, id = f.seq, f.id
	}
	touched := map[string]*State{}
	blocks := map[int][]*State{} // decoded blocks of f, by index
	lookup := func(entity string) (*State, error) {
		if f == nil || len(f.blocks) == 0 {
			return nil, nil
		}
		i := max(sort.Search(len(f.blocks), func(i int) bool { return f.blocks[i].first > entity })-1, 0)
		states, ok := blocks[i]
		if !ok {
			var err error
			if states, err = f.block(i); err != nil {
				return nil, err
			}
			blocks[i] = states
		}
		k := sort.Search(len(states), func(k int) bool { return states[k].Entity >= entity })
		if k < len(states) && states[k].Entity == entity {
			c := *states[k]
			return &c, nil
		}
		return nil, nil
	}
	it := x.l.Scan(seq+1, min(through, seq+MaxIndexCatchUp))
	n, added := 0, uint64(0)
	for it.Next() {
		e := it.Event()
		s := touched[e.Entity]
		if s == nil {
			var err error
			if s, err = lookup(e.Entity); err != nil {
				return nil, 0, id, err
			}
			if s == nil {
				s = &State{Entity: e.Entity}
				added++
			}
			touched[e.Entity] = s
		}
		state, deleted, err := Apply(s.State, e)
		if err != nil {
			return nil, 0, id, err
		}
		if opOf(e.Meta) == OpPut && !e.Erased {
			state = bytes.Clone(state) // e.Data is the iterator's, valid until Next
		}
		s.State, s.Deleted = state, deleted
		s.Version, s.Seq, s.ID, s.Time = e.Version, e.Seq, e.ID, e.Time
		seq, id = e.Seq, e.ID
		if n++; n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, id, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, 0, id, err
	}
	changed := make([]*State, 0, len(touched))
	for _, s := range touched {
		changed = append(changed, s)
	}
	slices.SortFunc(changed, func(a, b *State) int { return strings.Compare(a.Entity, b.Entity) })
	if n > 0 || f == nil {
		// A cache: a failed write costs the next request the catch-up.
		count := added
		if f != nil {
			count += f.count
		}
		if err := x.write(f, changed, blocks, count, seq, id); errors.Is(err, errBadIndex) {
			return nil, 0, id, err
		}
	}
	return changed, seq, id, nil
}

// indexWriter builds an index file.
type indexWriter struct {
	out, blk []byte
	first    string
	refs     []blockRef
}

func (w *indexWriter) add(s *State) {
	if len(w.blk) == 0 {
		w.first = s.Entity
	}
	w.blk = appendBytes(w.blk, []byte(s.Entity))
	w.blk = binary.AppendUvarint(w.blk, s.Version)
	w.blk = binary.AppendUvarint(w.blk, s.Seq)
	w.blk = append(w.blk, s.ID[:]...)
	w.blk = binary.AppendUvarint(w.blk, uint64(s.Time))
	if s.Deleted {
		w.blk = append(w.blk, 1)
	} else {
		w.blk = append(w.blk, 0)
	}
	w.blk = appendBytes(w.blk, s.State)
	if len(w.blk) >= blockTarget {
		w.flush()
	}
}

func (w *indexWriter) flush() {
	if len(w.blk) == 0 {
		return
	}
	w.refs = append(w.refs, blockRef{w.first, uint64(len(w.out)), uint64(len(w.blk)), crc32.Checksum(w.blk, castagnoli())})
	w.out = append(w.out, w.blk...)
	w.blk = w.blk[:0]
}

// raw appends block ref of f as it is, read straight into the output and
// unchecked: the copy keeps its CRC, so damage is still found by the read
// that decodes it.
func (w *indexWriter) raw(f *indexFile, ref blockRef) error {
	w.flush()
	at := len(w.out)
	w.out = slices.Grow(w.out, int(ref.len))[:at+int(ref.len)]
	if n, err := f.f.ReadAt(w.out[at:], int64(ref.off)); n < int(ref.len) {
		return errors.Join(errBadIndex, err) // shorter than its table says
	}
	w.refs = append(w.refs, blockRef{ref.first, uint64(at), ref.len, ref.crc})
	return nil
}

// write replaces the index file with f's entries (nil: none) updated by
// changed (sorted), count entries in all, stamped seq and id, atomically (no fsync: a torn file
// fails its checksums and is rebuilt). decoded holds blocks of f already
// decoded; a block of f that is not is copied whole if no changed entity
// falls in it. A block of f failing its check is errBadIndex.
func (x *Index) write(f *indexFile, changed []*State, decoded map[int][]*State, count, seq uint64, id [32]byte) error {
	w := &indexWriter{}
	if f != nil {
		w.out = make([]byte, 0, f.size+f.size/8+64<<10)
	}
	j := 0
	for i := 0; f != nil && i < len(f.blocks); i++ {
		ref := f.blocks[i]
		last := i == len(f.blocks)-1
		// The changed entities that fall in block i: before block i+1's
		// first (block 0 also takes those before its own first).
		k := j
		for k < len(changed) && (last || changed[k].Entity < f.blocks[i+1].first) {
			k++
		}
		states, ok := decoded[i]
		if k == j && !ok {
			if err := w.raw(f, ref); err != nil {
				return err
			}
			continue
		}
		if !ok {
			var err error
			if states, err = f.block(i); err != nil {
				return err
			}
		}
		for _, s := range states {
			for ; j < k && changed[j].Entity < s.Entity; j++ {
				w.add(changed[j])
			}
			if j < k && changed[j].Entity == s.Entity {
				s = changed[j]
				j++
			}
			w.add(s)
		}
		for ; j < k; j++ {
			w.add(changed[j])
		}
		w.flush()
	}
	for ; j < len(changed); j++ {
		w.add(changed[j])
	}
	w.flush()
	off := len(w.out)
	t := append([]byte(nil), indexMagic...)
	t = binary.AppendUvarint(t, seq)
	t = append(t, id[:]...)
	t = binary.AppendUvarint(t, count)
	t = binary.AppendUvarint(t, uint64(len(w.refs)))
	for _, r := range w.refs {
		t = appendBytes(t, []byte(r.first))
		t = binary.AppendUvarint(t, r.off)
		t = binary.AppendUvarint(t, r.len)
		t = binary.LittleEndian.AppendUint32(t, r.crc)
	}
	out := append(w.out, t...)
	out = binary.LittleEndian.AppendUint64(out, uint64(off))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(t)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(t, castagnoli()))
	if err := fileutil.MkdirAll(filepath.Dir(x.path), 0o755); err != nil {
		return fmt.Errorf("state index: %w", err)
	}
	if err := fileutil.WriteFileNoSync(x.path, out, 0o644); err != nil {
		return fmt.Errorf("state index: %w", err)
	}
	return nil
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the index's encodings; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) next(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.err = errBadIndex
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadIndex
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errBadIndex
		return nil
	}
	return d.next(int(n))
}
