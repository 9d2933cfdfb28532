package log

import (
	"errors"
	"fmt"
	"io"
)

// Iter reads committed events in seq order. It reads each segment
// sequentially through a buffer, so a long read costs what it reads and no
// system call per event.
//
//	it := l.Scan(from, to)
//	for it.Next() { e := it.Event() … }
//	if err := it.Err(); err != nil { … }
type Iter struct {
	l     *Log
	next  uint64 // seq of the next event
	to    uint64 // last seq to return
	seg   *segment
	sc    *scanner
	ev    Event
	err   error
	ended bool
	bytes int64 // bytes of records read so far
}

// Scan returns an iterator over the committed events from seq from through
// seq to, inclusive; to is capped at the committed head as of this call.
func (l *Log) Scan(from, to uint64) *Iter {
	if from == 0 {
		from = 1
	}
	if through := l.Through(); to > through {
		to = through
	}
	return &Iter{l: l, next: from, to: to}
}

// Next advances to the next event and reports whether there is one.
func (it *Iter) Next() bool {
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
			it.seg, it.sc = s, newScanner(s.f, off)
		}
		body, at, err := it.sc.next()
		if errors.Is(err, io.EOF) {
			it.sc = nil // on to the segment that holds it.next
			continue
		}
		it.l.reads.Add(1)
		it.bytes += int64(len(body) + recordHeaderLen)
		if err == nil {
			err = decodeBody(body, &it.ev)
		}
		if err == nil && it.ev.Seq != it.next {
			err = fmt.Errorf("%w: expected seq %d, found %d", ErrCorrupt, it.next, it.ev.Seq)
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

// Event returns the current event. It, and its Data and Meta, are valid
// only until the next call to Next.
func (it *Iter) Event() *Event { return &it.ev }

// Err returns the error that ended the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Bytes returns how many bytes of records the iterator has read.
func (it *Iter) Bytes() int64 { return it.bytes }
