package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Events uint64
	Head   Head
	// TornTail is set when the last segment ends in bytes that do not form a
	// whole record: a crash mid-write, which the next writer cuts.
	TornTail string
}

// Verify walks the whole chain in dir from the segment files alone — no
// index is trusted — recomputing every id from the stored bytes, and checks
// that seqs are gapless, every prev is the id before it, times never
// decrease, and every entity's versions run 1, 2, 3 … with correct links.
// It takes no lock and changes nothing. The first bad record is reported as
// an error wrapping ErrCorrupt.
func Verify(dir string) (*VerifyReport, error) { return VerifyProgress(dir, nil) }

// verifyEvery is how many events VerifyProgress checks between two calls
// of its progress function.
const verifyEvery = 4096

// VerifyProgress is Verify calling progress (when not nil) every few
// thousand events with the events checked and the total expected: the
// acknowledged head as the head file says, or 0 when it is unknown.
func VerifyProgress(dir string, progress func(done, total uint64)) (*VerifyReport, error) {
	firsts, err := listSegments(filepath.Join(dir, logDirName))
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{}
	// The head file, if any, says how far events were acknowledged: a bad
	// record up to there is damage, not a torn write.
	var committed uint64
	known := false
	if b, err := os.ReadFile(filepath.Join(dir, indexDirName, headFileName)); err == nil && len(b) == headSize && string(b[:8]) == headMagic {
		committed = max(binary.LittleEndian.Uint64(b[headOffSynced:]), binary.LittleEndian.Uint64(b[headOffThrough:]))
		known = true
	}
	var prev [32]byte
	var lastTime int64
	type entPos struct{ version, seq uint64 }
	ents := map[string]entPos{}
	expect := uint64(1)
	var e Event
	// A request's records stand or fall together: open is the seq and
	// offset of the first record of a request whose last record is not read
	// yet (0 when none), whole what the report was before it.
	var open uint64
	var openAt int64
	var whole VerifyReport
	for i, first := range firsts {
		f, err := openSegFile(filepath.Join(dir, logDirName), first, false)
		if err != nil {
			return rep, err
		}
		name := f.path
		bad := func(format string, args ...any) error {
			f.Close()
			return fmt.Errorf("%w: %s: %s", ErrCorrupt, filepath.Base(name), fmt.Sprintf(format, args...))
		}
		var hb [segmentHeaderLen]byte
		if _, err := f.ReadAt(hb[:], 0); err != nil {
			return rep, bad("header: %v", err)
		}
		h, err := decodeSegmentHeader(hb[:])
		if err != nil {
			return rep, bad("%v", err)
		}
		if h.First != expect || h.Prev != prev {
			return rep, bad("starts at seq %d after %x; the chain is at seq %d after %x", h.First, h.Prev, expect, prev)
		}
		sc := newScanner(f, segmentHeaderLen)
		for {
			body, at, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = decodeBody(body, &e)
			}
			if err != nil {
				seq, cut := expect, at
				if open != 0 {
					seq, cut = open, openAt
					rep.Events, rep.Head = whole.Events, whole.Head
				}
				if why := judgeDamage(f, at, expect, seq, committed, known, i == len(firsts)-1, err); why != nil {
					return rep, bad("%v", why)
				}
				rep.TornTail = fmt.Sprintf("%s offset %d: %v", filepath.Base(name), cut, err)
				open = 0
				break
			}
			switch {
			case e.Seq != expect:
				return rep, bad("offset %d: seq %d where %d was due", at, e.Seq, expect)
			case e.Prev != prev:
				return rep, bad("seq %d: prev %x is not the id of seq %d (%x)", e.Seq, e.Prev, e.Seq-1, prev)
			case e.Time < lastTime:
				return rep, bad("seq %d: time %s is before the previous event's", e.Seq, FormatTime(e.Time))
			case ValidateType(e.Type) != nil || validStoredEntity(e.Entity) != nil:
				return rep, bad("seq %d: invalid type or entity", e.Seq)
			}
			if id := ComputeID(&e); id != e.ID {
				return rep, bad("seq %d: stored id %x but its fields hash to %x", e.Seq, e.ID, id)
			}
			p := ents[e.Entity]
			if e.Version != p.version+1 || e.PrevInEntity != p.seq {
				return rep, bad("seq %d: entity %q version %d (link %d) after version %d at seq %d", e.Seq, e.Entity, e.Version, e.PrevInEntity, p.version, p.seq)
			}
			ents[e.Entity] = entPos{e.Version, e.Seq}
			prev, lastTime = e.ID, e.Time
			rep.Events = e.Seq
			rep.Head = Head{Seq: e.Seq, ID: e.ID, Time: e.Time}
			expect++
			if progress != nil && e.Seq%verifyEvery == 0 {
				progress(e.Seq, committed)
			}
			switch {
			case !e.more:
				open, whole = 0, *rep
			case open == 0:
				open, openAt = e.Seq, at
			}
		}
		if open != 0 {
			switch {
			case i < len(firsts)-1:
				return rep, bad("ends inside the request that starts at seq %d", open)
			case open <= committed:
				return rep, bad("ends inside acknowledged seq %d's request", open)
			}
			rep.Events, rep.Head = whole.Events, whole.Head
			rep.TornTail = fmt.Sprintf("%s offset %d: the request from seq %d lacks its last records", filepath.Base(name), openAt, open)
		}
		f.Close()
	}
	return rep, nil
}
