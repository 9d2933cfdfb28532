package log

import (
	"encoding/hex"
	"strconv"
	"time"

	"strata/internal/blake3"

	"strata/jsonx"
)

// Event is one stored event: the client's fields plus the ones the server
// assigns. Data and Meta are compacted JSON exactly as served; Meta is nil
// when the event has none.
type Event struct {
	ID      [32]byte
	Prev    [32]byte
	Seq     uint64
	Time    int64 // unix nanoseconds, UTC
	Type    string
	Entity  string
	Version uint64
	Key     string
	Data    []byte
	Meta    []byte

	// Erased says the data was erased (GDPR): Data then holds the 32-byte
	// BLAKE3 digest of the erased bytes, which keeps the id verifiable.
	Erased bool

	// PrevInEntity is the seq of the entity's previous event (0 for its
	// first): each entity's events form a chain that can be walked without
	// scanning the log.
	PrevInEntity uint64

	keyTag uint64 // the key's hash in the key index, while appending
	// more says another event of the same request follows this one in the
	// log (flagMore): recovery cuts a request whose last record is missing.
	more bool
}

// hashPrefix opens every version-1 event hash.
const hashPrefix = "strata-event-v1\n"

// ComputeID returns the event's id by hash recipe version 1 (FORMAT.md).
// It reads every field except ID.
func ComputeID(e *Event) [32]byte {
	metaDigest := emptyDigest
	if e.Meta != nil {
		metaDigest = blake3.Sum256(e.Meta)
	}
	if e.Erased {
		var digest [32]byte
		copy(digest[:], e.Data)
		return computeID(e, digest, metaDigest)
	}
	return computeID(e, blake3.Sum256(e.Data), metaDigest)
}

// emptyDigest is the BLAKE3 hash of nothing: the meta digest of an event
// without meta.
var emptyDigest = blake3.Sum256(nil)

// computeID is ComputeID with the digests given: an erased event keeps only
// its data digest, and the append path computes digests ahead of the lock.
func computeID(e *Event, dataDigest, metaDigest [32]byte) [32]byte {
	var prev, data, meta [64]byte
	hex.Encode(prev[:], e.Prev[:])
	hex.Encode(data[:], dataDigest[:])
	hex.Encode(meta[:], metaDigest[:])
	var tm [30]byte
	AppendTime(tm[:0], e.Time)
	return computeIDHex(e, &tm, &prev, &data, &meta)
}

// computeIDHex is computeID with the text forms given: the append path
// encodes the digests before the lock, each id once (as the next prev), and
// the time once per request (all its events share it).
func computeIDHex(e *Event, timeText *[30]byte, prevHex, dataHex, metaHex *[64]byte) [32]byte {
	var buf [512]byte
	b := append(buf[:0], hashPrefix...)
	b = append(b, prevHex[:]...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, '\n')
	b = append(b, timeText[:]...)
	b = append(b, '\n')
	b = append(b, e.Type...)
	b = append(b, '\n')
	b = append(b, e.Entity...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, '\n')
	b = append(b, e.Key...)
	b = append(b, '\n')
	b = append(b, dataHex[:]...)
	b = append(b, '\n')
	b = append(b, metaHex[:]...)
	return blake3.Sum256(b)
}

// TimeLayout is how event times are served: RFC 3339, UTC, exactly nine
// fractional digits, so that the text is fixed-width and sorts as it reads.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// AppendTime appends the served form of a unix-nanosecond time. It is on
// the hot path of every append and read, so it does the calendar arithmetic
// itself (days to civil date, after Howard Hinnant's algorithm) instead of
// going through time.Format.
func AppendTime(dst []byte, ns int64) []byte {
	if ns < 0 {
		return time.Unix(0, ns).UTC().AppendFormat(dst, TimeLayout)
	}
	secs, frac := ns/1e9, ns%1e9
	days, sod := secs/86400, secs%86400
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	var b [30]byte
	put := func(at int, v int64, width int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, m, 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, sod/3600, 2)
	b[13] = ':'
	put(14, sod/60%60, 2)
	b[16] = ':'
	put(17, sod%60, 2)
	b[19] = '.'
	put(20, frac, 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// FormatTime returns the served form of a unix-nanosecond time.
func FormatTime(ns int64) string { return string(AppendTime(nil, ns)) }

// ParseTime reads a time in any RFC 3339 form and returns unix nanoseconds.
func ParseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixNano(), nil
}

// zeroID is the prev of seq 1.
var zeroID [32]byte

// AppendJSON appends the event as served: one JSON object, fields in the
// contract's order, key and meta only when present.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = hex.AppendEncode(b, e.ID[:])
	b = append(b, `","prev":"`...)
	b = hex.AppendEncode(b, e.Prev[:])
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = AppendTime(b, e.Time)
	b = append(b, `","type":"`...)
	b = append(b, e.Type...) // the type's alphabet needs no escaping
	b = append(b, `","entity":`...)
	b = jsonx.AppendString(b, e.Entity)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	if e.Key != "" {
		b = append(b, `,"key":`...)
		b = jsonx.AppendString(b, e.Key)
	}
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	if e.Meta != nil {
		b = append(b, `,"meta":`...)
		b = append(b, e.Meta...)
	}
	return append(b, '}')
}

// IDString returns the event id as 64 lowercase hex digits.
func (e *Event) IDString() string { return hex.EncodeToString(e.ID[:]) }

// ParseID reads 64 lowercase hex digits.
func ParseID(s string) ([32]byte, bool) {
	var id [32]byte
	if len(s) != 64 {
		return id, false
	}
	for i := 0; i < 64; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, false
		}
	}
	hex.Decode(id[:], []byte(s))
	return id, true
}

func hashOf(b []byte) [32]byte { return blake3.Sum256(b) }
