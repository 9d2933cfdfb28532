package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// consumerView is GET /consumers/<name>, the members the tests look at.
type consumerView struct {
	Name     string `json:"name"`
	Position struct {
		Seq uint64 `json:"seq"`
		ID  string `json:"id"`
	} `json:"position"`
	CommittedAt *string `json:"committed_at"`
	Reader      *string `json:"reader"`
}

func getConsumer(t *testing.T, base, name string) consumerView {
	t.Helper()
	var v consumerView
	if err := json.Unmarshal(do(t, "GET", base+"/consumers/"+name, nil).want(t, 200).body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestConsumerSurvivesKill9: a committed position is durable before its
// answer: the server killed with SIGKILL right after, the next one (and a
// CGI process) finds it; the killed reader's lease still refuses another
// reader until it ends, then lets it in.
func TestConsumerSurvivesKill9(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	for i := 0; i < 5; i++ {
		mustAppend(t, s.url, fmt.Sprintf(`{"type":"order.placed","entity":"orders/%d","data":%d}`, i, i))
	}
	do(t, "PUT", s.url+"/consumers/billing", `{"filter":{"types":["order.*"]}}`).want(t, 201)
	page := do(t, "GET", s.url+"/consumers/billing/events?reader=w1&lease=2&limit=3", nil).want(t, 200)
	var evs []event
	if err := json.Unmarshal(page.body, &evs); err != nil || len(evs) != 3 {
		t.Fatalf("page: %v %s", err, page.body)
	}
	do(t, "PUT", s.url+"/consumers/billing/position?reader=w1&lease=2", `{"id":"`+evs[2].ID+`"}`).want(t, 200)
	s.kill()

	s = startServer(t, data)
	cgi := cgiServer(t, data)
	for _, base := range []string{s.url, cgi.URL + "/api"} {
		if v := getConsumer(t, base, "billing"); v.Position.Seq != evs[2].Seq || v.Position.ID != evs[2].ID || v.CommittedAt == nil {
			t.Fatalf("%s: after kill -9 the position is %+v, want seq %d", base, v, evs[2].Seq)
		}
	}
	// The dead reader's lease holds until it ends, then another reader
	// takes over from the committed position.
	r := do(t, "GET", s.url+"/consumers/billing/events?reader=w2", nil)
	if r.status == 409 {
		time.Sleep(2100 * time.Millisecond)
		r = do(t, "GET", s.url+"/consumers/billing/events?reader=w2", nil)
	}
	r.want(t, 200)
	if err := json.Unmarshal(r.body, &evs); err != nil || len(evs) != 2 || evs[0].Seq != 4 {
		t.Fatalf("w2's page: %v %s", err, r.body)
	}
}

// TestConsumerTwoReaders: two readers of one consumer, one a standalone
// server's client and the other a CGI process's: the second gets 409 with
// the lease's end, in both directions, and a commit by it is refused too,
// until the first gives the lease up.
func TestConsumerTwoReaders(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	cgi := cgiServer(t, data)
	capi := cgi.URL + "/api"
	mustAppend(t, s.url, `{"type":"a","entity":"x","data":1}`)
	do(t, "PUT", capi+"/consumers/c", `{}`).want(t, 201)
	do(t, "GET", s.url+"/consumers/c/events?reader=one", nil).want(t, 200)
	e := do(t, "GET", capi+"/consumers/c/events?reader=two", nil).wantError(t, 409, "lease_held")
	if e["reader"] != "one" || e["lease_until"] == nil {
		t.Fatalf("409 without the holder and its end: %v", e)
	}
	do(t, "PUT", capi+"/consumers/c/position?reader=two", `{"seq":1}`).wantError(t, 409, "lease_held")
	do(t, "PUT", capi+"/consumers/c/position?reader=one", `{"seq":1}`).want(t, 200)
	do(t, "GET", s.url+"/consumers/c/events?reader=two", nil).wantError(t, 409, "lease_held")
	// The holder gives it up (in another process): the other reads at once.
	do(t, "DELETE", capi+"/consumers/c/lease?reader=one", nil).want(t, 200)
	do(t, "GET", s.url+"/consumers/c/events?reader=two", nil).want(t, 200)
}

// TestConsumerWaitAcrossProcesses: a CGI writer waiting with
// Strata-Wait-Consumer is released by an ack sent to a standalone server
// (another process), and answered 202 naming the consumer at its timeout
// when nobody acks; a commit past the events releases it too.
func TestConsumerWaitAcrossProcesses(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	cgi := cgiServer(t, data)
	capi := cgi.URL + "/api"
	do(t, "PUT", s.url+"/consumers/mailer", `{"filter":{"types":["mail.*"]}}`).want(t, 201)

	// Nobody acks: 202 at the timeout, naming the consumer, the event stored.
	start := time.Now()
	r := do(t, "POST", capi+"/events", `{"type":"mail.send","entity":"m/1","data":1}`, "Strata-Wait-Consumer", "mailer; timeout=300").want(t, 202)
	if got := r.header.Get("Strata-Consumers-Pending"); got != "mailer" || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("timeout: pending %q after %v", got, time.Since(start))
	}
	if rc := decode[receipt](t, r.body); rc.Entity != "m/1" {
		t.Fatalf("202 without the receipt: %s", r.body)
	}

	// Released by an ack to the standalone server.
	type answer struct {
		r   *response
		err error
		d   time.Duration
	}
	ch := make(chan answer, 1)
	go func() {
		start := time.Now()
		r, err := try("POST", capi+"/events", `{"type":"mail.send","entity":"m/2","data":2}`, "Strata-Wait-Consumer", "mailer; timeout=20000")
		ch <- answer{r, err, time.Since(start)}
	}()
	var ev event
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		evs := readAll(t, s.url)
		if last := evs[len(evs)-1]; last.Entity == "m/2" {
			ev = last
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting CGI append did not store its event")
		}
	}
	acked := time.Now()
	do(t, "POST", s.url+"/events/"+ev.ID+"/ack?consumer=mailer", nil).want(t, 200)
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	a.r.want(t, 201)
	if a.r.header.Get("Strata-Consumers-Pending") != "" || time.Since(acked) > 5*time.Second {
		t.Fatalf("released %v after the ack, pending %q", time.Since(acked), a.r.header.Get("Strata-Consumers-Pending"))
	}
	// Already committed past: answered at once.
	do(t, "PUT", s.url+"/consumers/mailer/position", `{"seq":`+fmt.Sprint(ev.Seq)+`}`).want(t, 200)
	// An unknown consumer: 400, nothing stored.
	before := mustHead(t, s.url)
	do(t, "POST", capi+"/events", `{"type":"mail.send","entity":"m/3","data":3}`, "Strata-Wait-Consumer", "nobody").wantError(t, 400, "unknown_consumer")
	if after := mustHead(t, s.url); after.Seq != before.Seq {
		t.Fatalf("an append naming an unknown consumer stored something: %d → %d", before.Seq, after.Seq)
	}
	if !strings.Contains(string(do(t, "GET", capi+"/consumers", nil).want(t, 200).body), `"name":"mailer"`) {
		t.Fatal("GET /consumers under CGI does not list mailer")
	}
}

// TestConsumerStream: GET /consumers/<name>/stream sends the filter's
// events after the committed position, stored then live, standalone and
// through CGI (which ends at its timeout with the resume point); a second
// reader is refused 409 before any stream starts; Last-Event-ID ahead of
// the position resumes there, and one before it starts at the position.
func TestConsumerStream(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	cgi := cgiServer(t, data, "STRATA_STREAM_TIMEOUT=1s")
	capi := cgi.URL + "/api"
	rs := mustAppendBatch(t, s.url, `[{"type":"order.placed","entity":"orders/1"},{"type":"user.seen","entity":"users/1"},{"type":"order.paid","entity":"orders/1"},{"type":"order.placed","entity":"orders/2"}]`)
	do(t, "PUT", s.url+"/consumers/billing", `{"filter":{"types":["order.*"],"entity":"orders/*"}}`).want(t, 201)
	do(t, "PUT", s.url+"/consumers/billing/position?reader=r1", `{"seq":1}`).want(t, 200)

	// CGI: the stored events after the position, then the end at its timeout.
	es := &eventSource{url: capi + "/consumers/billing/stream?reader=r1"}
	var got []sseMessage
	if why := es.connect(t, func(m sseMessage) bool { got = append(got, m); return true }); why != "end" || len(got) != 3 {
		t.Fatalf("CGI stream: %s after %+v", why, got)
	}
	if got[0].id != rs[2].ID || got[1].id != rs[3].ID || !strings.Contains(got[2].data, `"reason":"timeout"`) {
		t.Fatalf("CGI stream: %+v", got)
	}
	// Another reader: 409 before the stream starts.
	do(t, "GET", s.url+"/consumers/billing/stream?reader=r2", nil, "Accept", "text/event-stream").wantError(t, 409, "lease_held")

	// Standalone: from Last-Event-ID (ahead of the position), then live.
	es = &eventSource{url: s.url + "/consumers/billing/stream?reader=r1", lastID: rs[2].ID}
	ch := make(chan sseMessage, 10)
	go func() {
		es.connect(t, func(m sseMessage) bool { ch <- m; return m.event != "end" && m.id != "" && len(ch) < 2 })
	}()
	next := func() sseMessage {
		select {
		case m := <-ch:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message within 10 s")
		}
		return sseMessage{}
	}
	if m := next(); m.id != rs[3].ID {
		t.Fatalf("first message from Last-Event-ID: %+v", m)
	}
	mustAppend(t, s.url, `{"type":"user.seen","entity":"users/2"}`) // not the filter's
	live := mustAppend(t, s.url, `{"type":"order.paid","entity":"orders/2"}`)
	if m := next(); m.id != live.ID {
		t.Fatalf("live message: %+v, want %s", m, live.ID)
	}

	// Last-Event-ID before the committed position: from the position.
	do(t, "PUT", s.url+"/consumers/billing/position?reader=r1", `{"id":"`+rs[3].ID+`"}`).want(t, 200)
	es = &eventSource{url: capi + "/consumers/billing/stream?reader=r1", lastID: rs[0].ID}
	got = nil
	es.connect(t, func(m sseMessage) bool { got = append(got, m); return true })
	if len(got) != 2 || got[0].id != live.ID {
		t.Fatalf("from before the position: %+v", got)
	}
}
