package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"strata/internal/fileutil"
)

// Recovery never takes back what readers were shown. The committed head
// (index/head's through) is never lowered, an offsets file is never cut
// below it, and the hash indexes readers use are never emptied: either the
// indexes are caught up in place from the last point they can be trusted
// (every step idempotent, writing what is there already or what is
// missing), or, when nothing in them can be trusted, new ones are built
// beside them (rebuild.go) and renamed over them once complete.

// recoverLocked brings the indexes up to the log and the log to a whole
// record: it replays every record after the last point the indexes can be
// trusted, cuts a torn tail (keeping a .broken copy), and fails with
// ErrCorrupt on damage anywhere else. The tenant lock is held.
func (l *Log) recoverLocked() error { return l.recoverFull(false) }

// recoverFull is recoverLocked; with full it trusts no index and rebuilds
// every one from the start of the log (beside the ones in use).
func (l *Log) recoverFull(full bool) error {
	if err := l.rebuildLocked(full); err != nil {
		if transient(err) {
			return &Error{Op: "recover", Dir: l.dir, Err: err}
		}
		return &Error{Op: "recover", Dir: l.dir, Err: err, Hint: "run strata verify for details"}
	}
	l.w.seen, l.w.end = 0, 0
	return l.loadTail(l.v().head.through())
}

// published reports whether h is the head file in index/ now.
func (l *Log) published(h *headFile) bool {
	mapped, err1 := h.m.f.Stat()
	onDisk, err2 := os.Stat(filepath.Join(l.indexDir(), headFileName))
	return err1 == nil && err2 == nil && os.SameFile(mapped, onDisk)
}

func (l *Log) rebuildLocked(full bool) error {
	removeTemps(l.logDir())
	removeTemps(l.indexDir())
	nv := &view{}
	if v := l.v(); v != nil && v.head != nil && l.published(v.head) {
		*nv = *v
		if nv.gen != nv.head.gen() {
			// Another process replaced (grew) a hash index since this view
			// mapped it — between Open's look and its wait for the lock,
			// say: map the ones there now, below.
			nv = &view{head: v.head}
		}
	}
	var opened []*mapping // mapped here: closed if they end up in no view
	defer func() {
		inView := map[*mapping]bool{}
		if v := l.v(); v != nil {
			for _, m := range v.maps() {
				inView[m] = true
			}
		}
		for _, m := range opened {
			if !inView[m] {
				m.close()
			}
		}
	}()
	published := true
	if nv.head == nil {
		h, err := openHead(filepath.Join(l.indexDir(), headFileName), false)
		if err != nil && !errors.Is(err, errBadIndex) {
			return err // say, no memory left to map it: the file is not at fault
		}
		if err != nil {
			// No head anyone could read: a new one is built beside and
			// published with the indexes.
			published = false
			if err := fileutil.MkdirAll(l.buildDir(), 0o755); err != nil {
				return err
			}
			if h, err = openHead(filepath.Join(l.buildDir(), headFileName), true); err != nil {
				return err
			}
		}
		opened = append(opened, h.m)
		nv.head = h
	}
	trusted := nv.head.through()
	if !sameBoot(nv.head) && nv.head.synced() != trusted {
		trusted = nv.head.synced() // pages after the synced mark may be lost
	}
	// Events up to floor were acknowledged: damage to them is corruption to
	// report, never a torn tail to cut. The head's through is a lower bound
	// of what was acknowledged even after a machine crash (it is stored
	// after the fsync), so it, not the synced mark, is the floor.
	l.floor, l.floorKnown = max(nv.head.through(), nv.head.synced()), published
	if full || !published {
		trusted = 0
	}
	if trusted > 0 && !nv.whole() {
		mapped, err := mapIndexes(l.indexDir(), nv.head)
		switch {
		case err == nil:
			opened = append(opened, mapped.maps()[1:]...)
			nv = mapped
		case errors.Is(err, errBadIndex):
			trusted = 0
		default:
			return err
		}
	}
	if err := l.openSegments(); err != nil {
		return err
	}
	if trusted > 0 {
		if e, _, err := l.readSeq(trusted); err != nil && transient(err) {
			return err
		} else if err != nil || e.Seq != trusted {
			trusted = 0
		}
	}
	if trusted == 0 {
		if l.v() == nil {
			// Open: let Close release the head if the build fails.
			l.vmu.Lock()
			l.setView(&view{head: nv.head})
			l.vmu.Unlock()
		}
		return l.buildBeside(nv.head, published)
	}
	wv, err := writableView(nv)
	if err != nil {
		return err
	}
	opened = append(opened, wv.maps()...)
	l.vmu.Lock()
	l.setView(wv)
	l.vmu.Unlock()
	return l.catchUp(trusted)
}

// catchUp replays every record after trusted into the indexes in use: the
// offsets are written in place (what is there already is the same) and the
// hash entries added unless present, so readers keep seeing everything up
// to the committed head throughout.
func (l *Log) catchUp(trusted uint64) error {
	last := trusted
	offs := &offsetWriter{last: &last}
	var chunk []*Event
	flush := func() error {
		err := l.replayIndex(chunk)
		chunk = chunk[:0]
		return err
	}
	err := l.walkTail(trusted, func(s *segment, off int64, e *Event) error {
		if e == nil {
			if err := offs.flush(); err != nil {
				return err
			}
			return flush()
		}
		if err := offs.add(s, off, e); err != nil {
			return err
		}
		chunk = append(chunk, slim(e))
		if len(chunk) == 4096 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := l.finishWalk(last); err != nil {
		return err
	}
	l.v().head.setThrough(last)
	l.w.dirty = true
	return l.syncIndexesLocked()
}

// slim copies what the hash indexes need of an event the walk lends.
func slim(e *Event) *Event {
	return &Event{ID: e.ID, Seq: e.Seq, Entity: e.Entity, Key: e.Key, Version: e.Version, PrevInEntity: e.PrevInEntity}
}

// finishWalk checks that the walk reached every acknowledged event, drops
// offsets past the last whole record (never one at or below the committed
// head) and makes the replayed records durable: they may be a dead
// writer's, never fsynced.
func (l *Log) finishWalk(last uint64) error {
	if last < l.floor && l.floorKnown {
		return fmt.Errorf("%w: the log ends at seq %d, but seq %d was acknowledged", ErrCorrupt, last, l.floor)
	}
	for _, s := range l.segments() {
		if err := s.ensure(); err != nil {
			return err
		}
		keep := int64(0)
		if last >= s.first {
			keep = int64(last-s.first+1) * 4
		}
		if st, err := s.off.Stat(); err != nil {
			return err
		} else if st.Size() > keep {
			if err := fileutil.Truncate(s.off, keep); err != nil {
				return err
			}
		}
	}
	if last > l.floor && !l.opts.NoSync {
		for _, s := range l.segments() {
			f := s.wfile()
			if f == nil {
				continue // compressed: durable before it was
			}
			if err := fileutil.Fdatasync(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// offsetWriter writes each walked record's offset, buffered per segment,
// in place, and counts the records in *last.
type offsetWriter struct {
	cur  *segment
	base uint64
	buf  []byte
	last *uint64
}

func (w *offsetWriter) flush() error {
	if w.cur == nil || len(w.buf) == 0 {
		return nil
	}
	_, err := fileutil.WriteAt(w.cur.off, w.buf, int64(w.base-w.cur.first)*4)
	w.base += uint64(len(w.buf) / 4)
	w.buf = w.buf[:0]
	return err
}

func (w *offsetWriter) add(s *segment, off int64, e *Event) error {
	if s != w.cur || len(w.buf) >= 1<<20 {
		if err := w.flush(); err != nil {
			return err
		}
		w.cur, w.base = s, e.Seq
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(off))
	*w.last = e.Seq
	return nil
}

// replayIndex adds events to the hash indexes in use (growing them as
// needed) unless they are there already (a dead writer may have indexed
// some).
func (l *Log) replayIndex(events []*Event) error {
	if len(events) == 0 {
		return nil
	}
	for every := false; len(events) > 0; every = true {
		if err := l.reserve(need(events, every)); err != nil {
			return err
		}
		events = events[fillTables(l.v(), events):]
	}
	return nil
}

// fillTables adds events to v's tables, which have room for them, unless
// they are there already, keeping for each entity the newest seq. It
// returns how many it added: fewer than all if the entities table filled
// past the room need made (a log whose versions say an entity began
// where it did not); the caller makes room for the rest with every set.
func fillTables(v *view, events []*Event) int {
	for i, e := range events {
		if v.ents.used() > v.ents.slots()/2 {
			return i
		}
		if !hasSeq(v.ids, tagID(&e.ID), e.Seq) {
			v.ids.insert(tagID(&e.ID), e.Seq)
		}
		if e.Key != "" {
			if tag := v.keys.tagString(e.Key); !hasSeq(v.keys, tag, e.Seq) {
				v.keys.insert(tag, e.Seq)
			}
		}
		tag, check := v.ents.hashString(e.Entity)
		v.ents.putEntity(tag, check, e.Seq, e.Version, true)
		if checkpointed(e.Version) {
			if tag := v.vers.versionTag(e.Entity, e.Version); !hasSeq(v.vers, tag, e.Seq) {
				v.vers.insert(tag, e.Seq)
			}
		}
	}
	return len(events)
}

// need is the room events may take in each hash index (keys already there
// need none; counting them only grows a table a little early). An entity
// takes a slot at its first event, the one with version 1 and no previous
// event: replayed in log order after every event before them, only those
// can add one — or, with every, any event may (fillTables found the log
// saying otherwise). Counting every event made a rebuild's entities table
// room for a whole chunk of new ones: 8 MB for a tenant of a few thousand
// entities.
func need(events []*Event, every bool) counts {
	var n counts
	n[kindIDs] = uint64(len(events))
	for _, e := range events {
		if every || e.Version <= 1 || e.PrevInEntity == 0 {
			n[kindEntities]++
		}
		if e.Key != "" {
			n[kindKeys]++
		}
		if checkpointed(e.Version) {
			n[kindVersions]++
		}
	}
	return n
}

func hasSeq(x *hashIndex, tag, want uint64) bool {
	found := false
	x.find(tag, func(seq uint64) bool {
		found = seq == want
		return found
	})
	return found
}

// walkTail calls fn for every record after seq after, in log order, checking
// that seqs are gapless and each prev is the id before it; it cuts a torn
// tail of the last segment, and calls fn once more with a nil event at the
// end. The event passed to fn is only valid during the call, and may lack
// its Data and Meta.
//
// A request's events are stored all or none: a record marked as followed
// by more of its request is held back until its request's last record is
// read, and a request whose last record never reached the disk is cut
// whole, from its first record — it was never acknowledged.
func (l *Log) walkTail(after uint64, fn func(*segment, int64, *Event) error) error {
	segs := l.segments()
	start, off := 0, int64(segmentHeaderLen)
	var prev [32]byte
	expect := after + 1
	if after > 0 {
		e, s, err := l.readSeq(after)
		if err != nil {
			return err
		}
		at, err := readOffset(s, after)
		if err != nil {
			return err
		}
		for segs[start] != s {
			start++
		}
		off, prev = at+int64(recordSize(e)), e.ID
	}
	type heldRecord struct {
		s   *segment
		off int64
		e   Event
	}
	var held []heldRecord
	var e Event
	for i := start; i < len(segs); i++ {
		s := segs[i]
		last := i == len(segs)-1
		if err := s.ensure(); err != nil {
			return err
		}
		if i > start || after == 0 {
			if s.first != expect || s.prev != prev {
				return fmt.Errorf("%w: segment %d does not continue the chain at seq %d", ErrCorrupt, s.first, expect)
			}
			off = segmentHeaderLen
		}
		sc := newSegmentScanner(s, off, scanChunk)
		for {
			body, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = decodeBody(body, &e)
			}
			if err != nil {
				// Cut from the first record of the request the damage is in.
				cutAt, cutSeq := at, expect
				if len(held) > 0 {
					cutAt, cutSeq = held[0].off, held[0].e.Seq
				}
				if why := judgeDamage(s.reader(), at, expect, cutSeq, l.floor, l.floorKnown, last, err); why != nil {
					return fmt.Errorf("%w: segment %d %v", ErrCorrupt, s.first, why)
				}
				if err := l.cutTail(s, cutAt); err != nil {
					return err
				}
				held = nil
				break
			}
			if e.Seq != expect || e.Prev != prev {
				return fmt.Errorf("%w: segment %d offset %d: seq %d does not follow seq %d", ErrCorrupt, s.first, at, e.Seq, expect-1)
			}
			prev = e.ID
			expect++
			if e.more {
				c := e
				c.Data, c.Meta = nil, nil
				held = append(held, heldRecord{s, at, c})
				continue
			}
			for j := range held {
				if err := fn(held[j].s, held[j].off, &held[j].e); err != nil {
					return err
				}
			}
			held = held[:0]
			if err := fn(s, at, &e); err != nil {
				return err
			}
		}
		if len(held) > 0 {
			// The segment ends inside a request: its last records never
			// reached the disk.
			h := held[0]
			switch {
			case !last:
				return fmt.Errorf("%w: segment %d ends inside the request that starts at seq %d", ErrCorrupt, s.first, h.e.Seq)
			case h.e.Seq <= l.floor:
				return fmt.Errorf("%w: segment %d ends inside acknowledged seq %d's request", ErrCorrupt, s.first, h.e.Seq)
			}
			if err := l.cutTail(h.s, h.off); err != nil {
				return err
			}
			held = nil
		}
	}
	return fn(nil, 0, nil)
}

// isTail says whether a decoding error can be a torn write: a cut-short
// record, or one whose bytes did not all reach the disk.
func isTail(err error) bool {
	return errors.Is(err, errShort) || errors.Is(err, errBadCRC) || errors.Is(err, errBadBody)
}

// judgeDamage decides what a record that does not decode at offset at is:
// nil for a torn tail, which may be cut; otherwise why it is corruption.
//
// Only the last segment can have a torn tail, and only past the
// acknowledged point: a group commit is fsynced before it is acknowledged,
// so damage at or below acknowledged is the disk's, never a crash's. Past
// it nothing was promised, and a crash mid-write can leave anything there —
// a cut-short record, or a zeroed page in the middle of the group (the
// blocks fallocate reserved, never written) with whole records after it —
// so everything from the first bad record on is cut, as etcd's WAL decoder
// treats zeroed sectors. When the acknowledged point is not known (the
// head file is gone), a bad record followed by any whole record is
// reported instead: it may be a hole in acknowledged events.
//
// seq is the damaged record's, first that of the first record of its
// request: a request is acknowledged whole, so first decides, and seq is
// what the report names.
func judgeDamage(f io.ReaderAt, at int64, seq, first, acknowledged uint64, known, lastSegment bool, err error) error {
	switch {
	case !lastSegment || !isTail(err):
		return fmt.Errorf("offset %d (seq %d): %v", at, seq, err)
	case first <= acknowledged:
		return fmt.Errorf("offset %d: acknowledged seq %d is damaged: %v", at, seq, err)
	case known:
		return nil
	}
	if later, ok := findRecordAfter(f, at); ok {
		return fmt.Errorf("offset %d (seq %d): %v, yet a whole record follows at offset %d (and no head file says how far events were acknowledged)", at, seq, err, later)
	}
	return nil
}

// findRecordAfter looks for any whole, checksummed record starting after
// offset at. Finding one means the damage at at is not a torn tail but a hole
// in the middle, which must be reported, not cut.
func findRecordAfter(f io.ReaderAt, at int64) (int64, bool) {
	b, err := io.ReadAll(io.NewSectionReader(f, at+1, math.MaxInt64-at-1))
	if err != nil {
		return 0, false
	}
	for i := 0; i+recordHeaderLen+minBodyLen <= len(b); i++ {
		size := int(binary.LittleEndian.Uint32(b[i:]))
		if size < minBodyLen || size > len(b)-i-recordHeaderLen || b[i+recordHeaderLen] != recordKindEvent {
			continue
		}
		body := b[i+recordHeaderLen : i+recordHeaderLen+size]
		if crc32.ChecksumIEEE(body) == binary.LittleEndian.Uint32(b[i+4:]) {
			return at + 1 + int64(i), true
		}
	}
	return 0, false
}

// cutTail keeps a copy of the torn bytes beside the segment
// (<segment>.broken-<unix time>) and truncates the segment to at.
func (l *Log) cutTail(s *segment, at int64) error {
	f := s.wfile()
	if f == nil {
		return fmt.Errorf("%w: segment %d is compressed", ErrCorrupt, s.first)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	torn := make([]byte, st.Size()-at)
	if _, err := f.ReadAt(torn, at); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	name := filepath.Join(l.logDir(), fmt.Sprintf("%s.broken-%d", segmentName(s.first), time.Now().UnixNano()))
	if err := writeFileAtomic(name, torn, l.opts.NoSync); err != nil {
		return fmt.Errorf("keep torn tail: %w", err)
	}
	if err := fileutil.Truncate(f, at); err != nil {
		return err
	}
	// Nothing acknowledged was cut, but an operator should learn that a
	// crash left something to cut, and where the copy is (in a server or
	// CGI process the default logger is the error log).
	slog.Warn("cut a torn tail left by a crash (never acknowledged)", "dir", l.dir,
		"segment", segmentName(s.first), "offset", at, "bytes", len(torn), "copy", filepath.Base(name))
	if l.opts.NoSync {
		return nil
	}
	return fileutil.Fsync(f)
}
