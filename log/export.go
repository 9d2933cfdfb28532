package log

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"strata/internal/fileutil"
)

// Span is the part of one segment file that holds a prefix of the log:
// bytes [0, Size) of the file are its header and the records of First
// through Last. Records up to the committed head are never rewritten in
// place by an append, so a copy of those bytes taken while writers append
// is a consistent prefix of the chain (what a backup copies).
type Span struct {
	Name        string // the segment's .seg name under log/, even when compressed
	Path        string // the file holding it now (.seg or .zseg): read it through OpenSpan
	First, Last uint64 // seqs of its first and last record in the prefix
	Size        int64  // bytes from offset 0 holding them
}

// Spans returns the segments holding events 1..through, through at most
// Through(), each with the length of its part of that prefix. A log with no
// event has none.
func (l *Log) Spans(through uint64) ([]Span, error) {
	if through > l.Through() {
		return nil, fmt.Errorf("spans through %d: the head is %d", through, l.Through())
	}
	if through == 0 {
		return nil, nil
	}
	if err := l.openSegments(); err != nil {
		return nil, err
	}
	segs := l.segments()
	var out []Span
	for i, s := range segs {
		if s.first > through {
			break
		}
		last := through
		if i+1 < len(segs) && segs[i+1].first-1 < last {
			last = segs[i+1].first - 1
		}
		if last < s.first {
			continue // an empty segment (the writer just started it)
		}
		s, off, err := l.locate(last)
		if err != nil {
			return nil, fmt.Errorf("spans: %w", err)
		}
		_, n, err := readRecordAt(s.reader(), off)
		if err != nil {
			return nil, fmt.Errorf("spans: seq %d: %w", last, err)
		}
		out = append(out, Span{Name: segmentName(s.first), Path: s.file.Load().path, First: s.first, Last: last, Size: off + int64(n)})
	}
	return out, nil
}

// SpanReader reads the original bytes of a Span's segment.
type SpanReader interface {
	io.ReaderAt
	io.Closer
}

// OpenSpan opens the original bytes of a Span, whether the segment is a
// .seg or a .zseg now (it may be compressed between Spans and OpenSpan).
func OpenSpan(sp Span) (SpanReader, error) {
	first, ok := parseSegmentName(sp.Name)
	if !ok {
		return nil, fmt.Errorf("open span: %q is not a segment name", sp.Name)
	}
	f, err := openSegFile(filepath.Dir(sp.Path), first, false)
	if err != nil {
		return nil, fmt.Errorf("open span %s: %w", sp.Name, err)
	}
	return f, nil
}

// SegmentName returns the file name of the segment whose first event is
// first (FORMAT.md, "Segment files").
func SegmentName(first uint64) string { return segmentName(first) }

// ParseSegmentName returns the first seq a segment file name stands for.
func ParseSegmentName(name string) (uint64, bool) { return parseSegmentName(name) }

// CutAfter makes the log in dir end at seq: it removes the segments that
// start after it and truncates the one holding it after its record (first
// decompressing it if it is compressed: the last segment never is). It is
// for a log no process has open (a restore into an empty directory): it
// takes no lock and removes the indexes, if any (they would reach past the
// cut): the next Open rebuilds them. A log that ends before seq is an error.
func CutAfter(dir string, seq uint64) error {
	if err := os.RemoveAll(filepath.Join(dir, indexDirName)); err != nil {
		return err
	}
	ldir := filepath.Join(dir, logDirName)
	ents, err := listSegmentFiles(ldir)
	if err != nil {
		return err
	}
	for i := len(ents) - 1; i >= 0; i-- {
		first := ents[i].first
		name := filepath.Join(ldir, segmentName(first))
		zname := filepath.Join(ldir, zsegName(first))
		if first > seq {
			for _, p := range []string{name, zname} {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			continue
		}
		switch {
		case !ents[i].seg:
			if err := decompressSegment(ldir, first); err != nil {
				return fmt.Errorf("cut after seq %d: %w", seq, err)
			}
		case ents[i].zseg:
			// Both: a compaction stopped before removing the .seg, which
			// holds the same bytes.
			if err := os.Remove(zname); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := newScanner(f, segmentHeaderLen)
		for at := first; ; at++ {
			_, _, err := sc.next()
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("cut after seq %d: the log ends at seq %d", seq, at-1)
			}
			if err != nil {
				return fmt.Errorf("cut after seq %d: %s: %w", seq, segmentName(first), err)
			}
			if at == seq {
				end := sc.off + int64(sc.pos)
				if err := f.Truncate(end); err != nil {
					return err
				}
				return f.Sync()
			}
		}
	}
	return fmt.Errorf("cut after seq %d: no segment holds it", seq)
}

// decompressSegment replaces the .zseg of the segment of ldir starting at
// first by its .seg, in the order that leaves one of them whole at any
// crash: the .seg is written, fsynced and renamed into place before the
// .zseg is removed.
func decompressSegment(ldir string, first uint64) error {
	z, err := openZseg(filepath.Join(ldir, zsegName(first)))
	if err != nil {
		return err
	}
	defer z.Close()
	tmp, err := fileutil.CreateTemp(ldir, "."+segmentName(first)+".*.tmp", 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.CopyBuffer(faultWriter{tmp}, io.NewSectionReader(z, 0, z.size), make([]byte, 1<<20))
	if err == nil {
		err = fileutil.Fsync(tmp)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fileutil.Rename(tmp.Name(), filepath.Join(ldir, segmentName(first)))
	}
	if err == nil {
		err = fileutil.SyncDir(ldir)
	}
	if err == nil {
		err = fileutil.Remove(filepath.Join(ldir, zsegName(first)))
	}
	if err == nil {
		err = fileutil.SyncDir(ldir)
	}
	return err
}

// SeqThrough returns the seq of the last event of the log in dir whose
// time is at or before ns (0: none), for a log no process has open.
func SeqThrough(dir string, ns int64) (uint64, error) {
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	if ns == math.MaxInt64 {
		return l.Through(), nil
	}
	seq, err := l.SeqAtTime(ns + 1)
	if err != nil {
		return 0, err
	}
	return seq - 1, nil
}
