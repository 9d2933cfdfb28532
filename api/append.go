package api

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"strata/blobs"
	"strata/jsonx"
	"strata/log"
	"strata/quota"
)

// events serves /events: GET reads, PUT and POST append.
// append stores one event, a JSON array of events, or NDJSON, atomically.
// metaChunk is the size of the buffers events' metas are copied into, and
// metaSlack what SetMember adds to a meta besides the principal
// (`{"by":…}` or `,"by":…`).
const (
	metaChunk = 64 << 10
	metaSlack = 8
)

func (h *Handler) append(w http.ResponseWriter, r *http.Request, c *call) {
	if mode := ceModeOf(r); mode != ceNone {
		h.appendCloudEvents(w, r, c, mode) // cloudevents_in.go
		return
	}
	ndjson, err := bodyFormat(r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	ifHead, err := parseIfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	held := &hold{b: h.inflight}
	defer held.release()
	bp := bodyBufs.Get().(*bytes.Buffer)
	defer putBodyBuf(bp)
	body, err := readBody(r, h.cfg.MaxBody, bp, held)
	if err != nil {
		writeError(w, r, err)
		return
	}
	inputs, err := jsonx.ParseEventsMax(body, ndjson, h.cfg.MaxEvents) // copies what it keeps
	if err != nil {
		var tm *jsonx.TooManyEventsError
		if errors.As(err, &tm) {
			err = errorf("too_many_events", "more than %d events in one request, this server's limit; send them in several requests", tm.Max)
		}
		writeError(w, r, err)
		return
	}
	single := !ndjson && len(inputs) == 1 && firstByte(body) == '{'
	h.appendInputs(w, r, c, held, inputs, ifHead, single)
}

// appendInputs stores the parsed events of an append, atomically, and
// answers: a receipt per event, an object when single, an array otherwise.
func (h *Handler) appendInputs(w http.ResponseWriter, r *http.Request, c *call, held *hold, inputs []jsonx.Input, ifHead *[32]byte, single bool) {
	// Checked before anything is stored: a consumer named that does not
	// exist refuses the whole append.
	waits, waitFor, err := parseWaitConsumers(r, c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	held.force(eventCost * int64(len(inputs)))
	req := &log.Request{Events: make([]log.Proposed, len(inputs)), IfHead: ifHead}
	// Without accounts the principal is "anonymous": meta.by is there
	// in every mode, as README promises.
	by := jsonx.AppendString(nil, c.who.String())
	// metas holds every event's meta, in buffers of at most metaChunk
	// bytes; rest is what the events not yet copied still need, so that a
	// single small event does not pay for a whole chunk.
	var metas []byte
	rest := 0
	for _, in := range inputs {
		rest += len(in.Meta) + len(by) + metaSlack
	}
	for i, in := range inputs {
		if err := checkReserved(i, in.Type, in.Entity); err != nil {
			writeError(w, r, err)
			return
		}
		if int64(len(in.Data)+len(in.Meta)) > h.cfg.MaxEvent {
			e := errorf("event_too_large", "event %d: data and meta are %d bytes, over this server's limit of %d", i, len(in.Data)+len(in.Meta), h.cfg.MaxEvent)
			e.extra = map[string]any{"index": i}
			writeError(w, r, e)
			return
		}
		// The principal goes into meta.by, replacing whatever the
		// client put there: who appended is the server's to say. Every
		// event's meta goes into one buffer rather than one allocation
		// each; a full buffer is left to the events that point into it
		// and a new one started.
		need := len(in.Meta) + len(by) + metaSlack
		if cap(metas)-len(metas) < need {
			metas = make([]byte, 0, max(min(rest, metaChunk), need))
		}
		rest -= need
		n := len(metas)
		if metas, err = jsonx.SetMember(metas, in.Meta, "by", by); err != nil {
			writeError(w, r, &jsonx.FieldError{Index: i, Field: "meta", Msg: err.Error()})
			return
		}
		meta := metas[n:len(metas):len(metas)]
		req.Events[i] = log.Proposed{Type: in.Type, Entity: in.Entity, Key: in.Key, Data: in.Data, Meta: meta, ExpectedVersion: in.ExpectedVersion}
	}
	res, err := h.commit(c, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The answer: a receipt per event (an object for an object sent, an
	// array otherwise) — or one summary for a large batch — and the new
	// head in headers.
	var b []byte
	if len(res.Events) > MaxReceipts {
		b = appendSummary(nil, res)
	} else {
		b = make([]byte, 0, 160*len(res.Events)+2)
		if !single {
			b = append(b, '[')
		}
		var tc timeCache
		for i, e := range res.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendReceipt(b, e, res.Repeated[i], &tc)
		}
		if !single {
			b = append(b, ']')
		}
	}
	setHead(w, res.Head)
	status := http.StatusCreated
	if res.Stored == 0 {
		status = http.StatusOK // every event repeated an earlier one by its key
	}
	h.auditAppend(c, "events.append", status, res)
	if waits != nil {
		held.release() // the request's memory is not held while it waits
		if pending := h.awaitConsumers(r.Context(), c, waits, res, waitFor); pending != nil {
			w.Header().Set(ConsumersPendingHeader, strings.Join(pending, ", "))
			status = http.StatusAccepted
		}
	}
	writeJSON(w, status, b)
}

// parseIfMatch reads an append's If-Match: the head id the log must have
// (nil: none, or "*").
func parseIfMatch(r *http.Request) (*[32]byte, error) {
	m := r.Header.Get("If-Match")
	if m == "" || m == "*" {
		return nil, nil
	}
	id, ok := log.ParseID(strings.Trim(strings.TrimPrefix(m, "W/"), `"`))
	if !ok {
		return nil, errorf("invalid_if_match", `If-Match must be the quoted head id: "<64 lowercase hex>" (64 zeros for an empty log)`)
	}
	return &id, nil
}

// commit stores req in c's tenant log, the one write step of every route
// that appends (POST /events and the entity API): the tier's quotas are
// checked under the tenant lock with the write, and a failed log is marked
// so. Its error is for writeError.
func (h *Handler) commit(c *call, req *log.Request) (*log.Result, error) {
	t := c.t
	if !h.cfg.NoAuth {
		lim := c.cfg.Limits()
		var blobBytes int64
		if lim.StorageBytes > 0 {
			store, err := t.store()
			if err == nil {
				var u blobs.Usage
				u, err = store.Usage()
				blobBytes = u.Bytes
			}
			if err != nil {
				return nil, err
			}
		}
		req.Admit = admitEvents(lim, blobBytes)
	}
	res, err := t.log.Append(req)
	if err != nil {
		var qe *quota.ExceededError
		if errors.As(err, &qe) {
			return nil, quotaError(qe)
		}
		if errors.Is(err, log.ErrFailed) || errors.Is(err, log.ErrNoSpace) {
			h.failed(t)
		}
		return nil, err
	}
	h.poke(t)
	t.tail.appended()
	if res.Stored > 0 && !h.cfg.NoMetrics {
		n := 0
		for i, e := range res.Events {
			if !res.Repeated[i] {
				n += len(e.Data) + len(e.Meta)
			}
		}
		h.counters().Appended(t.name, res.Stored, n, res.Head.Seq, uint64(max(res.LogBytes, 0)), res.Entities)
	}
	return res, nil
}

// auditAppend records an append in the audit log when the server is told
// to (Config.AuditAppends) and it stored something.
func (h *Handler) auditAppend(c *call, action string, status int, res *log.Result) {
	if h.cfg.AuditAppends && res.Stored > 0 {
		h.recordMutation(c, action, status, map[string]any{
			"events": res.Stored, "last_seq": res.Head.Seq, "head": hex.EncodeToString(res.Head.ID[:])})
	}
}

// admitEvents is the quota check of an append, made under the tenant lock:
// the events per day and the tenant's storage. The log's size is known
// there; the blobs' is read from their usage counter, so an append racing
// a blob upload may pass a storage limit by that one request.
func admitEvents(lim quota.Limits, blobBytes int64) func(log.Usage) error {
	if lim.EventsPerDay <= 0 && lim.StorageBytes <= 0 {
		return nil
	}
	return func(u log.Usage) error {
		if err := lim.CheckEvents(int64(u.Today), int64(u.Adding), timeNow()); err != nil {
			return err
		}
		return lim.CheckStorage(u.Bytes+blobBytes, u.AddingBytes)
	}
}

// appendReceipt is what an append answers for each event.
func appendReceipt(b []byte, e *log.Event, repeated bool, tc *timeCache) []byte {
	b = append(b, `{"id":"`...)
	b = hex.AppendEncode(b, e.ID[:])
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = tc.append(b, e.Time)
	b = append(b, `","entity":`...)
	b = jsonx.AppendString(b, e.Entity)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	if repeated {
		b = append(b, `,"repeated":true`...)
	}
	return append(b, '}')
}

// MaxReceipts is the largest batch answered with a receipt per event; a
// larger one is answered with one summary (appendSummary), so that the
// answer stays small whatever the batch: a receipt is ~160 bytes.
const MaxReceipts = 1000

// appendSummary is the answer to a batch of more than MaxReceipts events:
//
//	{"events":N,"stored":S,"repeated":R,"first":{"id","seq"},"last":{"id","seq"},"time":"…"}
//
// The events a request stores have consecutive seqs and one time, so
// first and last (the stored ones; absent when every event repeated an
// earlier one by its key) say where they all are: GET
// /events?after=<first.seq-1>&limit=<stored> reads them back.
func appendSummary(b []byte, res *log.Result) []byte {
	b = append(b, `{"events":`...)
	b = strconv.AppendInt(b, int64(len(res.Events)), 10)
	b = append(b, `,"stored":`...)
	b = strconv.AppendInt(b, int64(res.Stored), 10)
	b = append(b, `,"repeated":`...)
	b = strconv.AppendInt(b, int64(len(res.Events)-res.Stored), 10)
	var first, last *log.Event
	for i, e := range res.Events {
		if res.Repeated[i] {
			continue
		}
		if first == nil {
			first = e
		}
		last = e
	}
	if first != nil {
		for _, x := range []struct {
			name string
			e    *log.Event
		}{{"first", first}, {"last", last}} {
			b = append(b, `,"`...)
			b = append(b, x.name...)
			b = append(b, `":{"id":"`...)
			b = hex.AppendEncode(b, x.e.ID[:])
			b = append(b, `","seq":`...)
			b = strconv.AppendUint(b, x.e.Seq, 10)
			b = append(b, '}')
		}
		b = append(b, `,"time":"`...)
		b = log.AppendTime(b, first.Time)
		b = append(b, '"')
	}
	return append(b, '}')
}

// setHead puts the log's head in the answer's headers.
func setHead(w http.ResponseWriter, head log.Head) {
	id := hex.EncodeToString(head.ID[:])
	w.Header().Set("Strata-Head", id)
	w.Header().Set("Strata-Head-Seq", strconv.FormatUint(head.Seq, 10))
	w.Header().Set("ETag", `"`+id+`"`)
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// bodyFormat reads the Content-Type of an append: NDJSON, or JSON (also
// what curl --data sends by default, and no type at all).
func bodyFormat(ct string) (ndjson bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, _, perr := mime.ParseMediaType(ct)
	if perr != nil {
		return false, errorf("unsupported_media_type", "cannot read Content-Type %q", ct)
	}
	switch {
	case mt == "application/x-ndjson", mt == "application/ndjson", mt == "application/jsonl", mt == "application/x-jsonlines":
		return true, nil
	case mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "text/plain", mt == "application/x-www-form-urlencoded":
		return false, nil
	}
	return false, errorf("unsupported_media_type", "send events as application/json (an object or an array) or application/x-ndjson, not %s", mt)
}

// bodyBufs recycles request-body buffers between appends.
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest body buffer kept for reuse: a pool would
// otherwise keep the buffers of the largest requests alive for ever,
// resident long after the burst that needed them.
const maxPooledBody = 1 << 20

func putBodyBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyBufs.Put(b)
	}
}

// readBody reads a whole request body of at most max bytes, charging it to
// held (nil: to nothing). A body without a length must be chunked (411
// otherwise); a longer one is refused whole with 413 before anything is
// stored.
func readBody(r *http.Request, max int64, buf *bytes.Buffer, held *hold) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errorf("body_too_large", "the request body is %d bytes, over this server's limit of %d", r.ContentLength, max)
	}
	if r.ContentLength == 0 && r.Header.Get("Content-Length") == "" && len(r.TransferEncoding) == 0 {
		return nil, errorf("length_required", "send a Content-Length or a chunked body")
	}
	var body io.Reader = r.Body
	if held != nil {
		if r.ContentLength > 0 {
			if err := held.take(bodyFactor * r.ContentLength); err != nil {
				return nil, err
			}
		} else {
			body = &chargedBody{Reader: body, h: held}
		}
	}
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(body, max+1))
	if errors.Is(err, errOverloaded) {
		return nil, err
	}
	if err != nil {
		return nil, bodyError(err)
	}
	if n > max {
		return nil, errorf("body_too_large", "the request body is over this server's limit of %d bytes", max)
	}
	if n == 0 {
		return nil, errorf("empty_body", "the request body is empty; send an event, an array of events, or NDJSON")
	}
	return buf.Bytes(), nil
}

// bodyError is the answer to a request body that could not be read: the
// client's doing (it went away, sent less than its length, or too slowly),
// said without the connection's internals (addresses).
func bodyError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf("body_unreadable", "the request body ended before its Content-Length")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf("body_unreadable", "the request body arrived too slowly")
	}
	return errorf("body_unreadable", "the request body could not be read")
}

// timeCache formats a time once for the many events of a request that
// share it.
type timeCache struct {
	ns   int64
	text []byte
}

func (c *timeCache) append(b []byte, ns int64) []byte {
	if c.text == nil || c.ns != ns {
		c.ns, c.text = ns, log.AppendTime(c.text[:0], ns)
	}
	return append(b, c.text...)
}
