package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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

// listSegments returns the first seqs of the segments in dir, in order.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var firsts []uint64
	for _, ent := range ents {
		if first, ok := parseSegmentName(ent.Name()); ok {
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	return firsts, nil
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
