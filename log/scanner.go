package log

import (
	"encoding/binary"
	"errors"
	"io"
)

// scanner reads the records of one segment in order from an offset, with a
// buffer, so that a long read costs sequential I/O and no per-record system
// call.
type scanner struct {
	r   io.ReaderAt
	seg *segment // when set, r is the segment's current file, fetched at each fill
	off int64    // file offset of buf[0]
	buf []byte
	pos int // next record in buf
	eof bool
	// err is a read that failed after returning some bytes (a damaged
	// frame of a .zseg after whole ones): the records before it are
	// served first, and it is reported at the first record it cut.
	err error
	// grow, when over cap(buf), is the read size a fill works up to,
	// four times the last each time; filled says a fill was made.
	grow   int
	filled bool
}

// scanChunk is the read size of a long scan; smallScanChunk that of a
// scan of a few records (a catch-up of a short tail), which would
// otherwise allocate and fill a megabyte to read a few hundred bytes.
const (
	scanChunk      = 1 << 20
	smallScanChunk = 16 << 10
)

func newScanner(r io.ReaderAt, off int64) *scanner {
	return newScannerSize(r, off, scanChunk)
}

// newScannerSize is newScanner reading size bytes at a time (more for a
// larger record).
func newScannerSize(r io.ReaderAt, off int64, size int) *scanner {
	return &scanner{r: r, off: off, buf: make([]byte, 0, size)}
}

// newSegmentScanner scans segment s: each fill reads through the file the
// segment has then, so a scan that outlives a compaction of s moves to the
// .zseg and lets the .seg go. Its first read is small and the next ones
// grow to size: a page of a few events (GET /events?limit=1 ends its scan
// at the head) then reads 16 KiB of the file, or decodes a frame or two
// of a .zseg, not a megabyte's worth; a long scan soon reads size at a
// time.
func newSegmentScanner(s *segment, off int64, size int) *scanner {
	return &scanner{seg: s, off: off, buf: make([]byte, 0, min(size, smallScanChunk)), grow: size}
}

// next returns the body of the next record and its offset in the file. At
// a clean end it returns io.EOF; bytes that do not form a whole record give
// errShort; a damaged record gives errBadCRC or errBadBody. The body is
// valid until the following call.
func (s *scanner) next() (body []byte, off int64, err error) {
	for {
		rest := s.buf[s.pos:]
		if len(rest) >= recordHeaderLen {
			size := recordHeaderLen + int(binary.LittleEndian.Uint32(rest))
			if size <= len(rest) || s.eof || size > recordHeaderLen+maxRecordLen {
				body, n, err := frame(rest)
				if err != nil {
					return nil, s.off + int64(s.pos), err
				}
				off = s.off + int64(s.pos)
				s.pos += n
				return body, off, nil
			}
			if size > cap(s.buf) {
				grown := make([]byte, len(rest), size+scanChunk)
				copy(grown, rest)
				s.off += int64(s.pos)
				s.buf, s.pos = grown, 0
			}
		} else if s.eof {
			if len(rest) == 0 {
				return nil, s.off + int64(s.pos), io.EOF
			}
			return nil, s.off + int64(s.pos), errShort
		}
		if s.err != nil {
			return nil, s.off + int64(s.pos), s.err
		}
		if err := s.fill(); err != nil {
			return nil, s.off + int64(s.pos), err
		}
	}
}

// fill moves the unread bytes to the front and reads more after them.
func (s *scanner) fill() error {
	if s.filled && cap(s.buf) < s.grow {
		grown := make([]byte, len(s.buf), min(s.grow, 4*cap(s.buf)))
		copy(grown, s.buf)
		s.buf = grown
	}
	s.filled = true
	rest := len(s.buf) - s.pos
	copy(s.buf[:rest], s.buf[s.pos:])
	s.off += int64(s.pos)
	s.buf, s.pos = s.buf[:rest], 0
	r := s.r
	if s.seg != nil {
		r = s.seg.reader()
	}
	n, err := r.ReadAt(s.buf[rest:cap(s.buf)], s.off+int64(rest))
	s.buf = s.buf[:rest+n]
	switch {
	case errors.Is(err, io.EOF):
		s.eof = true
	case err != nil && n > 0:
		s.err = err
	default:
		return err
	}
	return nil
}
