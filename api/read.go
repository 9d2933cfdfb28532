package api

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"strata/log"
	"strata/query"
)

// DefaultLimit is the page size of GET /events without a limit.
const DefaultLimit = 1000

// maxBufferedPage bounds the memory of a filtered page, which is held until
// it ends so that its Link header can go first; past it the page ends early
// and the Link says where to go on.
const maxBufferedPage = 8 << 20

// read serves GET /events. A page whose end is known before reading (no
// filter, or one entity) streams; a filtered scan is buffered, up to
// maxBufferedPage, because its next cursor is known only at its end and
// must go out in the headers.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	p, err := readParams(q, "wait", "format")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := formatParam(q); err != nil {
		writeError(w, r, err)
		return
	}
	d, err := waitParam(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if d > 0 {
		waitForEvents(r.Context(), h.draining.done(), c.t.log, &c.t.tail, p, d)
		if r.Context().Err() != nil {
			return // the client went away while waiting
		}
	}
	readLog(w, r, c.t.log, p)
}

// readLog answers a read of l.
func readLog(w http.ResponseWriter, r *http.Request, l *log.Log, p query.Params) {
	plan, err := query.Prepare(l, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ndjson := wantsNDJSON(r.Header.Get("Accept"))
	ce := wantsCloudEvents(r, ceBatchMediaType) // cloudevents.go
	hd := w.Header()
	switch {
	case ndjson:
		hd.Set("Content-Type", "application/x-ndjson")
	case ce:
		hd.Set("Content-Type", ceBatchMediaType)
	default:
		hd.Set("Content-Type", "application/json")
	}
	hd.Add("Vary", "Accept")
	hd.Set("Strata-Head-Seq", strconv.FormatUint(l.Through(), 10))
	next, known := plan.Next()
	var out *bufio.Writer
	var buf []byte
	if known {
		setNext(w, r, next)
		out = bufio.NewWriterSize(w, 64<<10)
	}
	n, sent := 0, 0 // events read; bytes given to out
	pg, err := plan.RunContext(r.Context(), func(e *log.Event) error {
		mark := len(buf)
		if !ndjson {
			if n == 0 {
				buf = append(buf, '[')
			} else {
				buf = append(buf, ',')
			}
		}
		if ce {
			buf = appendCloudEvent(buf, e)
		} else {
			buf = e.AppendJSON(buf)
		}
		if ndjson {
			buf = append(buf, '\n')
		}
		if out != nil {
			_, err := out.Write(buf)
			sent += len(buf)
			buf = buf[:0]
			n++
			return clientGone(err)
		}
		if len(buf) > maxBufferedPage && n > 0 {
			buf = buf[:mark]
			return query.ErrPageFull
		}
		n++
		return nil
	})
	if err != nil {
		if cerr := r.Context().Err(); cerr != nil && errors.Is(err, cerr) {
			return // the client went away mid-read: nobody is left to answer
		}
		// Nothing has reached the client while all of it is still in out's
		// buffer (a damaged record in the first 64 KB, say): a proper error
		// answer, with its request id, is still possible.
		if out == nil || out.Buffered() == sent {
			hd.Del("Link")
			hd.Del("Strata-Next-After")
			writeError(w, r, err)
			return
		}
		// The status is sent; cutting the connection is the only honest way
		// left to say the answer is incomplete. Behind CGI or FastCGI the
		// cut never reaches the client: the web server ends the answer as if
		// it were whole. So an NDJSON answer ends with an error line first,
		// with the request id — a client following Strata-Next-After would
		// otherwise skip what could not be read, unknowing. (A JSON answer
		// cut short is an unterminated array: no parser takes it for whole.)
		if ndjson {
			out.Write(cutLine(r))
		}
		out.Flush()
		logCut(r, err)
		panic(http.ErrAbortHandler)
	}
	if !known {
		setNext(w, r, pg.Next)
		out = bufio.NewWriterSize(w, 64<<10)
	}
	if !ndjson {
		if n == 0 {
			buf = append(buf, '[')
		}
		buf = append(buf, "]\n"...)
	}
	out.Write(buf)
	out.Flush()
}

// setNext puts the cursor of the following page in the headers, as a
// relative reference, which keeps whatever path the client used, so the
// link works behind any rewrite or mount point.
func setNext(w http.ResponseWriter, r *http.Request, next uint64) {
	if next == 0 {
		return
	}
	q := r.URL.Query()
	for _, k := range []string{"from", "after", "since"} {
		q.Del(k)
	}
	q.Set("after", strconv.FormatUint(next, 10))
	w.Header().Set("Link", "<?"+q.Encode()+`>; rel="next"`)
	w.Header().Set("Strata-Next-After", strconv.FormatUint(next, 10))
}

func wantsNDJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.TrimSpace(mt) {
		case "application/x-ndjson", "application/ndjson", "application/jsonl":
			return true
		}
	}
	return false
}

// readParams parses the query of GET /events; an unknown parameter is an
// error (a misspelt filter must not silently read everything), except ones
// starting with "_", which clients use to defeat caches.
func readParams(q url.Values, more ...string) (query.Params, error) {
	p := query.Params{Limit: DefaultLimit}
	bad := func(name, why string) error {
		e := errorf("invalid_parameter", "parameter %s: %s", name, why)
		e.extra = map[string]any{"parameter": name}
		return e
	}
	for name, vals := range q {
		v := vals[len(vals)-1]
		switch name {
		case "from", "to":
			id, ok := log.ParseID(v)
			if !ok {
				return p, bad(name, "must be an event id (64 lowercase hex)")
			}
			if name == "from" {
				p.From = &id
			} else {
				p.To = &id
			}
		case "after":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return p, bad(name, "must be a seq (a whole number)")
			}
			p.After = n
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return p, bad(name, "must be a whole number of at least 1")
			}
			p.Limit = n
		case "type", "entity":
			if v == "" || !query.ValidPattern(v) {
				return p, bad(name, "must be a name or a glob (* ? [...])")
			}
			if name == "type" {
				p.Type = v
			} else {
				p.Entity = v
			}
		case "since", "until":
			ns, err := log.ParseTime(v)
			if err != nil {
				return p, bad(name, "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
			}
			if name == "since" {
				p.Since = &ns
			} else {
				p.Until = &ns
			}
		default:
			if !strings.HasPrefix(name, "_") && !slices.Contains(more, name) {
				return p, bad(name, "unknown; use from, to, after, limit, type, entity, since, until")
			}
		}
	}
	return p, nil
}

// event serves GET /events/<id>.
func (h *Handler) event(w http.ResponseWriter, r *http.Request, c *call) {
	t := c.t
	id, ok := log.ParseID(c.arg)
	if !ok {
		writeError(w, r, errorf("invalid_id", "an event id is 64 lowercase hex digits"))
		return
	}
	seq, err := t.log.Lookup(id)
	if err == nil {
		var e *log.Event
		if e, err = t.log.Event(seq); err == nil {
			w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
			w.Header().Add("Vary", "Accept")
			if wantsCloudEvents(r, ceMediaType) {
				writeCloudEvent(w, e) // cloudevents.go
				return
			}
			w.Header().Set("ETag", `"`+e.IDString()+`"`)
			writeJSON(w, http.StatusOK, e.AppendJSON(nil))
			return
		}
	}
	if errors.Is(err, log.ErrNotFound) {
		err = errorf("not_found", "no event with id %x on this chain", id)
	}
	writeError(w, r, err)
}

// head serves GET /head.
func (h *Handler) head(w http.ResponseWriter, r *http.Request, c *call) {
	head, err := c.t.log.Head()
	if err != nil {
		writeError(w, r, err)
		return
	}
	setHead(w, head)
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, headJSON(head))
}
