package api

import (
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"strata/log"
)

// The hub is a long-running process's live fan-out of one tenant's new
// events to its streams (GET /stream, consumers' streams): ONE tail reader
// per open tenant with subscribers, however many there are. It promises:
//
//   - every event committed after the hub started is put in a ring of
//     recent events, in seq order, each encoded once (JSON, and the
//     CloudEvent while a subscriber wants that format) and shared by every
//     subscriber — a stream copies bytes, it encodes nothing;
//   - subscribers read the ring at their own pace, without locks: a slot
//     holds an event until a later one takes its place (or the ring's byte
//     bound evicts it); a subscriber that finds its next seq gone reads
//     the log from disk instead, in big batches, until it is back in the
//     ring. Writers never wait for subscribers, and subscribers never wait
//     for each other;
//   - the tail reader is woken at once by this process's appends (the
//     tenant's tailSignal, from Handler.commit) and looks at the log's
//     mapped head every hubPoll for other processes' (CGI, the CLI,
//     sibling FastCGI processes); it runs while the tenant has subscribers
//     and stops with the last of them, or when the tenant closes.
//
// A subscriber holds no goroutine and no buffer of its own in the hub: a
// pointer to the ring and its cursor (a seq). A plain SSE stream of the
// standalone server, once caught up, even gives its request's goroutine
// back and waits here as a struct (park.go).

// Bounds of a hub's ring: the events it holds and their bytes (a few
// large events must not pin hundreds of megabytes).
const (
	hubSlots = 4096 // a power of two
	hubBytes = 16 << 20
)

// hubPoll is how often the tail reader looks at the shared head for other
// processes' appends: one atomic load of a mapped file.
const hubPoll = 5 * time.Millisecond

// Waking every subscriber costs each a turn on a CPU and a write to its
// client: measured on 2 cores, about 10 µs of the server's CPU (the
// loopback TCP path is most of it) and as much again for its reader. A
// thousand subscribers woken for every one of thousands of appends a
// second would take the CPU from the writers. So the tail reader
// publishes at most once per gap, a time per subscriber (at most
// hubMaxGap): an event after a quiet spell goes out at once; while the
// appends come one a publish apart, the gap is hubGapPerSub a subscriber
// (appends 20 ms apart reach 1,000 subscribers each at once); once they
// come faster (the last publish carried more than one event), it is
// hubGapPerSubBusy, and each wake-up carries what it gathered. At 15 µs
// a subscriber, a steady flow's fan-out still took two thirds of a core
// of the server; at 50 µs it takes about a third less CPU an append,
// for a delivery latency of up to hubMaxGap under that flow.
const (
	hubGapPerSub     = 15 * time.Microsecond
	hubGapPerSubBusy = 50 * time.Microsecond
	hubMaxGap        = 50 * time.Millisecond
)

// hubEvent is one event of the ring, immutable once published.
type hubEvent struct {
	seq         uint64
	time        int64
	id          string // 64 hex
	typ, entity string
	json        []byte // as GET /events serves it
	cloudEvent  []byte // nil when no subscriber wanted CloudEvents as it was read
	bytes       int    // what it holds, for the ring's byte bound
}

// ring is one run of the tail reader: what it read, and where it is.
type ring struct {
	slots [hubSlots]atomic.Pointer[hubEvent]
	// last is the newest seq published: every event from the ring's start
	// through last is, or was, in it.
	last atomic.Uint64
	// published wakes subscribers after last moves, or after a read of
	// the log failed: failed then sends them to the log themselves, where
	// they meet the error and end their streams rather than wait for
	// events the tail reader cannot read.
	published signal
	failed    atomic.Bool
	stop      chan struct{}
	done      chan struct{}
}

// get returns the event of seq if the ring still holds it.
func (r *ring) get(seq uint64) *hubEvent {
	e := r.slots[seq&(hubSlots-1)].Load()
	if e == nil || e.seq != seq {
		return nil
	}
	return e
}

// hub is a tenant's fan-out (a zero hub works; CGI never starts one).
type hub struct {
	mu     sync.Mutex
	subs   int   // subscribers; the ring runs while there are any
	cloud  int   // subscribers that want CloudEvents
	cur    *ring // nil while no subscriber
	closed bool  // the tenant closed: no new run
	// nsubs mirrors subs for the tail reader's gap.
	nsubs atomic.Int64
	// parked are the streams waiting without a goroutine (park.go);
	// parkedWG counts them, for close.
	parked   map[*streamer]struct{}
	parkedWG sync.WaitGroup
	// closing mirrors closed for parked streams: they end.
	closing atomic.Bool
	// cloudWanted mirrors cloud > 0 for the tail reader.
	cloudWanted atomic.Bool
}

// subscribe joins the tenant's fan-out, starting its tail reader if it is
// the first subscriber; nil when the tenant is closing. unsubscribe must
// follow.
// drain and gone are the server's and the tenant's stop signals, which
// the tail reader passes on to parked streams.
func (hb *hub) subscribe(l *log.Log, sig *tailSignal, cloud bool, drain, gone <-chan struct{}) *ring {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.closed {
		return nil
	}
	hb.subs++
	hb.nsubs.Store(int64(hb.subs))
	if cloud {
		hb.cloud++
		hb.cloudWanted.Store(true)
	}
	if hb.cur == nil {
		r := &ring{stop: make(chan struct{}), done: make(chan struct{})}
		r.last.Store(l.Through())
		hb.cur = r
		go hb.run(r, l, sig, drain, gone)
	}
	return hb.cur
}

// unsubscribe leaves the fan-out; the last subscriber stops the tail
// reader (without waiting for it: it only reads).
func (hb *hub) unsubscribe(cloud bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.subs--
	hb.nsubs.Store(int64(hb.subs))
	if cloud {
		hb.cloud--
		hb.cloudWanted.Store(hb.cloud > 0)
	}
	if hb.subs == 0 && hb.cur != nil {
		close(hb.cur.stop)
		hb.cur = nil
	}
}

// close stops the tail reader for good and waits for it: the tenant's log
// is about to close.
func (hb *hub) close() {
	hb.mu.Lock()
	hb.closed = true
	hb.closing.Store(true)
	hb.wakeParkedLocked(false) // they see the tenant gone and end
	hb.mu.Unlock()
	hb.parkedWG.Wait()
	hb.mu.Lock()
	r := hb.cur
	hb.cur = nil
	if r != nil {
		close(r.stop)
	}
	hb.mu.Unlock()
	if r != nil {
		<-r.done
	}
}

// run is the tail reader: it reads what is committed past the ring's last
// into the ring, whenever woken or polled, until stopped.
func (hb *hub) run(r *ring, l *log.Log, sig *tailSignal, drain, gone <-chan struct{}) {
	defer close(r.done)
	tick := time.NewTicker(hubPoll)
	defer tick.Stop()
	beat := time.NewTicker(parkTick)
	defer beat.Stop()
	var tr tailRead
	tr.oldest = r.last.Load() + 1
	var published time.Time
	var lastBatch uint64 // events the last publish carried
	for {
		woke := sig.wait()
		if now := l.Through(); now > r.last.Load() {
			per := hubGapPerSub
			if lastBatch > 1 {
				per = hubGapPerSubBusy
			}
			gap := min(time.Duration(hb.nsubs.Load())*per, hubMaxGap)
			if wait := time.Until(published.Add(gap)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-r.stop:
					t.Stop()
					return
				case <-t.C:
				}
				now = l.Through()
			}
			before := r.last.Load()
			hb.read(r, l, now, &tr)
			published = time.Now()
			lastBatch = r.last.Load() - before
		}
		select {
		case <-r.stop:
			return
		case <-woke:
		case <-tick.C:
		case now := <-beat.C:
			hb.tickParked(now)
		case <-drain:
			drain = nil
			hb.wakeParked(false)
		case <-gone:
			gone = nil
			hb.wakeParked(false)
		}
	}
}

// tailRead is the tail reader's own state between reads.
type tailRead struct {
	held    int    // bytes of the events in the ring
	oldest  uint64 // no event before it is in the ring
	scratch []byte
}

// read puts the events after r's last through now in the ring and
// publishes them. A burst larger than the ring is read from its last
// hubSlots events only: subscribers behind that read the log themselves.
func (hb *hub) read(r *ring, l *log.Log, now uint64, tr *tailRead) {
	from := r.last.Load() + 1
	if now-from >= hubSlots {
		from = now - hubSlots + 1
	}
	cloud := hb.cloudWanted.Load()
	it := l.Scan(from, now)
	last := from - 1
	for it.Next() {
		e := it.Event()
		he := &hubEvent{seq: e.Seq, time: e.Time, id: hex.EncodeToString(e.ID[:]), typ: e.Type, entity: e.Entity}
		tr.scratch = e.AppendJSON(tr.scratch[:0])
		he.json = append([]byte(nil), tr.scratch...)
		if cloud {
			tr.scratch = appendEncoded(tr.scratch[:0], e, formatCloudEvents)
			he.cloudEvent = append([]byte(nil), tr.scratch...)
		}
		he.bytes = len(he.json) + len(he.cloudEvent) + len(he.typ) + len(he.entity) + 200
		slot := &r.slots[e.Seq&(hubSlots-1)]
		if old := slot.Swap(he); old != nil {
			tr.held -= old.bytes
		}
		tr.held += he.bytes
		if e.Seq >= hubSlots {
			tr.oldest = max(tr.oldest, e.Seq-hubSlots+1)
		}
		// Past the byte bound, the oldest events go first (their slots
		// emptied; a subscriber that wanted one reads it from disk).
		for ; tr.held > hubBytes && tr.oldest < e.Seq; tr.oldest++ {
			slot := &r.slots[tr.oldest&(hubSlots-1)]
			if old := slot.Load(); old != nil && old.seq == tr.oldest {
				slot.Store(nil)
				tr.held -= old.bytes
			}
		}
		last = e.Seq
	}
	if cap(tr.scratch) > 1<<20 {
		tr.scratch = nil // one huge event does not stay pinned
	}
	// A read error (damage) leaves last where it got to; the next wake
	// tries again, and subscribers, told, read the log themselves.
	r.failed.Store(it.Err() != nil)
	if last >= from {
		r.last.Store(last)
	}
	if last >= from || r.failed.Load() {
		r.published.fire()
		hb.wakeParked(false)
	}
}

// signal is tailSignal without a lock: a thousand subscribers woken at
// once take the next channel with one atomic load each, not in turn
// through a mutex.
type signal struct {
	ch atomic.Pointer[chan struct{}]
}

// wait returns a channel closed by the next fire.
func (s *signal) wait() <-chan struct{} {
	if p := s.ch.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{})
	s.ch.CompareAndSwap(nil, &ch)
	return *s.ch.Load()
}

// fire wakes every waiter.
func (s *signal) fire() {
	ch := make(chan struct{})
	if old := s.ch.Swap(&ch); old != nil {
		close(*old)
	}
}
