package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// eventSource follows a stream as a browser's EventSource does: it keeps
// the last id it saw (an end message's id included) and sends it as
// Last-Event-ID when it reconnects to the same URL.
type eventSource struct {
	url    string
	lastID string
	// deadline, if set, ends a connection still open then ("deadline"):
	// a stream that stalls fails its test rather than hanging it.
	deadline time.Time
}

// sseMessage is one message of a stream.
type sseMessage struct {
	id, event, data string
}

// connect opens the stream once and calls fn with each message until fn
// returns false (the client hangs up), the stream ends, or it breaks. It
// returns why it stopped: "hangup", "end", "deadline" or the error.
func (es *eventSource) connect(t testing.TB, fn func(sseMessage) bool) string {
	ctx, cancel := context.WithCancel(context.Background())
	if !es.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(context.Background(), es.deadline)
	}
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", es.url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if es.lastID != "" {
		req.Header.Set("Last-Event-ID", es.lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", es.url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(res.Body)
	var m sseMessage
	has := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return "deadline"
			}
			return "eof"
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !has {
				continue
			}
			if m.event == "end" {
				fn(m)
				return "end"
			}
			if !fn(m) {
				return "hangup"
			}
			m, has = sseMessage{}, false
			continue
		}
		if strings.HasPrefix(line, ":") || strings.HasPrefix(line, "retry:") {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		has = true
		switch k {
		case "id":
			m.id, es.lastID = v, v
		case "event":
			m.event = v
		case "data":
			m.data = v
		}
	}
}

// TestStreamResume: 8 writers append 10,000 events (standalone and CGI
// at once) while subscribers of a standalone server and of CGI hang up
// at random points and come back with Last-Event-ID; each gets every
// event exactly once, in chain order. CGI streams also end on their own
// (STRATA_STREAM_TIMEOUT) with an end message the client resumes from.
func TestStreamResume(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data, "STRATA_STREAM_TIMEOUT=1s")
	const writers, batches, per = 8, 25, 50 // 10,000 events
	total := uint64(writers * batches * per)

	var wg sync.WaitGroup
	began := time.Now()
	for w := range writers {
		base := s.url
		if w%4 == 3 {
			base = c.URL + "/api" // two writers are CGI processes
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var sb strings.Builder
				for i := range per {
					fmt.Fprintf(&sb, `{"type":"order.placed","entity":"w%d","data":%d}`+"\n", w, b*per+i)
				}
				if r, err := try("POST", base+"/events", sb.String(), "Content-Type", "application/x-ndjson"); err != nil || r.status != 201 {
					t.Errorf("writer %d: %v %v", w, err, r)
					return
				}
			}
		}()
	}

	follow := func(name, url string, seed uint64) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 1))
		es := &eventSource{url: url, deadline: time.Now().Add(60 * time.Second)}
		var want uint64 = 1
		var ends, hangups int
		for want <= total && time.Now().Before(es.deadline) {
			budget := rng.IntN(3000) + 1 // messages before hanging up
			why := es.connect(t, func(m sseMessage) bool {
				if m.event == "end" {
					return false
				}
				var e event
				if err := json.Unmarshal([]byte(m.data), &e); err != nil || e.ID != m.id {
					t.Errorf("%s: bad message %+v", name, m)
					return false
				}
				if e.Seq != want {
					t.Errorf("%s: seq %d, want %d (duplicate or gap)", name, e.Seq, want)
					want = total + 1
					return false
				}
				want++
				budget--
				return budget > 0 && want <= total
			})
			switch why {
			case "end":
				ends++
			case "hangup":
				hangups++
			}
		}
		if want <= total {
			failed := t.Failed() // a writer failed: that says why
			t.Errorf("%s: got through seq %d of %d", name, want-1, total)
			if name == "standalone" && !failed {
				// Why: the server's goroutines, which SIGQUIT prints.
				s.cmd.Process.Signal(syscall.SIGQUIT)
				select {
				case <-s.done:
				case <-time.After(5 * time.Second):
				}
				t.Logf("server:\n%s", s.log())
			}
			return
		}
		t.Logf("%s: %d events exactly once, in order, over %d hang-ups and %d ends (%v)", name, total, hangups, ends, time.Since(began))
	}
	wg.Add(2)
	go follow("standalone", s.url+"/stream", 1)
	go follow("cgi", c.URL+"/api/stream", 2)
	wg.Wait()
	t.Logf("all done after %v", time.Since(began))
}

// TestStreamFilterAndEnd: a filtered CGI stream ends at its timeout with
// the resume point past the events its filter skipped, as its id; a
// standalone stream ends with reason shutdown when the server is told to
// stop, and the server exits promptly.
func TestStreamFilterAndEnd(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data, "STRATA_STREAM_TIMEOUT=1s")
	mustAppendBatch(t, s.url, `[{"type":"a.b","entity":"x/1"},{"type":"c.d","entity":"x/2"},{"type":"a.b","entity":"y/1"}]`)
	do(t, "GET", s.url+"/stream?limit=1", nil).wantError(t, 400, "invalid_parameter")
	do(t, "GET", s.url+"/stream?from="+strings.Repeat("a", 64), nil).wantError(t, 404, "not_on_chain")

	es := &eventSource{url: c.URL + "/api/stream?type=a.b&entity=x/*"}
	var got []sseMessage
	if why := es.connect(t, func(m sseMessage) bool { got = append(got, m); return true }); why != "end" || len(got) != 2 {
		t.Fatalf("CGI stream: %s after %+v", why, got)
	}
	var end struct {
		Reason string `json:"reason"`
		After  uint64 `json:"after"`
		From   string `json:"from"`
	}
	json.Unmarshal([]byte(got[1].data), &end)
	h := mustHead(t, s.url)
	if end.Reason != "timeout" || end.After != 3 || end.From != h.ID || got[1].id != h.ID {
		t.Fatalf("CGI end: %+v", got[1])
	}

	done := make(chan []sseMessage, 1)
	es = &eventSource{url: s.url + "/stream?after=3"}
	go func() {
		var ms []sseMessage
		es.connect(t, func(m sseMessage) bool { ms = append(ms, m); return true })
		done <- ms
	}()
	time.Sleep(300 * time.Millisecond)
	mustAppend(t, s.url, `{"type":"a.b","entity":"x/3"}`)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if code := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM with a stream open", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the server took %v to stop with a stream open", d)
	}
	ms := <-done
	if len(ms) != 2 || ms[1].event != "end" || !strings.Contains(ms[1].data, `"reason":"shutdown","after":4`) {
		t.Fatalf("standalone stream at shutdown: %+v", ms)
	}
}
