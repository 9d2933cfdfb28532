package log

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"

	"strata/internal/fileutil"
)

// A full rebuild of the indexes (none of them can be trusted, or Reindex
// asked for one) is built beside the ones in use, in index/build/, and
// published by renaming the new tables over the old and then advancing the
// committed head: readers in every process see everything they saw before
// throughout, and then the new tables. The offsets files are the exception:
// an offset is a fact of the log, so they are written in place — every
// entry the same as before or one that was missing — and never cut below
// the committed head.
//
// A rebuild of a big log takes a while, and a CGI process doing it may be
// killed (a time limit) before it ends; so it records its progress in
// index/build/progress every buildChunk events, and the next process
// resumes there instead of starting over:
//
//	[8] magic "STRATBLD" | u32 version 1 | u32 0 |
//	u64 seq: every table in build/ and every offset hold events 1..seq |
//	[32] id of event seq | [40] boot id
//
// A progress file from another boot is not trusted (the tables' pages may
// not have reached the disk) and the build starts over.
const (
	buildDirName     = "build"
	progressFileName = "progress"
	progressMagic    = "STRATBLD"
	progressVersion  = 1
	progressLen      = 96
)

// buildChunk is how many events a rebuild indexes between two progress
// marks; tests lower it.
var buildChunk = 1 << 16

// buildMarked, set by tests, is called after each progress mark; an error
// stops the rebuild there, as a kill would.
var buildMarked func(seq uint64) error

func (l *Log) buildDir() string { return filepath.Join(l.indexDir(), buildDirName) }

// build is a rebuild in progress: its tables and its progress file.
type build struct {
	dir      string
	tables   *view // head unused
	progress *os.File
}

func (b *build) close() {
	for _, m := range b.tables.maps() {
		m.close()
	}
	b.progress.Close()
}

// add puts events in the build's tables, growing them as needed.
func (b *build) add(events []*Event) error {
	for every := false; len(events) > 0; every = true {
		// The build's tables are in no view: each is unmapped before its
		// bigger copy is mapped.
		nt, old, err := growTables(b.tables, need(events, every), true)
		b.tables = nt
		for _, x := range old {
			x.close()
		}
		if err != nil {
			return err
		}
		events = events[fillTables(b.tables, events):]
	}
	return nil
}

// mark records that the build holds every event through seq.
func (b *build) mark(seq uint64, id [32]byte) error {
	var p [progressLen]byte
	copy(p[:], progressMagic)
	binary.LittleEndian.PutUint32(p[8:], progressVersion)
	binary.LittleEndian.PutUint64(p[16:], seq)
	copy(p[24:56], id[:])
	copy(p[56:96], bootID())
	// One pwrite: a process killed around it leaves the old mark or the
	// new one, never half of each.
	_, err := fileutil.WriteAt(b.progress, p[:], 0)
	return err
}

// openBuild resumes the build in index/build if its progress can be
// trusted, and starts a new one otherwise. It returns the build and the
// seq it holds every event through.
func (l *Log) openBuild() (*build, uint64, error) {
	dir := l.buildDir()
	if err := fileutil.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	removeTemps(dir)
	if b, seq, ok := l.resumeBuild(dir); ok {
		return b, seq, nil
	}
	b := &build{dir: dir, tables: &view{}}
	for _, k := range kinds {
		x, err := createHashIndex(filepath.Join(dir, hixNames[k]), k, 0, nil)
		if err != nil {
			b.tables.head = nil
			for _, m := range b.tables.maps() {
				m.close()
			}
			return nil, 0, err
		}
		b.tables = b.tables.with(x)
	}
	f, err := fileutil.OpenFile(filepath.Join(dir, progressFileName), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		b.progress = f
		err = b.mark(0, zeroID)
	}
	if err != nil {
		b.close()
		return nil, 0, err
	}
	return b, 0, nil
}

func (l *Log) resumeBuild(dir string) (*build, uint64, bool) {
	f, err := os.OpenFile(filepath.Join(dir, progressFileName), os.O_RDWR, 0)
	if err != nil {
		return nil, 0, false
	}
	var p [progressLen]byte
	boot := bootID()
	if _, err := f.ReadAt(p[:], 0); err != nil || string(p[:8]) != progressMagic ||
		binary.LittleEndian.Uint32(p[8:]) != progressVersion || boot == nil ||
		!bytes.Equal(bytes.TrimRight(p[56:96], "\x00"), boot) {
		f.Close()
		return nil, 0, false
	}
	seq := binary.LittleEndian.Uint64(p[16:])
	if seq > 0 {
		// The log below seq must be the one the build indexed.
		if e, _, err := l.readSeq(seq); err != nil || !bytes.Equal(e.ID[:], p[24:56]) {
			f.Close()
			return nil, 0, false
		}
	}
	b := &build{dir: dir, tables: &view{}, progress: f}
	for _, k := range kinds {
		x, err := openHashIndex(filepath.Join(dir, hixNames[k]), k)
		if err == nil {
			var y *hashIndex
			if y, err = x.writable(); err == nil {
				x.close()
				x = y
			} else {
				x.close()
			}
		}
		if err != nil {
			b.close()
			return nil, 0, false
		}
		b.tables = b.tables.with(x)
	}
	return b, seq, true
}

// buildBeside rebuilds every index from the log beside the ones in use and
// publishes them (see the top of this file). head is the head file to
// publish through: the one in index/ (published), or a new one in
// index/build/. The tenant lock is held.
func (l *Log) buildBeside(head *headFile, published bool) error {
	b, from, err := l.openBuild()
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			b.close()
		}
	}()
	last := from
	offs := &offsetWriter{last: &last}
	var chunk []*Event
	fill := func() error {
		err := b.add(chunk)
		chunk = chunk[:0]
		return err
	}
	err = l.walkTail(from, func(s *segment, off int64, e *Event) error {
		if e == nil {
			if err := offs.flush(); err != nil {
				return err
			}
			return fill()
		}
		if err := offs.add(s, off, e); err != nil {
			return err
		}
		chunk = append(chunk, slim(e))
		if len(chunk) < buildChunk {
			return nil
		}
		if err := offs.flush(); err != nil {
			return err
		}
		if err := fill(); err != nil {
			return err
		}
		if err := b.mark(e.Seq, e.ID); err != nil {
			return err
		}
		if l.opts.RebuildProgress != nil {
			l.opts.RebuildProgress(e.Seq, head.through())
		}
		if buildMarked != nil {
			return buildMarked(e.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := l.finishWalk(last); err != nil {
		return err
	}
	if l.opts.RebuildProgress != nil {
		l.opts.RebuildProgress(last, max(last, head.through()))
	}
	if !l.opts.NoSync {
		for _, x := range b.tables.tables() {
			if err := x.sync(); err != nil {
				return err
			}
		}
		for _, s := range l.segments() {
			if err := fileutil.Fsync(s.off); err != nil {
				return err
			}
		}
	}
	// Publish. Without the progress file a build killed from here on is
	// started over, never resumed from tables that were moved away.
	if err := os.Remove(filepath.Join(b.dir, progressFileName)); err != nil {
		return err
	}
	b.progress.Close()
	if published {
		// A writer elsewhere that takes the lock after this looks at the
		// new tables, even if this process dies among the renames.
		head.bumpGen()
	}
	nv := &view{head: head}
	for _, k := range kinds {
		x := b.tables.index(k)
		live := filepath.Join(l.indexDir(), hixNames[k])
		if err := fileutil.Rename(x.path, live); err != nil {
			return err
		}
		x.path = live
		nv = nv.with(x)
	}
	done = true // the tables are nv's now
	head.setBoot(bootID())
	head.setThrough(last)
	if !published {
		if err := head.markSynced(last); err != nil {
			return err
		}
		if err := fileutil.Rename(head.m.f.Name(), filepath.Join(l.indexDir(), headFileName)); err != nil {
			return err
		}
	}
	if !l.opts.NoSync {
		if err := fileutil.SyncDir(l.indexDir()); err != nil {
			return err
		}
	}
	l.replaceIndexes(nv)
	os.RemoveAll(b.dir)
	l.w.dirty = true
	return l.syncIndexesLocked()
}
