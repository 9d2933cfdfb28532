package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"strata/jsonx"
	"strata/log"
)

// Reading CloudEvents 1.0 on the append routes (POST and PUT /events), in
// the HTTP binding's three forms: structured (Content-Type
// application/cloudevents+json, one event), batch
// (application/cloudevents-batch+json, a JSON array, stored atomically as
// one request) and binary (the attributes in ce-* headers, the data as the
// body, its Content-Type the datacontenttype).
//
// The mapping (README, "CloudEvents"):
//
//	subject          entity (required: a strata event needs one)
//	type             type, as it is when it fits strata's type pattern
//	                 (reverse-DNS names do); else 400
//	source + id      the idempotency key "<source> <id>": a resend is a
//	                 repeat (200, "repeated":true), never a duplicate
//	source           also meta.source
//	time             meta.occurred_at, as sent
//	datacontenttype  meta.datacontenttype, unless application/json (the
//	                 default, so that a resend in the other mode is a repeat)
//	dataschema       meta.dataschema
//	extensions       meta.<name>, sorted by name, each a string (its
//	                 canonical string form, as binary mode carries it, so
//	                 that a resend in either mode is a repeat); the
//	                 server's meta.by replaces an extension named "by"
//	data             data, when datacontenttype is JSON (or absent)
//	non-JSON data    (a string with a non-JSON datacontenttype, data_base64,
//	                 a binary-mode body of a non-JSON type) is stored as a
//	                 blob, and data is {"blob":"<hash>","content_type":"…",
//	                 "size":n}: GET /storage/<hash> serves it
//
// Every error is a 400 invalid_cloudevent naming the attribute (and the
// event's index in a batch) before anything is stored. The blobs of a
// request are stored before its events: a request refused at the append
// (a key or version conflict, a quota) may leave its blobs, which are
// content-addressed and harmless, and a resend finds them there.

// ceMode is how a request carries CloudEvents, if it does.
type ceMode int

const (
	ceNone ceMode = iota
	ceStructured
	ceBatch
	ceBinary
)

// ceModeOf tells an append's CloudEvents mode by its Content-Type, and
// binary mode by any ce-* header (so that a binary-mode event missing
// ce-specversion is told so, not taken for a plain event).
func ceModeOf(r *http.Request) ceMode {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		switch mt {
		case ceMediaType:
			return ceStructured
		case ceBatchMediaType:
			return ceBatch
		}
	}
	for name := range r.Header {
		if isCEHeader(name) {
			return ceBinary
		}
	}
	return ceNone
}

func isCEHeader(name string) bool {
	return len(name) > 3 && strings.EqualFold(name[:3], "ce-")
}

// ceInvalid is the answer to a CloudEvent that cannot be stored: index is
// its place in the request (-1: the request as a whole), attr the
// attribute at fault ("" for none).
func ceInvalid(index int, attr, format string, args ...any) *apiError {
	e := errorf("invalid_cloudevent", format, args...)
	if attr != "" {
		e.message = "attribute " + attr + ": " + e.message
	}
	e.extra = map[string]any{}
	if index >= 0 {
		e.message = "CloudEvent " + strconv.Itoa(index) + ": " + e.message
		e.extra["index"] = index
	}
	if attr != "" {
		e.extra["attribute"] = attr
	}
	return e
}

// ceEvent is one CloudEvent as read, before its mapping.
type ceEvent struct {
	// attrs are every attribute but data and data_base64, in the order
	// read (binary mode: by name): a handful, so a slice, not a map.
	attrs []ceAttr
	// data is the data member's JSON text (structured), or the body
	// (binary), nil when there is none; dataJSON says data is JSON text.
	data     []byte
	dataJSON bool
	base64   bool // data came as data_base64 (structured)
}

type ceAttr struct {
	name string
	v    ceValue
}

// attr returns the attribute name's value.
func (ev *ceEvent) attr(name string) (ceValue, bool) {
	for i := range ev.attrs {
		if ev.attrs[i].name == name {
			return ev.attrs[i].v, true
		}
	}
	return ceValue{}, false
}

// ceValue is one attribute's value: JSON text (structured mode) or a
// string (binary mode, a header).
type ceValue struct {
	json []byte
	text string
	str  bool // text holds the value (a header, or a decoded JSON string)
}

// ceMapped is a CloudEvent mapped to a strata event, with the payload to
// store as a blob first, if any.
type ceMapped struct {
	in       jsonx.Input
	blob     []byte // nil: none, or streamed from the body (binary mode)
	hasBlob  bool
	blobType string
}

// appendCloudEvents serves an append that carries CloudEvents.
func (h *Handler) appendCloudEvents(w http.ResponseWriter, r *http.Request, c *call, mode ceMode) {
	ifHead, err := parseIfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	held := &hold{b: h.inflight}
	defer held.release()
	var mapped []ceMapped
	if mode == ceBinary {
		mapped, err = h.readBinaryCE(r, c, held)
	} else {
		bp := bodyBufs.Get().(*bytes.Buffer)
		defer putBodyBuf(bp)
		var body []byte
		if body, err = readBody(r, h.cfg.MaxBody, bp, held); err == nil {
			mapped, err = parseStructuredCE(body, mode == ceBatch, h.cfg.MaxEvents)
		}
		if err == nil {
			for i := range mapped {
				if !mapped[i].hasBlob {
					continue
				}
				if err = h.storeCEBlob(c, &mapped[i], bytes.NewReader(mapped[i].blob), int64(len(mapped[i].blob))); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	inputs := make([]jsonx.Input, len(mapped))
	for i := range mapped {
		inputs[i] = mapped[i].in
	}
	h.appendInputs(w, r, c, held, inputs, ifHead, mode != ceBatch)
}

// storeCEBlob stores a CloudEvent's non-JSON payload (size bytes of body)
// as a blob and makes the event's data the reference to it.
func (h *Handler) storeCEBlob(c *call, m *ceMapped, body io.Reader, size int64) error {
	info, created, err := h.storeBlob(c, body, size, m.blobType, "")
	if err != nil {
		return err
	}
	if created {
		h.recordMutation(c, "blob.put", http.StatusCreated, map[string]any{"hash": info.Hash, "size": info.Size})
	}
	m.in.Data = appendBlobRef(nil, info.Hash, m.blobType, info.Size)
	return nil
}

// appendBlobRef appends the data of an event whose payload is a blob:
// {"blob":"<hash>","content_type":"…","size":n}.
func appendBlobRef(b []byte, hash, ctype string, size int64) []byte {
	b = append(b, `{"blob":"`...)
	b = append(b, hash...)
	b = append(b, `","content_type":`...)
	b = jsonx.AppendString(b, ctype)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, size, 10)
	return append(b, '}')
}

// parseStructuredCE reads a structured-mode body: one CloudEvent, or (batch)
// a JSON array of them, at most max (0: no limit).
func parseStructuredCE(body []byte, batch bool, max int) ([]ceMapped, error) {
	doc, err := jsonx.Compact(make([]byte, 0, len(body)), body)
	if err != nil {
		return nil, ceInvalid(-1, "", "the body is not JSON: %v", err)
	}
	if !batch {
		if doc[0] != '{' {
			return nil, ceInvalid(-1, "", "a structured-mode CloudEvent (%s) is one JSON object; send a batch as %s", ceMediaType, ceBatchMediaType)
		}
		m, err := mapStructuredCE(doc, -1)
		if err != nil {
			return nil, err
		}
		return []ceMapped{m}, nil
	}
	if doc[0] != '[' {
		return nil, ceInvalid(-1, "", "a batch (%s) is a JSON array of CloudEvents", ceBatchMediaType)
	}
	var out []ceMapped
	jsonx.Elements(doc, func(v []byte) bool {
		i := len(out)
		if max > 0 && i >= max {
			err = errorf("too_many_events", "more than %d events in one request, this server's limit; send them in several requests", max)
			return false
		}
		if v[0] != '{' {
			err = ceInvalid(i, "", "must be a JSON object")
			return false
		}
		var m ceMapped
		if m, err = mapStructuredCE(v, i); err != nil {
			return false
		}
		out = append(out, m)
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ceInvalid(-1, "", "the batch is empty")
	}
	return out, nil
}

// mapStructuredCE maps one compact JSON object; index is its place in a
// batch (-1 for a single event).
func mapStructuredCE(obj []byte, index int) (ceMapped, error) {
	var ev ceEvent
	var err error
	var text []byte // decoded strings, one at a time
	jsonx.Members(obj, func(name, value []byte) bool {
		n := ceName(name)
		_, dup := ev.attr(n)
		if dup || (n == "data" || n == "data_base64") && ev.data != nil {
			err = ceInvalid(index, clipAttr(n), "is given more than once")
			return false
		}
		switch n {
		case "data":
			ev.data, ev.dataJSON = value, true
			return true
		case "data_base64":
			if value[0] == 'n' {
				return true
			}
			s, ok := jsonx.Unquote(nil, value)
			if !ok {
				err = ceInvalid(index, n, "must be a string (base64)")
				return false
			}
			if ev.data, err = base64.StdEncoding.AppendDecode(nil, s); err != nil {
				err = ceInvalid(index, n, "is not valid base64")
				return false
			}
			ev.base64 = true
			return true
		}
		if value[0] == 'n' {
			return true // null: absent (CloudEvents JSON format)
		}
		v := ceValue{json: value}
		if value[0] == '"' {
			text, _ = jsonx.Unquote(text[:0], value) // a compact document's string
			v.text, v.str = string(text), true
		}
		ev.attrs = append(ev.attrs, ceAttr{n, v})
		return true
	})
	if err != nil {
		return ceMapped{}, err
	}
	return mapCE(&ev, index)
}

// ceName returns name as a string, without allocating for the
// specification's names.
func ceName(name []byte) string {
	for _, n := range ceNamed {
		if string(name) == n {
			return n
		}
	}
	switch string(name) {
	case "data":
		return "data"
	case "data_base64":
		return "data_base64"
	}
	return string(name)
}

// clipAttr keeps a bad attribute name short enough for a message.
func clipAttr(name string) string {
	if len(name) > 64 {
		return name[:64] + "…"
	}
	return name
}

// The attributes the mapping reads, by their index in ceNamed; the first
// four are the specification's required ones.
const (
	ceSpecversion = iota
	ceID
	ceSource
	ceType
	ceSubject
	ceTime
	ceDataContentType
	ceDataSchema
	ceNamedCount
)

var ceNamed = [ceNamedCount]string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}

// mapCE maps a CloudEvent read in either mode to a strata event (the table
// at the top of this file). The data of a non-JSON payload is left for the
// caller to store (hasBlob).
func mapCE(ev *ceEvent, index int) (ceMapped, error) {
	var m ceMapped
	var get [ceNamedCount]string
	var has [ceNamedCount]bool
	for i, name := range ceNamed {
		v, ok := ev.attr(name)
		if ok && !v.str {
			return m, ceInvalid(index, name, "must be a string")
		}
		if !ok && i <= ceSubject {
			why := "is required"
			if i == ceSubject {
				why = "is required: it is the strata entity the event belongs to"
			}
			return m, ceInvalid(index, name, "%s", why)
		}
		get[i], has[i] = v.text, ok
	}
	if get[ceSpecversion] != "1.0" {
		return m, ceInvalid(index, "specversion", "must be \"1.0\": strata reads CloudEvents 1.0")
	}
	id, source := get[ceID], get[ceSource]
	if id == "" {
		return m, ceInvalid(index, "id", "must not be empty")
	}
	if source == "" {
		return m, ceInvalid(index, "source", "must not be empty")
	}
	if strings.ContainsAny(source, " \t\r\n") {
		return m, ceInvalid(index, "source", "must be a URI reference (no spaces)")
	}
	if _, err := url.Parse(source); err != nil {
		return m, ceInvalid(index, "source", "must be a URI reference")
	}
	m.in.Key = source + ceKeySep + id
	if err := log.ValidateKey(m.in.Key); err != nil {
		if len(m.in.Key) > log.MaxKeyLen {
			return m, ceInvalid(index, "id", "source and id together are %d bytes; strata's idempotency key (\"<source> <id>\") holds at most %d", len(m.in.Key), log.MaxKeyLen)
		}
		return m, ceInvalid(index, "id", "%v", err)
	}
	m.in.Type = get[ceType]
	if err := log.ValidateType(m.in.Type); err != nil {
		return m, ceInvalid(index, "type", "%q does not fit strata's event types: %v (reverse-DNS names such as com.example.order.placed do)", clipAttr(m.in.Type), err)
	}
	m.in.Entity = get[ceSubject]
	if err := log.ValidateEntity(m.in.Entity); err != nil {
		return m, ceInvalid(index, "subject", "(the strata entity) %v", err)
	}
	if err := checkReserved(index, m.in.Type, m.in.Entity); err != nil {
		return m, err
	}
	if t := get[ceTime]; t != "" {
		if _, err := log.ParseTime(t); err != nil {
			return m, ceInvalid(index, "time", "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
		}
	}
	ctype := get[ceDataContentType]
	jsonData := true
	if ctype != "" {
		if mt, _, err := mime.ParseMediaType(ctype); err != nil || !strings.Contains(mt, "/") {
			return m, ceInvalid(index, "datacontenttype", "must be a media type such as application/json")
		}
		jsonData = isJSONMediaType(ctype)
	}
	if has[ceDataSchema] && get[ceDataSchema] == "" {
		return m, ceInvalid(index, "dataschema", "must not be empty")
	}

	// meta: source, occurred_at, datacontenttype, dataschema, then the
	// extensions by name.
	meta := append(make([]byte, 0, 64+len(source)), `{"source":`...)
	meta = jsonx.AppendString(meta, source)
	for _, a := range [...]struct {
		attr   int
		member string
	}{{ceTime, "occurred_at"}, {ceDataContentType, "datacontenttype"}, {ceDataSchema, "dataschema"}} {
		v := get[a.attr]
		if v == "" || a.attr == ceDataContentType && v == "application/json" {
			continue
		}
		meta = append(meta, ',')
		meta = jsonx.AppendString(meta, a.member)
		meta = append(meta, ':')
		meta = jsonx.AppendString(meta, v)
	}
	var extBuf [16]ceAttr
	exts := extBuf[:0]
	for _, a := range ev.attrs {
		if slices.Contains(ceNamed[:], a.name) {
			continue
		}
		if !validCEName([]byte(a.name)) {
			return m, ceInvalid(index, clipAttr(a.name), "is not a CloudEvents attribute name (lowercase letters and digits only)")
		}
		if c := a.v.json; c != nil && (c[0] == '{' || c[0] == '[') {
			return m, ceInvalid(index, a.name, "an extension's value must be a string, a number or a boolean")
		}
		exts = append(exts, a)
	}
	slices.SortFunc(exts, func(a, b ceAttr) int { return strings.Compare(a.name, b.name) })
	for _, a := range exts {
		name, v := a.name, a.v
		meta = append(meta, ',', '"')
		meta = append(meta, name...) // a-z0-9: no escaping
		meta = append(meta, '"', ':')
		// Every value as its canonical string (a number's or a boolean's
		// text): a binary-mode header carries no type, and a resend in the
		// other mode must be the same event.
		if v.str {
			meta = jsonx.AppendString(meta, v.text)
		} else {
			meta = jsonx.AppendString(meta, string(v.json))
		}
	}
	m.in.Meta = append(meta, '}')
	m.in.ExpectedVersion = -1

	// data
	switch {
	case ev.data == nil:
		m.in.Data = []byte("null")
	case ev.base64:
		m.hasBlob, m.blob = true, ev.data
	case jsonData:
		m.in.Data = ev.data // JSON text, compact
	case ev.dataJSON && ev.data[0] != '"':
		return m, ceInvalid(index, "data", "must be a string when datacontenttype (%s) is not JSON; send bytes as data_base64", ctype)
	default:
		s, _ := jsonx.Unquote(nil, ev.data)
		m.hasBlob, m.blob = true, s
	}
	if m.hasBlob {
		m.blobType = ctype
		if m.blobType == "" {
			m.blobType = "application/octet-stream"
		}
	}
	return m, nil
}

// readBinaryCE reads a binary-mode CloudEvent: its attributes from the
// ce-* headers (percent-decoded), its datacontenttype from Content-Type,
// its data from the body — JSON for a JSON type, a blob for any other,
// streamed to the blob store. With no Content-Type (or curl's default
// form type) a body that is JSON is taken as JSON, any other as a blob.
func (h *Handler) readBinaryCE(r *http.Request, c *call, held *hold) ([]ceMapped, error) {
	var ev ceEvent
	for name, vals := range r.Header {
		if !isCEHeader(name) {
			continue
		}
		attr := strings.ToLower(name[3:])
		if len(vals) > 1 {
			return nil, ceInvalid(-1, clipAttr(attr), "header ce-%s is given more than once", clipAttr(attr))
		}
		v, err := url.PathUnescape(vals[0])
		if err != nil {
			return nil, ceInvalid(-1, clipAttr(attr), "header ce-%s is not validly percent-encoded", clipAttr(attr))
		}
		switch attr {
		case "data", "data_base64":
			return nil, ceInvalid(-1, attr, "in binary mode the data is the request body")
		}
		if attr == "datacontenttype" {
			continue // Content-Type says it in binary mode
		}
		ev.attrs = append(ev.attrs, ceAttr{attr, ceValue{text: v, str: true}})
	}
	ct := r.Header.Get("Content-Type")
	guess := ct == ""
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/x-www-form-urlencoded" {
		guess = true // curl's default: not a statement about the data
	} else if ct != "" {
		ev.attrs = append(ev.attrs, ceAttr{"datacontenttype", ceValue{text: ct, str: true}})
	}
	// The attributes are checked (mapCE) before the body is read, so that a
	// refused event stores no blob; a nil data stands for the body.
	m, err := mapCE(&ev, -1)
	if err != nil {
		return nil, err
	}
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return []ceMapped{m}, nil // no data: null
	}
	if !guess && !isJSONMediaType(ct) {
		if r.ContentLength < 0 && len(r.TransferEncoding) == 0 {
			return nil, errorf("length_required", "send a Content-Length or a chunked body")
		}
		m.blobType = ct
		if err := h.storeCEBlob(c, &m, clientBody{r.Body}, r.ContentLength); err != nil {
			return nil, err
		}
		return []ceMapped{m}, nil
	}
	bp := bodyBufs.Get().(*bytes.Buffer)
	defer putBodyBuf(bp)
	body, err := readBody(r, h.cfg.MaxBody, bp, held)
	var ae *apiError
	if errors.As(err, &ae) && ae.code == "empty_body" {
		return []ceMapped{m}, nil
	}
	if err != nil {
		return nil, err
	}
	data, jerr := jsonx.Compact(nil, body)
	switch {
	case jerr == nil:
		m.in.Data = data
	case guess:
		m.blobType = "application/octet-stream"
		if ct != "" {
			m.blobType = ct
		}
		if err := h.storeCEBlob(c, &m, bytes.NewReader(body), int64(len(body))); err != nil {
			return nil, err
		}
	default:
		return nil, ceInvalid(-1, "data", "the body is not JSON (%v), as its Content-Type %s says it is", jerr, ct)
	}
	return []ceMapped{m}, nil
}
