package log

import (
	"encoding/binary"
	"time"
)

// Usage is what a quota check sees of the log, under the tenant lock, in
// the same step as the write it is asked about.
type Usage struct {
	// Today counts the events stored since midnight UTC, before this
	// request.
	Today uint64
	// Adding counts the new events this request would store (events that
	// repeat an earlier one by key are not new).
	Adding int
	// Bytes is the size of the log's segments before this request, and
	// AddingBytes what the request's records add to it.
	Bytes, AddingBytes int64
}

// dayNanos is one UTC day.
const dayNanos = int64(24 * time.Hour)

// today returns how many events the log holds from midnight UTC of the day
// of now through seq. w.mu is held.
func (l *Log) today(now int64, seq uint64) (uint64, error) {
	midnight := now - now%dayNanos
	if l.w.day != midnight || l.w.dayFirst == 0 {
		first, err := l.SeqAtTime(midnight)
		if err != nil {
			return 0, err
		}
		// Events still in flight are not published yet, so the search
		// cannot see them; they are newer than everything it saw.
		l.w.day, l.w.dayFirst = midnight, first
	}
	if seq < l.w.dayFirst {
		return 0, nil
	}
	return seq - l.w.dayFirst + 1, nil
}

// bytes returns the size on disk of every segment but the active one
// (stat'ed once each: a sealed segment changes only when compacted, which
// the head's compaction count tells) plus the active segment's end. w.mu
// is held.
func (l *Log) bytes() (int64, error) {
	segs := l.segments()
	compacted := int64(l.v().head.compacted())
	var n int64
	for i, s := range segs {
		if i == len(segs)-1 {
			break
		}
		if s.size == 0 || s.sizeAt != compacted {
			size, err := statSegment(l.logDir(), s.first)
			if err != nil {
				return 0, &Error{Op: "size", Dir: l.dir, Err: err}
			}
			s.size, s.sizeAt = size, compacted
		}
		n += s.size
	}
	return n + l.w.end, nil
}

// Bytes returns the size on disk of the log's segments as of now (a
// compressed one counts its .zseg), the log's share of a storage quota. It
// takes no lock; a write in progress may or may not be counted.
func (l *Log) Bytes() (int64, error) {
	if err := l.openSegments(); err != nil {
		return 0, &Error{Op: "size", Dir: l.dir, Err: err}
	}
	var n int64
	for _, s := range l.segments() {
		size, err := statSegment(l.logDir(), s.first)
		if err != nil {
			return 0, &Error{Op: "size", Dir: l.dir, Err: err}
		}
		n += size
	}
	return n, nil
}

// EventsToday returns how many committed events were stored since midnight
// UTC.
func (l *Log) EventsToday() (uint64, error) {
	now := l.opts.Now().UnixNano()
	first, err := l.SeqAtTime(now - now%dayNanos)
	if err != nil {
		return 0, err
	}
	return l.Through() + 1 - first, nil
}

// Entities returns how many entities the log's index holds: those of
// every event published, in any process, as of its last look at the
// index. It reads one word of the entities index's header (mapped, or
// read with pread by a process that has not mapped it: a reader never
// does).
func (l *Log) Entities() (uint64, error) {
	if err := l.remapIfStale(); err != nil {
		return 0, err
	}
	v := l.v()
	if v == nil || v.ents == nil {
		return 0, ErrClosed
	}
	if v.ents.m.mapped() {
		return v.ents.used(), nil
	}
	var b [8]byte
	if _, err := v.ents.m.f.ReadAt(b[:], hixOffUsed); err != nil {
		return 0, &Error{Op: "count entities", Dir: l.dir, Err: err}
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
