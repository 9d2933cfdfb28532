package log

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
)

// Proposed is one event a client asks to append.
type Proposed struct {
	Type   string
	Entity string
	Key    string // idempotency key; "" for none
	Data   []byte // compacted JSON, stored and served as it is
	Meta   []byte // compacted JSON object, or nil
	// ExpectedVersion is the version the entity must be at: 0 means it must
	// have no events yet; -1 means no expectation.
	ExpectedVersion int64

	// Hashes computed by Append before the request queues, so that the
	// hashing that does not depend on the chain runs in the callers'
	// goroutines, in parallel: the digests of data and meta, and the index
	// hashes of entity and key as of index generation gen.
	dataDigest, metaDigest [32]byte
	dataHex, metaHex       [64]byte
	entTag, entCheck       uint64
	keyTag                 uint64
	gen                    uint64
}

// hashNames computes p's index hashes, if the indexes were replaced since.
func (l *Log) hashNames(p *Proposed) {
	v := l.v()
	if v == nil || (p.entTag != 0 && p.gen == v.gen) {
		return
	}
	p.gen = v.gen
	p.entTag, p.entCheck = v.ents.hashString(p.Entity)
	if p.Key != "" {
		p.keyTag = v.keys.tagString(p.Key)
	}
}

// Request is one atomic append: all its events are stored, or none.
type Request struct {
	Events []Proposed
	// IfHead, when set, is the id the log's head must have (the zero id: the
	// log must be empty), checked in the same locked step as the write.
	IfHead *[32]byte
	// Admit, when set, is asked whether the request may be stored, under
	// the tenant lock and in the same step as the write, so that a quota
	// holds across processes: an error refuses the request (nothing of it
	// is stored) and is returned as it is.
	Admit func(Usage) error
}

// Result reports an accepted Request.
type Result struct {
	// Events has one entry per proposed event: the stored event, or, where
	// its key repeated an earlier event with the same content, that event.
	Events   []*Event
	Repeated []bool
	// Stored counts the new events.
	Stored int
	Head   Head
	// LogBytes and Entities are the log's size and its count of entities
	// after the request's group commit, when Options.Observer is set (0
	// otherwise): figures for metrics that cost nothing more to know then.
	LogBytes int64
	Entities uint64
}

// writer is the state of the prepare half of the append path. Only the
// group leader touches it, holding mu. Its head and end run ahead of the
// committed head by the groups in flight.
type writer struct {
	mu    sync.Mutex
	dirty bool // indexes changed since the last sync

	seen uint64 // head.through once everything written is published
	last Head   // the newest event written
	end  int64  // where the next record goes in the active segment

	checked time.Time // when refreshLocked last ran its full checks

	// day is the midnight (UTC, unix ns) that dayFirst belongs to: the
	// first seq stored on that day, for quotas on events per day.
	day      int64
	dayFirst uint64
}

// entState is where an entity stands: its newest event's seq and version,
// and its hash in the entity index.
type entState struct {
	seq, version uint64
	tag, check   uint64
}

// syncEvery bounds how far the indexes' synced mark may fall behind: the
// replay after a machine crash covers at most this many events. Syncing is
// dear beyond its I/O: it write-protects every mapped index page, and each
// next insert into one takes a fault, so it is done seldom.
const syncEvery = 1 << 20

// pending is one Request waiting in the append queue.
type pending struct {
	req  *Request
	res  *Result
	err  error
	wake chan bool // true: lead the next group; false: res/err are ready
}

// Append stores the request's events atomically and durably, and returns
// once they are fsynced. Concurrent appends in one process share a write
// and an fsync (group commit); each request still succeeds or fails alone.
func (l *Log) Append(req *Request) (*Result, error) {
	if len(req.Events) == 0 {
		return nil, &InvalidError{Index: 0, Field: "", Err: errors.New("no events")}
	}
	for i := range req.Events {
		p := &req.Events[i]
		if err := checkProposed(i, p); err != nil {
			return nil, err
		}
		p.dataDigest = blake3.Sum256(p.Data)
		p.metaDigest = emptyDigest
		if p.Meta != nil {
			p.metaDigest = blake3.Sum256(p.Meta)
		}
		hex.Encode(p.dataHex[:], p.dataDigest[:])
		hex.Encode(p.metaHex[:], p.metaDigest[:])
		p.entTag = 0
		l.hashNames(p)
		if v := l.v(); v != nil && v.ents.m.mapped() {
			// Touch the entity's slot here, in parallel with other
			// requests, so that the leader finds it in the cache rather
			// than taking the miss (or the page fault) on the serial path.
			v.ents.entity(p.entTag, p.entCheck)
		}
	}
	p := &pending{req: req, wake: make(chan bool, 1)}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	if l.leading {
		l.qmu.Unlock()
		if lead := <-p.wake; !lead {
			return p.res, p.err
		}
	} else {
		l.leading = true
		l.qmu.Unlock()
	}
	// This goroutine leads: prepare and write the next group, itself
	// included, hand the lead to the first request still queued, then
	// wait for the disk and publish.
	l.qmu.Lock()
	group := l.takeGroup()
	l.qmu.Unlock()
	t := l.prepare(group)
	l.qmu.Lock()
	if len(l.queue) > 0 {
		l.queue[0].wake <- true
	} else {
		l.leading = false
	}
	l.qmu.Unlock()
	if t != nil {
		l.finish(t, group)
	}
	return p.res, p.err
}

// yieldWait bounds how long a pipeline that let go of the tenant lock waits
// for the process that asked for it to take it.
const yieldWait = 50 * time.Millisecond

// yieldLock lets another process have the tenant lock when it waits for it:
// under steady load the pipeline would otherwise hold the lock for ever
// (flock is not fair). It lets the groups in flight finish — the last
// releases the lock — and waits until the waiter has taken it. w.mu is
// held.
func (l *Log) yieldLock() {
	head := l.v().head
	l.pipe.mu.Lock()
	held := l.pipe.held
	l.pipe.mu.Unlock()
	if !held || head.waiters() <= 0 {
		return
	}
	l.drain()
	deadline := time.Now().Add(yieldWait)
	for head.waiters() > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
	if head.waiters() > 0 {
		// Nobody came: a process counted itself in and died waiting.
		head.clearWaiters()
	}
}

// groupEvents caps the events of one group commit. Smaller groups keep the
// pipeline full: while one waits for its fsync the next is prepared.
const groupEvents = 4096

// takeGroup takes the requests of the next group off the queue: at least
// one, then more while they fit under groupEvents. qmu is held.
func (l *Log) takeGroup() []*pending {
	n, events := 1, len(l.queue[0].req.Events)
	for n < len(l.queue) && events+len(l.queue[n].req.Events) <= groupEvents {
		events += len(l.queue[n].req.Events)
		n++
	}
	// Copied out and cleared: slots left in the queue's backing array
	// would keep the requests, and all their events' data, alive.
	group := append([]*pending(nil), l.queue[:n]...)
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	return group
}

func checkProposed(i int, p *Proposed) error {
	if err := ValidateType(p.Type); err != nil {
		return &InvalidError{Index: i, Field: "type", Err: err}
	}
	if err := ValidateEntity(p.Entity); err != nil {
		return &InvalidError{Index: i, Field: "entity", Err: err}
	}
	if p.Key != "" {
		if err := ValidateKey(p.Key); err != nil {
			return &InvalidError{Index: i, Field: "key", Err: err}
		}
	}
	if len(p.Data) == 0 {
		return &InvalidError{Index: i, Field: "data", Err: errors.New("is empty (send null for no data)")}
	}
	if p.Meta != nil && (len(p.Meta) < 2 || p.Meta[0] != '{') {
		return &InvalidError{Index: i, Field: "meta", Err: errors.New("must be a JSON object")}
	}
	if p.ExpectedVersion < -1 {
		return &InvalidError{Index: i, Field: "expected_version", Err: errors.New("must be 0 or more")}
	}
	if len(p.Data)+len(p.Meta) > maxRecordLen-4096 {
		return &InvalidError{Index: i, Field: "data", Err: ErrTooLarge}
	}
	return nil
}

// prepare checks and writes one group under w.mu and returns its ticket
// for finish; it returns nil only when it woke every request itself
// (nothing entered the pipeline).
func (l *Log) prepare(queued []*pending) *ticket {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	failAll := func(err error) *ticket {
		for _, q := range queued {
			q.res, q.err = nil, err
			q.wake <- false
		}
		return nil
	}
	if l.closed.Load() {
		return failAll(ErrClosed)
	}
	if err := l.pipe.failed(); err != nil {
		return failAll(&Error{Op: "append", Dir: l.dir, Err: ErrFailed, Hint: err.Error()})
	}
	l.yieldLock()
	t, held := l.pipe.begin()
	if !held {
		// Nothing in flight holds the tenant lock: take it, and look at
		// what other processes did since.
		if err := l.lockTenant(); err != nil {
			t.err = &Error{Op: "append", Dir: l.dir, Err: err}
			return t
		}
		l.pipe.locked()
		if err := l.refreshLocked(); err != nil {
			t.err = err
			return t
		}
	}
	if err := l.writable(); err != nil {
		t.err = l.refuse("map indexes", err)
		return t
	}
	g := &group{l: l, seq: l.w.last.Seq, prev: l.w.last.ID, time: l.w.last.Time,
		ents: map[string]entState{}, keys: map[string]*Event{}, ahead: l.pipe.inFlight(t)}
	for _, q := range queued {
		q.res, q.err = g.add(q.req)
	}
	if len(g.events) == 0 {
		return t
	}
	if err := l.write(t, g); err != nil {
		t.err = err
		return t
	}
	t.g = g
	return t
}

// group is the state of one group commit: events accepted so far and the
// entity and key states they produce.
type group struct {
	l      *Log
	seq    uint64
	prev   [32]byte
	time   int64
	events []*Event
	ents   map[string]entState
	keys   map[string]*Event
	size   int
	// ahead are the groups written before this one and not yet published,
	// newest first: the hash indexes do not have their states yet.
	ahead []*group
	// logBytes and entities: Result.LogBytes and Result.Entities.
	logBytes int64
	entities uint64
}

// add checks one request against the log and the group so far; the group
// keeps its changes only if the whole request is accepted.
func (g *group) add(req *Request) (*Result, error) {
	if req.IfHead != nil && *req.IfHead != g.prev {
		return nil, &HeadConflictError{Expected: *req.IfHead, Current: Head{Seq: g.seq, ID: g.prev, Time: g.time}}
	}
	now := g.l.opts.Now().UnixNano()
	if now < g.time {
		now = g.time
	}
	var timeText [30]byte
	AppendTime(timeText[:0], now)
	res := &Result{Events: make([]*Event, len(req.Events)), Repeated: make([]bool, len(req.Events))}
	stored := make([]Event, len(req.Events)) // one allocation for the request's events
	seq, prev := g.seq, g.prev
	var prevHex [64]byte
	hex.Encode(prevHex[:], prev[:])
	// The request's states go straight into the group's maps; if the
	// request fails, the undo list puts back what it changed.
	type undo struct {
		name string
		st   entState
		had  bool
	}
	var undone []undo
	var keyed []string
	fail := func(err error) (*Result, error) {
		for i := len(undone) - 1; i >= 0; i-- {
			if u := undone[i]; u.had {
				g.ents[u.name] = u.st
			} else {
				delete(g.ents, u.name)
			}
		}
		for _, k := range keyed {
			delete(g.keys, k)
		}
		return nil, err
	}
	var fresh []*Event
	size := 0
	for i := range req.Events {
		p := &req.Events[i]
		g.l.hashNames(p) // no-op unless the indexes were replaced meanwhile
		if p.Key != "" {
			orig, err := g.keyed(p)
			if err != nil {
				return fail(err)
			}
			if orig != nil {
				if !sameContent(orig, p) {
					return fail(&KeyConflictError{Index: i, Key: p.Key, Existing: orig})
				}
				res.Events[i], res.Repeated[i] = orig, true
				continue
			}
		}
		st, had := g.ents[p.Entity]
		if !had {
			st = g.entity(p)
		}
		if p.ExpectedVersion >= 0 && uint64(p.ExpectedVersion) != st.version {
			return fail(&VersionConflictError{Index: i, Entity: p.Entity, Expected: uint64(p.ExpectedVersion), Current: st.version})
		}
		seq++
		e := &stored[i]
		*e = Event{Prev: prev, Seq: seq, Time: now, Type: p.Type, Entity: p.Entity,
			Version: st.version + 1, Key: p.Key, Data: p.Data, Meta: p.Meta, PrevInEntity: st.seq}
		e.ID = computeIDHex(e, &timeText, &prevHex, &p.dataHex, &p.metaHex)
		hex.Encode(prevHex[:], e.ID[:])
		e.keyTag = p.keyTag
		prev = e.ID
		undone = append(undone, undo{p.Entity, st, had})
		g.ents[p.Entity] = entState{seq: seq, version: e.Version, tag: st.tag, check: st.check}
		if p.Key != "" {
			g.keys[p.Key] = e
			keyed = append(keyed, p.Key)
		}
		res.Events[i] = e
		fresh = append(fresh, e)
		size += recordSize(e)
	}
	if req.Admit != nil && len(fresh) > 0 {
		if err := g.admit(req, g.seq, len(fresh), size); err != nil {
			return fail(err)
		}
	}
	if g.size+size > maxGroupBytes && len(g.events) > 0 {
		return fail(&Error{Op: "append", Dir: g.l.dir, Err: ErrLockTimeout, Hint: "too much queued at once"})
	}
	g.seq, g.prev = seq, prev
	if len(fresh) > 0 {
		g.time = now
	}
	for _, e := range fresh[:max(len(fresh), 1)-1] {
		e.more = true // all stored or none: see walkTail
	}
	g.events = append(g.events, fresh...)
	g.size += size
	res.Stored = len(fresh)
	return res, nil
}

// admit asks req.Admit about a request that would store adding events of
// size bytes after seq.
func (g *group) admit(req *Request, seq uint64, adding, size int) error {
	l := g.l
	var u Usage
	var err error
	u.Adding = adding
	if u.Today, err = l.today(g.l.opts.Now().UnixNano(), seq); err != nil {
		return err
	}
	if u.Bytes, err = l.bytes(); err != nil {
		return err
	}
	// Groups written but not yet published are in w.end already; this
	// group's earlier requests are not.
	u.Bytes += int64(g.size)
	u.AddingBytes = int64(size)
	return req.Admit(u)
}

// maxGroupBytes keeps one group's records well inside a segment's 32-bit
// offsets; requests past it wait for the next group.
const maxGroupBytes = 1 << 30

func sameContent(e *Event, p *Proposed) bool {
	return e.Type == p.Type && e.Entity == p.Entity && bytes.Equal(e.Data, p.Data) && bytes.Equal(e.Meta, p.Meta)
}

// keyed returns the event that already used p's key, or nil.
func (g *group) keyed(p *Proposed) (*Event, error) {
	if e := g.keys[p.Key]; e != nil {
		return e, nil
	}
	for _, a := range g.ahead {
		if e := a.keys[p.Key]; e != nil {
			return e, nil
		}
	}
	l := g.l
	var found *Event
	var ferr error
	l.v().keys.find(p.keyTag, func(seq uint64) bool {
		e, _, err := l.readSeq(seq)
		if err != nil {
			ferr = err
			return true
		}
		if e.Key == p.Key {
			found = e
			return true
		}
		return false
	})
	if ferr != nil {
		return nil, &Error{Op: "key lookup", Dir: l.dir, Err: ferr}
	}
	return found, nil
}

// entity returns where p's entity stands before this request.
func (g *group) entity(p *Proposed) entState {
	if st, ok := g.ents[p.Entity]; ok {
		return st
	}
	for _, a := range g.ahead {
		if st, ok := a.ents[p.Entity]; ok {
			return st
		}
	}
	st := entState{tag: p.entTag, check: p.entCheck}
	st.seq, st.version = g.l.v().ents.entity(st.tag, st.check)
	return st
}

// write puts the group's records in the active segment (rolling to a new
// one first if it is full) and fills in t for finish, which fsyncs and
// publishes. The tenant lock is held.
//
// Space is reserved before the first byte is written — index room, the
// offsets, and the segment's blocks — so a full disk fails the append
// cleanly, with nothing written and the log still usable.
func (l *Log) write(t *ticket, g *group) error {
	bp := writeBufs.Get().(*[]byte)
	defer putWriteBuf(bp)
	buf := (*bp)[:0]
	if cap(buf) < g.size {
		buf = make([]byte, 0, g.size) // once, rather than doubling through copies
	}
	for _, e := range g.events {
		buf = appendRecord(buf, e)
	}
	*bp = buf
	first := g.events[0].Seq
	segs := l.segments()
	if len(segs) == 0 || l.w.end > segmentHeaderLen && l.w.end+int64(len(buf)) > l.opts.SegmentSize {
		if err := createSegment(l.logDir(), segmentHeader{First: first, Prev: g.events[0].Prev}, l.opts.NoSync); err != nil {
			return l.refuse("start segment", err)
		}
		if err := l.openSegments(); err != nil {
			return l.refuse("start segment", err)
		}
		segs = l.segments()
		l.w.end = segmentHeaderLen
	}
	s := segs[len(segs)-1]
	if err := l.reserveIndexes(g); err != nil {
		return l.refuse("grow indexes", err)
	}
	offsAt := int64(first-s.first) * 4
	if err := fileutil.Preallocate(s.off, offsAt, int64(4*len(g.events))); err != nil {
		return l.refuse("reserve offsets", err)
	}
	sf := s.wfile()
	if sf == nil {
		// Only a sealed segment is compressed, and a later one exists.
		return l.refuse("write", fmt.Errorf("%w: the last segment %d is compressed", ErrCorrupt, s.first))
	}
	if err := fileutil.Preallocate(sf, l.w.end, int64(len(buf))); err != nil {
		return l.refuse("reserve segment space", err)
	}
	if _, err := fileutil.WriteAt(sf, buf, l.w.end); err != nil {
		fileutil.Truncate(sf, l.w.end) // best effort: leave no partial records
		return l.fail("write", err)
	}
	s.written.Store(t.n)
	t.seg, t.offsAt, t.offs = s, offsAt, offsetsOf(g, l.w.end)
	l.w.end += int64(len(buf))
	l.w.dirty = true
	if o := l.opts.Observer; o != nil {
		o.Group(len(g.events))
		if n, err := l.bytes(); err == nil {
			g.logBytes = n
		}
		g.entities = l.v().ents.used()
	}
	if !sameBoot(l.v().head) {
		// refreshLocked saw the indexes synced (or recovered them), so they
		// are whole as of this boot.
		l.v().head.setBoot(bootID())
	}
	l.w.seen = g.seq
	l.w.last = Head{Seq: g.seq, ID: g.prev, Time: g.time}
	if g.seq-l.v().head.synced() >= syncEvery {
		if err := l.syncIndexesLocked(); err != nil {
			return l.fail("sync indexes", err)
		}
	}
	return nil
}

// writeBufs recycles the buffers records are encoded into: a busy server
// would otherwise allocate (and zero) megabytes per group commit.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledWrite is the largest buffer kept in writeBufs: the buffer of an
// exceptional group (a batch of tens of MB) is left to the collector rather
// than kept resident for ever.
const maxPooledWrite = 4 << 20

func putWriteBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledWrite {
		writeBufs.Put(bp)
	}
}

// reserveIndexes makes room in the hash indexes for the group and for the
// groups ahead of it, which are not in them yet.
func (l *Log) reserveIndexes(g *group) error {
	var n counts
	for _, x := range append([]*group{g}, g.ahead...) {
		m := need(x.events, false)
		m[kindEntities] = uint64(len(x.ents))
		for k := range n {
			n[k] += m[k]
		}
	}
	return l.reserve(n)
}

// indexEvents adds the group's events to the hash indexes, which
// reserveIndexes made room in.
func (l *Log) indexEvents(g *group) {
	v := l.v()
	for _, e := range g.events {
		v.ids.insert(tagID(&e.ID), e.Seq)
		if e.Key != "" {
			v.keys.insert(e.keyTag, e.Seq)
		}
		if checkpointed(e.Version) {
			v.vers.insert(v.vers.versionTag(e.Entity, e.Version), e.Seq)
		}
	}
	for _, st := range g.ents {
		v.ents.putEntity(st.tag, st.check, st.seq, st.version, false)
	}
}

// reserve grows the hash indexes that need room; a grown table replaces the
// old one in a new view, and the head's gen tells other processes. The
// tenant lock is held; imu keeps a publish from inserting into a table
// while it is copied.
func (l *Log) reserve(n counts) error {
	if roomFor(l.v(), n) {
		// Room enough, and used only grows by what the counts already
		// include: no need to stop a publish with imu.
		return nil
	}
	l.imu.Lock()
	defer l.imu.Unlock()
	nv, _, err := growTables(l.v(), n, false)
	if nv != l.v() {
		l.replaceIndexes(nv) // the old tables are retired with the view
	}
	return err
}

func roomFor(v *view, n counts) bool {
	for _, x := range v.tables() {
		if x.used()+n[x.kind] > x.slots()/2 {
			return false
		}
	}
	return true
}

// growTables returns v with every table that lacks room for the counts
// replaced by a bigger one (the same v if none did), and the tables it
// replaced. With release the old tables are unmapped before their bigger
// copies are made (hashIndex.grow): only for tables nobody else uses.
func growTables(v *view, n counts, release bool) (*view, []*hashIndex, error) {
	var old []*hashIndex
	for _, x := range v.tables() {
		if x.used()+n[x.kind] <= x.slots()/2 {
			continue
		}
		y, err := x.grow(n[x.kind], release)
		if err != nil {
			return v, old, err
		}
		v = v.with(y)
		old = append(old, x)
	}
	return v, old, nil
}

// replaceIndexes makes nv, whose hash indexes are new files, the view, and
// bumps the head's gen so that other processes map them too.
func (l *Log) replaceIndexes(nv *view) {
	nv.head.bumpGen()
	nv.gen = nv.head.gen()
	l.vmu.Lock()
	l.setView(nv)
	l.vmu.Unlock()
}

// refuse reports an append that failed before writing anything: the log
// stays usable.
func (l *Log) refuse(op string, err error) error {
	if fileutil.IsNoSpace(err) {
		err = fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return &Error{Op: "append", Dir: l.dir, Err: fmt.Errorf("%s: %w", op, err)}
}

// fail marks the log broken after a failed write, fsync or index update:
// from now on it refuses appends until reopened, because the state of the
// file (and of the kernel's page cache) is no longer known.
func (l *Log) fail(op string, err error) error {
	l.pipe.mu.Lock()
	if l.pipe.broken == nil {
		l.pipe.broken = fmt.Errorf("%s: %w", op, err)
	}
	l.pipe.mu.Unlock()
	if fileutil.IsNoSpace(err) {
		err = fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return &Error{Op: "append", Dir: l.dir, Err: err}
}

// removeTemps deletes *.tmp files left by a crash in the middle of an atomic
// file write. The tenant lock is held, so no one is writing one now.
func removeTemps(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, m := range matches {
		if strings.HasSuffix(m, zsegTmpExt) {
			continue // a compaction's, maybe running now: Compact removes it under its lock
		}
		os.Remove(m)
	}
}
