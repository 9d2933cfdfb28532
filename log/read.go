package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Through returns the committed head seq: readers see events 1..Through.
func (l *Log) Through() uint64 {
	v := l.v()
	if v == nil {
		return 0
	}
	return v.head.through()
}

// Head returns the newest committed event's seq, id and time.
func (l *Log) Head() (Head, error) {
	seq := l.Through()
	if seq == 0 {
		return Head{}, nil
	}
	e, err := l.Event(seq)
	if err != nil {
		return Head{}, err
	}
	return Head{Seq: e.Seq, ID: e.ID, Time: e.Time}, nil
}

// Event returns the committed event with the given seq, or ErrNotFound.
func (l *Log) Event(seq uint64) (*Event, error) {
	if seq == 0 || seq > l.Through() {
		return nil, ErrNotFound
	}
	e, _, err := l.readSeq(seq)
	if err != nil {
		return nil, &Error{Op: "read", Dir: l.dir, Seq: seq, Err: err}
	}
	return e, nil
}

// Lookup returns the seq of the committed event with the given id, or
// ErrNotFound: the id is not on this chain.
func (l *Log) Lookup(id [32]byte) (uint64, error) {
	for attempt := 0; attempt < 2; attempt++ {
		v := l.v()
		if v == nil {
			return 0, ErrClosed
		}
		through := v.head.through()
		var found uint64
		var ferr error
		if v.head.gen() == v.gen {
			// The callback's error goes to ferr; readFind's own (a failed
			// pread) must not overwrite it.
			err := v.ids.readFind(tagID(&id), func(seq uint64) bool {
				if seq > through {
					return false
				}
				e, _, err := l.readSeq(seq)
				if err != nil {
					ferr = err
					return true
				}
				if e.ID == id {
					found = seq
					return true
				}
				return false
			})
			if ferr == nil {
				ferr = err
			}
		}
		if ferr != nil {
			return 0, &Error{Op: "lookup", Dir: l.dir, Err: ferr}
		}
		if found != 0 {
			return found, nil
		}
		// A miss may mean another process replaced the table since we
		// mapped it: map it again and look once more.
		if err := l.remapIfStale(); err != nil {
			return 0, err
		}
	}
	return 0, ErrNotFound
}

// remapIfStale maps the hash indexes again if another process replaced them.
func (l *Log) remapIfStale() error {
	v := l.v()
	if v == nil {
		return ErrClosed
	}
	if v.head.gen() == v.gen {
		return nil
	}
	l.vmu.Lock()
	defer l.vmu.Unlock()
	if v = l.v(); v == nil || v.head.gen() == v.gen {
		return nil
	}
	nv, err := mapIndexes(l.indexDir(), v.head)
	if err != nil {
		return &Error{Op: "map indexes", Dir: l.dir, Err: err}
	}
	l.setView(nv)
	return nil
}

// EntityHead returns the seq of the newest committed event of entity, or 0
// if it has none.
func (l *Log) EntityHead(entity string) (uint64, error) {
	if err := l.remapIfStale(); err != nil {
		return 0, err
	}
	v := l.v()
	through := v.head.through()
	seq, err := v.ents.readEntity(v.ents.hashString(entity))
	if err != nil {
		return 0, &Error{Op: "entity lookup", Dir: l.dir, Err: err}
	}
	// The writer may have moved the slot past what is committed: walk back
	// along the entity's chain.
	for seq > through {
		e, _, err := l.readSeq(seq)
		if err != nil {
			return 0, &Error{Op: "entity lookup", Dir: l.dir, Err: err}
		}
		seq = e.PrevInEntity
	}
	return seq, nil
}

// SeqAtTime returns the first committed seq whose time is at or after ns,
// or Through()+1 if there is none: a binary search, since time never
// decreases along the log.
func (l *Log) SeqAtTime(ns int64) (uint64, error) {
	through := l.Through()
	var ferr error
	i := sort.Search(int(through), func(i int) bool {
		if ferr != nil {
			return true
		}
		e, _, err := l.readSeq(uint64(i) + 1)
		if err != nil {
			ferr = err
			return true
		}
		return e.Time >= ns
	})
	if ferr != nil {
		return 0, &Error{Op: "time lookup", Dir: l.dir, Err: ferr}
	}
	return uint64(i) + 1, nil
}

// findSegment returns the open segment whose range may hold seq.
func (l *Log) findSegment(seq uint64) *segment {
	segs := l.segments()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].first > seq })
	if i == 0 {
		return nil
	}
	return segs[i-1]
}

// locate returns the segment holding seq and the record's offset in it,
// opening segments that other processes added since.
func (l *Log) locate(seq uint64) (*segment, int64, error) {
	for attempt := 0; ; attempt++ {
		s := l.findSegment(seq)
		if s != nil {
			if err := s.ensure(); err != nil {
				return nil, 0, err
			}
			off, err := readOffset(s, seq)
			if err == nil {
				return s, off, nil
			}
			if !errors.Is(err, io.EOF) || attempt > 0 {
				return nil, 0, err
			}
		} else if attempt > 0 {
			return nil, 0, fmt.Errorf("%w: no segment holds seq %d", ErrCorrupt, seq)
		}
		if err := l.openSegments(); err != nil {
			return nil, 0, err
		}
	}
}

// readOffset reads the offset of seq's record from s's offsets file; io.EOF
// means the file does not reach seq.
func readOffset(s *segment, seq uint64) (int64, error) {
	var b [4]byte
	if _, err := s.off.ReadAt(b[:], int64(seq-s.first)*4); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return 0, err
	}
	off := int64(binary.LittleEndian.Uint32(b[:]))
	if off < segmentHeaderLen {
		return 0, fmt.Errorf("%w: offsets index has %d for seq %d", ErrCorrupt, off, seq)
	}
	return off, nil
}

// RecordsRead returns how many records this Log has read and decoded:
// what reads cost, for metrics and for tests that hold a read to what it
// returns.
func (l *Log) RecordsRead() uint64 { return l.reads.Load() }

// readSeq reads and decodes the record of seq, checking that it is the
// record the index says it is.
func (l *Log) readSeq(seq uint64) (*Event, *segment, error) {
	l.reads.Add(1)
	s, off, err := l.locate(seq)
	if err != nil {
		return nil, nil, err
	}
	e := new(Event)
	body, _, err := readRecordAt(s.reader(), off)
	if err == nil {
		err = decodeBody(body, e)
	}
	if err != nil {
		if isTail(err) {
			// The record is indexed, so it was acknowledged: one that does
			// not decode is damage, never a torn tail.
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, nil, fmt.Errorf("seq %d at offset %d of segment %d: %w", seq, off, s.first, err)
	}
	if e.Seq != seq {
		return nil, nil, fmt.Errorf("%w: offsets index sends seq %d to seq %d", ErrCorrupt, seq, e.Seq)
	}
	return e, s, nil
}

// readRecordAt reads the framed record at off. It returns a fresh body.
func readRecordAt(f io.ReaderAt, off int64) ([]byte, int, error) {
	want := int64(1024)
	if z, ok := f.(interface{ frameEnd(int64) int64 }); ok {
		// In a .zseg the record ends with its frame: reading past it
		// would decode the next frame for nothing.
		want = max(min(want, z.frameEnd(off)-off), recordHeaderLen)
	}
	buf := make([]byte, want)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	buf = buf[:n]
	if len(buf) >= recordHeaderLen {
		if size := int(binary.LittleEndian.Uint32(buf)) + recordHeaderLen; size > len(buf) && size <= maxRecordLen+recordHeaderLen {
			big := make([]byte, size)
			n, err := f.ReadAt(big, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, 0, err
			}
			buf = big[:n]
		}
	}
	body, size, err := frame(buf)
	if err != nil {
		return nil, 0, err
	}
	return body, size, nil
}
