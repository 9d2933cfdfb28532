package log

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/zeebo/blake3"

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
	var buf [512]byte
	b := append(buf[:0], hashPrefix...)
	b = hex.AppendEncode(b, e.Prev[:])
	b = append(b, '\n')
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, '\n')
	b = AppendTime(b, e.Time)
	b = append(b, '\n')
	b = append(b, e.Type...)
	b = append(b, '\n')
	b = append(b, e.Entity...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, '\n')
	b = append(b, e.Key...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, dataDigest[:])
	b = append(b, '\n')
	b = hex.AppendEncode(b, metaDigest[:])
	return blake3.Sum256(b)
}

// TimeLayout is how event times are served: RFC 3339, UTC, exactly nine
// fractional digits, so that the text is fixed-width and sorts as it reads.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// AppendTime appends the served form of a unix-nanosecond time.
func AppendTime(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, TimeLayout)
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
