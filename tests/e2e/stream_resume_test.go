package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"math/rand/v2"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 9 §5: subscribe, write events from 8 concurrent writers, disconnect
// at random points (in the middle of a message too) and resume with
// Last-Event-ID → every event exactly once, in chain order.
//
// Standalone: 10,000 events, single-event appends to the server, one
// subscriber of the server. CGI: the writers are CGI processes (each
// append execs the binary with a CGI environment, as a web server does),
// watched by two subscribers: the standalone server on the same data
// directory (live across processes) and GET /stream as CGI processes
// themselves (the backlog, then a bounded poll, then the end and its
// resume point). 10,000 CGI execs take minutes on 2 cores: make test runs
// 400 and make soak (STRATA_SOAK=1) the full 10,000.

// sseClient reads GET /stream like an EventSource: it dispatches a message
// at its blank line only (a message cut by a disconnect is not seen), keeps
// the last id dispatched and sends it as Last-Event-ID when it reconnects.
type sseClient struct {
	t      testing.TB
	url    string // the stream's URL, with its start point for the first connection
	lastID string
	rnd    *rand.Rand
	// cuts is how many connections it broke off itself; ends how many the
	// server ended with an end message.
	cuts, ends, conns int
	got               []event
}

// run reads until it holds n events, breaking each connection off after a
// random number of bytes (up to maxCut), or fails at the deadline.
func (c *sseClient) run(n int, maxCut int, deadline time.Time, started chan<- struct{}) {
	c.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer hc.CloseIdleConnections()
	for len(c.got) < n {
		if time.Now().After(deadline) {
			c.t.Errorf("%s: %d of %d events by the deadline (%d connections, %d cut, %d ended by the server)", c.url, len(c.got), n, c.conns, c.cuts, c.ends)
			return
		}
		req, _ := http.NewRequest("GET", c.url, nil)
		req.Header.Set("Accept", "text/event-stream")
		if c.lastID != "" {
			req.Header.Set("Last-Event-ID", c.lastID)
		}
		resp, err := hc.Do(req)
		if err != nil {
			c.t.Errorf("GET %s: %v", c.url, err)
			return
		}
		c.conns++
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.t.Errorf("GET %s: %d %s: %s", c.url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			return
		}
		if started != nil {
			close(started)
			started = nil
		}
		cut := 1 + c.rnd.IntN(maxCut)
		err = c.read(io.LimitReader(resp.Body, int64(cut)), n)
		resp.Body.Close()
		if err != nil {
			c.t.Error(err)
			return
		}
	}
}

// read dispatches the messages of one connection's body.
func (c *sseClient) read(body io.Reader, n int) error {
	br := bufio.NewReaderSize(body, 64<<10)
	var id, kind string
	var data []byte
	hasID := false
	for len(c.got) < n {
		line, err := br.ReadBytes('\n')
		if err != nil {
			// Our cut, or the server closed the stream after its end: a
			// partial message is dropped, and the next connection resumes
			// after the last id dispatched.
			c.cuts++
			return nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case len(line) == 0:
			if hasID {
				c.lastID = id
			}
			switch kind {
			case "":
				if data != nil {
					var e event
					if err := json.Unmarshal(data, &e); err != nil {
						return fmt.Errorf("a message's data is not an event: %v: %.200s", err, data)
					}
					if e.ID != id {
						return fmt.Errorf("message id %q, but its event's id is %s", id, e.ID)
					}
					c.got = append(c.got, e)
				}
			case "end":
				c.ends++
				var end struct {
					Reason string
					After  uint64
					From   string
				}
				if err := json.Unmarshal(data, &end); err != nil || end.Reason == "" {
					return fmt.Errorf("an end message without a reason: %.200s", data)
				}
				if want := uint64(len(c.got)); end.After != want {
					return fmt.Errorf("end message: after %d, but %d events were received in all", end.After, want)
				}
				if end.From != c.lastID && !(end.From == "" && c.lastID == "") {
					return fmt.Errorf("end message: from %q, but the last id received is %q", end.From, c.lastID)
				}
			}
			id, kind, data, hasID = "", "", nil, false
		case line[0] == ':':
		default:
			k, v, _ := bytes.Cut(line, []byte(":"))
			v = bytes.TrimPrefix(v, []byte(" "))
			switch string(k) {
			case "id":
				id, hasID = string(v), true
			case "event":
				kind = string(v)
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(append([]byte{}, data...), v...)
			}
		}
	}
	c.cuts++
	return nil
}

// writeConcurrently appends n events from 8 writers, one event a request,
// to base, and returns once all are stored.
func writeConcurrently(t testing.TB, base string, n int) {
	t.Helper()
	const writers = 8
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += writers {
				body := fmt.Sprintf(`{"type":"live.written","entity":"writer-%d","data":{"i":%d}}`, w, i)
				r, err := try("POST", base+"/events", body, "Content-Type", "application/json")
				if err != nil || r.status != 201 {
					t.Errorf("writer %d, event %d: %v %v", w, i, err, r)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}

// checkExactlyOnce: the subscriber's events are the log's, each once, in
// chain order (seq 1…n, each prev the id before, each id its hash).
func checkExactlyOnce(t *testing.T, who string, got []event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d events, want %d", who, len(got), n)
	}
	checkChain(t, got)
}

func TestConcurrentStreamResumeStandalone(t *testing.T) {
	const n = 10000
	s := startServer(t, "")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	c := &sseClient{t: t, url: s.url + "/stream?after=0", rnd: rand.New(rand.NewPCG(seed, 1))}
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(n, 48<<10, time.Now().Add(3*time.Minute), started)
	}()
	<-started
	writeConcurrently(t, s.url, n)
	<-done
	t.Logf("%d connections: %d cut at random points, %d ended by the server", c.conns, c.cuts, c.ends)
	checkExactlyOnce(t, "the subscriber", c.got, n)
	if c.conns < 10 {
		t.Errorf("only %d connections: the disconnects were not tested", c.conns)
	}
}

func TestConcurrentStreamResumeCGI(t *testing.T) {
	n := 400
	if os.Getenv("STRATA_SOAK") == "1" {
		n = 10000
	}
	data := t.TempDir()
	// As cgiServer, but quiet: net/http/cgi logs every stream cut off.
	h := &cgi.Handler{Path: bin, Root: "/api", Logger: stdlog.New(io.Discard, "", 0),
		Env: []string{"STRATA_DATA=" + data, "STRATA_AUTH=none", "STRATA_STREAM_TIMEOUT=2s"}}
	cgiSrv := httptest.NewServer(h)
	defer cgiSrv.Close()
	s := startServer(t, data)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d events", seed, n)
	subs := []*sseClient{
		{t: t, url: s.url + "/stream?after=0", rnd: rand.New(rand.NewPCG(seed, 1))},
		{t: t, url: cgiSrv.URL + "/api/stream?after=0", rnd: rand.New(rand.NewPCG(seed, 2))},
	}
	var wg sync.WaitGroup
	for _, c := range subs {
		started := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(n, 16<<10, time.Now().Add(20*time.Minute), started)
		}()
		<-started
	}
	writeConcurrently(t, cgiSrv.URL+"/api", n)
	wg.Wait()
	for i, c := range subs {
		who := []string{"the standalone server's subscriber", "the CGI subscriber"}[i]
		t.Logf("%s: %d connections: %d cut at random points, %d ended by the server", who, c.conns, c.cuts, c.ends)
		checkExactlyOnce(t, who, c.got, n)
	}
}
