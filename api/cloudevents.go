package api

import (
	"encoding/hex"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"strata/jsonx"
	"strata/log"
)

// CloudEvents 1.0 (https://github.com/cloudevents/spec), hand-written: the
// SDK stays out of the binary (DESIGN.md). This file serves events as
// CloudEvents; cloudevents_in.go reads them.
//
// How a stored event is served as a structured-mode CloudEvent (README,
// "CloudEvents"):
//
//	specversion      "1.0"
//	id               the CloudEvent id it was ingested with (its key is
//	                 "<source> <id>" and meta.source is that source), else
//	                 the event id (64 hex)
//	source           meta.source when it is a string, else "/strata"
//	type             type
//	subject          entity
//	time             meta.occurred_at when it is an RFC 3339 time, else the
//	                 event's time
//	datacontenttype  meta.datacontenttype when it is a JSON media type, else
//	                 application/json: data is always JSON (a non-JSON
//	                 payload is a blob reference, see cloudevents_in.go)
//	dataschema       meta.dataschema when it is a string
//	strataid, strataseq, strataprev, strataversion, stratatime
//	                 the event's id, seq, prev, version and time
//	stratakey        the key, when id is not made from it
//	strataerased     true when the data was erased (data is then null)
//	other meta members whose name is a valid attribute name (a-z, 0-9)
//	and whose value is a string, a boolean or a number (one past the
//	spec's 32-bit Integer as a string) — the extensions it was ingested
//	with among them; others are left out (GET /events without
//	format=cloudevents serves the whole meta)
//	data             data

// Media types of the CloudEvents HTTP binding.
const (
	ceMediaType      = "application/cloudevents+json"
	ceBatchMediaType = "application/cloudevents-batch+json"
)

// ceDefaultSource is the source of an event that names none: the event id
// it is served with is unique on its own, and the appendCloudEvent
// signature knows no tenant to name.
const ceDefaultSource = "/strata"

// ceKeySep separates source and id in the key of an event ingested as a
// CloudEvent: a space, which a URI reference (source) cannot hold.
const ceKeySep = " "

// appendCloudEvent appends e as one structured-mode CloudEvent JSON object
// (the mapping above).
func appendCloudEvent(b []byte, e *log.Event) []byte {
	var source, occurred, ctype, schema []byte // meta's values, JSON text
	var text [64]byte
	if e.Meta != nil {
		jsonx.Members(e.Meta, func(name, value []byte) bool {
			if value[0] != '"' {
				return true
			}
			switch string(name) {
			case "source":
				source = value
			case "occurred_at":
				occurred = value
			case "datacontenttype":
				ctype = value
			case "dataschema":
				schema = value
			}
			return true
		})
	}
	b = append(b, `{"specversion":"1.0","id":`...)
	idFromKey := false
	if e.Key != "" && source != nil {
		if s, ok := jsonx.Unquote(text[:0], source); ok && len(s) > 0 {
			if n := len(s); len(e.Key) > n+len(ceKeySep) && e.Key[:n] == string(s) && e.Key[n:n+len(ceKeySep)] == ceKeySep {
				b = jsonx.AppendString(b, e.Key[n+len(ceKeySep):])
				idFromKey = true
			}
		}
	}
	if !idFromKey {
		b = append(b, '"')
		b = hex.AppendEncode(b, e.ID[:])
		b = append(b, '"')
	}
	b = append(b, `,"source":`...)
	if len(source) > 2 {
		b = append(b, source...)
	} else {
		b = append(b, `"`+ceDefaultSource+`"`...)
	}
	b = append(b, `,"type":"`...)
	b = append(b, e.Type...) // the type's alphabet needs no escaping
	b = append(b, `","subject":`...)
	b = jsonx.AppendString(b, e.Entity)
	b = append(b, `,"time":`...)
	if s, ok := jsonx.Unquote(text[:0], occurred); ok && validCETime(s) {
		b = append(b, occurred...)
	} else {
		b = append(b, '"')
		b = log.AppendTime(b, e.Time)
		b = append(b, '"')
	}
	b = append(b, `,"datacontenttype":`...)
	if s, ok := jsonx.Unquote(text[:0], ctype); ok && isJSONMediaType(string(s)) {
		b = append(b, ctype...)
	} else {
		b = append(b, `"application/json"`...)
	}
	if schema != nil {
		b = append(b, `,"dataschema":`...)
		b = append(b, schema...)
	}
	b = append(b, `,"strataid":"`...)
	b = hex.AppendEncode(b, e.ID[:])
	b = append(b, `","strataseq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"strataprev":"`...)
	b = hex.AppendEncode(b, e.Prev[:])
	b = append(b, `","strataversion":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"stratatime":"`...)
	b = log.AppendTime(b, e.Time)
	b = append(b, '"')
	if e.Key != "" && !idFromKey {
		b = append(b, `,"stratakey":`...)
		b = jsonx.AppendString(b, e.Key)
	}
	if e.Erased {
		b = append(b, `,"strataerased":true`...)
	}
	if e.Meta != nil {
		b = appendCEExtensions(b, e.Meta)
	}
	b = append(b, `,"data":`...)
	if e.Erased {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

// appendCEExtensions appends the members of meta that can be CloudEvents
// extension attributes, each name once (the first).
func appendCEExtensions(b []byte, meta []byte) []byte {
	// The names taken so far, back to back in names (ends[i] is where the
	// i-th ends): an event's meta has a handful, so nothing is allocated.
	var names [256]byte
	var ends [16]int
	var more []string // the names past those arrays, rarely any
	seen, used := 0, 0
	jsonx.Members(meta, func(name, value []byte) bool {
		if !validCEName(name) || ceServed(string(name)) || value[0] == 'n' || value[0] == '{' || value[0] == '[' {
			return true
		}
		for i, start := 0, 0; i < seen; i++ {
			if string(names[start:ends[i]]) == string(name) {
				return true
			}
			start = ends[i]
		}
		for _, m := range more {
			if m == string(name) {
				return true
			}
		}
		if seen < len(ends) && used+len(name) <= len(names) {
			used += copy(names[used:], name)
			ends[seen] = used
			seen++
		} else {
			more = append(more, string(name))
		}
		b = append(b, ',', '"')
		b = append(b, name...) // a-z0-9: no escaping
		b = append(b, '"', ':')
		if ceInteger(value) || value[0] == '"' || value[0] == 't' || value[0] == 'f' {
			b = append(b, value...)
		} else {
			b = append(b, '"') // a number past the spec's Integer: its text
			b = append(b, value...)
			b = append(b, '"')
		}
		return true
	})
	return b
}

// ceServed reports whether name is an attribute appendCloudEvent sets
// itself, or one of the specification's, which a meta member must not
// repeat.
func ceServed(name string) bool {
	switch name {
	case "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
		"dataschema", "data", "data_base64",
		"strataid", "strataseq", "strataprev", "strataversion", "stratatime", "stratakey", "strataerased":
		return true
	}
	return false
}

// validCEName reports whether name is a valid CloudEvents attribute name:
// lowercase letters and digits only (spec 1.0, "Attribute Naming
// Convention"). The spec's advice of at most 20 characters is not enforced:
// producers exceed it and every SDK reads them.
func validCEName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ceInteger reports whether value (JSON text) is a CloudEvents Integer: a
// whole number in the 32-bit signed range.
func ceInteger(value []byte) bool {
	if value[0] != '-' && (value[0] < '0' || value[0] > '9') {
		return false
	}
	_, err := strconv.ParseInt(string(value), 10, 32)
	return err == nil
}

// validCETime reports whether s is an RFC 3339 time, the only form of the
// CloudEvents time attribute.
func validCETime(s []byte) bool {
	_, err := log.ParseTime(string(s))
	return err == nil
}

// isJSONMediaType reports whether a media type says JSON:
// application/json, text/json or any "+json" type.
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// Serving events as CloudEvents: GET /events/<id> with Accept:
// application/cloudevents+json (or ?format=cloudevents) answers one
// structured-mode CloudEvent; GET /events with Accept:
// application/cloudevents-batch+json or ?format=cloudevents a batch, a JSON
// array of them (NDJSON of them with an NDJSON Accept and the parameter),
// with the same paging headers. /stream's format=cloudevents is the stream
// helper's, through appendCloudEvent.

// formatParam checks a read's format parameter: "json" (the default) or
// "cloudevents".
func formatParam(q url.Values) error {
	switch v := q.Get("format"); v {
	case "", "json", "cloudevents":
		return nil
	}
	e := errorf("invalid_parameter", "parameter format: must be json or cloudevents")
	e.extra = map[string]any{"parameter": "format"}
	return e
}

// wantsCloudEvents reports whether a read asks for CloudEvents: by
// format=cloudevents, or by an Accept that names mediaType (the single or
// the batch one) with a non-zero quality.
func wantsCloudEvents(r *http.Request, mediaType string) bool {
	if r.URL.Query().Get("format") == "cloudevents" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(mt), mediaType) {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil && f <= 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// writeCloudEvent answers one event as a structured-mode CloudEvent. Its
// ETag differs from the plain JSON representation's.
func writeCloudEvent(w http.ResponseWriter, e *log.Event) {
	h := w.Header()
	h.Set("ETag", `"`+e.IDString()+`.ce"`)
	b := appendCloudEvent(nil, e)
	h.Set("Content-Type", ceMediaType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}
