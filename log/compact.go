package log

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"strata/internal/fileutil"
)

// Compaction replaces sealed segments by their compressed form (zseg.go,
// FORMAT.md "Compressed segments"). It changes no byte a reader sees: the
// .zseg decompresses to the .seg, offsets stay offsets in the original
// bytes, and every read result, id and the chain stay what they were.
//
// It runs beside appends and reads, taking never the tenant lock, only
// log/compact.lock (one compactor per tenant), and in an order that a
// crash at any point leaves a readable segment:
//
//	write <first>.zseg.tmp, fsync it, check it decodes to the .seg,
//	rename it to <first>.zseg, fsync the directory,
//	remove <first>.seg, fsync the directory, bump index/head's compacted.
//
// Both files present (a crash between rename and removal) hold the same
// bytes; the next compaction checks that and removes the .seg. It also
// removes a .zseg.tmp a killed compaction left.

// ErrCompactBusy: another compaction of the tenant holds log/compact.lock.
var ErrCompactBusy = errors.New("another compaction of this tenant is running")

const compactLockName = "compact.lock"

// CompactOptions choose what a compaction does.
type CompactOptions struct {
	MinAge   time.Duration           // only segments last written at least this long ago (0: every sealed one)
	Budget   time.Duration           // start no new segment after this long (0: no limit) — a CGI request
	Progress func(done, total int64) // logical bytes compressed so far / to compress this call
}

// CompactResult is what a compaction did.
type CompactResult struct {
	Segments    int   // compressed by this call
	BytesBefore int64 // their size before …
	BytesAfter  int64 // … and after
	Remaining   int   // segments that qualified but were left (budget)
	Duration    time.Duration
}

// retireGrace is how long a segment file replaced by its .zseg stays open
// after the swap, for a read that fetched it just before; a variable for
// tests.
var retireGrace = 10 * time.Second

// Compact compresses the log's sealed segments: every segment but the last
// whose records are all committed, last written at least o.MinAge ago. It
// fails with ErrCompactBusy while another compaction of the tenant runs.
func (l *Log) Compact(o CompactOptions) (CompactResult, error) {
	t0 := time.Now()
	var res CompactResult
	if l.closed.Load() {
		return res, ErrClosed
	}
	lk, err := openLock(filepath.Join(l.logDir(), compactLockName))
	if err != nil {
		return res, &Error{Op: "compact", Dir: l.dir, Err: err}
	}
	defer lk.close()
	if !lk.tryLock() {
		return res, ErrCompactBusy
	}
	defer lk.unlock()
	fail := func(err error) (CompactResult, error) {
		res.Duration = time.Since(t0)
		return res, &Error{Op: "compact", Dir: l.dir, Err: err}
	}
	ents, err := l.compactCleanup()
	if err != nil {
		return fail(err)
	}
	todo, err := l.compactable(ents, o.MinAge, t0)
	if err != nil {
		return fail(err)
	}
	var total, done int64
	for _, c := range todo {
		total += c.size
	}
	for i, c := range todo {
		// The first always starts, so that a small budget still makes
		// progress.
		if i > 0 && o.Budget > 0 && time.Since(t0) > o.Budget {
			res.Remaining = len(todo) - i
			break
		}
		progress := func(n int64) {
			done += n
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
		after, err := l.compactSegment(c.first, c.next, progress)
		if err != nil {
			return fail(fmt.Errorf("segment %d: %w", c.first, err))
		}
		res.Segments++
		res.BytesBefore += c.size
		res.BytesAfter += after
	}
	res.Duration = time.Since(t0)
	return res, nil
}

// compactCleanup removes what a killed compaction left: .zseg.tmp files,
// and the .seg of a segment whose .zseg was renamed into place (once the
// .zseg is checked to hold the same bytes). It returns the segments as
// they are after. The compaction lock is held.
func (l *Log) compactCleanup() ([]segEntry, error) {
	ldir := l.logDir()
	tmps, _ := filepath.Glob(filepath.Join(ldir, "*"+zsegTmpExt))
	for _, t := range tmps {
		if err := fileutil.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	ents, err := listSegmentFiles(ldir)
	if err != nil {
		return nil, err
	}
	removed := false
	for i, e := range ents {
		if !e.seg || !e.zseg {
			continue
		}
		if err := sameSegment(filepath.Join(ldir, segmentName(e.first)), filepath.Join(ldir, zsegName(e.first))); err != nil {
			return nil, err
		}
		if err := fileutil.Remove(filepath.Join(ldir, segmentName(e.first))); err != nil {
			return nil, err
		}
		ents[i].seg, removed = false, true
	}
	if removed {
		l.bumpCompacted()
		if !l.opts.NoSync {
			return ents, fileutil.SyncDir(ldir)
		}
	}
	return ents, nil
}

// sameSegment checks that the .zseg at zpath decodes to the .seg at path.
func sameSegment(path, zpath string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	z, err := openZseg(zpath)
	if err != nil {
		return err
	}
	defer z.Close()
	return sameBytes(f, st.Size(), z, filepath.Base(zpath))
}

// sameBytes checks that z holds exactly the size bytes of f.
func sameBytes(f io.ReaderAt, size int64, z *zsegReader, name string) error {
	if z.size != size {
		return fmt.Errorf("%w: %s holds %d bytes, the segment %d", ErrCorrupt, name, z.size, size)
	}
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(a)) {
		n := int(min(int64(len(a)), size-off))
		if _, err := f.ReadAt(a[:n], off); err != nil {
			return err
		}
		if _, err := z.ReadAt(b[:n], off); err != nil {
			return err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return fmt.Errorf("%w: %s differs from the segment in bytes %d–%d", ErrCorrupt, name, off, off+int64(n))
		}
	}
	return nil
}

// candidate is a segment a compaction may compress.
type candidate struct {
	first, next uint64 // its first seq, and the next segment's
	size        int64
}

// compactable returns the sealed, uncompressed segments old enough: every
// one but the last whose records are all committed.
func (l *Log) compactable(ents []segEntry, minAge time.Duration, now time.Time) ([]candidate, error) {
	through := l.Through()
	var out []candidate
	for i := 0; i+1 < len(ents); i++ {
		e, next := ents[i], ents[i+1].first
		if !e.seg || next-1 > through {
			continue
		}
		fi, err := os.Stat(filepath.Join(l.logDir(), segmentName(e.first)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		if minAge > 0 && now.Sub(fi.ModTime()) < minAge {
			continue
		}
		out = append(out, candidate{e.first, next, fi.Size()})
	}
	return out, nil
}

// compactSegment replaces the sealed segment first (whose successor starts
// at next) by its .zseg, in the crash order above, and returns the .zseg's
// size. On an error before the rename it leaves the .seg alone and no
// .zseg.
func (l *Log) compactSegment(first, next uint64, progress func(int64)) (int64, error) {
	ldir := l.logDir()
	path := filepath.Join(ldir, segmentName(first))
	zpath := filepath.Join(ldir, zsegName(first))
	tmp := filepath.Join(ldir, zsegName(first)+".tmp")
	src, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return 0, err
	}
	var hb [segmentHeaderLen]byte
	if _, err := src.ReadAt(hb[:], 0); err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if h, err := decodeSegmentHeader(hb[:]); err != nil {
		return 0, err
	} else if h.First != first {
		return 0, fmt.Errorf("%w: segment named %d says it starts at %d", ErrCorrupt, first, h.First)
	}
	out, err := fileutil.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(faultWriter{out}, 256<<10)
	zsize, records, err := compressSegment(bw, src, st.Size(), progress)
	if err == nil && records != next-first {
		err = fmt.Errorf("%w: %d records where seqs %d–%d are due", ErrCorrupt, records, first, next-1)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && !l.opts.NoSync {
		err = fileutil.Fsync(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	// What was written must read back as the segment before it may
	// replace it.
	z, err := openZseg(tmp)
	if err != nil {
		return 0, err
	}
	err = sameBytes(src, st.Size(), z, filepath.Base(tmp))
	z.Close()
	if err != nil {
		return 0, err
	}
	if err := fileutil.Rename(tmp, zpath); err != nil {
		return 0, err
	}
	renamed = true
	if !l.opts.NoSync {
		if err := fileutil.SyncDir(ldir); err != nil {
			return 0, err
		}
	}
	// From here the .zseg is the segment: a failure leaves both files,
	// which the next compaction sorts out.
	if err := fileutil.Remove(path); err != nil {
		return 0, err
	}
	if !l.opts.NoSync {
		if err := fileutil.SyncDir(ldir); err != nil {
			return 0, err
		}
	}
	l.bumpCompacted()
	return zsize, nil
}

// bumpCompacted tells every process that a segment was compressed.
func (l *Log) bumpCompacted() {
	if v := l.v(); v != nil && v.head != nil {
		v.head.bumpCompacted()
	}
}

// faultWriter writes to f through fileutil's fault point.
type faultWriter struct{ f *os.File }

func (w faultWriter) Write(b []byte) (int, error) { return fileutil.Write(w.f, b) }

// noticeCompaction moves the segments this Log has open onto their .zseg
// when the head's compaction count says some were compressed since it
// last looked (in this process or another). The replaced .seg files are
// closed retireGrace later, so the disk they hold is freed while a read
// that fetched one just before still finishes.
func (l *Log) noticeCompaction() {
	v := l.v()
	if v == nil || v.head == nil {
		return
	}
	c := v.head.compacted()
	if c == l.compactSeen.Load() {
		return
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if l.closed.Load() || c == l.compactSeen.Load() {
		return
	}
	l.compactSeen.Store(c)
	// Every segment open here, the last too: it may be sealed by now
	// (segments this Log has not listed yet followed it). The active
	// segment never has a .zseg.
	for _, s := range l.segments() {
		s.openMu.Lock()
		if old := s.file.Load(); s.opened() && old.z == nil {
			if z, err := openZseg(filepath.Join(l.logDir(), zsegName(s.first))); err == nil {
				s.file.Store(&segFile{r: z, z: z, path: filepath.Join(l.logDir(), zsegName(s.first))})
				l.retireFile(old)
			}
		}
		s.openMu.Unlock()
	}
}

// retireFile closes f retireGrace from now (or at Close). segMu is held.
func (l *Log) retireFile(f *segFile) {
	l.retiredFiles = append(l.retiredFiles, f)
	time.AfterFunc(retireGrace, func() {
		l.segMu.Lock()
		defer l.segMu.Unlock()
		if i := slices.Index(l.retiredFiles, f); i >= 0 {
			l.retiredFiles = slices.Delete(l.retiredFiles, i, i+1)
			f.Close()
		}
	})
}

// SegmentStats describes a log's segments on disk.
type SegmentStats struct {
	Segments, Compressed   int
	Bytes                  int64 // on disk, all segments
	LogicalBytes           int64 // all segments uncompressed
	CompressedLogicalBytes int64 // the compressed ones, before …
	CompressedBytes        int64 // … and after
}

// SegmentStats counts the log's segments and their bytes, compressed and
// not, as the directory holds them now.
func (l *Log) SegmentStats() (SegmentStats, error) {
	var st SegmentStats
	ldir := l.logDir()
	ents, err := listSegmentFiles(ldir)
	if err != nil {
		return st, &Error{Op: "segment stats", Dir: l.dir, Err: err}
	}
	for _, e := range ents {
		st.Segments++
		n, err := fileSize(filepath.Join(ldir, segmentName(e.first)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return st, &Error{Op: "segment stats", Dir: l.dir, Err: err}
		}
		seg := err == nil
		if e.zseg || !seg { // !seg: compressed since the listing
			z, err := openZseg(filepath.Join(ldir, zsegName(e.first)))
			if err == nil {
				st.Compressed++
				st.Bytes += z.csize
				st.LogicalBytes += z.size
				st.CompressedBytes += z.csize
				st.CompressedLogicalBytes += z.size
				z.Close()
				if seg {
					st.Bytes += n // until the next compaction removes it
				}
				continue
			}
			if !seg {
				return st, &Error{Op: "segment stats", Dir: l.dir, Err: err}
			}
			// A .zseg that does not open beside its .seg: the next
			// compaction reports it; the .seg is the segment.
		}
		st.Bytes += n
		st.LogicalBytes += n
	}
	return st, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
