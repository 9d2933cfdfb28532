package log

import (
	"errors"
	"fmt"
	"io"
)

// RawEvent is an event as its record holds it, not decoded: every byte
// slice aliases the segment read buffer and is valid only until the
// iterator moves on. It is the fast path for readers that look at a few
// fields of many events (projection catch-up): reading one costs no
// allocation, where a decoded Event copies its type and entity.
type RawEvent struct {
	Seq          uint64
	Time         int64 // unix nanoseconds, UTC
	Version      uint64
	PrevInEntity uint64
	Type         []byte
	Entity       []byte

	id, prev, key, meta, data []byte
	flags                     byte
}

// ID returns the event's id.
func (r *RawEvent) ID() (id [32]byte) {
	copy(id[:], r.id)
	return id
}

// Data returns the event's data as served (compact JSON), or nil if it was
// erased. It aliases the read buffer.
func (r *RawEvent) Data() []byte {
	if r.Erased() {
		return nil
	}
	return r.data
}

// Meta returns the event's meta, nil when it has none. It aliases the
// read buffer.
func (r *RawEvent) Meta() []byte {
	if len(r.meta) == 0 {
		return nil
	}
	return r.meta
}

// Erased says the event's data was erased (Event.Erased).
func (r *RawEvent) Erased() bool { return r.flags&flagErased != 0 }

// Decode fills e with r's fields: strings are copied, Data and Meta alias
// the read buffer as they do in r.
func (r *RawEvent) Decode(e *Event) {
	e.Seq, e.Time, e.Version, e.PrevInEntity = r.Seq, r.Time, r.Version, r.PrevInEntity
	copy(e.ID[:], r.id)
	copy(e.Prev[:], r.prev)
	e.Type = string(r.Type)
	e.Entity = string(r.Entity)
	e.Key = string(r.key)
	e.Meta = r.Meta()
	e.Data = r.data
	e.Erased = r.Erased()
	e.more = r.flags&flagMore != 0
}

// RawIter reads committed records in seq order without decoding them into
// Events (RawEvent). Like Iter, it reads each segment sequentially through a
// buffer and checks every record's checksum.
//
//	it := l.ScanRaw(from, to)
//	for it.Next() { r := it.Raw() … }
//	if err := it.Err(); err != nil { … }
type RawIter struct {
	l     *Log
	next  uint64 // seq of the next event
	to    uint64 // last seq to return
	seg   *segment
	sc    *scanner
	raw   RawEvent
	err   error
	ended bool
	bytes int64 // bytes of records read so far
}

// ScanRaw returns an iterator over the committed records from seq from
// through seq to, inclusive; to is capped at the committed head as of this
// call.
func (l *Log) ScanRaw(from, to uint64) *RawIter {
	it := new(RawIter)
	l.scanRaw(it, from, to)
	return it
}

func (l *Log) scanRaw(it *RawIter, from, to uint64) {
	if from == 0 {
		from = 1
	}
	if through := l.Through(); to > through {
		to = through
	}
	*it = RawIter{l: l, next: from, to: to}
}

// Next advances to the next record and reports whether there is one.
func (it *RawIter) Next() bool {
	if it.ended || it.err != nil || it.next > it.to {
		it.ended = true
		return false
	}
	for {
		if it.sc == nil {
			s, off, err := it.l.locate(it.next)
			if err != nil {
				it.err = &Error{Op: "scan", Dir: it.l.dir, Seq: it.next, Err: err}
				return false
			}
			size := scanChunk
			if it.to-it.next < 32 {
				size = smallScanChunk
			}
			it.seg, it.sc = s, newSegmentScanner(s, off, size)
		}
		body, at, err := it.sc.next()
		if errors.Is(err, io.EOF) {
			it.sc = nil // on to the segment that holds it.next
			continue
		}
		it.l.reads.Add(1)
		it.bytes += int64(len(body) + recordHeaderLen)
		if err == nil {
			err = it.raw.parse(body)
		}
		if err == nil && it.raw.Seq != it.next {
			err = fmt.Errorf("%w: expected seq %d, found %d", ErrCorrupt, it.next, it.raw.Seq)
		}
		if isTail(err) {
			// The iterator reads only acknowledged records (up to the head's
			// through): one that does not decode is damage, as in readSeq.
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if err != nil {
			it.err = &Error{Op: "scan", Dir: it.l.dir, Seq: it.next, Err: fmt.Errorf("segment %d offset %d: %w", it.seg.first, at, err)}
			return false
		}
		it.next++
		return true
	}
}

// Raw returns the current record. It, and every slice it holds, are valid
// only until the next call to Next.
func (it *RawIter) Raw() *RawEvent { return &it.raw }

// Err returns the error that ended the iteration, if any.
func (it *RawIter) Err() error { return it.err }

// Bytes returns how many bytes of records the iterator has read.
func (it *RawIter) Bytes() int64 { return it.bytes }
