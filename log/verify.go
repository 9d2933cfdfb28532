package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
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
//
// The work is spread over runtime.GOMAXPROCS cores: a record's id depends
// only on its own fields and its stored prev, so workers decode records and
// recompute their ids (the BLAKE3 hashing, most of the cost) a chunk of a
// segment at a time, while this goroutine makes the checks that need the
// order — seq, prev = the id before, time, entity versions, requests —
// record by record as before. The first bad record is the one reported,
// whatever the workers found after it.
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
	// An entity's last version and its seq; a pointer, so that an event of
	// a known entity costs one map lookup.
	type entPos struct{ version, seq uint64 }
	ents := map[string]*entPos{}
	expect := uint64(1)
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
		var p *verifyPipe
		bad := func(format string, args ...any) error {
			if p != nil {
				p.stop()
			}
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
		p = startVerifyPipe(f, segmentHeaderLen)
	records:
		for {
			b := p.nextBatch()
			for j := range b.recs {
				r := &b.recs[j]
				e := &r.e
				if r.err != nil {
					// A record that frames but does not decode: what the
					// scanner's caller saw as a decode error.
					b.err, b.errAt = r.err, r.at
					break
				}
				switch {
				case e.Seq != expect:
					return rep, bad("offset %d: seq %d where %d was due", r.at, e.Seq, expect)
				case e.Prev != prev:
					return rep, bad("seq %d: prev %x is not the id of seq %d (%x)", e.Seq, e.Prev, e.Seq-1, prev)
				case e.Time < lastTime:
					return rep, bad("seq %d: time %s is before the previous event's", e.Seq, FormatTime(e.Time))
				case !r.valid:
					return rep, bad("seq %d: invalid type or entity", e.Seq)
				case r.id != e.ID:
					return rep, bad("seq %d: stored id %x but its fields hash to %x", e.Seq, e.ID, r.id)
				}
				ep := ents[e.Entity]
				var pv, ps uint64
				if ep != nil {
					pv, ps = ep.version, ep.seq
				}
				if e.Version != pv+1 || e.PrevInEntity != ps {
					return rep, bad("seq %d: entity %q version %d (link %d) after version %d at seq %d", e.Seq, e.Entity, e.Version, e.PrevInEntity, pv, ps)
				}
				if ep == nil {
					// e.Entity aliases the batch, which is reused.
					ents[strings.Clone(e.Entity)] = &entPos{e.Version, e.Seq}
				} else {
					ep.version, ep.seq = e.Version, e.Seq
				}
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
					open, openAt = e.Seq, r.at
				}
			}
			switch {
			case errors.Is(b.err, io.EOF):
				p.release(b)
				break records
			case b.err != nil:
				at, err := b.errAt, b.err
				p.release(b)
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
				break records
			}
			p.release(b)
		}
		p.stop()
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

// verifyAhead is how many batches of Verify's pipeline may be read ahead
// of the checks, per worker.
const verifyAhead = 3

// verifyChunk is how many bytes of a segment one batch holds (what a
// worker checks at a time); a variable for the tests.
var verifyChunk = 1 << 20

// verifyBatch is the whole records of one chunk of a segment, in order,
// then how the chunk ended: err is nil when more follows, io.EOF at the
// clean end of the segment, else what the scanner would have returned at
// offset errAt (errShort, errBadCRC, errBadBody).
type verifyBatch struct {
	buf   []byte // the records' bodies alias it
	recs  []verifyRec
	err   error
	errAt int64
	ready chan struct{} // closed once a worker has decoded and hashed recs
}

// verifyRec is one record of a batch, as a worker left it.
type verifyRec struct {
	at    int64
	body  []byte
	e     Event
	err   error    // the body does not decode
	valid bool     // its type and entity are well formed
	id    [32]byte // the id its fields hash to
}

// verifyPipe reads one segment ahead of the checks: a reader goroutine
// frames records chunk by chunk (sequential I/O, in order), workers decode
// and hash each batch, and the caller takes the batches in order with
// nextBatch.
type verifyPipe struct {
	order chan *verifyBatch // in segment order, to the caller
	work  chan *verifyBatch // to the workers
	free  chan *verifyBatch // released batches, for reuse
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

func startVerifyPipe(f io.ReaderAt, off int64) *verifyPipe {
	workers := max(runtime.GOMAXPROCS(0), 1)
	p := &verifyPipe{
		order: make(chan *verifyBatch, workers*verifyAhead),
		work:  make(chan *verifyBatch, workers*verifyAhead),
		free:  make(chan *verifyBatch, workers*verifyAhead+2),
		quit:  make(chan struct{}),
	}
	p.wg.Add(1 + workers)
	go p.read(f, off)
	for range workers {
		go p.decode()
	}
	return p
}

// nextBatch returns the next batch once its records are decoded; the last
// one has err set. Release it when done with it.
func (p *verifyPipe) nextBatch() *verifyBatch {
	b := <-p.order
	<-b.ready
	return b
}

// release gives a batch back for reuse.
func (p *verifyPipe) release(b *verifyBatch) {
	select {
	case p.free <- b:
	default:
	}
}

// stop ends the reader and the workers and waits for them.
func (p *verifyPipe) stop() {
	p.once.Do(func() {
		close(p.quit)
		p.wg.Wait()
	})
}

// batch is a released batch or a new one, holding a buffer of at least n
// bytes.
func (p *verifyPipe) batch(n int) *verifyBatch {
	var b *verifyBatch
	select {
	case b = <-p.free:
	default:
		b = &verifyBatch{}
	}
	if cap(b.buf) < n {
		b.buf = make([]byte, 0, n)
	}
	b.buf, b.recs, b.err, b.errAt = b.buf[:0], b.recs[:0], nil, 0
	b.ready = make(chan struct{})
	return b
}

// read frames the records of f from off to its end as the scanner does, a
// chunk at a time, and hands each chunk's batch to the workers and to the
// caller. A record cut by the chunk's end starts the next chunk.
func (p *verifyPipe) read(f io.ReaderAt, off int64) {
	defer p.wg.Done()
	defer close(p.work)
	var carry []byte // the start of a record the last chunk cut
	for {
		need := verifyChunk
		if len(carry) >= recordHeaderLen {
			if n := recordHeaderLen + int(binary.LittleEndian.Uint32(carry)); n <= recordHeaderLen+maxRecordLen {
				need = max(need, n)
			}
		}
		b := p.batch(need)
		base := off - int64(len(carry)) // the file offset of b.buf[0]
		b.buf = append(b.buf, carry...)
		n, err := f.ReadAt(b.buf[len(b.buf):cap(b.buf)], off)
		b.buf = b.buf[:len(b.buf)+n]
		off += int64(n)
		eof := errors.Is(err, io.EOF)
		// A failed read (a damaged frame of a .zseg) still returns the
		// bytes before it: their whole records count, and the error is
		// reported at the first record it cut, as the scanner does, so
		// that where a chunk ends changes nothing.
		var rerr error
		if err != nil && !eof {
			rerr = err
		}
		pos := 0
		for b.err == nil {
			rest := b.buf[pos:]
			if len(rest) >= recordHeaderLen {
				n := recordHeaderLen + int(binary.LittleEndian.Uint32(rest))
				if n <= len(rest) || eof || n > recordHeaderLen+maxRecordLen {
					body, n, err := frame(rest)
					if err != nil {
						b.err, b.errAt = err, base+int64(pos)
						break
					}
					b.recs = append(b.recs, verifyRec{at: base + int64(pos), body: body})
					pos += n
					continue
				}
			} else if eof {
				if len(rest) == 0 {
					b.err, b.errAt = io.EOF, base+int64(pos)
				} else {
					b.err, b.errAt = errShort, base+int64(pos)
				}
			}
			break
		}
		if rerr != nil && b.err == nil {
			b.err, b.errAt = rerr, base+int64(pos)
		}
		carry = append(carry[:0], b.buf[pos:]...)
		if !p.send(b) || b.err != nil {
			return
		}
	}
}

// send queues a batch for the workers and the caller; false once stopped.
func (p *verifyPipe) send(b *verifyBatch) bool {
	select {
	case p.order <- b:
	case <-p.quit:
		return false
	}
	select {
	case p.work <- b:
		return true
	case <-p.quit:
		return false
	}
}

// decode is a worker: it decodes every record of a batch and recomputes
// its id.
func (p *verifyPipe) decode() {
	defer p.wg.Done()
	for b := range p.work {
		for i := range b.recs {
			r := &b.recs[i]
			if r.err = decodeAliased(r.body, &r.e); r.err != nil {
				break
			}
			r.valid = ValidateType(r.e.Type) == nil && validStoredEntity(r.e.Entity) == nil
			r.id = ComputeID(&r.e)
		}
		close(b.ready)
	}
}

// decodeAliased is decodeBody without a copy: e's strings alias body (no
// allocation for each of a million events), so e is valid only while body
// is — the batch's life. Whoever keeps one (Verify's entity map) clones it.
func decodeAliased(body []byte, e *Event) error {
	var r RawEvent
	if err := r.parse(body); err != nil {
		return err
	}
	*e = Event{Seq: r.Seq, Time: r.Time, Version: r.Version, PrevInEntity: r.PrevInEntity,
		Type: aliasString(r.Type), Entity: aliasString(r.Entity), Key: aliasString(r.key),
		Meta: r.Meta(), Data: r.data, Erased: r.Erased(), more: r.flags&flagMore != 0}
	copy(e.ID[:], r.id)
	copy(e.Prev[:], r.prev)
	return nil
}

func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
