package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// sseMsg is one message of an event stream as a client sees it.
type sseMsg struct {
	id, event, data string
}

// sseClient reads an event stream's messages (comments skipped) into a
// channel, closed when the stream ends.
func sseClient(t testing.TB, body *bufio.Reader) <-chan sseMsg {
	ch := make(chan sseMsg, 1<<16)
	go func() {
		defer close(ch)
		var m sseMsg
		var has bool
		for {
			line, err := body.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if has {
					ch <- m
				}
				m, has = sseMsg{}, false
			case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
			default:
				k, v, _ := strings.Cut(line, ": ")
				has = true
				switch k {
				case "id":
					m.id = v
				case "event":
					m.event = v
				case "data":
					m.data = v
				}
			}
		}
	}()
	return ch
}

// openStream opens target on srv as a stream and returns its messages
// and a function that hangs up.
func openStream(t testing.TB, srv *httptest.Server, target string, headers ...string) (<-chan sseMsg, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", target, res.StatusCode, res.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	return sseClient(t, bufio.NewReader(res.Body)), func() { cancel(); res.Body.Close() }
}

// next returns the next message, failing after a few seconds.
func next(t testing.TB, ch <-chan sseMsg) sseMsg {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message in 5 s")
	}
	return sseMsg{}
}

// seqOf is the seq of a streamed event.
func seqOf(t testing.TB, m sseMsg) uint64 {
	t.Helper()
	var e struct {
		ID  string `json:"id"`
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(m.data), &e); err != nil || m.event != "" || e.ID != m.id {
		t.Fatalf("not an event message (%v): %+v", err, m)
	}
	return e.Seq
}

// endOf parses an end message.
func endOf(t testing.TB, m sseMsg) (reason string, after uint64, from string) {
	t.Helper()
	var e struct {
		Reason string `json:"reason"`
		After  uint64 `json:"after"`
		From   string `json:"from"`
	}
	if m.event != "end" || json.Unmarshal([]byte(m.data), &e) != nil {
		t.Fatalf("not an end message: %+v", m)
	}
	return e.Reason, e.After, e.From
}

func appendN(t testing.TB, h *Handler, typ, entity string, n int) {
	t.Helper()
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, `{"type":%q,"entity":%q,"data":1}`+"\n", typ, entity)
	}
	if w := serve(h, "POST", "/events", strings.NewReader(b.String()), "Content-Type", "application/x-ndjson"); w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
}

// TestStreamLive: in a long-running server a stream sends the stored
// events after its start point, then live ones, filtered; Last-Event-ID
// wins over after; the server's drain ends it with the resume point; the
// hub's tail reader stops with its last subscriber.
func TestStreamLive(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the streams' own cleanups hang up
	appendN(t, h, "a.b", "x/1", 3)

	ch, _ := openStream(t, srv, "/stream?after=1")
	for _, want := range []uint64{2, 3} {
		if got := seqOf(t, next(t, ch)); got != want {
			t.Fatalf("backlog: seq %d, want %d", got, want)
		}
	}
	filtered, _ := openStream(t, srv, "/stream?type=c.*&entity=y/*")
	appendN(t, h, "a.b", "x/1", 1)
	appendN(t, h, "c.d", "y/2", 1)
	appendN(t, h, "c.d", "x/2", 1)
	for _, want := range []uint64{4, 5, 6} {
		if got := seqOf(t, next(t, ch)); got != want {
			t.Fatalf("live: seq %d, want %d", got, want)
		}
	}
	if got := seqOf(t, next(t, filtered)); got != 5 {
		t.Fatalf("filtered: seq %d, want 5", got)
	}

	// Last-Event-ID (seq 5's id) wins over after=1.
	w := serve(h, "GET", "/events?after=4&limit=1", nil)
	var evs []struct{ ID string }
	json.Unmarshal(w.Body.Bytes(), &evs)
	resumed, _ := openStream(t, srv, "/stream?after=1", "Last-Event-ID", evs[0].ID)
	if got := seqOf(t, next(t, resumed)); got != 6 {
		t.Fatalf("resumed after seq 5: seq %d, want 6", got)
	}

	// CloudEvents: events 4–6 sit in the ring without that encoding
	// (read while no stream wanted it), seq 7 is read with it.
	ce, _ := openStream(t, srv, "/stream?format=cloudevents&after=3")
	appendN(t, h, "a.b", "x/1", 1)
	for want := uint64(4); want <= 7; want++ {
		m := next(t, ce)
		var e struct {
			Spec string `json:"specversion"`
			Seq  uint64 `json:"strataseq"`
		}
		if err := json.Unmarshal([]byte(m.data), &e); err != nil || e.Spec != "1.0" || e.Seq != want || m.id == "" {
			t.Fatalf("cloudevent %d: %v %+v", want, err, m)
		}
	}
	for _, s := range []<-chan sseMsg{ch, resumed} {
		if got := seqOf(t, next(t, s)); got != 7 {
			t.Fatalf("live: seq %d, want 7", got)
		}
	}

	h.Drain()
	for _, s := range []<-chan sseMsg{ch, filtered, resumed, ce} {
		m := next(t, s)
		reason, after, from := endOf(t, m)
		// The filtered stream has sent seq 5; the shutdown may reach it
		// before it has looked at 6 and 7 (neither matches), and then
		// names where it stands: a resume from there misses nothing.
		low := uint64(7)
		if s == filtered {
			low = 5
		}
		if reason != "shutdown" || after < low || after > 7 || len(from) != 64 {
			t.Fatalf("end: %+v", m)
		}
	}
	// The filtered stream's last event is seq 5: its end names seq 6 as
	// the resume point in its id too.
	tn, _, _ := h.tenant(DefaultTenant)
	defer h.release(tn)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tn.hub.mu.Lock()
		subs, cur := tn.hub.subs, tn.hub.cur
		tn.hub.mu.Unlock()
		if subs == 0 && cur == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub still has %d subscribers after every stream ended", subs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStreamEndID: an end message carries the resume point's id when the
// last event sent is not it (the filter skipped later events), and none
// when it is.
func TestStreamEndID(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the streams' own cleanups hang up
	appendN(t, h, "a.b", "x", 2)
	appendN(t, h, "c.d", "x", 1)
	all, _ := openStream(t, srv, "/stream")
	some, _ := openStream(t, srv, "/stream?type=a.b")
	for range 3 {
		next(t, all)
	}
	last := next(t, some)
	next(t, some)
	h.Drain()
	m := next(t, all)
	if _, after, from := endOf(t, m); after != 3 || m.id != "" || from == "" {
		t.Fatalf("end after the last event sent: %+v", m)
	}
	m = next(t, some)
	if _, after, from := endOf(t, m); after != 3 || m.id != from || m.id == last.id {
		t.Fatalf("end after skipped events: %+v", m)
	}
}

// TestStreamSeam: a stream opened while 4 writers append gets every event
// exactly once, in order, across the seam from disk to live and through
// bursts larger than the hub's ring.
func TestStreamSeam(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the streams' own cleanups hang up
	appendN(t, h, "a.b", "x", 500)
	var wg sync.WaitGroup
	const writers, rounds, per = 4, 10, 50
	start := make(chan struct{})
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range rounds {
				appendN(t, h, "a.b", "x", per)
			}
		}()
	}
	ch, _ := openStream(t, srv, "/stream")
	close(start)
	wg.Wait()
	appendN(t, h, "a.b", "x", hubSlots+100) // a burst past the ring
	total := uint64(500 + writers*rounds*per + hubSlots + 100)
	for want := uint64(1); want <= total; want++ {
		if got := seqOf(t, next(t, ch)); got != want {
			t.Fatalf("seq %d, want %d", got, want)
		}
	}
}

// TestStreamCGI: under CGI a stream polls the shared head (an append by
// another process arrives), ends at its timeout with the resume point,
// and ends when a write fails (the client left).
func TestStreamCGI(t *testing.T) {
	h := newHandler(t, Config{StreamTimeout: 700 * time.Millisecond, Heartbeat: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the streams' own cleanups hang up
	appendN(t, h, "a.b", "x", 2)
	other := otherHandle(t, h)

	began := time.Now()
	ch, _ := openStream(t, srv, "/stream?after=1")
	if got := seqOf(t, next(t, ch)); got != 2 {
		t.Fatalf("backlog: seq %d", got)
	}
	if _, err := other.Append(&log.Request{Events: []log.Proposed{{Type: "a.b", Entity: "x", Data: []byte("1"), ExpectedVersion: -1}}}); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(t, next(t, ch)); got != 3 {
		t.Fatalf("another process's append: seq %d", got)
	}
	m := next(t, ch)
	if reason, after, _ := endOf(t, m); reason != "timeout" || after != 3 || m.id != "" {
		t.Fatalf("end: %+v", m)
	}
	if d := time.Since(began); d < 700*time.Millisecond || d > 3*time.Second {
		t.Fatalf("ended after %v", d)
	}
	if _, ok := <-ch; ok {
		t.Fatal("a message after the end")
	}

	// A client that left: the heartbeat's write fails and ends it.
	cw := &countWriter{ResponseWriter: httptest.NewRecorder(), fail: errors.New("broken pipe")}
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(cw, httptest.NewRequest("GET", "/stream", nil))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
		t.Fatal("a stream whose writes fail did not end")
	}
}

// TestStreamRefusals: bad parameters are JSON errors before any stream.
func TestStreamRefusals(t *testing.T) {
	h := newHandler(t, Config{})
	appendN(t, h, "a.b", "x", 1)
	for _, c := range []struct {
		target, header string
		status         int
		param          string
	}{
		{"/stream?to=" + strings.Repeat("a", 64), "", 400, "to"},
		{"/stream?until=2026-01-01T00:00:00Z", "", 400, "until"},
		{"/stream?limit=5", "", 400, "limit"},
		{"/stream?wait=5", "", 400, "wait"},
		{"/stream?format=xml", "", 400, "format"},
		{"/stream?type=a[", "", 400, "type"},
		{"/stream?after=-1", "", 400, "after"},
		{"/stream?bogus=1", "", 400, "bogus"},
		{"/stream", "zz", 400, "Last-Event-ID"},
		{"/stream?from=" + strings.Repeat("a", 64), "", 404, ""},
		{"/stream", strings.Repeat("b", 64), 404, ""},
	} {
		var hdr []string
		if c.header != "" {
			hdr = []string{"Last-Event-ID", c.header}
		}
		w := serve(h, "GET", c.target, nil, hdr...)
		if w.Code != c.status {
			t.Errorf("%s %s: %d, want %d: %s", c.target, c.header, w.Code, c.status, w.Body)
			continue
		}
		e := errorBody(t, w)
		if c.param != "" && e["parameter"] != c.param {
			t.Errorf("%s: parameter %v, want %s", c.target, e["parameter"], c.param)
		}
	}
}

// TestStreamSent: streamEvents tells Sent how far it got after each flush
// (past events the filter skipped), and a streamEnd from Sent ends the
// stream with that reason and the resume point.
func TestStreamSent(t *testing.T) {
	h := newHandler(t, Config{StreamTimeout: 5 * time.Second, Heartbeat: time.Hour})
	appendN(t, h, "a.b", "x", 3)
	appendN(t, h, "c.d", "x", 2)
	tn, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.release(tn)
	p, _, err := streamParams(httptest.NewRequest("GET", "/stream?type=a.b&after=1", nil))
	if err != nil {
		t.Fatal(err)
	}
	if p, err = streamStart(tn.log, p); err != nil {
		t.Fatal(err)
	}
	p.Match = func(typ, entity string) bool { return entity == "x" } // a consumer's own test
	var through []uint64
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/stream", nil)
	h.streamEvents(w, r, &call{t: tn}, startSSE(w, r), p, streamOpts{Sent: func(n uint64) error {
		through = append(through, n)
		return streamEnd("lease_lost")
	}})
	if len(through) != 1 || through[0] != 5 {
		t.Fatalf("Sent got %v, want [5]", through)
	}
	body := w.Body.String()
	if strings.Count(body, "\ndata: {\"id\"") != 2 || !strings.Contains(body, `event: end`) ||
		!strings.Contains(body, `"reason":"lease_lost","after":5,"from":"`) {
		t.Fatalf("stream: %s", body)
	}
}

// TestStreamReopened: a stream of a tenant the handler drops (reopened
// after a failed write or a replaced index, deleted) ends with reason
// reopened, so its client reconnects to the tenant as it is now.
func TestStreamReopened(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	appendN(t, h, "a.b", "x", 1)
	ch, _ := openStream(t, srv, "/stream")
	next(t, ch)
	h.mu.Lock()
	h.dropLocked(h.tenants[DefaultTenant])
	h.unlock()
	if reason, after, _ := endOf(t, next(t, ch)); reason != "reopened" || after != 1 {
		t.Fatalf("end: %s after %d", reason, after)
	}
	// A new stream reads the tenant opened anew.
	ch, _ = openStream(t, srv, "/stream")
	if got := seqOf(t, next(t, ch)); got != 1 {
		t.Fatalf("after reopening: seq %d", got)
	}
}

// TestStreamDamage: an event that cannot be read (a page of the segment
// reads back as zeros) ends a live stream with reason error and the
// request id, and the resume point before the damage, in a long-running
// handler (where the hub's tail reader meets the damage first) and under
// CGI.
func TestStreamDamage(t *testing.T) {
	for _, long := range []bool{true, false} {
		h := newHandler(t, Config{LongRunning: long, StreamTimeout: time.Minute})
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		appendN(t, h, "a.b", "x", 2)
		ch, _ := openStream(t, srv, "/stream")
		next(t, ch)
		next(t, ch)
		undo := fileutil.Inject(func(op fileutil.Op, path string) error {
			if op == fileutil.OpWrite && strings.HasSuffix(path, ".seg") {
				return fileutil.ErrZeroPage
			}
			return nil
		})
		appendN(t, h, "a.b", "x", 1)
		undo()
		m := next(t, ch)
		reason, after, _ := endOf(t, m)
		if reason != "error" || after != 2 || !strings.Contains(m.data, `"request_id":"`) {
			t.Fatalf("long-running %v: end %+v", long, m)
		}
	}
}

// TestStreamParked: a caught-up stream of a long-running server parks
// (no goroutine of its own) and still gets live events, heartbeats, and
// its end at its timeout; one whose client hung up is found out by a
// heartbeat and let go, its subscription with it.
func TestStreamParked(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true, Heartbeat: 100 * time.Millisecond, StreamTimeout: 1200 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	appendN(t, h, "a.b", "x", 1)
	tn, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.release(tn)
	parkedCount := func() (parked, subs int) {
		tn.hub.mu.Lock()
		defer tn.hub.mu.Unlock()
		return len(tn.hub.parked), tn.hub.subs
	}

	res, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := parkedCount(); n != 1; n, _ = parkedCount() {
		if time.Now().After(deadline) {
			t.Fatal("the caught-up stream did not park")
		}
		time.Sleep(10 * time.Millisecond)
	}
	appendN(t, h, "a.b", "x", 1)
	var seqs []string
	beats, ended := 0, false
	for !ended {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream broke off: %v (seqs %v)", err, seqs)
		}
		switch {
		case strings.HasPrefix(line, "data: {\"id\""):
			var e struct{ Seq uint64 }
			json.Unmarshal([]byte(line[6:]), &e)
			seqs = append(seqs, fmt.Sprint(e.Seq))
		case strings.HasPrefix(line, ":"):
			beats++
		case strings.HasPrefix(line, "data: {\"reason\":\"timeout\""):
			ended = true
		}
	}
	if strings.Join(seqs, ",") != "1,2" || beats == 0 {
		t.Fatalf("parked stream: seqs %v, %d heartbeats", seqs, beats)
	}
	if _, err := br.ReadString('\n'); err == nil {
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("after the end: %v", err)
		}
	}

	// A client that hangs up: the next heartbeat finds out.
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	for n, _ := parkedCount(); n != 1; n, _ = parkedCount() {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the second stream did not park")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	for n, subs := parkedCount(); n != 0 || subs != 0; n, subs = parkedCount() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("a hung-up parked stream is still held: %d parked, %d subscribers", n, subs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
