package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"strata/consumers"
	"strata/jsonx"
	"strata/log"
	"strata/query"
)

// Named consumers (README "Consumers"; the package consumers keeps them):
// definitions are records in the tenant's log written through commit,
// positions files beside it. A reader names itself with the reader
// parameter (default: the credential, as meta.by names it) and holds the
// consumer's lease while it reads and commits.

// DefaultLease is how long a consumer's reader keeps its lease after its
// last read or commit; lease=<seconds> asks for another, up to MaxLease.
const (
	DefaultLease = 30 * time.Second
	MaxLease     = 300
)

// maxReaderLen bounds a reader's name.
const maxReaderLen = 128

// consumerTarget splits /consumers/<name>[/sub] into the name and sub.
func consumerTarget(rest string) (string, error) {
	name, _, _ := strings.Cut(rest, "/")
	if !consumers.ValidName(name) {
		e := errorf("invalid_name", "consumer name %q: lowercase letters and digits joined by single '.', '_' or '-', at most 64 bytes", clip(name))
		e.extra = map[string]any{"consumer": clip(name)}
		return "", e
	}
	return name, nil
}

// readConsumer is consumer name's record, or the answer to give: 404 for
// a name never defined, 410 for a deleted consumer.
func readConsumer(c *call, name string) (*consumers.Record, error) {
	rec, err := consumers.ReadDef(c.t.log, name)
	switch {
	case errors.Is(err, consumers.ErrNoConsumer):
		e := errorf("not_found", "no consumer %q", name)
		e.extra = map[string]any{"consumer": name}
		return nil, e
	case err != nil:
		return nil, err
	case rec.Deleted:
		e := errorf("gone", "consumer %q was deleted (record version %d)", name, rec.EntityVersion)
		e.extra = map[string]any{"consumer": name, "version": rec.EntityVersion, "seq": rec.Seq, "id": rec.IDString()}
		return nil, e
	case rec.Def == nil:
		e := errorf("unreadable_definition", "consumer %q's stored definition cannot be read by this server", name)
		e.extra = map[string]any{"consumer": name}
		return nil, e
	}
	return rec, nil
}

// targetConsumer is the consumer the path names, or false once the error
// is answered.
func targetConsumer(w http.ResponseWriter, r *http.Request, c *call) (*consumers.Record, bool) {
	name, err := consumerTarget(c.arg)
	if err == nil {
		var rec *consumers.Record
		if rec, err = readConsumer(c, name); err == nil {
			return rec, true
		}
	}
	writeError(w, r, err)
	return nil, false
}

func (h *Handler) consumerStore(c *call) *consumers.Store {
	return consumers.Open(c.t.log, h.cfg.NoSync)
}

// consumerJSON is a consumer as GET /consumers/<name> answers it.
type consumerJSON struct {
	Name       string          `json:"name"`
	Definition json.RawMessage `json:"definition"`
	Filter     json.RawMessage `json:"filter"`
	Position   stampJSON       `json:"position"`
	// Lag is the events on the chain after the position (of every type:
	// the filter's are among them).
	Lag         uint64     `json:"lag"`
	CommittedAt *string    `json:"committed_at"`
	Reader      *string    `json:"reader"`
	LeaseUntil  *string    `json:"lease_until,omitempty"`
	Acks        []uint64   `json:"acks,omitempty"`
	Version     uint64     `json:"version"`
	Created     string     `json:"created"`
	Updated     string     `json:"updated"`
	Record      recordJSON `json:"record"`
}

// consumerAnswer is rec's answer with its state st.
func consumerAnswer(c *call, rec *consumers.Record, st *consumers.State) *consumerJSON {
	filter, _ := json.Marshal(rec.Def.Filter)
	a := &consumerJSON{Name: rec.Name, Definition: rec.Raw, Filter: filter,
		Position: stampJSON{st.Seq, hex.EncodeToString(st.ID[:])}, Acks: st.Acks,
		Version: rec.Version, Created: log.FormatTime(rec.Created), Updated: log.FormatTime(rec.Updated),
		Record: recordJSON{Entity: consumers.DefEntity(rec.Name), Version: rec.EntityVersion, Seq: rec.Seq, ID: rec.IDString()}}
	if e, err := c.t.log.Event(rec.Seq); err == nil {
		a.Record.Time = log.FormatTime(e.Time)
	}
	if head := c.t.log.Through(); head > st.Seq {
		a.Lag = head - st.Seq
	}
	if st.Committed != 0 {
		s := log.FormatTime(st.Committed)
		a.CommittedAt = &s
	}
	if st.Reader != "" && st.LeaseUntil > timeNow().UnixNano() {
		until := log.FormatTime(st.LeaseUntil)
		a.Reader, a.LeaseUntil = &st.Reader, &until
	}
	return a
}

// answerConsumer answers with rec and its state as stored now.
func (h *Handler) answerConsumer(w http.ResponseWriter, r *http.Request, c *call, rec *consumers.Record, st *consumers.State, status int) {
	if st == nil {
		var err error
		if st, err = h.consumerStore(c).State(rec); err != nil {
			writeError(w, r, err)
			return
		}
	}
	writeValue(w, r, status, consumerAnswer(c, rec, st))
}

// consumerList serves GET /consumers: every consumer defined, by name.
func (h *Handler) consumerList(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	recs, err := consumers.List(c.t.log)
	if err != nil {
		writeError(w, r, err)
		return
	}
	store := h.consumerStore(c)
	out := make([]*consumerJSON, 0, len(recs))
	for _, rec := range recs {
		if rec.Def == nil {
			continue // this server cannot read it; GET /consumers/<name> says so
		}
		st, err := store.State(rec)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out = append(out, consumerAnswer(c, rec, st))
	}
	writeValue(w, r, http.StatusOK, out)
}

// consumerGet serves GET /consumers/<name>.
func (h *Handler) consumerGet(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	if rec, ok := targetConsumer(w, r, c); ok {
		h.answerConsumer(w, r, c, rec, nil, http.StatusOK)
	}
}

// consumerPut serves PUT /consumers/<name>: a new consumer (201), a new
// definition of one (200; a new after/from moves its position there), or
// the same definition again (200, nothing written).
func (h *Handler) consumerPut(w http.ResponseWriter, r *http.Request, c *call) {
	name, err := consumerTarget(c.arg)
	if err == nil {
		err = checkParams(r.URL.Query())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readSmallJSON(r, h.cfg.MaxEvent)
	if err != nil {
		writeError(w, r, err)
		return
	}
	def, hasStart, err := consumers.ParseDefinition(body, name)
	if err != nil {
		writeError(w, r, defError(err))
		return
	}
	cur, err := consumers.ReadDef(c.t.log, name)
	if err != nil && !errors.Is(err, consumers.ErrNoConsumer) {
		writeError(w, r, err)
		return
	}
	exists := cur != nil && !cur.Deleted
	if exists && !hasStart && cur.Def != nil {
		def.After, def.From = cur.Def.After, cur.Def.From // a PUT without a start keeps it
	}
	if _, err := def.Start(c.t.log); err != nil {
		field, msg := "after", "is past the head of the log (seq "+strconv.FormatUint(c.t.log.Through(), 10)+")"
		if def.From != "" {
			field, msg = "from", "is not an event on this chain"
		}
		writeError(w, r, defError(&consumers.FieldError{Field: field, Msg: msg}))
		return
	}
	raw := def.Marshal()
	if exists && bytes.Equal(raw, cur.Raw) {
		h.answerConsumer(w, r, c, cur, nil, http.StatusOK)
		return
	}
	expected := int64(0)
	if cur != nil {
		expected = int64(cur.EntityVersion)
	}
	if _, err := h.writeRecord(c, consumers.DefEntity(name), consumers.TypeDefined, raw, expected, "consumers.defined"); err != nil {
		writeError(w, r, consumerConflict(err, name))
		return
	}
	rec, err := readConsumer(c, name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if exists {
		status = http.StatusOK
	}
	h.answerConsumer(w, r, c, rec, nil, status)
}

// consumerConflict is the 409 of two requests racing to change one
// consumer's definition.
func consumerConflict(err error, name string) error {
	var vc *log.VersionConflictError
	if errors.As(err, &vc) {
		e := errorf("exists", "consumer %q was changed by another request meanwhile; read it and try again", name)
		e.extra = map[string]any{"consumer": name}
		return e
	}
	return err
}

// readSmallJSON reads a request body that must be one JSON object of at
// most max bytes.
func readSmallJSON(r *http.Request, max int64) ([]byte, error) {
	if ndjson, err := bodyFormat(r.Header.Get("Content-Type")); err != nil || ndjson {
		if err == nil {
			err = errorf("unsupported_media_type", "send one JSON object (application/json)")
		}
		return nil, err
	}
	var buf bytes.Buffer
	body, err := readBody(r, max, &buf, nil)
	if err != nil {
		return nil, err
	}
	if firstByte(body) != '{' {
		return nil, defError(&consumers.FieldError{Field: "body", Msg: "must be one JSON object"})
	}
	return body, nil
}

// consumerDelete serves DELETE /consumers/<name>: a tombstone in the log,
// and its position file removed.
func (h *Handler) consumerDelete(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	rec, ok := targetConsumer(w, r, c)
	if !ok {
		return
	}
	res, err := h.writeRecord(c, consumers.DefEntity(rec.Name), consumers.TypeDeleted, nil, int64(rec.EntityVersion), "consumers.deleted")
	if err != nil {
		writeError(w, r, consumerConflict(err, rec.Name))
		return
	}
	if err := h.consumerStore(c).Remove(rec.Name); err != nil {
		// The tombstone is what counts: a file left behind belongs to a
		// start no later definition has.
		c.ri.logger(h).Warn("remove consumer position", "consumer", rec.Name, "err", err.Error())
	}
	e := res.Events[0]
	setHead(w, res.Head)
	writeValue(w, r, http.StatusOK, map[string]any{"name": rec.Name, "deleted": true, "version": e.Version, "seq": e.Seq, "id": e.IDString()})
}

// readerParams reads who reads (reader=, default the credential) and for
// how long it keeps the lease (lease=<seconds>).
func readerParams(q url.Values, c *call) (string, time.Duration, error) {
	reader := c.who.String()
	if v, ok := q["reader"]; ok {
		reader = v[len(v)-1]
		if reader == "" || len(reader) > maxReaderLen || log.ValidateEntity(reader) != nil {
			return "", 0, badParam("reader", "must be 1 to 128 bytes of printable UTF-8 naming the reader")
		}
	}
	d := DefaultLease
	if v, ok := q["lease"]; ok {
		n, err := strconv.Atoi(v[len(v)-1])
		if err != nil || n < 1 || n > MaxLease {
			return "", 0, badParam("lease", "must be a whole number of seconds from 1 to "+strconv.Itoa(MaxLease))
		}
		d = time.Duration(n) * time.Second
	}
	return reader, d, nil
}

// leaseError is the 409 for a consumer another reader holds: when its
// lease ends, in the body and in Retry-After.
func leaseError(err error, name string) error {
	var le *consumers.LeaseError
	if !errors.As(err, &le) {
		return err
	}
	e := errorf("lease_held", "consumer %q is being read by %q until %s; a reader gets it once that lease ends", name, le.Reader, log.FormatTime(le.Until))
	e.extra = map[string]any{"consumer": name, "reader": le.Reader, "lease_until": log.FormatTime(le.Until)}
	e.retry = max(time.Until(time.Unix(0, le.Until)), time.Second)
	return e
}

// setConsumerHeaders says where the consumer is and who reads it.
func setConsumerHeaders(w http.ResponseWriter, st *consumers.State) {
	w.Header().Set("Strata-Consumer-Position", strconv.FormatUint(st.Seq, 10))
	if st.LeaseUntil != 0 {
		w.Header().Set("Strata-Consumer-Lease-Until", log.FormatTime(st.LeaseUntil))
	}
}

// consumerEvents serves GET /consumers/<name>/events: a page of the
// consumer's events after its committed position (or after=, which may be
// ahead of it: a reader paging before it commits), as GET /events serves
// pages (JSON, NDJSON, CloudEvents), with wait= to long-poll. Reading
// takes or renews the lease.
func (h *Handler) consumerEvents(w http.ResponseWriter, r *http.Request, c *call) {
	rec, ok := targetConsumer(w, r, c)
	if !ok {
		return
	}
	q := r.URL.Query()
	err := checkParams(q, "after", "limit", "wait", "reader", "lease", "format")
	var p query.Params
	if err == nil {
		p, err = readParams(q, "wait", "reader", "lease", "format")
	}
	if err == nil {
		err = formatParam(q)
	}
	var d time.Duration
	if err == nil {
		d, err = waitParam(q)
	}
	reader, lease, err2 := readerParams(q, c)
	if err == nil {
		err = err2
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	store := h.consumerStore(c)
	st, err := store.Acquire(rec, reader, lease, timeNow())
	if err != nil {
		writeError(w, r, leaseError(err, rec.Name))
		return
	}
	if q.Has("after") && p.After < st.Seq {
		writeError(w, r, badParam("after", "is before the consumer's committed position ("+strconv.FormatUint(st.Seq, 10)+"); PUT /consumers/"+rec.Name+`/position with "reset":true moves it back`))
		return
	}
	p.After = max(p.After, st.Seq)
	p.Entity = rec.Def.Filter.Entity
	p.Match = rec.Def.Filter.Matches()
	if d > 0 {
		waitForEvents(r.Context(), h.draining.done(), c.t.log, &c.t.tail, p, d)
		if r.Context().Err() != nil {
			return
		}
		// The wait may have outlasted half the lease: renew it, or learn
		// that another reader took it meanwhile.
		if st, err = store.Acquire(rec, reader, lease, timeNow()); err != nil {
			writeError(w, r, leaseError(err, rec.Name))
			return
		}
	}
	setConsumerHeaders(w, st)
	readLog(w, r, c.t.log, p)
}

// positionBody is what PUT /consumers/<name>/position takes.
type positionBody struct {
	Seq   *uint64 `json:"seq"`
	ID    *string `json:"id"`
	Reset bool    `json:"reset"`
}

// consumerPosition serves PUT /consumers/<name>/position: commits the
// position (an event on the chain, forward only unless reset), durably
// before the answer, which is the consumer as GET answers it.
func (h *Handler) consumerPosition(w http.ResponseWriter, r *http.Request, c *call) {
	rec, ok := targetConsumer(w, r, c)
	if !ok {
		return
	}
	q := r.URL.Query()
	err := checkParams(q, "reader", "lease")
	reader, lease, err2 := readerParams(q, c)
	if err == nil {
		err = err2
	}
	var body []byte
	if err == nil {
		body, err = readSmallJSON(r, 4096)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in positionBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || dec.More() || (in.Seq == nil && in.ID == nil) {
		writeError(w, r, positionError("body", `must be {"seq":n} or {"id":"<event id>"}, with "reset":true to move back`))
		return
	}
	var id *[32]byte
	if in.ID != nil {
		v, ok := log.ParseID(*in.ID)
		if !ok {
			writeError(w, r, positionError("id", "must be an event id (64 lowercase hex)"))
			return
		}
		id = &v
	}
	p, err := consumers.Resolve(c.t.log, in.Seq, id)
	if errors.Is(err, consumers.ErrNotOnChain) {
		field := "seq"
		if id != nil {
			field = "id"
		}
		err = positionError(field, "is not an event on this chain (the head is seq "+strconv.FormatUint(c.t.log.Through(), 10)+")")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	st, err := h.consumerStore(c).Commit(rec, p, in.Reset, reader, lease, timeNow())
	var be *consumers.BehindError
	if errors.As(err, &be) {
		e := errorf("position_behind", "consumer %q is at seq %d; a commit before it needs \"reset\":true", rec.Name, be.Current.Seq)
		e.extra = map[string]any{"consumer": rec.Name, "position": stampJSON{be.Current.Seq, hex.EncodeToString(be.Current.ID[:])}}
		err = e
	}
	if err != nil {
		writeError(w, r, leaseError(err, rec.Name))
		return
	}
	c.t.acks.appended()
	setConsumerHeaders(w, st)
	h.answerConsumer(w, r, c, rec, st, http.StatusOK)
}

// positionError is the 400 for a bad position, naming its field.
func positionError(field, msg string) error {
	e := errorf("invalid_position", "%s: %s", field, msg)
	e.extra = map[string]any{"field": field}
	return e
}

// eventAck serves POST /events/<id>/ack?consumer=<name>: the consumer has
// handled that event (ahead of its position, which does not move), which
// is what a writer waiting for it (Strata-Wait-Consumer) waits for.
func (h *Handler) eventAck(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if err := checkParams(q, "consumer"); err != nil {
		writeError(w, r, err)
		return
	}
	if !q.Has("consumer") {
		writeError(w, r, badParam("consumer", "is required: the consumer that handled the event"))
		return
	}
	id, ok := log.ParseID(c.arg)
	if !ok {
		writeError(w, r, errorf("invalid_id", "an event id is 64 lowercase hex digits"))
		return
	}
	name, err := consumerTarget(q.Get("consumer"))
	var rec *consumers.Record
	if err == nil {
		rec, err = readConsumer(c, name)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	seq, err := c.t.log.Lookup(id)
	if errors.Is(err, log.ErrNotFound) {
		err = errorf("not_found", "no event with id %x on this chain", id)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	st, err := h.consumerStore(c).Ack(rec, seq, timeNow())
	if err != nil {
		writeError(w, r, err)
		return
	}
	c.t.acks.appended()
	b := []byte(`{"consumer":`)
	b = jsonx.AppendString(b, rec.Name)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, id[:])
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"acked":true,"position":{"seq":`...)
	b = strconv.AppendUint(b, st.Seq, 10)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, st.ID[:])
	b = append(b, `"}}`...)
	writeJSON(w, http.StatusOK, b)
}

// consumerStream serves GET /consumers/<name>/stream: the consumer's
// events after its committed position as Server-Sent Events (GET /stream's
// format, ends and resume points), under the reader's lease, which the
// stream renews as it flushes and on its heartbeats; a stream whose lease
// was lost ends with reason "lease_lost". A start point (Last-Event-ID,
// which wins, or after=) ahead of the position starts there: a reader
// reconnecting before it committed; one before it starts at the position.
// The stream does not commit: the reader does, with PUT …/position.
func (h *Handler) consumerStream(w http.ResponseWriter, r *http.Request, c *call) {
	rec, ok := targetConsumer(w, r, c)
	if !ok {
		return
	}
	q := r.URL.Query()
	err := checkParams(q, "after", "reader", "lease", "format")
	var p query.Params
	if err == nil {
		p, err = readParams(q, "reader", "lease", "format")
	}
	if err == nil {
		err = formatParam(q)
	}
	reader, lease, err2 := readerParams(q, c)
	if err == nil {
		err = err2
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" && err == nil {
		id, ok := log.ParseID(v)
		if !ok {
			err = badParam("Last-Event-ID", "must be an event id (64 lowercase hex)")
		} else {
			p.From, p.After = &id, 0
		}
	}
	if err == nil {
		p, err = streamStart(c.t.log, p)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	// A stream renews its lease on its heartbeats: it holds one of at
	// least three of them, so that one late heartbeat does not lose it.
	lease = max(lease, 3*h.cfg.Heartbeat)
	store := h.consumerStore(c)
	st, err := store.Acquire(rec, reader, lease, timeNow())
	if err != nil {
		writeError(w, r, leaseError(err, rec.Name))
		return
	}
	p.After = max(p.After, st.Seq)
	p.Entity, p.Match = rec.Def.Filter.Entity, rec.Def.Filter.Matches()
	format := formatJSON
	if q.Get("format") == formatCloudEvents {
		format = formatCloudEvents
	}
	renewAt := st.LeaseUntil - int64(lease)/2 // Acquire writes nothing before
	sent := func(uint64) error {
		now := timeNow()
		if now.UnixNano() < renewAt {
			return nil
		}
		st, err := store.Acquire(rec, reader, lease, now)
		var le *consumers.LeaseError
		if errors.As(err, &le) {
			return streamEnd("lease_lost")
		}
		if err != nil {
			return err
		}
		renewAt = st.LeaseUntil - int64(lease)/2
		return nil
	}
	setConsumerHeaders(w, st)
	h.streamEvents(w, r, c, startSSE(w, r), p, streamOpts{Format: format, Sent: sent})
}

// consumerRelease serves DELETE /consumers/<name>/lease?reader=: the
// reader gives up its lease (a worker that stops on purpose), so another
// may read at once rather than when it would have ended; 409 if another
// reader holds it.
func (h *Handler) consumerRelease(w http.ResponseWriter, r *http.Request, c *call) {
	rec, ok := targetConsumer(w, r, c)
	if !ok {
		return
	}
	q := r.URL.Query()
	err := checkParams(q, "reader")
	reader, _, err2 := readerParams(q, c)
	if err == nil {
		err = err2
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	st, err := h.consumerStore(c).Release(rec, reader, timeNow())
	if err != nil {
		writeError(w, r, leaseError(err, rec.Name))
		return
	}
	h.answerConsumer(w, r, c, rec, st, http.StatusOK)
}
