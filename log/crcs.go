package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A copy of segment bytes kept elsewhere under its own checksums (a
// backup: BLAKE3 and zstd's) need not keep the records' CRCs, four random
// bytes a record that no compressor can shrink. CopyZeroingCRCs stores
// them as zeros after checking them; CopySettingCRCs computes them again
// when the bytes come back. Both walk the records with the log's own
// framing, so a part that does not frame is refused, never patched.

// CopyZeroingCRCs copies r to w: the bytes of a segment from offset off —
// its header first when off is 0, then whole records back to back, as a
// Span's part past a record boundary is. It checks each record's CRC-32
// and writes the record with its CRC field zeroed. A record whose CRC does
// not match, whose length is impossible, or that r ends inside, is an error
// wrapping ErrCorrupt naming its offset in the segment. It returns the
// bytes copied.
func CopyZeroingCRCs(w io.Writer, r io.Reader, off int64) (int64, error) {
	return copyRecords(w, r, off, true)
}

// CopySettingCRCs is the inverse of CopyZeroingCRCs: it copies r (bytes of
// a segment from offset off, their CRC fields zeroed) to w with each
// record's CRC-32 computed from its body. A part that does not frame
// exactly into whole records, or a record whose CRC field is not zero,
// is an error wrapping ErrCorrupt.
func CopySettingCRCs(w io.Writer, r io.Reader, off int64) (int64, error) {
	return copyRecords(w, r, off, false)
}

// copyRecords reads r in chunks of scanChunk (more for a record that does
// not fit one, up to maxRecordLen), so memory stays bounded whatever the
// part's size, and writes whole records only.
func copyRecords(w io.Writer, r io.Reader, off int64, zero bool) (int64, error) {
	if off != 0 && off < segmentHeaderLen {
		return 0, fmt.Errorf("%w: offset %d is inside the segment header", ErrCorrupt, off)
	}
	buf := make([]byte, scanChunk)
	have := 0   // bytes in buf
	skip := 0   // header bytes at the start of buf, copied as they are
	at := off   // the segment offset of buf[0]
	var n int64 // bytes written
	if off == 0 {
		skip = segmentHeaderLen
	}
	for eof := false; ; {
		for !eof && have < len(buf) {
			k, err := r.Read(buf[have:])
			have += k
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return n, err
			}
		}
		if skip > have {
			return n, fmt.Errorf("%w: the segment header is cut short at %d bytes", ErrCorrupt, have)
		}
		done, need, err := fixCRCs(buf[skip:have], zero)
		done += skip
		if err != nil {
			return n, fmt.Errorf("offset %d: %w", at+int64(done), err)
		}
		m, err := w.Write(buf[:done])
		n += int64(m)
		if err != nil {
			return n, err
		}
		skip = 0
		at += int64(done)
		have = copy(buf, buf[done:have])
		if eof {
			if have > 0 {
				return n, fmt.Errorf("offset %d: %w: %w", at, ErrCorrupt, errShort)
			}
			return n, nil
		}
		if need > len(buf) {
			buf = append(buf[:have], make([]byte, need-have)...)
		}
	}
}

// fixCRCs walks the whole records at the start of b, checking and zeroing
// (zero) or setting each one's CRC field, and returns the bytes they take;
// need is the framed length of the record b ends inside (0 if none).
func fixCRCs(b []byte, zero bool) (done, need int, err error) {
	for len(b)-done >= recordHeaderLen {
		size := binary.LittleEndian.Uint32(b[done:])
		if size < minBodyLen || size > maxRecordLen {
			return done, 0, fmt.Errorf("%w: %w: impossible length %d", ErrCorrupt, errBadBody, size)
		}
		end := done + recordHeaderLen + int(size)
		if end > len(b) {
			return done, recordHeaderLen + int(size), nil
		}
		sum := crc32.ChecksumIEEE(b[done+recordHeaderLen : end])
		field := b[done+4 : done+recordHeaderLen]
		stored := binary.LittleEndian.Uint32(field)
		switch {
		case zero && stored != sum:
			return done, 0, fmt.Errorf("%w: %w", ErrCorrupt, errBadCRC)
		case !zero && stored != 0:
			return done, 0, fmt.Errorf("%w: a record's CRC field is not zeroed", ErrCorrupt)
		case zero:
			binary.LittleEndian.PutUint32(field, 0)
		default:
			binary.LittleEndian.PutUint32(field, sum)
		}
		done = end
	}
	return done, 0, nil
}
