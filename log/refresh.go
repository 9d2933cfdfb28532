package log

import (
	"os"
	"path/filepath"
	"time"
)

// refreshLocked brings the writer's state up to the log as other processes
// left it, and runs recovery if one of them crashed mid-append. The tenant
// lock is held.
func (l *Log) refreshLocked() error {
	if l.quiet() {
		return nil
	}
	if l.Stale() {
		// The index directory was deleted or replaced under us: map what
		// is there now (recovering it if it is not whole), offsets files
		// included.
		l.reopenSegments()
		if err := l.load(); transient(err) {
			return &Error{Op: "append", Dir: l.dir, Err: err}
		} else if err != nil {
			return l.recoverLocked()
		}
		l.w.seen, l.w.end = 0, 0
	}
	if !sameBoot(l.v().head) && l.v().head.synced() != l.v().head.through() {
		return l.recoverLocked()
	}
	// Another process may have grown (replaced) a hash index.
	if err := l.remapIfStale(); err != nil {
		return err
	}
	if err := l.openSegments(); err != nil {
		return &Error{Op: "append", Dir: l.dir, Err: err}
	}
	// A writer that reads little still lets go of compacted .seg files.
	l.noticeCompaction()
	through := l.v().head.through()
	if through != l.w.seen || l.w.end == 0 {
		if err := l.loadTail(through); err != nil {
			return err
		}
	}
	segs := l.segments()
	if len(segs) == 0 {
		return nil
	}
	size, err := segs[len(segs)-1].file.Load().size()
	if err != nil {
		return &Error{Op: "append", Dir: l.dir, Err: err}
	}
	if size != l.w.end {
		// Bytes past the committed head: a writer died between its write
		// and its index update. Recovery keeps whole records, cuts a torn
		// tail, and reports anything else.
		return l.recoverLocked()
	}
	l.w.checked = time.Now()
	return nil
}

// quiet reports, for the price of a stat or two, that nothing changed since
// this writer's last append: no other process committed or replaced an
// index, the active segment ends where this writer left it, and no writer
// started a segment after it and died. Once a second it says no anyway, so
// the full checks of refreshLocked run (a replaced index directory, a
// machine restart).
func (l *Log) quiet() bool {
	if l.w.end == 0 || l.v().head.through() != l.w.seen || l.v().head.gen() != l.v().gen || time.Since(l.w.checked) > time.Second {
		return false
	}
	segs := l.segments()
	if len(segs) == 0 {
		return false
	}
	active := segs[len(segs)-1]
	if size, err := active.file.Load().size(); err != nil || size != l.w.end {
		return false
	}
	if next := l.w.seen + 1; active.first != next {
		if _, err := os.Stat(filepath.Join(l.logDir(), segmentName(next))); err == nil {
			return false
		}
	}
	return true
}

// loadTail sets the writer's head and end-of-log from the committed seq.
func (l *Log) loadTail(through uint64) error {
	l.w.seen = through
	l.w.last = Head{}
	l.w.end = segmentHeaderLen
	segs := l.segments()
	if through == 0 {
		return nil
	}
	e, s, err := l.readSeq(through)
	if err != nil {
		return &Error{Op: "append", Dir: l.dir, Seq: through, Err: err}
	}
	l.w.last = Head{Seq: e.Seq, ID: e.ID, Time: e.Time}
	if s == segs[len(segs)-1] {
		off, _ := readOffset(s, through)
		l.w.end = off + int64(recordSize(e))
	}
	return nil
}
