package log

import (
	"encoding/binary"
	"sync"
	"time"

	"strata/internal/fileutil"
)

// The append pipeline. A group commit has two halves:
//
//  1. prepare (one leader at a time, holding w.mu): check the requests,
//     chain and encode the events, write them to the segment;
//  2. finish (outside w.mu): fsync, then publish — offsets, hash indexes,
//     and last the committed head — strictly in ticket order.
//
// As soon as a leader has written its group it hands the lead on, so the
// next group is prepared and written while this one waits for the disk.
// Groups written but not yet published are "in flight": the tenant flock is
// held from the first prepare until the last of them is published, and the
// next prepare sees their entity and key states through the in-flight list
// (the hash indexes do not have them yet).
type pipeline struct {
	mu        sync.Mutex
	cond      sync.Cond // signalled when published or inflight change
	inflight  []*ticket // written or being written, not yet published
	issued    uint64    // tickets handed out
	published uint64    // last ticket published
	held      bool      // this process holds the tenant flock
	broken    error     // set by a failed write or fsync: refuse appends
}

// ticket is one prepared group on its way to being published.
type ticket struct {
	n      uint64 // position in publication order
	g      *group // nil: nothing to write (every request failed or repeated)
	seg    *segment
	offsAt int64 // where its offsets go in seg's offsets file
	offs   []byte
	err    error // set by prepare: the whole group failed
}

// failed returns the error that broke the log, if any.
func (p *pipeline) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.broken
}

// begin registers a ticket and reports whether the tenant flock is held; if
// not, the caller must take it (and note it with locked) and refresh.
func (p *pipeline) begin() (t *ticket, held bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issued++
	t = &ticket{n: p.issued}
	p.inflight = append(p.inflight, t)
	return t, p.held
}

func (p *pipeline) locked() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// inFlight returns the groups ahead of t that are written but unpublished,
// newest first: their states shadow the hash indexes.
func (p *pipeline) inFlight(t *ticket) []*group {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gs []*group
	for i := len(p.inflight) - 1; i >= 0; i-- {
		if q := p.inflight[i]; q != t && q.g != nil {
			gs = append(gs, q.g)
		}
	}
	return gs
}

// finish fsyncs t's group, waits for its turn, publishes it and wakes its
// requests. The last ticket out releases the tenant flock.
func (l *Log) finish(t *ticket, queued []*pending) {
	err := t.err
	if err == nil && t.g != nil && !l.opts.NoSync {
		err = t.seg.sync(t.n, l.opts.Observer)
		if err != nil {
			err = l.fail("fsync", err)
		}
	}
	p := &l.pipe
	p.mu.Lock()
	for p.published != t.n-1 {
		p.cond.Wait()
	}
	if err == nil && p.broken != nil {
		// An earlier group's fsync failed: this one was written after it
		// and cannot be trusted either.
		err = &Error{Op: "append", Dir: l.dir, Err: ErrFailed, Hint: p.broken.Error()}
	}
	p.mu.Unlock()
	if err == nil && t.g != nil {
		err = l.publish(t)
	}
	p.mu.Lock()
	p.published = t.n
	// t is the oldest in flight. Clear its slot: the backing array would
	// otherwise keep the group, and every event of it, alive until the
	// array is reallocated.
	p.inflight[0] = nil
	p.inflight = p.inflight[1:]
	if len(p.inflight) == 0 && p.held {
		l.lk.unlock()
		p.held = false
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	var head Head
	if t.g != nil {
		head = Head{Seq: t.g.seq, ID: t.g.prev, Time: t.g.time}
	}
	for _, q := range queued {
		if err != nil && q.err == nil {
			q.res, q.err = nil, err
		}
		if q.res != nil && t.g != nil {
			q.res.Head = head
			q.res.LogBytes, q.res.Entities = t.g.logBytes, t.g.entities
		}
		q.wake <- false
	}
}

// publish makes a durable group visible: offsets, hash entries, and then
// the committed head, which readers (in every process) go by.
func (l *Log) publish(t *ticket) error {
	if _, err := fileutil.WriteAt(t.seg.off, t.offs, t.offsAt); err != nil {
		return l.fail("index", err)
	}
	l.imu.Lock()
	l.indexEvents(t.g)
	l.v().head.setThrough(t.g.seq)
	l.imu.Unlock()
	return nil
}

// sync makes every write to the segment up to ticket n durable, sharing one
// fdatasync among the tickets that wait for it together.
func (s *segment) sync(n uint64, o Observer) error {
	if s.synced.Load() >= n {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= n {
		return nil
	}
	upTo := s.written.Load()
	t0 := time.Now()
	f := s.wfile()
	if f == nil {
		return nil // compressed, so sealed and durable long ago
	}
	if err := fileutil.Fdatasync(f); err != nil {
		return err
	}
	if o != nil {
		o.Synced(time.Since(t0))
	}
	s.synced.Store(upTo)
	return nil
}

// offsetsOf encodes the offsets of g's records written at pos.
func offsetsOf(g *group, pos int64) []byte {
	offs := make([]byte, 4*len(g.events))
	for i, e := range g.events {
		binary.LittleEndian.PutUint32(offs[4*i:], uint32(pos))
		pos += int64(recordSize(e))
	}
	return offs
}

// Failed returns why the log refuses appends (a write, fsync or index
// update failed: reopen it), or nil while it takes them.
func (l *Log) Failed() error { return l.pipe.failed() }
