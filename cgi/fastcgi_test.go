package cgi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fcgiRequest plays mod_fcgid's side of one request on conn and returns the
// STDOUT stream it got back.
func fcgiRequest(t *testing.T, conn net.Conn, id uint16, env map[string]string, body []byte, keep bool) string {
	t.Helper()
	out, err := fcgiExchange(conn, id, env, body, keep)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fcgiExchange is fcgiRequest with the failure returned, for goroutines:
// t.Fatal there would end only the goroutine, and the test would wait for
// an answer that never comes.
func fcgiExchange(conn net.Conn, id uint16, env map[string]string, body []byte, keep bool) (string, error) {
	c := &fcgiConn{r: bufio.NewReader(conn), w: bufio.NewWriter(conn), c: conn}
	flags := byte(0)
	if keep {
		flags = flagKeepConn
	}
	c.writeRecord(typeBeginRequest, id, []byte{0, roleResponder, flags, 0, 0, 0, 0, 0})
	c.writeRecord(typeParams, id, nameValues(env))
	c.writeRecord(typeParams, id, nil)
	for len(body) > 0 { // in small records, to exercise the reassembly
		n := min(len(body), 7)
		c.writeRecord(typeStdin, id, body[:n])
		body = body[n:]
	}
	c.writeRecord(typeStdin, id, nil)
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	var out bytes.Buffer
	for {
		hd, err := c.readHeader()
		if err != nil {
			return "", fmt.Errorf("read answer: %w", err)
		}
		b, _ := c.content(hd)
		if hd.id != id {
			return "", fmt.Errorf("record for request %d, want %d", hd.id, id)
		}
		switch hd.typ {
		case typeStdout:
			out.Write(b)
		case typeEndRequest:
			if status := binary.BigEndian.Uint32(b); status != 0 || b[4] != 0 {
				return "", fmt.Errorf("end request: app status %d, protocol status %d", status, b[4])
			}
			return out.String(), nil
		}
	}
}

// waitFor polls cond until it holds. The bound only keeps a broken server
// from hanging the test until go test's timeout; it is not a timing check.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

func TestFastCGIRoutesOnPathInfo(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.URL.RawQuery+" "+string(body))
	})
	server, client := net.Pipe()
	go serveConn(&fcgiConn{r: bufio.NewReader(server), w: bufio.NewWriter(server), c: server}, h, nil)
	env := map[string]string{
		"REQUEST_METHOD": "PUT", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/api/events?x=1",
		"SCRIPT_NAME": "/cgi-bin/strata.fcgi", "PATH_INFO": "/events", "QUERY_STRING": "x=1",
		"CONTENT_LENGTH": "23", "HTTP_HOST": "example.org", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5000",
	}
	// Two requests on one kept connection: the first body must be consumed
	// exactly, or the second request's records would be misread.
	for id := uint16(1); id <= 2; id++ {
		out := fcgiRequest(t, client, id, env, []byte(`{"type":"a","entity":1}`), true)
		if !strings.HasPrefix(out, "Status: 201 Created\r\n") || !strings.HasSuffix(out, "\r\n\r\nPUT /events x=1 {\"type\":\"a\",\"entity\":1}") {
			t.Fatalf("request %d: answer %q", id, out)
		}
	}
	env["PATH_INFO"] = ""
	env["CONTENT_LENGTH"] = "0"
	env["REQUEST_METHOD"] = "GET"
	if out := fcgiRequest(t, client, 3, env, nil, false); !strings.Contains(out, "GET / x=1 ") {
		t.Fatalf("no PATH_INFO: answer %q", out)
	}
	client.Close()
}

// TestFastCGIStop: stopping closes a connection waiting for its next
// request, and lets one that is serving a request finish it first.
func TestFastCGIStop(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	sv := &server{h: h, conns: map[*fcgiConn]bool{}}
	env := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/x", "PATH_INFO": "/slow", "CONTENT_LENGTH": "0"}

	// A busy connection: the answer still arrives after stop.
	busyServer, busyClient := net.Pipe()
	go sv.serveConn(busyServer)
	type result struct {
		out string
		err error
	}
	answer := make(chan result, 1)
	go func() {
		out, err := fcgiExchange(busyClient, 1, env, nil, true)
		answer <- result{out, err}
	}()
	// Both connections are closed at the end, so that a failure below
	// unblocks the goroutines rather than leaving them behind.
	defer busyClient.Close()
	waitFor(t, "the request in flight", func() bool { all, idle := sv.counts(); return all == 1 && idle == 0 })
	// An idle connection: closed at once by stop.
	idleServer, idleClient := net.Pipe()
	defer idleClient.Close()
	closed := make(chan struct{})
	go func() { sv.serveConn(idleServer); close(closed) }()
	waitFor(t, "the idle connection", func() bool { _, idle := sv.counts(); return idle == 1 })
	sv.stop()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle connection stayed open after stop")
	}
	close(release)
	select {
	case got := <-answer:
		if got.err != nil || !strings.HasSuffix(got.out, "done /slow") {
			t.Fatalf("the request in flight answered %q, %v", got.out, got.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight got no answer after stop")
	}
}

// drainer is a handler whose requests wait until it is told to drain.
type drainer struct{ release chan struct{} }

func (d drainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	<-d.release
	io.WriteString(w, "drained")
}

func (d drainer) Drain() { close(d.release) }

// TestFastCGIStopDrains: stopping tells a handler with a Drain method to
// drain, so a request waiting in it (a stream, a long-poll) answers at
// once rather than holding the stop.
func TestFastCGIStopDrains(t *testing.T) {
	h := drainer{release: make(chan struct{})}
	sv := &server{h: h, conns: map[*fcgiConn]bool{}}
	env := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/x", "PATH_INFO": "/stream", "CONTENT_LENGTH": "0"}
	srv, client := net.Pipe()
	defer client.Close()
	go sv.serveConn(srv)
	answer := make(chan string, 1)
	go func() {
		out, _ := fcgiExchange(client, 1, env, nil, false)
		answer <- out
	}()
	waitFor(t, "the request in flight", func() bool { all, idle := sv.counts(); return all == 1 && idle == 0 })
	sv.stop()
	select {
	case out := <-answer:
		if !strings.HasSuffix(out, "drained") {
			t.Fatalf("answer %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not drain the handler")
	}
}

func TestFixRequestID(t *testing.T) {
	for _, c := range []struct{ header, unique, want string }{
		{"", "", ""},
		{"client-1", "", "client-1"},
		{"client-1", "Z2xvYmFsLWlk@A-AAAAE", "Z2xvYmFsLWlk@A-AAAAE"},
		{"", "Z2xvYmFsLWlk@A-AAAAE", "Z2xvYmFsLWlk@A-AAAAE"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("X-Request-Id", c.header)
		}
		fixRequestID(r, func(k string) string { return map[string]string{"UNIQUE_ID": c.unique}[k] })
		if got := r.Header.Get("X-Request-Id"); got != c.want {
			t.Errorf("header %q UNIQUE_ID %q: %q, want %q", c.header, c.unique, got, c.want)
		}
	}
}

func TestFixAuth(t *testing.T) {
	for _, c := range []struct {
		header string
		env    map[string]string
		want   string
	}{
		{"Bearer a", map[string]string{"REDIRECT_HTTP_AUTHORIZATION": "Bearer b"}, "Bearer a"},
		{"", map[string]string{"REDIRECT_HTTP_AUTHORIZATION": "Bearer b"}, "Bearer b"},
		{"", map[string]string{"HTTP_AUTHORIZATION": "Basic c"}, "Basic c"},
		{"", nil, ""},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		fixAuth(r, func(k string) string { return c.env[k] })
		if got := r.Header.Get("Authorization"); got != c.want {
			t.Errorf("header %q env %v: %q, want %q", c.header, c.env, got, c.want)
		}
	}
}

// TestFastCGIAbort: a handler that cuts its answer (panics with
// http.ErrAbortHandler, as api does when a read fails after its status was
// sent) or panics otherwise ends its own connection, without an
// end-of-request record, so that the web server sees the answer
// incomplete; the process lives on and serves the next connection.
// Unrecovered, the panic ended the process and everything in flight in it.
func TestFastCGIAbort(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cut":
			io.WriteString(w, "[{\"seq\":1}")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/boom":
			panic("boom")
		}
		io.WriteString(w, "fine")
	})
	env := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/x", "CONTENT_LENGTH": "0"}
	for _, path := range []string{"/cut", "/boom"} {
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			serveConn(&fcgiConn{r: bufio.NewReader(server), w: bufio.NewWriter(server), c: server}, h, nil)
			close(done)
		}()
		env["PATH_INFO"] = path
		out, err := fcgiExchange(client, 1, env, nil, true)
		if err == nil {
			t.Errorf("%s: the request ended as if whole: %q", path, out)
		}
		<-done // the connection is closed, not kept for another request
		client.Close()
	}
	server, client := net.Pipe()
	go serveConn(&fcgiConn{r: bufio.NewReader(server), w: bufio.NewWriter(server), c: server}, h, nil)
	env["PATH_INFO"] = "/ok"
	if out := fcgiRequest(t, client, 1, env, nil, false); !strings.HasSuffix(out, "fine") {
		t.Fatalf("after the cuts: %q", out)
	}
	client.Close()
}
