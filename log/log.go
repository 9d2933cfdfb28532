package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"strata/internal/fileutil"
)

// Directory and file names under a tenant directory.
const (
	indexDirName = "index"
	offsetsExt   = ".off"
)

// Defaults and limits for Options.
const (
	DefaultSegmentSize = 64 << 20
	DefaultLockTimeout = 10 * time.Second
	// MaxSegmentSize is the largest SegmentSize: records are found by
	// 32-bit offsets within their segment (FORMAT.md, "Segment files").
	MaxSegmentSize = 1<<32 - 1
)

// Options tune a Log. The zero value is ready to use.
type Options struct {
	// SegmentSize is the size at which the active segment is sealed and a
	// new one started. A single batch never spans two segments, so a
	// segment may exceed it by one batch. At most MaxSegmentSize: Open
	// refuses more.
	SegmentSize int64
	// LockTimeout bounds the wait for the tenant lock.
	LockTimeout time.Duration
	// NoSync skips fsync. UNSAFE: acknowledged events can be lost in a
	// machine crash. For tests and benchmarks only.
	NoSync bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SyncOnClose puts the indexes on disk when the Log is closed, so that
	// a machine crash afterwards costs no replay at the next open. Right
	// for a long-running process; a CGI process, which closes after every
	// request, leaves it off and relies on the periodic sync.
	SyncOnClose bool
	// Observer, when set, is told of the log's work (metrics).
	Observer Observer
	// RebuildProgress, when set, is called as a rebuild of the indexes
	// (Reindex, or recovery at Open) goes, every buildChunk events and at
	// its end, with the events indexed and the log's head: for a bar.
	RebuildProgress func(done, total uint64)
}

// Observer is told of a log's work as it happens; its methods must be
// cheap, and cannot fail the work.
type Observer interface {
	// Synced: one fdatasync of a segment took d.
	Synced(d time.Duration)
	// Group: one group commit wrote n events.
	Group(n int)
	// LockWaited: the tenant lock was held by another process, and taking
	// it took d.
	LockWaited(d time.Duration)
}

func (o *Options) fill() {
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Head is the newest committed event of a log. Seq 0 means the log is empty.
type Head struct {
	Seq  uint64
	ID   [32]byte
	Time int64
}

// Log is one tenant's event log. It is safe for concurrent use by many
// goroutines, and many processes may open the same directory at once.
type Log struct {
	dir  string
	opts Options
	lk   *fileLock

	// The append queue: the first appender to find no leader leads a
	// group and writes everything queued (group commit).
	qmu     sync.Mutex
	queue   []*pending
	leading bool

	// w is the writer's state; only the group leader touches it.
	w writer
	// pipe orders the groups between their write and their publication.
	pipe pipeline
	// imu keeps hash-index inserts (publish) and table growth (prepare)
	// apart.
	imu sync.Mutex

	// segs is the list of open segments, replaced whole (copy on write) by
	// openSegments under segMu, so readers load it without locking.
	segs  atomic.Pointer[[]*segment]
	segMu sync.Mutex
	// retiredSegs are segments replaced by reopenSegments, under segMu:
	// their files stay open until Close, for the reads still using them.
	retiredSegs []*segment
	// retiredFiles are .seg files replaced by their .zseg (compaction.go),
	// under segMu, closed retireGrace later or at Close.
	retiredFiles []*segFile
	// compactSeen is the head's compaction count as this Log last acted
	// on it.
	compactSeen atomic.Uint64

	// view holds the memory maps, replaced whole under vmu; retired maps
	// stay mapped (their pages released) until Close, because a reader may
	// still be using one.
	view    atomic.Pointer[view]
	vmu     sync.Mutex
	retired []*mapping
	closed  atomic.Bool
	// reads counts the records read (RecordsRead).
	reads atomic.Uint64

	// During recovery: the last seq known acknowledged, and whether it is
	// known at all (a head file said so); see judgeDamage.
	floor      uint64
	floorKnown bool
}

// view is one consistent set of memory-mapped index files. It is never
// changed once stored: an operation loads it once and sees one generation
// of the indexes throughout.
type view struct {
	head                  *headFile
	ids, ents, keys, vers *hashIndex
	gen                   uint64 // head gen when the hash indexes were mapped
}

func (v *view) index(kind uint32) *hashIndex {
	switch kind {
	case kindIDs:
		return v.ids
	case kindEntities:
		return v.ents
	case kindVersions:
		return v.vers
	}
	return v.keys
}

// with returns a copy of v with the index of x's kind replaced by x.
func (v *view) with(x *hashIndex) *view {
	nv := *v
	switch x.kind {
	case kindIDs:
		nv.ids = x
	case kindEntities:
		nv.ents = x
	case kindVersions:
		nv.vers = x
	default:
		nv.keys = x
	}
	return &nv
}

// tables returns v's hash indexes, nil where one is missing.
func (v *view) tables() []*hashIndex { return []*hashIndex{v.ids, v.ents, v.keys, v.vers} }

// whole reports whether v has every hash index.
func (v *view) whole() bool { return v.ids != nil && v.ents != nil && v.keys != nil && v.vers != nil }

func (v *view) maps() []*mapping {
	var ms []*mapping
	if v.head != nil {
		ms = append(ms, v.head.m)
	}
	for _, x := range v.tables() {
		if x != nil {
			ms = append(ms, x.m)
		}
	}
	return ms
}

// writableView returns v with every hash index mapped for writing (v
// itself if they are).
func writableView(v *view) (*view, error) {
	nv := v
	for _, x := range v.tables() {
		if x == nil {
			continue
		}
		y, err := x.writable()
		if err != nil {
			for _, z := range nv.tables() {
				if z != nil && z != v.index(z.kind) {
					z.close()
				}
			}
			return v, err
		}
		nv = nv.with(y)
	}
	return nv, nil
}

// writable maps the hash indexes of the view for writing, if they are not
// yet: a writer needs them mapped, a reader never does. The tenant lock is
// held, so no other process replaces them meanwhile.
func (l *Log) writable() error {
	v := l.v()
	if v == nil || !slices.ContainsFunc(v.tables(), func(x *hashIndex) bool { return x != nil && !x.m.mapped() }) {
		return nil
	}
	l.vmu.Lock()
	defer l.vmu.Unlock()
	nv, err := writableView(l.v())
	if err != nil {
		return err
	}
	l.setView(nv) // the same files, so the same gen
	return nil
}

// v returns the current view.
func (l *Log) v() *view { return l.view.Load() }

// setView replaces the view and retires the maps the new one dropped. vmu
// is held.
func (l *Log) setView(nv *view) {
	old := l.view.Swap(nv)
	if old == nil {
		return
	}
	keep := map[*mapping]bool{}
	for _, m := range nv.maps() {
		keep[m] = true
	}
	for _, m := range old.maps() {
		if !keep[m] {
			// A reader may still be reading it, through the map or the
			// file: release the pages, close the rest at Close.
			m.release()
			l.retired = append(l.retired, m)
		}
	}
}

// segment is one segment file and its offsets index. The files are opened
// on first use (ensure): a CGI process reading near the head of a long log
// opens one segment, not all of them.
type segment struct {
	first uint64
	dir   *Log

	openMu sync.Mutex  // serialises ensure's opening
	open   atomic.Bool // set once the files below are open

	// written and synced are pipeline tickets: the last written into this
	// segment, and the last made durable by fdatasync.
	written, synced atomic.Uint64
	syncMu          sync.Mutex
	prev            [32]byte // id of the event before first, from the header
	// size is the file's size on disk once it is sealed (0: not known
	// yet), as of compaction count sizeAt; only the writer, holding w.mu,
	// uses it.
	size, sizeAt int64
	// file is what the records are read (and, for the active segment,
	// written) through; replaced when the segment is found compressed.
	file atomic.Pointer[segFile]
	off  *os.File // index/<first>.off: u32 LE offset of each record
}

// reader returns what s's original bytes are read through now: its .seg,
// or a reader of its .zseg. A reader that has been replaced stays open for
// retireGrace, so a read that fetched it just before finishes.
func (s *segment) reader() io.ReaderAt {
	s.dir.noticeCompaction()
	return s.file.Load()
}

// wfile returns s's .seg file for writing, or nil if s is compressed
// (only sealed segments are, and nothing writes to one).
func (s *segment) wfile() *os.File {
	if f := s.file.Load(); f != nil {
		return f.w
	}
	return nil
}

// ensure opens the segment's files if they are not open yet. A failure is
// not remembered: it may pass (a full disk when the offsets file is
// created, no descriptor left), and the next call tries again rather than
// refuse every append until the log is reopened.
func (s *segment) ensure() error {
	if s.open.Load() {
		return nil
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.open.Load() {
		return nil
	}
	return s.dir.openSegmentFiles(s)
}

func (s *segment) opened() bool { return s.open.Load() }

func (l *Log) logDir() string   { return filepath.Join(l.dir, logDirName) }
func (l *Log) indexDir() string { return filepath.Join(l.dir, indexDirName) }

// Open opens (creating if needed) the log in dir. If the indexes are
// missing, behind the log, or possibly lost in a machine crash, Open takes
// the tenant lock and brings them up to date first; a torn tail is cut then.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentSize > MaxSegmentSize {
		return nil, &Error{Op: "open", Dir: dir, Err: fmt.Errorf("segment size %d: %w", opts.SegmentSize, ErrSegmentSize)}
	}
	opts.fill()
	l := &Log{dir: dir, opts: opts}
	l.pipe.cond.L = &l.pipe.mu
	for _, d := range []string{l.logDir(), l.indexDir()} {
		if err := fileutil.MkdirAll(d, 0o755); err != nil {
			return nil, &Error{Op: "open", Dir: dir, Err: err}
		}
	}
	lk, err := openLock(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, &Error{Op: "open", Dir: dir, Err: err}
	}
	l.lk = lk
	if err := l.load(); err != nil {
		if transient(err) {
			// The process may not map or open the indexes (a memory limit,
			// too many open files): they are not at fault, and rebuilding
			// them would only take them from everyone else.
			l.Close()
			return nil, &Error{Op: "open", Dir: dir, Err: err}
		}
		if errors.Is(err, errPastHead) && pastHeadSeen != nil {
			pastHeadSeen()
		}
		if errors.Is(err, errPastHead) && !l.lk.tryLock() {
			// A writer holds the lock and is between its write and its
			// publication: what is committed is whole, serve that.
			return l, nil
		} else if errors.Is(err, errPastHead) {
			// No writer now: the one seen finished meanwhile (look again,
			// holding the lock), or it died and left the bytes (recover).
			if l.load() == nil {
				l.lk.unlock()
				return l, nil
			}
			l.lk.unlock()
		}
		if err := l.withLock(l.recoverLocked); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Dir returns the tenant directory.
func (l *Log) Dir() string { return l.dir }

// lockTenant takes the tenant flock, counting itself among the head's
// waiters while it waits (when there is a head to count in).
func (l *Log) lockTenant() error {
	var waiting func(int64)
	if v := l.v(); v != nil && v.head != nil {
		waiting = v.head.addWaiter
	}
	if o := l.opts.Observer; o != nil {
		// Timed only when the lock was found taken: a wait is what an
		// operator looks for, an uncontended flock is not one.
		inner, waited := waiting, false
		waiting = func(d int64) {
			waited = true
			if inner != nil {
				inner(d)
			}
		}
		t0 := time.Now()
		err := l.lk.lock(l.opts.LockTimeout, waiting)
		if waited {
			o.LockWaited(time.Since(t0))
		}
		return err
	}
	return l.lk.lock(l.opts.LockTimeout, waiting)
}

// withLock runs fn holding the tenant flock.
func (l *Log) withLock(fn func() error) error {
	if err := l.lockTenant(); err != nil {
		return &Error{Op: "lock", Dir: l.dir, Err: err}
	}
	defer l.lk.unlock()
	return fn()
}

// errPastHead: the active segment holds bytes past the committed head — a
// writer at work, or one that died.
var errPastHead = errors.New("bytes past the committed head")

// pastHeadSeen, if set (by tests), is called when Open has seen bytes past
// the committed head, before it looks at the lock.
var pastHeadSeen func()

// load maps the index files and opens the segments, and reports an error if
// anything is missing or does not agree with the log, which calls for
// recoverLocked.
func (l *Log) load() error {
	head, err := openHead(filepath.Join(l.indexDir(), headFileName), false)
	if err != nil {
		return err
	}
	nv, err := mapIndexes(l.indexDir(), head)
	if err != nil {
		head.m.close()
		return err
	}
	l.vmu.Lock()
	l.setView(nv)
	l.vmu.Unlock()
	// Segments are opened as the directory has them from now on: only a
	// compaction after this need move them (noticeCompaction).
	l.compactSeen.Store(head.compacted())
	if err := l.openSegments(); err != nil {
		return err
	}
	through := head.through()
	if !sameBoot(head) && head.synced() != through {
		return errors.New("indexes written before a machine restart")
	}
	if through == 0 {
		if segs := l.segments(); len(segs) > 0 {
			if err := segs[0].ensure(); err != nil {
				return err
			}
			if size, err := segs[0].file.Load().size(); err != nil || size > segmentHeaderLen {
				return errors.New("index is empty but the log is not")
			}
		}
		return nil
	}
	e, s, err := l.readSeq(through)
	if err != nil {
		return err
	}
	// Bytes past the committed head are a writer at work or a writer that
	// died; Open then waits for the lock and looks again, which repairs
	// the latter.
	end := int64(segmentHeaderLen)
	segs := l.segments()
	if s == segs[len(segs)-1] {
		off, _ := readOffset(s, through)
		end = off + int64(recordSize(e))
	}
	if size, err := segs[len(segs)-1].file.Load().size(); err != nil {
		return err
	} else if size != end {
		return errPastHead
	}
	return nil
}

func sameBoot(h *headFile) bool {
	id := bootID()
	return id != nil && string(h.boot()) == string(id)
}

// mapIndexes maps the three hash indexes beside head into a view.
func mapIndexes(dir string, head *headFile) (*view, error) {
	nv := &view{head: head, gen: head.gen()}
	for _, k := range kinds {
		x, err := openHashIndex(filepath.Join(dir, hixNames[k]), k)
		if err != nil {
			for _, m := range nv.maps()[1:] {
				m.close()
			}
			return nil, err
		}
		nv = nv.with(x)
	}
	return nv, nil
}

// segments returns the open segments in log order.
func (l *Log) segments() []*segment {
	if p := l.segs.Load(); p != nil {
		return *p
	}
	return nil
}

// openSegments adds every segment that appeared since the last call; the
// last one, where appends go, is opened at once.
func (l *Log) openSegments() error {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	firsts, err := listSegments(l.logDir())
	if err != nil {
		return err
	}
	segs := l.segments()
	added := segs[:len(segs):len(segs)]
	for _, first := range firsts {
		if n := len(added); n > 0 && first <= added[n-1].first {
			continue
		}
		added = append(added, &segment{first: first, dir: l})
	}
	if len(added) != len(segs) {
		l.segs.Store(&added)
	}
	if len(added) > 0 {
		return added[len(added)-1].ensure()
	}
	return nil
}

// reopenSegments replaces every segment with one that opens its files
// again on first use. After the index directory was deleted or replaced,
// the offsets files this process has open are not the ones in it (deleted,
// or replaced): offsets written to them, by a rebuild or an append, would
// never reach another process, nor this one's offsets the others'.
func (l *Log) reopenSegments() {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	old := l.segments()
	fresh := make([]*segment, len(old))
	for i, s := range old {
		fresh[i] = &segment{first: s.first, dir: l}
	}
	l.segs.Store(&fresh)
	l.retiredSegs = append(l.retiredSegs, old...)
}

func (l *Log) openSegmentFiles(s *segment) error {
	f, err := openSegFile(l.logDir(), s.first, true)
	if err != nil {
		return err
	}
	var hb [segmentHeaderLen]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		f.Close()
		return fmt.Errorf("%w: segment %d: header: %v", ErrCorrupt, s.first, err)
	}
	h, err := decodeSegmentHeader(hb[:])
	if err == nil && h.First != s.first {
		err = fmt.Errorf("%w: segment named %d says it starts at %d", ErrCorrupt, s.first, h.First)
	}
	if err != nil {
		f.Close()
		return err
	}
	off, err := fileutil.OpenFile(l.offsetsPath(s.first), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		f.Close()
		return err
	}
	s.file.Store(f)
	s.off, s.prev = off, h.Prev
	s.open.Store(true)
	return nil
}

func (l *Log) offsetsPath(first uint64) string {
	return filepath.Join(l.indexDir(), fmt.Sprintf("%020d%s", first, offsetsExt))
}

// Close releases the files. Appends in flight finish first.
func (l *Log) Close() error {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	broken := l.drain()
	var err error
	if v := l.v(); l.opts.SyncOnClose && v != nil && v.head != nil && v.ids != nil && l.w.dirty && broken == nil {
		// A clean close leaves the indexes on disk so that a machine crash
		// later costs no replay.
		err = l.withLock(l.syncIndexesLocked)
	}
	l.segMu.Lock()
	for _, s := range append(l.segments(), l.retiredSegs...) {
		if s.opened() {
			s.file.Load().Close()
			s.off.Close()
		}
	}
	for _, f := range l.retiredFiles {
		f.Close()
	}
	l.segs.Store(nil)
	l.retiredSegs, l.retiredFiles = nil, nil
	l.segMu.Unlock()
	l.vmu.Lock()
	if v := l.view.Swap(nil); v != nil {
		for _, m := range v.maps() {
			m.close()
		}
	}
	for _, m := range l.retired {
		m.close()
	}
	l.retired = nil
	l.vmu.Unlock()
	if l.lk != nil {
		l.lk.close()
	}
	return err
}

// drain waits until every group in flight is published (w.mu held, so no
// new one starts) and returns the error that broke the log, if any.
func (l *Log) drain() error {
	l.pipe.mu.Lock()
	defer l.pipe.mu.Unlock()
	for len(l.pipe.inflight) > 0 {
		l.pipe.cond.Wait()
	}
	return l.pipe.broken
}

// syncIndexesLocked writes every index page to disk and marks the head
// synced, so that after a machine crash nothing before it is replayed.
func (l *Log) syncIndexesLocked() error {
	if l.opts.NoSync {
		l.v().head.setBoot(bootID())
		l.v().head.m.store(headOffSynced, l.v().head.through())
		l.w.dirty = false
		return nil
	}
	// The mark covers what every process wrote since the last one: sync
	// the tables there are now (another may have grown one), and the
	// offsets of every segment written since, opened here or not.
	if err := l.remapIfStale(); err != nil {
		return err
	}
	if err := l.openSegments(); err != nil {
		return err
	}
	v := l.v()
	for _, x := range v.tables() {
		if err := x.sync(); err != nil {
			return err
		}
	}
	segs := l.segments()
	for i, s := range segs {
		if !s.opened() && i+1 < len(segs) && segs[i+1].first-1 <= v.head.synced() {
			continue // all of it was synced under an earlier mark
		}
		if err := s.ensure(); err != nil {
			return err
		}
		if err := fileutil.Fsync(s.off); err != nil {
			return err
		}
	}
	l.v().head.setBoot(bootID())
	if err := l.v().head.markSynced(l.v().head.through()); err != nil {
		return err
	}
	l.w.dirty = false
	return nil
}

// Stale reports whether the index files this Log mapped were replaced
// behind its back (someone deleted the index directory to force a rebuild):
// a long-running process should then reopen the log.
func (l *Log) Stale() bool {
	v := l.v()
	if l.closed.Load() || v == nil || v.head == nil {
		return true
	}
	mapped, err1 := v.head.m.f.Stat()
	onDisk, err2 := os.Stat(filepath.Join(l.indexDir(), headFileName))
	return err1 != nil || err2 != nil || !os.SameFile(mapped, onDisk)
}

// Reindex throws every index away and rebuilds it from the segments, under
// the tenant lock: what `strata reindex` runs.
func (l *Log) Reindex() error {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	l.drain()
	return l.withLock(func() error { return l.recoverFull(true) })
}
