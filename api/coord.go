package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"strata/coord"
	"strata/log"
)

// The coordination services (README "Coordination"): a cache of
// short-lived JSON values, mutexes with fencing tokens, and broadcast
// channels whose messages are never stored. Their state lives in files of
// package coord under the tenant's coordDir, shared by every process on
// the data directory; none of their routes opens the tenant's log
// (scope inTenantFiles), so a CGI request pays only for the file it uses.

// coordDir is the directory of a tenant's coordination files (coord's
// FORMAT.md).
const coordDir = "coord"

func (c *call) coordDir() string { return filepath.Join(c.t.dir, coordDir) }

// keyArg is the route's key or channel, checked.
func keyArg(c *call, what string) (string, error) {
	if err := coord.ValidKey(c.arg); err != nil {
		e := errorf("invalid_key", "%s %q: %v", what, clip(c.arg), err)
		e.extra = map[string]any{what: clip(c.arg)}
		return "", e
	}
	return c.arg, nil
}

// coordArgs checks a coordination request's key (or channel: what) and
// its parameters: ttl=<seconds> (def when absent, up to most) when most is
// not 0, and those named in more (which the caller reads).
func coordArgs(r *http.Request, c *call, what string, def, most time.Duration, more ...string) (key string, ttl time.Duration, err error) {
	key, err = keyArg(c, what)
	q := r.URL.Query()
	switch {
	case err != nil:
	case most == 0:
		err = checkParams(q, more...)
	default:
		if err = checkParams(q, append(more, "ttl")...); err == nil {
			ttl, err = ttlParam(q, def, most)
		}
	}
	return key, ttl, err
}

// keyAnswer starts an answer about key: {"<what>":"<key>".
func keyAnswer(what, key string) []byte {
	b := append([]byte(`{"`), what...)
	b = append(b, `":`...)
	return appendAny(b, key)
}

// ttlParam parses ttl=<seconds> (a decimal number, to the millisecond):
// def when absent, at least 1 ms and at most most.
func ttlParam(q url.Values, def, most time.Duration) (time.Duration, error) {
	v, ok := q["ttl"]
	if !ok {
		return def, nil
	}
	f, err := strconv.ParseFloat(v[len(v)-1], 64)
	d := time.Duration(math.Round(f*1000)) * time.Millisecond
	if err != nil || math.IsNaN(f) || f > most.Seconds() || d < time.Millisecond {
		return 0, badParam("ttl", "must be a number of seconds from 0.001 to "+strconv.FormatFloat(most.Seconds(), 'f', -1, 64))
	}
	return d, nil
}

// jsonBody reads a request body of at most max bytes that must be one
// JSON value.
func jsonBody(r *http.Request, max int64) ([]byte, error) {
	body, err := readBody(r, max, new(bytes.Buffer), nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.code == "empty_body" {
		return nil, errorf("empty_body", "the request body is empty; send one JSON value (null is one)")
	}
	if err == nil && !json.Valid(body) {
		err = errorf("invalid_body", "the request body is not one JSON value")
	}
	return body, err
}

// appendExpires appends "expires":"<time>" (9 fractional digits, UTC, as
// events' times are served).
func appendExpires(b []byte, t time.Time) []byte {
	b = append(b, `"expires":"`...)
	b = log.AppendTime(b, t.UnixNano())
	return append(b, '"')
}

// cacheGet serves GET /cache/<key>: the value exactly as stored.
func (h *Handler) cacheGet(w http.ResponseWriter, r *http.Request, c *call) {
	key, _, err := coordArgs(r, c, "key", 0, 0)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cache := coord.Cache{Dir: c.coordDir()}
	e, err := cache.Get(key, timeNow())
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Strata-Expires", string(log.AppendTime(nil, e.Expires.UnixNano())))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Value)))
	w.WriteHeader(http.StatusOK)
	w.Write(e.Value)
}

// cachePut serves PUT /cache/<key>?ttl=<seconds>: any JSON value, stored
// byte for byte, until the ttl (default an hour) has passed.
func (h *Handler) cachePut(w http.ResponseWriter, r *http.Request, c *call) {
	key, ttl, err := coordArgs(r, c, "key", coord.DefaultCacheTTL, coord.MaxCacheTTL)
	var body []byte
	if err == nil {
		body, err = jsonBody(r, coord.MaxValue)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	lim := c.cfg.Limits()
	cache := coord.Cache{Dir: c.coordDir(), MaxEntries: lim.CacheEntries, MaxBytes: lim.CacheBytes}
	e, err := cache.Put(key, body, ttl, timeNow())
	if err != nil {
		writeError(w, r, err)
		return
	}
	b := keyAnswer("key", key)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, ',')
	b = appendExpires(b, e.Expires)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

// cacheDelete serves DELETE /cache/<key>.
func (h *Handler) cacheDelete(w http.ResponseWriter, r *http.Request, c *call) {
	key, _, err := coordArgs(r, c, "key", 0, 0)
	if err == nil {
		cache := coord.Cache{Dir: c.coordDir()}
		err = cache.Delete(key, timeNow())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mutexLock serves POST /mutex/<key>/lock?ttl=<seconds> (default 30 s).
func (h *Handler) mutexLock(w http.ResponseWriter, r *http.Request, c *call) {
	key, ttl, err := coordArgs(r, c, "key", coord.DefaultLockTTL, coord.MaxLockTTL)
	if err != nil {
		writeError(w, r, err)
		return
	}
	m := coord.Mutexes{Dir: c.coordDir(), NoSync: h.cfg.NoSync}
	g, err := m.Lock(key, ttl, timeNow())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, grantAnswer(key, g))
}

// mutexUnlock serves POST /mutex/<key>/unlock with {"token":n}.
func (h *Handler) mutexUnlock(w http.ResponseWriter, r *http.Request, c *call) {
	key, _, err := coordArgs(r, c, "key", 0, 0)
	var token uint64
	if err == nil {
		token, err = tokenBody(r)
	}
	if err == nil {
		m := coord.Mutexes{Dir: c.coordDir(), NoSync: h.cfg.NoSync}
		err = m.Unlock(key, token, timeNow())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	b := keyAnswer("key", key)
	b = append(b, `,"released":true}`...)
	writeJSON(w, http.StatusOK, b)
}

// mutexRenew serves POST /mutex/<key>/renew?ttl=<seconds> with
// {"token":n}: the holder's lock lasts ttl (default 30 s) from now, with
// the same token.
func (h *Handler) mutexRenew(w http.ResponseWriter, r *http.Request, c *call) {
	key, ttl, err := coordArgs(r, c, "key", coord.DefaultLockTTL, coord.MaxLockTTL)
	var token uint64
	if err == nil {
		token, err = tokenBody(r)
	}
	var g coord.Grant
	if err == nil {
		m := coord.Mutexes{Dir: c.coordDir(), NoSync: h.cfg.NoSync}
		g, err = m.Renew(key, token, ttl, timeNow())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, grantAnswer(key, g))
}

// grantAnswer is {"key","token","expires"}.
func grantAnswer(key string, g coord.Grant) []byte {
	b := keyAnswer("key", key)
	b = append(b, `,"token":`...)
	b = strconv.AppendUint(b, g.Token, 10)
	b = append(b, ',')
	b = appendExpires(b, g.Expires)
	return append(b, '}')
}

// tokenBody reads {"token":n}, n > 0.
func tokenBody(r *http.Request) (uint64, error) {
	var in struct {
		Token *uint64 `json:"token"`
	}
	if err := readJSON(r, &in); err != nil {
		return 0, err
	}
	if in.Token == nil || *in.Token == 0 {
		e := errorf("invalid_body", "the request body must be {\"token\":n} with the token the lock answered")
		e.extra = map[string]any{"field": "token"}
		return 0, e
	}
	return *in.Token, nil
}

// errCGIBroadcast answers the broadcast routes under CGI.
func errCGIBroadcast() error {
	return errorf("needs_server", "broadcast needs a long-running server (standalone or FastCGI): under CGI every request is a process of its own that ends with its answer, so none holds subscribers for a message to reach")
}

// broadcastPost serves POST /broadcast/<channel>: a JSON body of at most
// coord.MaxMessage bytes, sent (compacted to one line) to the channel's
// subscribers in every process of the data directory, and never stored.
func (h *Handler) broadcastPost(w http.ResponseWriter, r *http.Request, c *call) {
	if !h.cfg.LongRunning {
		writeError(w, r, errCGIBroadcast())
		return
	}
	channel, _, err := coordArgs(r, c, "channel", 0, 0)
	var body []byte
	if err == nil {
		body, err = jsonBody(r, coord.MaxMessage)
	}
	var msg bytes.Buffer
	if err == nil {
		json.Compact(&msg, body) // valid: jsonBody checked
	}
	var ring *coord.Ring
	if err == nil {
		ring, err = c.t.broadcast()
	}
	var seq uint64
	if err == nil {
		seq, err = ring.Post(channel, msg.Bytes(), timeNow())
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	b := keyAnswer("channel", channel)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	writeJSON(w, http.StatusAccepted, append(b, '}'))
}

// broadcastStream serves GET /broadcast/<channel>/stream: Server-Sent
// Events, each message's data the JSON posted and its id the ring's seq
// (an EventSource that reconnects with Last-Event-ID, or a client that
// gives after=<seq>, gets what the ring still holds after it); an "event:
// missed" with {"count":n} when the subscriber fell a ring behind and n
// messages went by unread; an "event: end" with
// {"reason":"shutdown|timeout","after":<seq>} (and that seq as its id)
// when the server stops or the stream's time is up. strata serve also
// answers it as a WebSocket (websocket.go's framing): each message
// {"seq":n,"data":<the JSON posted>}, and {"missed":{…}}, {"end":{…}}.
func (h *Handler) broadcastStream(w http.ResponseWriter, r *http.Request, c *call) {
	if !h.cfg.LongRunning {
		writeError(w, r, errCGIBroadcast())
		return
	}
	channel, _, err := coordArgs(r, c, "channel", 0, 0, "after")
	var ring *coord.Ring
	if err == nil {
		ring, err = c.t.broadcast()
	}
	var after uint64
	if err == nil {
		after, err = ring.Head()
	}
	if err == nil {
		after, err = broadcastStart(r, after)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if wantsWebSocket(r) {
		h.serveWebSocket(w, r, c, func(r2 *http.Request, ws *wsSink) {
			h.streamBroadcast(r2, ws, true, ring, channel, after, h.draining.done())
		})
		return
	}
	out := startSSE(w, r)
	h.streamBroadcast(r, out, false, ring, channel, after, h.draining.done())
}

// broadcastStart is where a broadcast stream starts: after head, or after
// the seq of Last-Event-ID or after= (the header wins), if the ring has
// not gone past head since.
func broadcastStart(r *http.Request, head uint64) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
		if _, err := strconv.ParseUint(v, 10, 64); v != "" && err != nil {
			return 0, badParam("after", "must be the seq (id) of a broadcast message")
		}
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= head {
		return n, nil
	}
	return head, nil
}

// streamBroadcast sends channel's messages after seq after to out until
// the client leaves (a write fails, or the request's context ends), stop
// closes (end reason "shutdown") or Config.StreamTimeout passes (reason
// "timeout", as GET /stream: under mod_fcgid a stream holds a process),
// with a heartbeat comment every Config.Heartbeat.
func (h *Handler) streamBroadcast(r *http.Request, out sink, ws bool, ring *coord.Ring, channel string, after uint64, stop <-chan struct{}) {
	buf := make([]byte, coord.MaxMessage)
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	var timeout <-chan time.Time
	if h.cfg.StreamTimeout > 0 {
		t := time.NewTimer(h.cfg.StreamTimeout)
		defer t.Stop()
		timeout = t.C
	}
	end := func(reason string) {
		// The resume point as the id, so that an EventSource reconnects
		// from there (Last-Event-ID).
		id := strconv.FormatUint(after, 10)
		out.send(id, "end", []byte(`{"reason":"`+reason+`","after":`+id+`}`))
		out.flush()
	}
	var id, msg []byte
	for {
		changed := ring.Changed()
		next, missed, err := ring.Read(channel, after, buf, func(m coord.Message) error {
			id = strconv.AppendUint(id[:0], m.Seq, 10)
			if ws { // the seq inside the message, as an event's id is
				msg = append(append(append(append(msg[:0], `{"seq":`...), id...), `,"data":`...), m.Data...)
				return out.send("", "", append(msg, '}'))
			}
			return out.send(string(id), "", m.Data)
		})
		if err == nil && missed > 0 {
			err = out.send("", "missed", append(strconv.AppendUint([]byte(`{"count":`), missed, 10), '}'))
		}
		if err == nil && next != after {
			err = out.flush()
		}
		if err != nil {
			return
		}
		after = next
		select {
		case <-changed: // a post, by this process or (within coord.RingPoll) another
		case <-beat.C:
			if out.comment("") != nil || out.flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-timeout:
			end("timeout")
			return
		case <-stop:
			end("shutdown")
			return
		}
	}
}

// broadcast returns the tenant's broadcast ring, opening it on first use
// (long-running modes only).
func (t *tenant) broadcast() (*coord.Ring, error) {
	t.ringOnce.Do(func() { t.ring, t.ringErr = coord.OpenRing(filepath.Join(t.dir, coordDir)) })
	return t.ring, t.ringErr
}

// coordError is the answer for an error of package coord, nil if err is
// not one.
func coordError(err error) *apiError {
	var he *coord.HeldError
	var fe *coord.TableFullError
	switch {
	case errors.As(err, &he):
		e := errorf("mutex_held", "the mutex is held until %s", log.AppendTime(nil, he.Expires.UnixNano()))
		e.extra = map[string]any{"expires": string(log.AppendTime(nil, he.Expires.UnixNano()))}
		return e
	case errors.As(err, &fe):
		e := errorf("mutex_table_full", "as many of the tenant's mutexes are held at once as its table holds in that place; retry after one expires or is released")
		e.retry = fe.RetryAfter
		return e
	case errors.Is(err, coord.ErrNotHolder):
		return errorf("not_holder", "the token does not hold the mutex: the lock expired, or was granted again since (with a larger token), or was never granted")
	case errors.Is(err, coord.ErrNotFound):
		return errorf("not_found", "no such cache entry (or it has expired)")
	case errors.Is(err, coord.ErrInvalidKey):
		return errorf("invalid_key", "%v", coord.ErrInvalidKey)
	case errors.Is(err, coord.ErrNoSpace):
		return fault("disk_full")
	case errors.Is(err, coord.ErrCorrupt):
		return fault("corrupt")
	}
	return nil
}
