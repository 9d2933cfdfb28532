package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"strata/query"
)

// WebSocket: a standalone server also serves GET /stream as a WebSocket
// (RFC 6455), for clients that expect one. The stream is the same as the
// Server-Sent Events one — the same filters, start point and end — only
// its framing differs:
//
//   - each event is one text message holding the event's JSON exactly as
//     GET /events serves it (or the CloudEvent with format=cloudevents);
//     its "id" is the resume point, as an SSE message's id: line is;
//   - any other message of the stream (today only its end) is a text
//     message holding a JSON object with one member named for its kind:
//     {"end":{"reason":"…","after":<seq>,"from":"<id>"}} ("from" absent at
//     the start of the log). An event always has an "id" member; these
//     never do;
//   - after the end message the server closes the connection with status
//     1000 (normal closure) and the end's reason as the close reason;
//   - heartbeats are WebSocket pings: a client whose pong does not come
//     back within wsPingTimeout is taken for gone.
//
// A browser cannot set headers on a WebSocket, so the start point travels
// in the URL (from=<id>, after=<seq>), and a client resumes by opening a
// new connection with from=<the last id it got>; Last-Event-ID is honoured
// too, for clients that can send it. The client sends nothing: a data
// message from it closes the connection (1008, policy violation).
//
// A WebSocket takes the connection over (http.Hijacker): only the
// standalone server can hand it over. Under CGI and FastCGI the web server
// owns the connection, so an upgrade there answers 501
// needs_server, and GET /stream without the upgrade serves the
// same stream as Server-Sent Events. A browser page on another origin may
// open one only if that origin is allowed to call the tenant (its CORS
// origins): a browser sends a WebSocket handshake with no preflight, and
// cached Basic credentials would go with it.

// wsPingTimeout is how long a heartbeat's ping waits for its pong.
const wsPingTimeout = 15 * time.Second

// wsCloseWait bounds how long Close waits for WebSocket streams to end.
// Drain has told them to (each sends its end message and closes, waiting
// up to 5 s for the client's close frame); the server's own drain does
// not wait for connections it has handed over.
const wsCloseWait = 6 * time.Second

// waitWebSockets waits up to d for the WebSocket streams to end.
// (A count polled, not a WaitGroup: a stream may still begin while Close
// waits.)
func (h *Handler) waitWebSockets(d time.Duration) {
	for end := time.Now().Add(d); h.websockets.Load() > 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
}

// wantsWebSocket reports whether r asks to upgrade to a WebSocket: the
// upgrade headers, or a handshake's key alone — a gateway may drop the
// hop-by-hop Connection and Upgrade (Apache's mod_fcgid does), and such a
// client must be told no rather than be sent an event stream it cannot
// read.
func wantsWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket") ||
		r.Header.Get("Sec-WebSocket-Key") != ""
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitive), as Connection: keep-alive, Upgrade does.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// canHijack reports whether w (or one it wraps) can hand its connection
// over: true under the standalone server, false under CGI and FastCGI.
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// checkWebSocket answers, before anything is upgraded, what an upgrade
// request cannot have: a gateway that cannot hand the connection over, a
// handshake other than RFC 6455's version 13, or a browser page of an
// origin the tenant does not allow. The library would answer these in
// plain text; strata's answers are JSON errors.
func (h *Handler) checkWebSocket(w http.ResponseWriter, r *http.Request, c *call) error {
	if !canHijack(w) {
		return errorf("needs_server", "a WebSocket needs strata serve (standalone): this server answers through CGI or FastCGI, which cannot hand the connection over; GET /stream without the upgrade serves the same stream as Server-Sent Events")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		e := errorf("invalid_parameter", "header Upgrade: a WebSocket handshake has Connection: Upgrade and Upgrade: websocket")
		e.extra = map[string]any{"parameter": "Upgrade"}
		return e
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		e := errorf("invalid_parameter", "header Sec-WebSocket-Version: only version 13 (RFC 6455) is served")
		e.extra = map[string]any{"parameter": "Sec-WebSocket-Version"}
		return e
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.Join(keys, ""))); len(keys) != 1 || err != nil || len(k) != 16 {
		e := errorf("invalid_parameter", "header Sec-WebSocket-Key: must be one 16-byte key in base64")
		e.extra = map[string]any{"parameter": "Sec-WebSocket-Key"}
		return e
	}
	if origin := r.Header.Get("Origin"); origin != "" && !sameHost(origin, r.Host) {
		var list []string
		if c.t != nil {
			h.mu.Lock()
			list = c.t.cfg.Origins
			h.mu.Unlock()
		}
		if h.allowedOrigin(origin, list) == "" {
			return errorf("cors_denied", "the origin %s may not open a WebSocket to this tenant: it is not among the tenant's allowed origins", clip(origin))
		}
	}
	return nil
}

// sameHost reports whether the Origin header names the host the request
// was sent to (a page of the server's own origin).
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// acceptWebSocket upgrades r, which checkWebSocket passed, and returns the
// sink and a copy of r whose context ends when the client closes the
// connection or it breaks (after a hijack, r's own context no longer
// says). The caller ends the stream with ws.close.
func (h *Handler) acceptWebSocket(w http.ResponseWriter, r *http.Request) (*wsSink, *http.Request, error) {
	// The origin was checked against the tenant's CORS origins by
	// checkWebSocket; the library's own check knows nothing of them.
	hw := &batchHijacker{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		// Only the hijack itself can fail here, and the library has
		// answered 500 already.
		return nil, nil, err
	}
	// Nothing the client may send is longer than a close frame.
	conn.SetReadLimit(256)
	ctx := conn.CloseRead(r.Context())
	return &wsSink{c: conn, bc: hw.bc, ctx: ctx}, r.WithContext(ctx), nil
}

// wsChunk is how many bytes of messages a batch gathers before it writes
// them out, flushed or not (as sseChunk for an event stream).
const wsChunk = 32 << 10

// batchHijacker hands the library a connection whose writes a stream can
// gather (batchConn): the library writes and flushes every message on its
// own, a write system call per event, five times slower than an event
// stream's 32 KB writes on a backlog.
type batchHijacker struct {
	http.ResponseWriter
	bc *batchConn
}

func (h *batchHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 { // the 101 is flushed by now; in case not
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	h.bc = &batchConn{Conn: conn}
	return h.bc, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(h.bc, 4096)), nil
}

// batchConn is a connection whose writes, while a batch is on, gather in a
// buffer written out at wsChunk bytes and when the batch ends. Out of a
// batch (a ping, a pong, a close) a write goes out at once. The library's
// reader (pongs, the close handshake) writes from another goroutine: mu.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte // nil when empty: an idle stream holds none
	err      error
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		if err := b.writeOutLocked(); err != nil {
			return 0, err
		}
		n, err := b.Conn.Write(p)
		if err != nil {
			b.err = err
		}
		return n, err
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= wsChunk {
		return len(p), b.writeOutLocked()
	}
	return len(p), nil
}

// writeOutLocked writes the buffer out. mu must be held.
func (b *batchConn) writeOutLocked() error {
	if b.err != nil || len(b.buf) == 0 {
		return b.err
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	if err != nil {
		b.err = err
	}
	return b.err
}

// batch starts gathering writes (on) or writes out what was gathered and
// stops (off).
func (b *batchConn) batch(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = on
	if on {
		return b.err
	}
	err := b.writeOutLocked()
	b.buf = nil
	return err
}

// wsSink sends a stream's messages over a WebSocket (see the framing
// above). Messages sent gather in the connection's batch until flush.
type wsSink struct {
	c   *websocket.Conn
	bc  *batchConn // under c: send gathers, flush writes out
	ctx context.Context
	// end is the reason of the end message sent, "" if none was: the
	// close frame's reason.
	end string
	err error // the first error: every later call returns it
	buf []byte
}

var _ sink = (*wsSink)(nil)

// send writes one message: the event's JSON as it is, or a named message
// as {"<event>":<data>}. The id is in the event's JSON already.
func (s *wsSink) send(id, event string, data []byte) error {
	if s.err != nil {
		return s.err
	}
	msg := data
	if event != "" {
		if strings.ContainsAny(event, "\"\\\x00\r\n") {
			return errBadField
		}
		s.buf = append(append(append(append(s.buf[:0], `{"`...), event...), `":`...), data...)
		s.buf = append(s.buf, '}')
		msg = s.buf
		if event == "end" {
			s.end = endReason(data)
		}
	}
	if err := s.bc.batch(true); err != nil {
		s.err = err
		return err
	}
	if err := s.c.Write(s.ctx, websocket.MessageText, msg); err != nil {
		s.err = err
	}
	return s.err
}

// endReason picks the reason out of an end message's data, for the close
// frame (which holds at most 123 bytes).
func endReason(data []byte) string {
	const key = `"reason":"`
	i := strings.Index(string(data), key)
	if i < 0 {
		return "end"
	}
	r, _, _ := strings.Cut(string(data[i+len(key):]), `"`)
	if r == "" || len(r) > 100 {
		return "end"
	}
	return r
}

// comment is a heartbeat: a ping, whose pong must come back within
// wsPingTimeout (the reader started by CloseRead takes it in).
func (s *wsSink) comment(string) error {
	if err := s.flush(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, wsPingTimeout)
	defer cancel()
	if err := s.c.Ping(ctx); err != nil {
		s.err = err
	}
	return s.err
}

func (s *wsSink) flush() error {
	if s.err == nil {
		s.err = s.bc.batch(false)
	}
	return s.err
}

// close ends the connection: a normal closure with the end's reason after
// an end message, else "going away" (the stream broke off, or the server
// is stopping without having said where to resume).
func (s *wsSink) close() {
	s.bc.batch(false)
	if s.end != "" {
		s.c.Close(websocket.StatusNormalClosure, s.end)
		return
	}
	if s.err != nil && errors.Is(s.err, context.Canceled) {
		s.c.CloseNow() // the client is gone
		return
	}
	s.c.Close(websocket.StatusGoingAway, "stream ended")
}

// streamWebSocket serves a stream whose request asked for a WebSocket:
// streamEvents over the WebSocket sink.
func (h *Handler) streamWebSocket(w http.ResponseWriter, r *http.Request, c *call, p query.Params, o streamOpts) {
	h.serveWebSocket(w, r, c, func(r2 *http.Request, ws *wsSink) { h.streamEvents(w, r2, c, ws, p, o) })
}

// serveWebSocket answers an upgrade request: the checks answered as JSON
// errors, then the upgrade, then serve on the WebSocket (r2 is the
// request as the upgraded connection's), then the close. Close waits for
// it (h.websockets).
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request, c *call, serve func(r2 *http.Request, ws *wsSink)) {
	if err := h.checkWebSocket(w, r, c); err != nil {
		writeError(w, r, err)
		return
	}
	h.websockets.Add(1)
	defer h.websockets.Add(-1)
	ws, r2, err := h.acceptWebSocket(w, r)
	if err != nil {
		infoOf(r).logger(h).Warn("websocket: upgrade failed", "err", err.Error())
		return
	}
	defer ws.close()
	serve(r2, ws)
}
