package log

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strata/internal/fileutil"
	"strconv"
	"strings"
)

// Segment files live in <tenant>/log/ and are named by the seq of their
// first event, zero-padded so that names sort in log order.
const (
	logDirName       = "log"
	segmentExt       = ".seg"
	segmentMagic     = "STRATLOG"
	segmentVersion   = 1
	segmentHeaderLen = 64
)

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentExt) }

func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(base) != 20 {
		return 0, false
	}
	first, err := strconv.ParseUint(base, 10, 64)
	return first, err == nil && first > 0
}

// parseZsegName is parseSegmentName for a compressed segment's name.
func parseZsegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, zsegExt)
	if !ok {
		return 0, false
	}
	return parseSegmentName(base + segmentExt)
}

// segEntry is one segment as the directory lists it: its .seg, its .zseg,
// or both (a compaction that stopped between its rename and the removal
// of the .seg; either holds the same bytes).
type segEntry struct {
	first     uint64
	seg, zseg bool
}

// listSegmentFiles returns the segments in dir, in order.
func listSegmentFiles(dir string) ([]segEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	byFirst := map[uint64]*segEntry{}
	var out []segEntry
	for _, ent := range ents {
		first, seg := parseSegmentName(ent.Name())
		if !seg {
			var z bool
			if first, z = parseZsegName(ent.Name()); !z {
				continue
			}
		}
		e := byFirst[first]
		if e == nil {
			out = append(out, segEntry{first: first})
			e = &out[len(out)-1]
			byFirst[first] = e
		}
		if seg {
			e.seg = true
		} else {
			e.zseg = true
		}
	}
	slices.SortFunc(out, func(a, b segEntry) int { return cmp.Compare(a.first, b.first) })
	return out, nil
}

// segmentHeader opens every segment (FORMAT.md, "Segment files"):
//
//	[8] magic "STRATLOG" | u16 version | u16 flags | u32 header length (64) |
//	u64 first seq | [32] id of the event before the first | u32 CRC-32 of
//	bytes 0..55 | u32 reserved
type segmentHeader struct {
	First uint64
	Prev  [32]byte
}

func (h segmentHeader) encode() []byte {
	b := make([]byte, segmentHeaderLen)
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint16(b[8:], segmentVersion)
	binary.LittleEndian.PutUint32(b[12:], segmentHeaderLen)
	binary.LittleEndian.PutUint64(b[16:], h.First)
	copy(b[24:56], h.Prev[:])
	binary.LittleEndian.PutUint32(b[56:], crc32.ChecksumIEEE(b[:56]))
	return b
}

func decodeSegmentHeader(b []byte) (segmentHeader, error) {
	var h segmentHeader
	if len(b) < segmentHeaderLen || string(b[:8]) != segmentMagic {
		return h, fmt.Errorf("%w: not a strata segment (bad magic)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != segmentVersion {
		return h, fmt.Errorf("%w: segment format version %d, this build reads %d", ErrCorrupt, v, segmentVersion)
	}
	if crc32.ChecksumIEEE(b[:56]) != binary.LittleEndian.Uint32(b[56:]) {
		return h, fmt.Errorf("%w: segment header checksum mismatch", ErrCorrupt)
	}
	h.First = binary.LittleEndian.Uint64(b[16:])
	copy(h.Prev[:], b[24:56])
	return h, nil
}

// createSegment makes a new, empty segment durably: the header goes to a
// temp file that is fsynced and renamed into place, then the directory is
// fsynced, so a crash never leaves a segment without its header.
func createSegment(dir string, h segmentHeader, noSync bool) error {
	final := filepath.Join(dir, segmentName(h.First))
	return writeFileAtomic(final, h.encode(), noSync)
}

// writeFileAtomic writes data to path through a temp file, fsync and rename,
// then fsyncs the directory.
func writeFileAtomic(path string, data []byte, noSync bool) error {
	if noSync {
		return fileutil.WriteFileNoSync(path, data, 0o644)
	}
	return fileutil.WriteFile(path, data, 0o644)
}

// listSegments returns the first seqs of the segments in dir, in order,
// compressed or not.
func listSegments(dir string) ([]uint64, error) {
	ents, err := listSegmentFiles(dir)
	firsts := make([]uint64, len(ents))
	for i, e := range ents {
		firsts[i] = e.first
	}
	return firsts, err
}

// segFile is what a segment's original bytes are read through: its .seg
// file (w, also what appends write to), or a reader of its .zseg (z; w is
// nil, since only sealed segments are compressed).
type segFile struct {
	r    io.ReaderAt
	w    *os.File
	z    *zsegReader
	path string // the file
}

// A nil *segFile (a segment whose files did not open) fails every call
// with os.ErrInvalid, as a nil *os.File does.

func (f *segFile) ReadAt(p []byte, off int64) (int, error) {
	if f == nil {
		return 0, os.ErrInvalid
	}
	return f.r.ReadAt(p, off)
}

// frameEnd is how far a read of the record at off need go: the end of its
// frame in a .zseg (zsegReader.frameEnd), no bound in a .seg.
func (f *segFile) frameEnd(off int64) int64 {
	if f != nil && f.z != nil {
		return f.z.frameEnd(off)
	}
	return math.MaxInt64
}

// Close closes the file.
func (f *segFile) Close() error {
	if f == nil {
		return os.ErrInvalid
	}
	if f.z != nil {
		return f.z.Close()
	}
	return f.w.Close()
}

// size returns the size of the original bytes.
func (f *segFile) size() (int64, error) {
	if f == nil {
		return 0, os.ErrInvalid
	}
	if f.z != nil {
		return f.z.size, nil
	}
	st, err := f.w.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// openSegFile opens the segment of dir starting at first: its .seg (for
// writing too, if write), else its .zseg. A compaction may replace the
// one by the other at any time, but it creates the .zseg before it
// removes the .seg, so when the .seg is gone the .zseg is there.
func openSegFile(dir string, first uint64, write bool) (*segFile, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	path := filepath.Join(dir, segmentName(first))
	f, err := os.OpenFile(path, flag, 0)
	if err == nil {
		return &segFile{r: f, w: f, path: path}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	zpath := filepath.Join(dir, zsegName(first))
	z, zerr := openZseg(zpath)
	if zerr == nil {
		return &segFile{r: z, z: z, path: zpath}, nil
	}
	if errors.Is(zerr, os.ErrNotExist) {
		return nil, err // neither: name the segment as it was
	}
	return nil, zerr
}

// statSegment returns the size on disk of the segment of dir starting at
// first: its .seg's, else its .zseg's.
func statSegment(dir string, first uint64) (int64, error) {
	fi, err := os.Stat(filepath.Join(dir, segmentName(first)))
	if errors.Is(err, os.ErrNotExist) {
		if zfi, zerr := os.Stat(filepath.Join(dir, zsegName(first))); zerr == nil {
			return zfi.Size(), nil
		}
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
