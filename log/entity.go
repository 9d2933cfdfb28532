package log

import (
	"errors"
	"slices"
)

// EntityIter reads one entity's committed events in seq order, from any
// point of its stream, at the cost of what it returns: it finds the nearest
// checkpoint of the versions index above where it stands and walks back
// along the entity's chain from there (at most versionStride events), a
// chunk at a time. A missing checkpoint (an older strata appended without
// keeping them) makes it walk back from the entity's newest event instead.
//
//	it := l.ScanEntity("order-1", after, to)
//	for it.Next() { e := it.Event() … }
//	if err := it.Err(); err != nil { … }
type EntityIter struct {
	l         *Log
	entity    string
	after, to uint64
	started   bool
	head, top uint64   // the entity's newest committed seq and its version
	chunk     []*Event // the events walked back, ascending, not yet returned
	end       *Event   // the last event of the chunk: where the next starts
	slow      []uint64 // without checkpoints: every seq left, ascending
	ev        *Event
	err       error
	done      bool
	bytes     int64  // bytes of records read so far
	last      *Event // the event read last (read)
}

// ScanEntity returns an iterator over entity's committed events with a seq
// after after and at most to.
func (l *Log) ScanEntity(entity string, after, to uint64) *EntityIter {
	return &EntityIter{l: l, entity: entity, after: after, to: min(to, l.Through())}
}

// errNoCheckpoint: the versions index lacks a checkpoint it should have.
var errNoCheckpoint = errors.New("versions index lacks a checkpoint")

// Next advances to the next event and reports whether there is one.
func (it *EntityIter) Next() bool {
	for !it.done && it.err == nil {
		switch {
		case !it.started:
			it.started = true
			it.err = it.start()
		case it.slow != nil && len(it.slow) == 0:
			it.done = true
		case it.slow != nil:
			if it.ev, it.err = it.read(it.slow[0]); it.err == nil {
				it.slow = it.slow[1:]
				return it.emit()
			}
		case len(it.chunk) > 0:
			it.ev, it.chunk = it.chunk[0], it.chunk[1:]
			return it.emit()
		default:
			if it.err = it.nextChunk(); it.err == nil && len(it.chunk) == 0 {
				it.done = true
			}
		}
		if errors.Is(it.err, errNoCheckpoint) {
			// Go on the slow way from where the read stands.
			if it.ev != nil {
				it.after = it.ev.Seq
			}
			it.err = it.startSlow()
		}
	}
	return false
}

func (it *EntityIter) emit() bool {
	if it.ev.Seq > it.to {
		it.done = true
		return false
	}
	return true
}

// Event returns the current event.
func (it *EntityIter) Event() *Event { return it.ev }

// Err returns the error that ended the iteration, if any.
func (it *EntityIter) Err() error {
	if it.err != nil {
		return &Error{Op: "entity read", Dir: it.l.dir, Err: it.err}
	}
	return nil
}

// Bytes returns how many bytes of records the iterator has read.
func (it *EntityIter) Bytes() int64 { return it.bytes }

// read returns the event at seq. The last one read is kept: a chunk's walk
// starts at the checkpoint that was just read to check it, which with a
// fine stride is a read more every few events.
func (it *EntityIter) read(seq uint64) (*Event, error) {
	if it.last != nil && it.last.Seq == seq {
		return it.last, nil
	}
	e, _, err := it.l.readSeq(seq)
	if err == nil {
		it.bytes += int64(recordSize(e))
		it.last = e
	}
	return e, err
}

// start finds the entity's newest event and the first chunk after it.after.
func (it *EntityIter) start() error {
	head, err := it.l.EntityHead(it.entity)
	if err != nil || head <= it.after {
		return err
	}
	e, err := it.read(head)
	if err != nil {
		return err
	}
	it.head, it.top = head, e.Version
	if it.after > 0 {
		// A read going on from one of the entity's events (the next page,
		// a fold from a snapshot) learns its version from it, and so the
		// checkpoint above it, in one read: the search below costs one a
		// halving, each maybe a frame to decode.
		e, err := it.read(it.after)
		if err != nil {
			return err
		}
		if e.Entity == it.entity {
			end := it.head
			if v := (e.Version/versionStride + 1) * versionStride; v < it.top {
				if end, err = it.checkpoint(v); err != nil {
					return err
				}
			}
			return it.walkBack(end, it.after)
		}
	}
	// The first checkpoint whose seq is past after: a binary search over
	// the checkpoints (their seqs grow with their versions).
	n := it.top / versionStride
	lo, hi := uint64(1), n+1 // answer in [lo, hi]; n+1: none, walk from the head
	if it.after == 0 {
		hi = min(1, hi)
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, err := it.checkpoint(mid * versionStride)
		if err != nil {
			return err
		}
		if seq > it.after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	end := it.head
	if lo <= n {
		if end, err = it.checkpoint(lo * versionStride); err != nil {
			return err
		}
	}
	return it.walkBack(end, it.after)
}

// nextChunk walks back from the next checkpoint (or the entity's newest
// event) to the end of the chunk just returned.
func (it *EntityIter) nextChunk() error {
	if it.end == nil || it.end.Seq >= it.head || it.end.Seq >= it.to {
		return nil
	}
	v := (it.end.Version/versionStride + 1) * versionStride
	end := it.head
	if v < it.top {
		var err error
		if end, err = it.checkpoint(v); err != nil {
			return err
		}
	}
	return it.walkBack(end, it.end.Seq)
}

// walkBack reads the entity's events from seq end back to (not including)
// seq stop, and makes them the chunk.
func (it *EntityIter) walkBack(end, stop uint64) error {
	it.chunk = it.chunk[:0]
	for seq := end; seq > stop; {
		e, err := it.read(seq)
		if err != nil {
			return err
		}
		it.chunk = append(it.chunk, e)
		seq = e.PrevInEntity
	}
	slices.Reverse(it.chunk)
	if len(it.chunk) > 0 {
		it.end = it.chunk[len(it.chunk)-1]
	}
	return nil
}

// checkpoint returns the seq of the entity's event of the given version,
// a multiple of versionStride, from the versions index.
func (it *EntityIter) checkpoint(version uint64) (uint64, error) {
	l := it.l
	for attempt := 0; attempt < 2; attempt++ {
		v := l.v()
		if v == nil {
			return 0, ErrClosed
		}
		through := v.head.through()
		var found uint64
		var ferr error
		err := v.vers.readFind(v.vers.versionTag(it.entity, version), func(seq uint64) bool {
			if seq > through {
				return false
			}
			e, err := it.read(seq)
			if err != nil {
				ferr = err
				return true
			}
			if e.Entity == it.entity && e.Version == version {
				found = seq
				return true
			}
			return false
		})
		switch {
		case err != nil:
			return 0, err
		case ferr != nil:
			return 0, ferr
		case found != 0:
			return found, nil
		}
		// Another process may have grown the table since it was mapped.
		if err := l.remapIfStale(); err != nil {
			return 0, err
		}
	}
	return 0, errNoCheckpoint
}

// startSlow lists every seq of the entity after it.after by walking back
// from its newest event: what a read cost before checkpoints.
func (it *EntityIter) startSlow() error {
	it.chunk = nil
	head, err := it.l.EntityHead(it.entity)
	if err != nil {
		return err
	}
	seqs := []uint64{}
	for seq := head; seq > it.after; {
		e, err := it.read(seq)
		if err != nil {
			return err
		}
		seqs = append(seqs, seq)
		seq = e.PrevInEntity
	}
	slices.Reverse(seqs)
	it.slow = seqs
	return nil
}

// EntityVersion returns the seq of entity's committed event of the given
// version, or ErrNotFound if the entity has no such version. It costs at
// most versionStride reads: it walks back along the entity's chain from the
// checkpoint at or above version (or from the entity's newest event).
func (l *Log) EntityVersion(entity string, version uint64) (uint64, error) {
	head, err := l.EntityHead(entity)
	if err != nil {
		return 0, err
	}
	if head == 0 || version == 0 {
		return 0, ErrNotFound
	}
	it := &EntityIter{l: l, entity: entity}
	e, err := it.read(head)
	if err != nil {
		return 0, &Error{Op: "entity version", Dir: l.dir, Seq: head, Err: err}
	}
	if version > e.Version {
		return 0, ErrNotFound
	}
	seq := head
	if cp := (version + versionStride - 1) / versionStride * versionStride; cp < e.Version {
		s, err := it.checkpoint(cp)
		switch {
		case err == nil:
			seq = s
		case !errors.Is(err, errNoCheckpoint):
			return 0, &Error{Op: "entity version", Dir: l.dir, Err: err}
		}
	}
	for seq != 0 {
		if e, err = it.read(seq); err != nil {
			return 0, &Error{Op: "entity version", Dir: l.dir, Seq: seq, Err: err}
		}
		if e.Version <= version {
			break
		}
		seq = e.PrevInEntity
	}
	if seq == 0 || e.Version != version {
		// The chain skips a version: the versions of an entity have no gaps.
		return 0, &Error{Op: "entity version", Dir: l.dir, Seq: seq, Err: ErrCorrupt}
	}
	return seq, nil
}
