package cgi

import (
	"bufio"
	"bytes"
	"encoding/binary"
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
		t.Fatal(err)
	}
	var out bytes.Buffer
	for {
		hd, err := c.readHeader()
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		b, _ := c.content(hd)
		if hd.id != id {
			t.Fatalf("record for request %d, want %d", hd.id, id)
		}
		switch hd.typ {
		case typeStdout:
			out.Write(b)
		case typeEndRequest:
			if status := binary.BigEndian.Uint32(b); status != 0 || b[4] != 0 {
				t.Fatalf("end request: app status %d, protocol status %d", status, b[4])
			}
			return out.String()
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
	answer := make(chan string)
	go func() { answer <- fcgiRequest(t, busyClient, 1, env, nil, true) }()
	for all, idle := sv.counts(); all != 1 || idle != 0; all, idle = sv.counts() {
		time.Sleep(time.Millisecond)
	}
	// An idle connection: closed at once by stop.
	idleServer, idleClient := net.Pipe()
	closed := make(chan struct{})
	go func() { sv.serveConn(idleServer); close(closed) }()
	for _, idle := sv.counts(); idle != 1; _, idle = sv.counts() {
		time.Sleep(time.Millisecond)
	}
	sv.stop()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle connection stayed open after stop")
	}
	close(release)
	if got := <-answer; !strings.HasSuffix(got, "done /slow") {
		t.Fatalf("the request in flight answered %q", got)
	}
	idleClient.Close()
	busyClient.Close()
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
