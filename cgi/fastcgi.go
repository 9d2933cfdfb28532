package cgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A minimal FastCGI responder (the protocol of mod_fcgid). Go's own
// net/http/fcgi hides PATH_INFO and SCRIPT_NAME from the handler, and
// routing needs PATH_INFO, so strata speaks the protocol itself. It serves
// one request at a time per connection, which is all mod_fcgid sends.

// Record types and flags of FastCGI 1.0.
const (
	fcgiVersion      = 1
	typeBeginRequest = 1
	typeAbortRequest = 2
	typeEndRequest   = 3
	typeParams       = 4
	typeStdin        = 5
	typeStdout       = 6
	typeGetValues    = 9
	typeGetValuesRes = 10
	typeUnknownType  = 11
	flagKeepConn     = 1
	roleResponder    = 1
	maxRecordContent = 65535
)

// ServeFastCGI serves requests from the FastCGI listener on standard input
// until the process manager closes it or stops the process with SIGTERM;
// then it lets the requests in flight finish (up to drain) and returns.
// A handler with a Drain method (api.Handler) is told to drain as the
// stop begins, so that its long-polls and streams end at once rather than
// hold the drain for their whole length.
func ServeFastCGI(h http.Handler, drain time.Duration) error {
	ln, err := net.FileListener(os.Stdin)
	if err != nil {
		return err
	}
	sv := &server{h: h, conns: map[*fcgiConn]bool{}}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(stop)
	go func() {
		if _, ok := <-stop; ok {
			sv.stop()
			ln.Close()
		}
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			done := make(chan struct{})
			go func() { sv.inflight.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(drain):
			}
			if errors.Is(err, net.ErrClosed) {
				return nil // stopped by a signal
			}
			return err
		}
		sv.inflight.Add(1)
		go func() {
			defer sv.inflight.Done()
			sv.serveConn(conn)
		}()
	}
}

// server tracks the connections of ServeFastCGI, so that stopping closes
// the idle ones at once and lets the busy ones finish their request.
type server struct {
	h        http.Handler
	inflight sync.WaitGroup

	mu       sync.Mutex
	conns    map[*fcgiConn]bool // true: idle, between requests
	stopping bool
}

// stop closes the idle connections, lets the busy ones finish their
// request, and tells a handler that drains (Drain) to end its waits.
func (sv *server) stop() {
	sv.mu.Lock()
	sv.stopping = true
	for c, idle := range sv.conns {
		if idle {
			c.c.Close()
		}
	}
	sv.mu.Unlock()
	if d, ok := sv.h.(interface{ Drain() }); ok {
		d.Drain()
	}
}

// setIdle records whether c waits for a request; it reports false when the
// server is stopping and c should close instead.
func (sv *server) setIdle(c *fcgiConn, idle bool) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.stopping && idle {
		return false
	}
	sv.conns[c] = idle
	return true
}

// counts returns how many connections there are and how many are idle
// (for tests).
func (sv *server) counts() (all, idle int) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, i := range sv.conns {
		if i {
			idle++
		}
	}
	return len(sv.conns), idle
}

func (sv *server) forget(c *fcgiConn) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	delete(sv.conns, c)
}

type header struct {
	typ     byte
	id      uint16
	length  uint16
	padding byte
}

type fcgiConn struct {
	r *bufio.Reader
	w *bufio.Writer
	c net.Conn
}

func (c *fcgiConn) readHeader() (header, error) {
	var b [8]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return header{}, err
	}
	if b[0] != fcgiVersion {
		return header{}, fmt.Errorf("fastcgi: version %d", b[0])
	}
	return header{typ: b[1], id: binary.BigEndian.Uint16(b[2:]), length: binary.BigEndian.Uint16(b[4:]), padding: b[6]}, nil
}

// content reads a whole record's content and skips its padding.
func (c *fcgiConn) content(h header) ([]byte, error) {
	b := make([]byte, int(h.length)+int(h.padding))
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	return b[:h.length], nil
}

func (c *fcgiConn) writeRecord(typ byte, id uint16, content []byte) error {
	var hb [8]byte
	hb[0], hb[1] = fcgiVersion, typ
	binary.BigEndian.PutUint16(hb[2:], id)
	binary.BigEndian.PutUint16(hb[4:], uint16(len(content)))
	c.w.Write(hb[:])
	_, err := c.w.Write(content)
	return err
}

func (sv *server) serveConn(conn net.Conn) {
	c := &fcgiConn{r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10), c: conn}
	defer sv.forget(c)
	serveConn(c, sv.h, sv.setIdle)
}

// serveConn answers the records of one connection. idle, if not nil, is
// told when the connection waits for a request (true) or serves one
// (false), and ends the connection by returning false.
func serveConn(c *fcgiConn, h http.Handler, idle func(*fcgiConn, bool) bool) {
	defer c.c.Close()
	setIdle := func(v bool) bool { return idle == nil || idle(c, v) }
	for {
		if !setIdle(true) {
			return
		}
		hd, err := c.readHeader()
		if err != nil {
			return
		}
		setIdle(false)
		body, err := c.content(hd)
		if err != nil {
			return
		}
		switch hd.typ {
		case typeBeginRequest:
			if len(body) < 3 || binary.BigEndian.Uint16(body) != roleResponder {
				c.writeRecord(typeEndRequest, hd.id, []byte{0, 0, 0, 0, 3, 0, 0, 0}) // unknown role
				c.w.Flush()
				continue
			}
			keep := body[2]&flagKeepConn != 0
			if err := c.serveRequest(hd.id, h); err != nil || !keep {
				return
			}
		case typeGetValues:
			c.writeRecord(typeGetValuesRes, 0, nameValues(map[string]string{"FCGI_MPXS_CONNS": "0", "FCGI_MAX_CONNS": "1", "FCGI_MAX_REQS": "1"}))
			c.w.Flush()
		case typeAbortRequest:
		default:
			if hd.id == 0 {
				c.writeRecord(typeUnknownType, 0, []byte{hd.typ, 0, 0, 0, 0, 0, 0, 0})
				c.w.Flush()
			}
		}
	}
}

// errAnswerCut ends a connection whose answer the handler cut short.
var errAnswerCut = errors.New("fastcgi: answer cut short")

// serveRequest reads the params of request id, runs the handler with a body
// streamed from the STDIN records, and ends the request.
func (c *fcgiConn) serveRequest(id uint16, h http.Handler) error {
	var params []byte
	for {
		hd, err := c.readHeader()
		if err != nil {
			return err
		}
		b, err := c.content(hd)
		if err != nil {
			return err
		}
		if hd.typ == typeAbortRequest {
			return errors.New("fastcgi: aborted")
		}
		if hd.typ != typeParams {
			continue
		}
		if len(b) == 0 {
			break
		}
		params = append(params, b...)
	}
	env, err := parseNameValues(params)
	if err != nil {
		return err
	}
	stdin := &stdinReader{c: c}
	w := &response{c: c, id: id, header: http.Header{}}
	w.out = bufio.NewWriterSize(recordWriter{w}, maxRecordContent)
	r, err := cgi.RequestFromMap(env)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
	} else {
		r.Body = stdin
		if r.ContentLength == 0 && env["CONTENT_LENGTH"] == "" {
			r.ContentLength = -1 // a body without a length: read to the end of STDIN
		}
		if cl, _ := strconv.ParseInt(env["CONTENT_LENGTH"], 10, 64); cl == 0 && env["CONTENT_LENGTH"] != "" {
			r.Body = http.NoBody
		}
		fix(r, env["PATH_INFO"], "", "x", nil) // and a body shorter than CONTENT_LENGTH is an error
		fixAuth(r, func(k string) string { return env[k] })
		fixRequestID(r, func(k string) string { return env[k] })
		r.RemoteAddr = net.JoinHostPort(env["REMOTE_ADDR"], env["REMOTE_PORT"])
		if run(h, w, r) {
			// A cut answer: send what there is, then close the connection
			// without ending the request, so the web server sees it
			// incomplete rather than whole.
			w.out.Flush()
			c.w.Flush()
			return errAnswerCut
		}
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.out.Flush()
	// The whole STDIN stream must be consumed before the next request.
	io.Copy(io.Discard, stdin)
	c.writeRecord(typeStdout, id, nil)
	c.writeRecord(typeEndRequest, id, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	return c.w.Flush()
}

// stdinReader streams the request body out of STDIN records.
type stdinReader struct {
	c    *fcgiConn
	left int // content bytes left in the current record
	pad  int
	eof  bool
}

func (s *stdinReader) Read(p []byte) (int, error) {
	for s.left == 0 {
		if s.eof {
			return 0, io.EOF
		}
		if s.pad > 0 {
			if _, err := s.c.r.Discard(s.pad); err != nil {
				return 0, err
			}
			s.pad = 0
		}
		hd, err := s.c.readHeader()
		if err != nil {
			return 0, err
		}
		switch hd.typ {
		case typeStdin:
			s.left, s.pad = int(hd.length), int(hd.padding)
			if hd.length == 0 {
				s.c.r.Discard(s.pad)
				s.pad = 0
				s.eof = true
			}
		case typeAbortRequest:
			return 0, errors.New("fastcgi: request aborted")
		default:
			if _, err := s.c.content(hd); err != nil {
				return 0, err
			}
		}
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.c.r.Read(p)
	s.left -= n
	return n, err
}

func (s *stdinReader) Close() error { return nil }

// response writes a CGI-style answer ("Status:" line, headers, body) into
// STDOUT records.
type response struct {
	c           *fcgiConn
	id          uint16
	header      http.Header
	out         *bufio.Writer
	wroteHeader bool
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.header.Get("Content-Type") == "" && code != http.StatusNoContent && code != http.StatusNotModified {
		w.header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	fmt.Fprintf(w.out, "Status: %d %s\r\n", code, http.StatusText(code))
	w.header.Write(w.out)
	w.out.WriteString("\r\n")
}

func (w *response) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		if w.header.Get("Content-Type") == "" {
			w.header.Set("Content-Type", http.DetectContentType(b))
		}
		w.WriteHeader(http.StatusOK)
	}
	return w.out.Write(b)
}

// Flush sends what is buffered to the web server now (streaming answers).
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.out.Flush()
	w.c.w.Flush()
}

// recordWriter cuts a byte stream into STDOUT records.
type recordWriter struct{ w *response }

func (rw recordWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxRecordContent)]
		if err := rw.w.c.writeRecord(typeStdout, rw.w.id, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// parseNameValues decodes FastCGI name-value pairs.
func parseNameValues(b []byte) (map[string]string, error) {
	env := map[string]string{}
	size := func() (int, bool) {
		if len(b) == 0 {
			return 0, false
		}
		if b[0]&0x80 == 0 {
			n := int(b[0])
			b = b[1:]
			return n, true
		}
		if len(b) < 4 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint32(b) & 0x7fffffff)
		b = b[4:]
		return n, true
	}
	for len(b) > 0 {
		nl, ok1 := size()
		vl, ok2 := size()
		if !ok1 || !ok2 || nl+vl > len(b) {
			return nil, errors.New("fastcgi: malformed params")
		}
		env[string(b[:nl])] = string(b[nl : nl+vl])
		b = b[nl+vl:]
	}
	return env, nil
}

func nameValues(m map[string]string) []byte {
	var b []byte
	put := func(n int) {
		if n < 128 {
			b = append(b, byte(n))
		} else {
			b = binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
		}
	}
	for k, v := range m {
		put(len(k))
		put(len(v))
		b = append(b, k...)
		b = append(b, v...)
	}
	return b
}
