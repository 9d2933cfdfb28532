package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// batch is n NDJSON events of about size bytes each, on n entities.
func batch(n, size int) []byte {
	var b bytes.Buffer
	pad := strings.Repeat("x", max(size-60, 1))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"type":"t","entity":"e%05d","data":{"p":"%s"}}`+"\n", i, pad)
	}
	return b.Bytes()
}

func postNDJSON(h http.Handler, body []byte) (code int, answer []byte, retry string) {
	w := serve(h, "POST", "/events", bytes.NewReader(body), "Content-Type", "application/x-ndjson")
	return w.Code, w.Body.Bytes(), w.Header().Get("Retry-After")
}

// TestTooManyEvents: a request over MaxEvents is refused whole with 413
// too_many_events; one at the limit is stored.
func TestTooManyEvents(t *testing.T) {
	h := newHandler(t, Config{MaxEvents: 50})
	w := serve(h, "POST", "/events", bytes.NewReader(batch(51, 40)), "Content-Type", "application/x-ndjson")
	if w.Code != http.StatusRequestEntityTooLarge || errorBody(t, w)["code"] != "too_many_events" {
		t.Fatalf("51 events with MaxEvents 50: %d %s", w.Code, w.Body)
	}
	if code, answer, _ := postNDJSON(h, batch(50, 40)); code != http.StatusCreated {
		t.Fatalf("50 events: %d %s", code, answer)
	}
	var head struct{ Seq int }
	json.Unmarshal(serve(h, "GET", "/head", nil).Body.Bytes(), &head)
	if head.Seq != 50 {
		t.Fatalf("head seq %d, want 50: the refused request stored something", head.Seq)
	}
}

// TestOverloaded: while requests in flight hold the in-flight budget, a
// request that would pass it is answered 503 with Retry-After and stores
// nothing; once they let go it is stored. A request alone passes even a
// budget smaller than itself.
func TestOverloaded(t *testing.T) {
	body := batch(100, 200)
	h := newHandler(t, Config{MaxInflight: int64(len(body))}) // less than the 3× a request is charged
	if code, answer, _ := postNDJSON(h, body); code != http.StatusCreated {
		t.Fatalf("a request alone, over the budget: %d %s", code, answer)
	}
	other := &hold{b: h.inflight} // another request in flight
	if other.take(1) != nil {
		t.Fatal("an empty budget refused")
	}
	w := serve(h, "POST", "/events", bytes.NewReader(body), "Content-Type", "application/x-ndjson")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || errorBody(t, w)["code"] != "overloaded" {
		t.Fatalf("over the budget: %d, Retry-After %q, %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	// Chunked (no length): refused as it is read.
	w = serve(h, "POST", "/events", struct{ *bytes.Reader }{bytes.NewReader(body)}, "Content-Type", "application/x-ndjson", "Transfer-Encoding", "chunked")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("chunked, over the budget: %d %s", w.Code, w.Body)
	}
	other.release()
	if h.inflight.used != 0 {
		t.Fatalf("%d bytes of the budget still held after every request ended", h.inflight.used)
	}
	if code, answer, _ := postNDJSON(h, body); code != http.StatusCreated {
		t.Fatalf("after the others let go: %d %s", code, answer)
	}
	var head struct{ Seq int }
	json.Unmarshal(serve(h, "GET", "/head", nil).Body.Bytes(), &head)
	if head.Seq != 200 {
		t.Fatalf("head seq %d, want 200", head.Seq)
	}
}

// TestChunkedConcurrent: bodies without a length, charged as they are
// read, cannot refuse one another for ever: the request that has held the
// budget longest always goes on, so of two chunked batches that together
// pass the budget one is stored. Both used to be refused half-way (two
// 65 MB chunked batches at once: 503 and 503, again at every retry).
func TestChunkedConcurrent(t *testing.T) {
	const mb = 1 << 20
	h := newHandler(t, Config{MaxInflight: 8 * mb, MaxBody: 16 * mb})
	first := batch(4*mb/1000, 1000) // about 4 MB: charged 12 MB as it is read
	pr, pw := io.Pipe()
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		done <- serve(h, "POST", "/events", pr, "Content-Type", "application/x-ndjson", "Transfer-Encoding", "chunked")
	}()
	cut := 3 * mb / 2
	if _, err := pw.Write(first[:cut]); err != nil {
		t.Fatal(err)
	}
	for { // until the first request holds its charge for what it read
		h.inflight.mu.Lock()
		used := h.inflight.used
		h.inflight.mu.Unlock()
		if used >= 2*bodyFactor*chargeStep {
			break
		}
		runtime.Gosched()
	}
	// A second one now passes the budget: refused.
	w := serve(h, "POST", "/events", struct{ *bytes.Reader }{bytes.NewReader(batch(4*mb/1000, 1000))},
		"Content-Type", "application/x-ndjson", "Transfer-Encoding", "chunked")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("the second chunked batch: %d %.200s", w.Code, w.Body)
	}
	// The first, the oldest in flight, goes on past the budget.
	go func() {
		pw.Write(first[cut:])
		pw.Close()
	}()
	if w := <-done; w.Code != http.StatusCreated {
		t.Fatalf("the first chunked batch, begun when the budget was free: %d %.200s", w.Code, w.Body)
	}
	if h.inflight.used != 0 || len(h.inflight.holders) != 0 {
		t.Fatalf("%d bytes, %d holders of the budget left after every request ended", h.inflight.used, len(h.inflight.holders))
	}
}

// TestReceipts: up to MaxReceipts events are answered with a receipt each;
// more with one summary naming the first and last stored event.
func TestReceipts(t *testing.T) {
	h := newHandler(t, Config{})
	code, answer, _ := postNDJSON(h, batch(MaxReceipts, 40))
	var rs []map[string]any
	if code != http.StatusCreated || json.Unmarshal(answer, &rs) != nil || len(rs) != MaxReceipts {
		t.Fatalf("%d events: %d, %.200s", MaxReceipts, code, answer)
	}
	code, answer, _ = postNDJSON(h, batch(MaxReceipts+1, 40))
	var sum struct {
		Events, Stored, Repeated int
		First, Last              struct {
			ID  string
			Seq int
		}
		Time string
	}
	if code != http.StatusCreated || json.Unmarshal(answer, &sum) != nil {
		t.Fatalf("%d events: %d %s", MaxReceipts+1, code, answer)
	}
	if sum.Events != MaxReceipts+1 || sum.Stored != MaxReceipts+1 || sum.Repeated != 0 ||
		sum.First.Seq != MaxReceipts+1 || sum.Last.Seq != 2*MaxReceipts+1 || len(sum.Last.ID) != 64 || sum.Time == "" {
		t.Fatalf("summary %s", answer)
	}
	var last struct{ ID string }
	json.Unmarshal(serve(h, "GET", fmt.Sprintf("/events/%s", sum.Last.ID), nil).Body.Bytes(), &last)
	if last.ID != sum.Last.ID {
		t.Fatalf("the summary's last id is not an event: %s", answer)
	}
	if len(answer) > 400 {
		t.Fatalf("summary of %d bytes", len(answer))
	}
}

// TestAppendLeavesNothingLive: once a large append is answered, nothing of
// it stays reachable (queues and pools used to keep the last batch's data
// alive, resident for good).
func TestAppendLeavesNothingLive(t *testing.T) {
	h := newHandler(t, Config{LongRunning: true})
	body := batch(4000, 5000) // 20 MB
	if code, answer, _ := postNDJSON(h, body); code != http.StatusCreated {
		t.Fatalf("%d %s", code, answer)
	}
	body = nil
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > 8<<20 {
		t.Fatalf("%d MB live after a 20 MB append was answered", after.HeapAlloc>>20)
	}
}
