package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// GET /stream as a WebSocket (standalone only), with a real client over
// real HTTP: one text message per event (its JSON as GET /events serves
// it), the stored ones first and then the live ones, the filters and start
// points of the SSE stream, and at the end {"end":{…}} and a normal close.

type wsMsg struct {
	event
	End *struct {
		Reason string `json:"reason"`
		After  uint64 `json:"after"`
		From   string `json:"from"`
	} `json:"end"`
}

func wsDial(t *testing.T, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("dial %s: %d %v", url, st, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsRead(t *testing.T, c *websocket.Conn) wsMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("a %v message, want text", typ)
	}
	var m wsMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message %q: %v", b, err)
	}
	return m
}

func TestWebSocketStream(t *testing.T) {
	s := startServer(t, "")
	ws := "ws" + strings.TrimPrefix(s.url, "http")
	a1 := mustAppend(t, s.url, `{"type":"ws.a","entity":"e1","data":1}`)
	mustAppend(t, s.url, `{"type":"ws.b","entity":"e2","data":2}`)
	a2 := mustAppend(t, s.url, `{"type":"ws.a","entity":"e3","data":3}`)

	// Filtered, from the start: the stored ones, then a live one.
	c := wsDial(t, ws+"/stream?after=0&type=ws.a", nil)
	for _, want := range []receipt{a1, a2} {
		if m := wsRead(t, c); m.ID != want.ID || m.Type != "ws.a" || m.End != nil {
			t.Fatalf("got %+v, want event %s", m, want.ID)
		}
	}
	mustAppend(t, s.url, `{"type":"ws.b","entity":"e4","data":4}`)
	a3 := mustAppend(t, s.url, `{"type":"ws.a","entity":"e5","data":5}`)
	if m := wsRead(t, c); m.ID != a3.ID || m.Seq != 5 || string(m.Data) != "5" {
		t.Fatalf("live: got %+v, want seq 5 %s", m, a3.ID)
	}

	// from=<id> and Last-Event-ID (which wins) start after that event.
	c2 := wsDial(t, ws+"/stream?from="+a1.ID, nil)
	if m := wsRead(t, c2); m.Seq != 2 {
		t.Fatalf("from=<seq 1>: first message seq %d, want 2", m.Seq)
	}
	c3 := wsDial(t, ws+"/stream?from="+a1.ID, http.Header{"Last-Event-ID": {a2.ID}})
	if m := wsRead(t, c3); m.Seq != 4 {
		t.Fatalf("Last-Event-ID <seq 3>: first message seq %d, want 4", m.Seq)
	}

	// A server told to stop ends each stream with where to resume, then a
	// normal close whose reason is the end's.
	go s.stop(syscall.SIGTERM, 30*time.Second)
	m := wsRead(t, c)
	if m.End == nil || m.End.Reason != "shutdown" || m.End.After != 5 || m.End.From != a3.ID || m.ID != "" {
		t.Fatalf("at shutdown: %+v, want the end (shutdown, after 5, from %s)", m, a3.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "shutdown" {
		t.Fatalf("after the end: %v, want a normal close (1000, shutdown)", err)
	}
}

// upgradeHeaders are a WebSocket handshake's.
var upgradeHeaders = []string{"Connection", "Upgrade", "Upgrade", "websocket",
	"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}

func TestWebSocketRefusals(t *testing.T) {
	s := startServer(t, "", "--cors-origins", "http://app.example")
	mustAppend(t, s.url, `{"type":"ws.a","entity":"e1","data":1}`)

	// A wrong handshake, a parameter and a foreign page: JSON errors
	// before anything is upgraded.
	h := append([]string{}, upgradeHeaders...)
	h[5] = "8"
	do(t, "GET", s.url+"/stream", nil, h...).wantError(t, 400, "invalid_parameter")
	do(t, "GET", s.url+"/stream?after=x", nil, upgradeHeaders...).wantError(t, 400, "invalid_parameter")
	// A handshake whose Connection and Upgrade a gateway dropped is told
	// so, not sent an event stream.
	do(t, "GET", s.url+"/stream", nil, upgradeHeaders[4:]...).wantError(t, 400, "invalid_parameter")
	do(t, "GET", s.url+"/stream", nil, append([]string{"Origin", "http://evil.example"}, upgradeHeaders...)...).wantError(t, 403, "cors_denied")
	// An allowed origin, and the server's own, may.
	ws := "ws" + strings.TrimPrefix(s.url, "http")
	for _, origin := range []string{"http://app.example", s.url} {
		c := wsDial(t, ws+"/stream?after=0", http.Header{"Origin": {origin}})
		if m := wsRead(t, c); m.Seq != 1 {
			t.Fatalf("origin %s: got %+v", origin, m)
		}
	}

	// A client that sends data breaks the rule: the server closes (1008).
	c := wsDial(t, ws+"/stream?after=1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after the client's data: %v, want a close 1008", err)
	}

	// CGI cannot hand the connection over: 501, and the same URL without
	// the upgrade is the SSE stream.
	cgi := cgiServer(t, s.data)
	r := do(t, "GET", cgi.URL+"/api/stream?after=0", nil, upgradeHeaders...)
	r.wantError(t, 501, "needs_server")
	// …also when a gateway (mod_fcgid) passed the key but not the
	// hop-by-hop Connection and Upgrade.
	do(t, "GET", cgi.URL+"/api/stream?after=0", nil, upgradeHeaders[4:]...).wantError(t, 501, "needs_server")
}

// TestWebSocketHeartbeat: heartbeats are pings, answered by the client's
// library while it reads; the stream goes on through them.
func TestWebSocketHeartbeat(t *testing.T) {
	s := startServer(t, "", "--stream-heartbeat", "50ms")
	ws := "ws" + strings.TrimPrefix(s.url, "http")
	c := wsDial(t, ws+"/stream?after=0", nil)
	got := make(chan wsMsg, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, b, err := c.Read(ctx) // answers the pings meanwhile
		var m wsMsg
		if err == nil {
			json.Unmarshal(b, &m)
		}
		got <- m
	}()
	time.Sleep(500 * time.Millisecond) // some ten heartbeats
	a := mustAppend(t, s.url, `{"type":"ws.a","entity":"e1","data":1}`)
	if m := <-got; m.ID != a.ID {
		t.Fatalf("after heartbeats: got %+v, want the event %s", m, a.ID)
	}
}
