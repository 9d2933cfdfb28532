package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record frames one event in a segment (FORMAT.md, "Records"):
//
//	u32 LE body length | u32 LE CRC-32 of the body | body
//
// and the body is
//
//	u8 kind (1 = event) | u8 flags | uvarint seq | i64 LE time (unix ns) |
//	[32] id | [32] prev | uvarint version | uvarint seq − previous seq of the
//	entity (0 = first) | uvarint-length-prefixed type, entity, key |
//	uvarint meta length (0 = no meta) + meta | uvarint data length + data
const (
	recordHeaderLen = 8
	recordKindEvent = 1
	// flagErased marks an event whose data was erased: the data field then
	// holds the 32-byte BLAKE3 digest of the erased data, so the id still
	// verifies.
	flagErased = 1
	// flagMore marks a record followed by more records of its request: a
	// request's last record has it clear, so recovery can tell a request
	// torn by a crash from a whole one and cut it whole.
	flagMore = 2

	// maxRecordLen bounds one record so that a damaged length field cannot
	// make a reader allocate gigabytes.
	maxRecordLen = 64 << 20
	// minBodyLen is the smallest possible body: kind, flags, seq, time, id,
	// prev, version, back, three empty strings, no meta, empty data.
	minBodyLen = 1 + 1 + 1 + 8 + 32 + 32 + 1 + 1 + 3 + 1 + 1
)

// Records are checksummed with CRC-32 (IEEE), not CRC-32C: Go builds its
// CRC-32C tables at first use, which costs 0.2–0.4 ms — paid by every CGI
// request — while CRC-32 is ready in microseconds and as fast (PCLMULQDQ).

// Reasons a record does not decode. errShort means the bytes end inside the
// record (a torn tail if it is the last thing in the file).
var (
	errShort   = errors.New("record is cut short")
	errBadCRC  = errors.New("record checksum mismatch")
	errBadBody = errors.New("record body is malformed")
)

// recordSize returns the framed size of e.
func recordSize(e *Event) int {
	n := 2 + uvarintLen(e.Seq) + 8 + 32 + 32 + uvarintLen(e.Version) + uvarintLen(entityBack(e))
	n += uvarintLen(uint64(len(e.Type))) + len(e.Type)
	n += uvarintLen(uint64(len(e.Entity))) + len(e.Entity)
	n += uvarintLen(uint64(len(e.Key))) + len(e.Key)
	n += uvarintLen(uint64(len(e.Meta))) + len(e.Meta)
	n += uvarintLen(uint64(len(e.Data))) + len(e.Data)
	return recordHeaderLen + n
}

func entityBack(e *Event) uint64 {
	if e.PrevInEntity == 0 {
		return 0
	}
	return e.Seq - e.PrevInEntity
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendRecord appends the framed record of e to dst.
func appendRecord(dst []byte, e *Event) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	var flags byte
	if e.Erased {
		flags |= flagErased
	}
	if e.more {
		flags |= flagMore
	}
	dst = append(dst, recordKindEvent, flags)
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Time))
	dst = append(dst, e.ID[:]...)
	dst = append(dst, e.Prev[:]...)
	dst = binary.AppendUvarint(dst, e.Version)
	dst = binary.AppendUvarint(dst, entityBack(e))
	dst = appendBytes(dst, e.Type)
	dst = appendBytes(dst, e.Entity)
	dst = appendBytes(dst, e.Key)
	dst = appendBytes(dst, e.Meta)
	dst = appendBytes(dst, e.Data)
	body := dst[start+recordHeaderLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.ChecksumIEEE(body))
	return dst
}

func appendBytes[T string | []byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// frame checks the record that starts at b[0] and returns its body and
// framed length. It does not decode the body.
func frame(b []byte) (body []byte, n int, err error) {
	if len(b) < recordHeaderLen {
		return nil, 0, errShort
	}
	size := binary.LittleEndian.Uint32(b)
	if size < minBodyLen || size > maxRecordLen {
		if len(b) >= recordHeaderLen && allZero(b[:recordHeaderLen]) {
			return nil, 0, errShort // a zero-filled tail: space allocated, never written
		}
		return nil, 0, fmt.Errorf("%w: impossible length %d", errBadBody, size)
	}
	n = recordHeaderLen + int(size)
	if len(b) < n {
		return nil, 0, errShort
	}
	body = b[recordHeaderLen:n]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errBadCRC
	}
	return body, n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeBody fills e from a record body whose checksum was verified. Strings
// are copied; Data and Meta alias body.
func decodeBody(body []byte, e *Event) error {
	var r RawEvent
	if err := r.parse(body); err != nil {
		return err
	}
	r.Decode(e)
	return nil
}

// parse fills r from a record body whose checksum was verified; every
// field aliases body.
func (r *RawEvent) parse(body []byte) error {
	d := decoder{b: body}
	if d.byte() != recordKindEvent {
		return fmt.Errorf("%w: unknown record kind %d", errBadBody, body[0])
	}
	flags := d.byte()
	r.Seq = d.uvarint()
	r.Time = int64(d.uint64())
	r.id = d.take(32)
	r.prev = d.take(32)
	r.Version = d.uvarint()
	back := d.uvarint()
	r.Type = d.bytes()
	r.Entity = d.bytes()
	r.key = d.bytes()
	r.meta = d.bytes()
	r.data = d.bytes()
	if d.err != nil || len(d.b) != 0 {
		return fmt.Errorf("%w: fields do not fit the length", errBadBody)
	}
	r.PrevInEntity = 0
	if back != 0 {
		if back >= r.Seq {
			return fmt.Errorf("%w: entity back-link %d from seq %d", errBadBody, back, r.Seq)
		}
		r.PrevInEntity = r.Seq - back
	}
	r.flags = flags
	if r.Erased() && len(r.data) != 32 {
		return fmt.Errorf("%w: erased data digest is %d bytes", errBadBody, len(r.data))
	}
	return nil
}

// decoder reads fields and remembers the first overrun.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errBadBody; d.b = nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	x := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return x
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) take(n int) []byte {
	if len(d.b) < n {
		d.fail()
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}
