package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"strata/jsonx"
	"strata/log"
	"strata/projections"
)

// resultPoint reads a result's point in the log from the query: seq, at
// (an event id) or as_of (a time), at most one; 0 is the head.
func resultPoint(l *log.Log, q url.Values) (uint64, error) {
	given := ""
	var at uint64
	for _, name := range []string{"seq", "at", "as_of"} {
		if !q.Has(name) {
			continue
		}
		if given != "" {
			return 0, badParam(name, "use only one of seq, at and as_of; "+given+" is given too")
		}
		given = name
		v := q.Get(name)
		switch name {
		case "seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return 0, badParam(name, "must be a seq (a whole number from 1)")
			}
			at = n
		case "at":
			id, ok := log.ParseID(v)
			if !ok {
				return 0, badParam(name, "must be an event id (64 lowercase hex)")
			}
			seq, err := l.Lookup(id)
			if errors.Is(err, log.ErrNotFound) {
				return 0, errorf("not_on_chain", "the at id is not on this chain")
			}
			if err != nil {
				return 0, err
			}
			at = seq
		case "as_of":
			ns, err := log.ParseTime(v)
			if err != nil {
				return 0, badParam(name, "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
			}
			// The newest event at or before the time: the one before the
			// first after it.
			first, err := l.SeqAtTime(ns + 1)
			if err != nil {
				return 0, err
			}
			if first <= 1 {
				return 0, badParam(name, "is before the tenant's first event")
			}
			at = first - 1
		}
	}
	if at > l.Through() {
		return 0, badParam(given, "is past the log's head (seq "+strconv.FormatUint(l.Through(), 10)+")")
	}
	return at, nil
}

// projectionResult serves GET /projections/<name>/result (the whole
// result, or a page of a keyed one with limit/after) and …/result/<key>,
// at the head or at a point (seq, at, as_of):
//
//	{"name","version","seq","id","result"[,"behind":true]}
//
// version is the definition version; seq and id the last event the result
// reflects (also in Strata-Head and Strata-Head-Seq). A result that could
// not be caught up within the budget is the result so far, with
// "behind":true and Strata-Behind: true.
func (h *Handler) projectionResult(w http.ResponseWriter, r *http.Request, c *call, name, key string, keyed bool) {
	q := r.URL.Query()
	allowed := []string{"seq", "at", "as_of"}
	if !keyed {
		allowed = append(allowed, "limit", "after")
	}
	if err := checkParams(q, allowed...); err != nil {
		writeError(w, r, err)
		return
	}
	if keyed && key == "" {
		writeError(w, r, badParam("key", "is empty: /projections/<name>/result/<key>"))
		return
	}
	d, err := readableDef(c, name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	at, err := resultPoint(c.t.log, q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// A paused projection's result stays where it was paused.
	if d.Paused && (at == 0 || at > d.PausedSeq) {
		at = d.PausedSeq
	}
	h.advanceReplays(r.Context(), c, name) // and wakes a long-running server's worker
	p := c.t.projector()
	ctx := r.Context()
	var a *projections.Answer
	switch {
	case keyed:
		a, err = p.Key(ctx, d.Def, d.Version, key, at, h.budget())
		if errors.Is(err, projections.ErrNoKey) {
			e := errorf("not_found", "projection %q has no key %q", name, clip(key))
			e.extra = map[string]any{"projection": name, "key": key}
			err = e
		}
	case q.Has("limit") || q.Has("after"):
		a, err = h.resultPage(w, r, c, d, q, at)
	default:
		a, err = p.Result(ctx, d.Def, d.Version, at, h.budget())
	}
	if err != nil {
		writeError(w, r, resultError(err, name))
		return
	}
	writeAnswer(w, a)
}

// resultPage is one page of a keyed result: up to limit keys after after,
// in key order, as one object; a Link header names the next page. At the
// head the engine reads the page alone; at a point (time travel, or a
// paused projection) it is cut from the whole result there.
func (h *Handler) resultPage(w http.ResponseWriter, r *http.Request, c *call, d *projections.DefRecord, q url.Values, at uint64) (*projections.Answer, error) {
	limit := DefaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			return nil, badParam("limit", "must be a whole number of at least 1")
		}
		limit = n
	}
	after := q.Get("after")
	var (
		keys []string
		more bool
		a    *projections.Answer
		err  error
	)
	if at == 0 {
		keys, more, a, err = c.t.projector().Keys(r.Context(), d.Def, d.Version, after, limit, h.budget())
	} else {
		a, err = c.t.projector().Result(r.Context(), d.Def, d.Version, at, h.budget())
		if err == nil {
			keys, more, a.Result, err = pageOf(a.Result, after, limit)
		}
	}
	if err != nil {
		return nil, err
	}
	if more && len(keys) > 0 {
		nq := r.URL.Query()
		nq.Set("after", keys[len(keys)-1])
		w.Header().Set("Link", "<?"+nq.Encode()+`>; rel="next"`)
	}
	return a, nil
}

// pageOf cuts a page from a whole keyed result: the keys after after, up
// to limit, in order, as an object, and whether more follow.
func pageOf(result []byte, after string, limit int) ([]string, bool, []byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(result, &m); err != nil {
		return nil, false, nil, projections.ErrNotKeyed
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	more := len(keys) > limit
	keys = keys[:min(len(keys), limit)]
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonx.AppendString(b, k)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	return keys, more, append(b, '}'), nil
}

// resultError is the answer for an error of the engine.
func resultError(err error, name string) error {
	var fe *projections.FailedError
	if errors.As(err, &fe) {
		e := errorf("projection_failed", "projection %q failed at event %d: %s; fix the definition (PUT) or rebuild it", name, fe.At.Seq, fe.Msg)
		e.extra = map[string]any{"projection": name, "failed_at": map[string]any{"seq": fe.At.Seq, "id": fe.At.ID}}
		return e
	}
	if errors.Is(err, projections.ErrNotKeyed) {
		e := errorf("not_keyed", "projection %q's result has no keys; read /projections/%s/result", name, name)
		e.extra = map[string]any{"projection": name}
		return e
	}
	return defError(err)
}

// writeAnswer sends a result answer stamped with the event it reflects.
func writeAnswer(w http.ResponseWriter, a *projections.Answer) {
	b := make([]byte, 0, 128+len(a.Result))
	b = append(b, `{"name":`...)
	b = jsonx.AppendString(b, a.Name)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, a.Version, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, a.Seq, 10)
	b = append(b, `,"id":`...)
	b = jsonx.AppendString(b, a.ID)
	b = append(b, `,"result":`...)
	if len(a.Result) == 0 {
		b = append(b, "null"...)
	}
	b = append(b, a.Result...)
	hd := w.Header()
	if a.Behind {
		b = append(b, `,"behind":true`...)
		hd.Set("Strata-Behind", "true")
	}
	b = append(b, '}')
	hd.Set("Strata-Head", a.ID)
	hd.Set("Strata-Head-Seq", strconv.FormatUint(a.Seq, 10))
	hd.Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, b)
}
