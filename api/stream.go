package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"strata/jsonx"
	"strata/log"
	"strata/query"
)

// GET /stream: the events after a start point that match a filter, first
// those stored, then live ones as they are committed, with no gap and no
// duplicate at the seam (one cursor, a seq, moves forward through both),
// as Server-Sent Events whose ids are the events' ids, so an EventSource
// resumes by itself (Last-Event-ID). In a long-running process live events
// come from the tenant's hub (hub.go); under CGI the request polls the
// log's shared head and ends after Config.StreamTimeout. Either way a
// stream that ends on purpose says so last: an "end" message with the
// reason and the resume point.

// Defaults for Config.StreamTimeout (under CGI) and Config.Heartbeat.
const (
	// DefaultStreamTimeout bounds a CGI stream, which holds a process and
	// a web server worker: well under Apache's default Timeout of 60 s
	// (which heartbeats keep from firing) and mod_fcgid's busy timeout.
	DefaultStreamTimeout = 25 * time.Second
	// DefaultHeartbeat is how often an idle stream sends a comment: well
	// under Apache's Timeout (60 s), which counts idle time between
	// writes, and under most proxies' idle timeouts.
	DefaultHeartbeat = 15 * time.Second
)

// streamBatch is the most seqs a stream reads from disk between two
// flushes: a backlog goes out in big writes, and a long one still looks
// at its heartbeat, its stop signals and its Sent callback in between.
const streamBatch = 16384

// Formats of streamed events (streamOpts.Format).
const (
	formatJSON        = ""
	formatCloudEvents = "cloudevents"
)

// streamOpts are how a caller of streamEvents shapes its stream.
type streamOpts struct {
	// Format is formatJSON (each event as GET /events serves it) or
	// formatCloudEvents.
	Format string
	// Sent, if set, is called after the events through seq through are
	// flushed (every event the filter matched up to it went out; through
	// may have moved past events the filter skipped), and on every
	// heartbeat. An error ends the stream: a streamEnd names the end
	// message's reason ("lease_lost"), any other is reason "error".
	Sent func(through uint64) error
}

// streamEnd is an error that ends a stream with its own reason.
type streamEnd string

func (e streamEnd) Error() string { return "stream ended: " + string(e) }

// stream serves GET /stream.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, c *call) {
	p, format, err := streamParams(r)
	if err == nil {
		p, err = streamStart(c.t.log, p)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	o := streamOpts{Format: format}
	if wantsWebSocket(r) {
		h.streamWebSocket(w, r, c, p, o)
		return
	}
	h.streamEvents(w, r, c, startSSE(w, r), p, o)
}

// streamParams reads GET /stream's parameters: GET /events' start point
// (from, after) and filters (type, entity, since), format, and the
// Last-Event-ID header of a reconnecting EventSource, which wins over from
// and after. A stream has no end, so to, until and limit are refused.
func streamParams(r *http.Request) (query.Params, string, error) {
	q := r.URL.Query()
	for _, name := range []string{"to", "until", "limit", "wait"} {
		if q.Has(name) {
			return query.Params{}, "", badParam(name, "a stream has no end; read a closed range with GET /events")
		}
	}
	p, err := readParams(q, "format")
	if err != nil {
		return p, "", err
	}
	if err := formatParam(q); err != nil {
		return p, "", err
	}
	format := formatJSON
	if q.Get("format") == "cloudevents" {
		format = formatCloudEvents
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		id, ok := log.ParseID(v)
		if !ok {
			return p, "", badParam("Last-Event-ID", "must be an event id (64 lowercase hex)")
		}
		p.From, p.After = &id, 0
	}
	return p, format, nil
}

// streamStart resolves a stream's start point to a seq (p.After): from
// (an id on this chain, else ErrFromNotFound), after, and since, whichever
// is latest. p.Since stays: a filter for live events too (an event's time
// never goes back, but since may lie in the future).
func streamStart(l *log.Log, p query.Params) (query.Params, error) {
	if p.From != nil {
		var seq uint64
		if *p.From != ([32]byte{}) {
			var err error
			seq, err = l.Lookup(*p.From)
			if errors.Is(err, log.ErrNotFound) {
				return p, query.ErrFromNotFound
			}
			if err != nil {
				return p, err
			}
		}
		p.After, p.From = max(p.After, seq), nil
	}
	if p.Since != nil {
		seq, err := l.SeqAtTime(*p.Since)
		if err != nil {
			return p, err
		}
		if seq > 0 {
			p.After = max(p.After, seq-1)
		}
	}
	return p, nil
}

// streamer is one stream's state: its cursor and what it sends through.
type streamer struct {
	h      *Handler
	r      *http.Request
	l      *log.Log
	out    sink
	p      query.Params
	o      streamOpts
	entity bool // p.Entity is an exact name: read its own chain

	after    uint64 // every matching event through here went out
	lastSent uint64 // seq of the last event sent (0: none yet)
	dirty    bool   // sent or moved since the last flush
	scratch  []byte
	stop     <-chan struct{} // the server drains
	gone     <-chan struct{} // the tenant was dropped (reopened, deleted)
	// ctx is the request's context, until the stream parks (park.go).
	ctx  context.Context
	park parking
}

// streamEvents sends the events after p.After that match p's filters to
// out, stored ones first, then live ones, until the client goes, the
// server drains, the tenant is reopened or deleted, Config.StreamTimeout
// passes, or o.Sent fails. p comes from streamStart (p.From resolved) and
// out is started: errors from here on are "end" messages, not statuses.
// In a long-running process live events come from the tenant's hub; under
// CGI (or if the tenant is closing) from polling the log's head.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request, c *call, out sink, p query.Params, o streamOpts) {
	st := &streamer{h: h, r: r, l: c.t.log, out: out, p: p, o: o, after: p.After,
		entity: p.Entity != "" && !query.IsGlob(p.Entity),
		stop:   h.draining.done(), gone: c.t.gone.done(), ctx: r.Context()}
	if h.cfg.StreamTimeout > 0 {
		st.park.deadline = time.Now().Add(h.cfg.StreamTimeout)
	}
	if p.From != nil {
		st.fail(errors.New("stream: start point not resolved"))
		return
	}
	var rg *ring
	cloud := o.Format == formatCloudEvents
	parked := false
	if h.cfg.LongRunning {
		if rg = c.t.hub.subscribe(c.t.log, &c.t.tail, cloud, st.stop, st.gone); rg != nil {
			defer func() {
				if !parked {
					c.t.hub.unsubscribe(cloud)
				}
			}()
		}
	}
	parkable := rg != nil && o.Sent == nil && r.ProtoMajor == 1 && canHijack(w)
	if _, ok := out.(*sse); !ok {
		parkable = false
	}
	var poll <-chan time.Time
	if rg == nil {
		t := time.NewTicker(waitPoll)
		defer t.Stop()
		poll = t.C
	}
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	var deadline <-chan time.Time
	if h.cfg.StreamTimeout > 0 {
		t := time.NewTimer(h.cfg.StreamTimeout)
		defer t.Stop()
		deadline = t.C
	}
	ctx := r.Context()
	for {
		var woke <-chan struct{}
		if rg != nil {
			woke = rg.published.wait() // before looking: no wake-up is lost
		}
		if err := st.deliver(rg); err != nil {
			st.fail(err)
			return
		}
		st.scratch = nil // an idle stream holds no buffer
		if parkable {
			// Caught up and live: give the goroutine back (park.go).
			parkable = false
			if parked = st.parkOn(w, &c.t.hub, rg, cloud); parked {
				return
			}
		}
		select {
		case <-woke:
		case <-poll:
		case <-heartbeat.C:
			if err := st.heartbeat(); err != nil {
				st.fail(err)
				return
			}
		case <-deadline:
			st.end("timeout")
			return
		case <-st.stop:
			st.end(st.endReason())
			return
		case <-st.gone:
			st.end(st.endReason())
			return
		case <-ctx.Done():
			return
		}
	}
}

// errClientGone: a write to the client failed.
var errClientGone = errors.New("stream: client gone")

// endReason says why the stream must end now, "" if it need not: the
// server drains ("shutdown", first: a server stopping also closes its
// tenants), or the tenant was dropped or is closing ("reopened").
func (st *streamer) endReason() string {
	select {
	case <-st.stop:
		return "shutdown"
	default:
	}
	select {
	case <-st.gone:
		return "reopened"
	default:
	}
	if st.park.hub != nil && st.park.hub.closing.Load() {
		return "reopened"
	}
	return ""
}

// interrupted says why the stream must end now, nil if it need not.
func (st *streamer) interrupted() error {
	if reason := st.endReason(); reason != "" {
		return streamEnd(reason)
	}
	if st.ctx.Err() != nil {
		return errClientGone
	}
	return nil
}

// deliver sends what is committed past the cursor (in a long-running
// process, what the hub has published): from the hub's ring while it
// holds the next seq, from disk, in batches, while it does not.
func (st *streamer) deliver(rg *ring) error {
	for {
		var head uint64
		if rg != nil {
			head = rg.last.Load()
			if st.after >= head && rg.failed.Load() {
				head = st.l.Through() // past what the hub could read: from disk
			}
		} else {
			head = st.l.Through()
		}
		if st.after >= head {
			break
		}
		if rg != nil && rg.get(st.after+1) != nil {
			if err := st.fromRing(rg, head); err != nil {
				return err
			}
			continue
		}
		if err := st.fromDisk(min(head, st.after+streamBatch)); err != nil {
			return err
		}
		if err := st.flush(); err != nil {
			return err
		}
		if err := st.interrupted(); err != nil {
			return err
		}
	}
	return st.flush()
}

// fromRing sends the ring's events after the cursor through head, as
// long as the ring still holds them.
func (st *streamer) fromRing(rg *ring, head uint64) error {
	for s := st.after + 1; s <= head; s++ {
		e := rg.get(s)
		if e == nil {
			return nil // gone meanwhile: the rest from disk
		}
		if st.matches(e.typ, e.entity, e.time) {
			data := e.json
			if st.o.Format == formatCloudEvents {
				if data = e.cloudEvent; data == nil {
					// Read before this stream asked for the format.
					return st.fromDisk(s)
				}
			}
			if err := st.out.send(e.id, "", data); err != nil {
				return errClientGone
			}
			st.lastSent = s
		}
		st.after, st.dirty = s, true
	}
	return nil
}

// fromDisk sends the matching events after the cursor through seq
// through, read from the log (an exact entity along its own chain).
func (st *streamer) fromDisk(through uint64) error {
	if st.entity {
		it := st.l.ScanEntity(st.p.Entity, st.after, through)
		for it.Next() {
			if err := st.sendEvent(it.Event()); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		st.after, st.dirty = max(st.after, through), true
		return nil
	}
	it := st.l.Scan(st.after+1, through)
	for it.Next() {
		e := it.Event()
		if err := st.sendEvent(e); err != nil {
			return err
		}
		st.after, st.dirty = e.Seq, true
	}
	return it.Err()
}

// matches applies the stream's filters: type, entity, since, and the
// caller's own test (query.Params.Match: a consumer's filter).
func (st *streamer) matches(typ, entity string, t int64) bool {
	return query.Match(st.p.Type, typ) && query.Match(st.p.Entity, entity) &&
		(st.p.Since == nil || t >= *st.p.Since) && (st.p.Match == nil || st.p.Match(typ, entity))
}

// sendEvent sends e if it matches the filters.
func (st *streamer) sendEvent(e *log.Event) error {
	if !st.matches(e.Type, e.Entity, e.Time) {
		return nil
	}
	st.scratch = appendEncoded(st.scratch[:0], e, st.o.Format)
	var id [64]byte
	hex.Encode(id[:], e.ID[:])
	if err := st.out.send(string(id[:]), "", st.scratch); err != nil {
		return errClientGone
	}
	st.lastSent, st.dirty = e.Seq, true
	return nil
}

// appendEncoded appends e in format.
func appendEncoded(b []byte, e *log.Event, format string) []byte {
	if format == formatCloudEvents {
		return appendCloudEvent(b, e)
	}
	return e.AppendJSON(b)
}

// flush flushes what was sent and tells Sent how far the stream got.
func (st *streamer) flush() error {
	if !st.dirty {
		return nil
	}
	st.dirty = false
	if err := st.out.flush(); err != nil {
		return errClientGone
	}
	if st.o.Sent != nil {
		return st.o.Sent(st.after)
	}
	return nil
}

// heartbeat sends a comment, which also finds out whether the client is
// still there (under CGI the only way to), and renews whatever Sent
// renews.
func (st *streamer) heartbeat() error {
	if err := st.out.comment(""); err != nil {
		return errClientGone
	}
	if err := st.out.flush(); err != nil {
		return errClientGone
	}
	if st.o.Sent != nil {
		return st.o.Sent(st.after)
	}
	return nil
}

// fail ends the stream after err: quietly if the client is gone, with
// the end message its streamEnd names, or with reason "error" (logged
// with the request's id, which the message carries).
func (st *streamer) fail(err error) {
	var se streamEnd
	switch {
	case errors.Is(err, errClientGone):
	case errors.As(err, &se):
		st.end(string(se))
	default:
		logCut(st.r, err)
		st.end("error")
	}
}

// end sends the end message: the reason and the resume point (after, and
// from: the id of the event at after, when there is one). Unless the last
// event sent is the resume point, the message carries its id too, so an
// EventSource reconnects from there rather than before events the filter
// skipped (or, with none sent, from the request's own start).
func (st *streamer) end(reason string) {
	b := append([]byte(`{"reason":`), jsonx.AppendString(nil, reason)...)
	b = append(b, `,"after":`...)
	b = strconv.AppendUint(b, st.after, 10)
	id := ""
	if st.after > 0 {
		if e, err := st.l.Event(st.after); err == nil {
			from := hex.EncodeToString(e.ID[:])
			b = append(b, `,"from":"`...)
			b = append(b, from...)
			b = append(b, '"')
			if st.lastSent != st.after {
				id = from
			}
		}
	}
	if reason == "error" {
		b = append(b, `,"request_id":`...)
		b = jsonx.AppendString(b, requestID(st.r))
	}
	b = append(b, '}')
	if st.out.send(id, "end", b) == nil {
		st.out.flush()
	}
}
