package api

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"strata/consumers"
	"strata/internal/fileutil"
	"strata/log"
)

// consumerState decodes GET /consumers/<name>.
type consumerState struct {
	Name     string
	Position struct {
		Seq uint64
		ID  string
	}
	Lag         uint64
	CommittedAt *string `json:"committed_at"`
	Reader      *string
	Version     uint64
}

func getConsumer(t *testing.T, h *Handler, name string) consumerState {
	t.Helper()
	w := serve(h, "GET", "/consumers/"+name, nil)
	if w.Code != 200 {
		t.Fatalf("GET consumer: %d %s", w.Code, w.Body)
	}
	var s consumerState
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConsumers: define (and the same again writes nothing), read pages
// through the filter under a lease, commit forward only, reset, refuse a
// second reader, list, delete.
func TestConsumers(t *testing.T) {
	h := newHandler(t, Config{})
	for i := 0; i < 3; i++ {
		appendOne(t, h, "order.placed", "orders/1")
		appendOne(t, h, "user.seen", "users/1")
	}
	def := `{"filter":{"types":["order.*"],"entity":"orders/*"},"after":0}`
	if w := serve(h, "PUT", "/consumers/billing", strings.NewReader(def)); w.Code != 201 {
		t.Fatalf("define: %d %s", w.Code, w.Body)
	}
	head := serve(h, "GET", "/head", nil).Header().Get("Strata-Head-Seq")
	if w := serve(h, "PUT", "/consumers/billing", strings.NewReader(def)); w.Code != 200 {
		t.Fatalf("define again: %d %s", w.Code, w.Body)
	}
	if again := serve(h, "GET", "/head", nil).Header().Get("Strata-Head-Seq"); again != head {
		t.Fatalf("the same definition again appended a record: head %s → %s", head, again)
	}
	for _, c := range []struct{ target, body, code string }{
		{"/consumers/Bad", def, "invalid_name"},
		{"/consumers/x", `{"filter":{"types":[""]}}`, "invalid_definition"},
		{"/consumers/x", `{"from":"` + strings.Repeat("a", 64) + `"}`, "invalid_definition"},
		{"/consumers/x", `{"bogus":1}`, "invalid_definition"},
		{"/consumers/x", `{"after":99}`, "invalid_definition"},
	} {
		w := serve(h, "PUT", c.target, strings.NewReader(c.body))
		if got := errorBody(t, w)["code"]; got != c.code {
			t.Errorf("PUT %s %s: %d %v, want %s", c.target, c.body, w.Code, got, c.code)
		}
	}

	// A page: the filter's events only, after the position.
	w := serve(h, "GET", "/consumers/billing/events?reader=a&limit=2", nil)
	if w.Code != 200 || strings.Count(w.Body.String(), `"order.placed"`) != 2 || strings.Contains(w.Body.String(), "user.seen") || w.Header().Get("Strata-Next-After") != "4" {
		t.Fatalf("page: %d %v %s", w.Code, w.Header(), w.Body)
	}
	// A second reader: 409 with the lease's end.
	w = serve(h, "GET", "/consumers/billing/events?reader=b", nil)
	if e := errorBody(t, w); w.Code != 409 || e["code"] != "lease_held" || e["reader"] != "a" || e["lease_until"] == nil || w.Header().Get("Retry-After") == "" {
		t.Fatalf("second reader: %d %v", w.Code, e)
	}
	// Commits: forward, on the chain, back only with reset.
	if w := serve(h, "PUT", "/consumers/billing/position?reader=a", strings.NewReader(`{"seq":3}`)); w.Code != 200 {
		t.Fatalf("commit: %d %s", w.Code, w.Body)
	}
	if s := getConsumer(t, h, "billing"); s.Position.Seq != 3 || s.CommittedAt == nil || s.Reader == nil || *s.Reader != "a" || s.Lag != 4 {
		t.Fatalf("after commit: %+v", s)
	}
	for _, c := range []struct{ body, code string }{
		{`{"seq":1}`, "position_behind"},
		{`{"seq":99}`, "invalid_position"},
		{`{"id":"` + strings.Repeat("b", 64) + `"}`, "invalid_position"},
		{`{}`, "invalid_position"},
	} {
		w := serve(h, "PUT", "/consumers/billing/position?reader=a", strings.NewReader(c.body))
		if got := errorBody(t, w)["code"]; got != c.code {
			t.Errorf("commit %s: %d %v, want %s", c.body, w.Code, got, c.code)
		}
	}
	if w := serve(h, "PUT", "/consumers/billing/position?reader=b", strings.NewReader(`{"seq":5}`)); w.Code != 409 {
		t.Fatalf("commit by another reader: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "PUT", "/consumers/billing/position?reader=a", strings.NewReader(`{"seq":1,"reset":true}`)); w.Code != 200 {
		t.Fatalf("reset: %d %s", w.Code, w.Body)
	}
	// Giving up the lease: only its holder may; then another reads at once.
	if w := serve(h, "DELETE", "/consumers/billing/lease?reader=b", nil); w.Code != 409 {
		t.Fatalf("release by another reader: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "DELETE", "/consumers/billing/lease?reader=a", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"reader":null`) {
		t.Fatalf("release: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/consumers/billing/events?reader=b&limit=1", nil); w.Code != 200 {
		t.Fatalf("another reader after the release: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "DELETE", "/consumers/billing/lease?reader=b", nil); w.Code != 200 {
		t.Fatalf("release: %d %s", w.Code, w.Body)
	}
	// The next page starts after the position; after= before it is refused.
	w = serve(h, "GET", "/consumers/billing/events?reader=a", nil)
	if w.Code != 200 || strings.Count(w.Body.String(), `"order.placed"`) != 2 || strings.Contains(w.Body.String(), `"seq":1,`) {
		t.Fatalf("page after the reset: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/consumers/billing/events?reader=a&after=0", nil); w.Code != 400 {
		t.Fatalf("after before the position: %d %s", w.Code, w.Body)
	}
	// A new start point in the definition moves the position there.
	if w := serve(h, "PUT", "/consumers/billing", strings.NewReader(`{"filter":{"types":["order.*"]},"after":5}`)); w.Code != 200 {
		t.Fatalf("redefine: %d %s", w.Code, w.Body)
	}
	if s := getConsumer(t, h, "billing"); s.Position.Seq != 5 || s.CommittedAt != nil {
		t.Fatalf("after a new start: %+v", s)
	}
	// A new filter alone keeps it.
	serve(h, "PUT", "/consumers/billing/position?reader=a", strings.NewReader(`{"seq":6}`))
	if w := serve(h, "PUT", "/consumers/billing", strings.NewReader(`{"filter":{"types":["order.placed"]}}`)); w.Code != 200 {
		t.Fatalf("new filter: %d %s", w.Code, w.Body)
	}
	if s := getConsumer(t, h, "billing"); s.Position.Seq != 6 {
		t.Fatalf("after a new filter: %+v", s)
	}

	// The list, and a deletion.
	if w := serve(h, "GET", "/consumers", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"billing"`) {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "DELETE", "/consumers/billing", nil); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/consumers/billing", nil); w.Code != 410 {
		t.Fatalf("deleted: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/consumers", nil); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("list after delete: %d %s", w.Code, w.Body)
	}
}

// TestWaitConsumer: an append waiting for a consumer answers 201 once the
// consumer acks (or commits past) its events, 202 naming it at the
// timeout; events outside its filter need nothing; an unknown consumer is
// refused before anything is stored.
func TestWaitConsumer(t *testing.T) {
	h := newHandler(t, Config{})
	serve(h, "PUT", "/consumers/mailer", strings.NewReader(`{"filter":{"types":["mail.*"]}}`))
	head := func() string { return serve(h, "GET", "/head", nil).Header().Get("Strata-Head-Seq") }
	before := head()
	w := serve(h, "POST", "/events", strings.NewReader(`{"type":"mail.send","entity":"m/1","data":1}`), WaitConsumerHeader, "mailer, nobody; timeout=100")
	if e := errorBody(t, w); w.Code != 400 || e["code"] != "unknown_consumer" || head() != before {
		t.Fatalf("unknown consumer: %d %v, head %s → %s", w.Code, e, before, head())
	}
	if w := serve(h, "POST", "/events", strings.NewReader(`{"type":"x","entity":"m/1","data":1}`), WaitConsumerHeader, "mailer; timeout=0"); w.Code != 400 {
		t.Fatalf("bad timeout: %d %s", w.Code, w.Body)
	}
	// Outside the filter: answered at once.
	start := time.Now()
	if w := serve(h, "POST", "/events", strings.NewReader(`{"type":"other","entity":"m/1","data":1}`), WaitConsumerHeader, "mailer; timeout=5000"); w.Code != 201 || time.Since(start) > 2*time.Second {
		t.Fatalf("outside the filter: %d after %v", w.Code, time.Since(start))
	}
	// The timeout: 202, naming the consumer, with the receipt.
	w = serve(h, "POST", "/events", strings.NewReader(`{"type":"mail.send","entity":"m/1","data":1}`), WaitConsumerHeader, "mailer; timeout=100")
	if w.Code != 202 || w.Header().Get(ConsumersPendingHeader) != "mailer" || !strings.Contains(w.Body.String(), `"seq":3`) {
		t.Fatalf("timeout: %d %v %s", w.Code, w.Header(), w.Body)
	}
	var receipt struct{ ID string }
	json.Unmarshal(w.Body.Bytes(), &receipt)
	// Released by an ack from this process.
	done := make(chan int, 1)
	go func() {
		w := serve(h, "POST", "/events", strings.NewReader(`{"type":"mail.send","entity":"m/2","data":1}`), WaitConsumerHeader, "mailer; timeout=10000")
		var rc struct{ ID string }
		json.Unmarshal(w.Body.Bytes(), &rc)
		done <- w.Code
		if w.Code == 202 {
			t.Errorf("waited out: %s", w.Body)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	w = serve(h, "GET", "/events?after=3", nil)
	var evs []struct{ ID string }
	json.Unmarshal(w.Body.Bytes(), &evs)
	if len(evs) != 1 {
		t.Fatalf("%s", w.Body)
	}
	if w := serve(h, "POST", "/events/"+evs[0].ID+"/ack?consumer=mailer", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"acked":true`) {
		t.Fatalf("ack: %d %s", w.Code, w.Body)
	}
	select {
	case code := <-done:
		if code != 201 {
			t.Fatalf("released: %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ack did not release the writer")
	}
	// The earlier event, committed past: done.
	if w := serve(h, "PUT", "/consumers/mailer/position", strings.NewReader(`{"id":"`+receipt.ID+`"}`)); w.Code != 200 {
		t.Fatalf("commit: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct{ target, code string }{
		{"/events/" + receipt.ID + "/ack", "invalid_parameter"},
		{"/events/" + receipt.ID + "/ack?consumer=nobody", "not_found"},
		{"/events/" + strings.Repeat("c", 64) + "/ack?consumer=mailer", "not_found"},
		{"/events/xyz/ack?consumer=mailer", "invalid_id"},
	} {
		if got := errorBody(t, serve(h, "POST", c.target, nil))["code"]; got != c.code {
			t.Errorf("POST %s: %v, want %s", c.target, got, c.code)
		}
	}
}

// TestConsumerCommitFault: a commit whose fsync fails answers a clean 500
// (the request id, no path; the detail in the log) and the old position
// stands.
func TestConsumerCommitFault(t *testing.T) {
	var l faultLog
	data := t.TempDir()
	h := newHandler(t, Config{DataDir: data, Logger: l.logger()})
	h.cfg.NoSync, h.cfg.Log.NoSync = false, true // positions fsynced; the log need not be
	for i := 0; i < 3; i++ {
		appendOne(t, h, "a", "e")
	}
	serve(h, "PUT", "/consumers/c", strings.NewReader(`{}`))
	if w := serve(h, "PUT", "/consumers/c/position", strings.NewReader(`{"seq":1}`)); w.Code != 200 {
		t.Fatalf("commit: %d %s", w.Code, w.Body)
	}
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync && strings.Contains(path, string(filepath.Separator)+consumers.Dir+string(filepath.Separator)) {
			return syscall.EIO
		}
		return nil
	})
	w := serve(h, "PUT", "/consumers/c/position", strings.NewReader(`{"seq":3}`))
	undo()
	checkFault(t, w, data, 500, "internal", &l, "input/output error")
	if s := getConsumer(t, h, "c"); s.Position.Seq != 1 {
		t.Fatalf("after the failed commit the position is %d, want 1", s.Position.Seq)
	}
}

// TestConsumerStreamLeaseLost: a consumer's stream renews its lease on its
// heartbeats; when another reader holds the lease at a renewal (here
// written into the position file as a reader whose process had stalled
// would find it) the stream ends with reason lease_lost and its resume
// point.
func TestConsumerStreamLeaseLost(t *testing.T) {
	h := newHandler(t, Config{StreamTimeout: 10 * time.Second, Heartbeat: 20 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	appendN(t, h, "a.b", "x", 2)
	serve(h, "PUT", "/consumers/c", strings.NewReader(`{}`))
	ch, _ := openStream(t, srv, "/consumers/c/stream?reader=r1&lease=1")
	if got := seqOf(t, next(t, ch)); got != 1 {
		t.Fatalf("first event: seq %d", got)
	}
	seqOf(t, next(t, ch))
	tn, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tn.dir, consumers.Dir, "c.json")
	h.release(tn)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	json.Unmarshal(b, &f)
	f["reader"], f["lease_until"] = "r2", log.FormatTime(time.Now().Add(time.Hour).UnixNano())
	b, _ = json.Marshal(f)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Ended within a renewal (half the lease), past the definition's
	// record, which the filter skips.
	m := next(t, ch)
	if reason, after, _ := endOf(t, m); reason != "lease_lost" || after != 3 {
		t.Fatalf("end: %+v", m)
	}
}
