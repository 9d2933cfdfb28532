package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"strata/log"
)

// waitRead runs a long-poll GET in the background and returns its answer
// and how long it took.
func waitRead(h *Handler, ctx context.Context, target string) <-chan struct {
	w *httptest.ResponseRecorder
	d time.Duration
} {
	ch := make(chan struct {
		w *httptest.ResponseRecorder
		d time.Duration
	}, 1)
	go func() {
		r := httptest.NewRequest("GET", target, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, r)
		ch <- struct {
			w *httptest.ResponseRecorder
			d time.Duration
		}{w, time.Since(start)}
	}()
	return ch
}

// otherHandle opens the default tenant's log a second time, as another
// process (CGI, the CLI) would: its appends reach h only through the
// shared head. Closed when the test ends.
func otherHandle(t testing.TB, h *Handler) *log.Log {
	t.Helper()
	tn, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	dir := tn.dir
	h.release(tn)
	other, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

func appendOne(t *testing.T, h *Handler, typ, entity string) {
	t.Helper()
	if w := serve(h, "POST", "/events", strings.NewReader(`{"type":"`+typ+`","entity":"`+entity+`","data":1}`)); w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
}

// TestLongPoll: GET /events?wait= answers at once when the page has
// events, waits for a matching append from this process or another Log
// handle on the same directory (as a CGI process's), ignores appends its
// filter does not match, answers the empty page at the timeout, and stops
// when the client goes away.
func TestLongPoll(t *testing.T) {
	h := newHandler(t, Config{})
	appendOne(t, h, "a.b", "x")

	// A non-empty page answers at once.
	res := <-waitRead(h, context.Background(), "/events?wait=5")
	if res.w.Code != 200 || res.d > time.Second || strings.Count(res.w.Body.String(), `"seq"`) != 1 {
		t.Fatalf("non-empty page with wait: %d after %v: %s", res.w.Code, res.d, res.w.Body)
	}

	// Woken by an append in this process.
	ch := waitRead(h, context.Background(), "/events?after=1&wait=5")
	time.Sleep(200 * time.Millisecond)
	appendOne(t, h, "a.b", "x")
	res = <-ch
	if res.w.Code != 200 || res.d > 2*time.Second || !strings.Contains(res.w.Body.String(), `"seq":2`) {
		t.Fatalf("in-process wake: %d after %v: %s", res.w.Code, res.d, res.w.Body)
	}

	// Woken by another Log handle's append; a filter that does not match
	// keeps waiting.
	other := otherHandle(t, h)
	ch = waitRead(h, context.Background(), "/events?after=2&type=want.*&wait=5")
	time.Sleep(200 * time.Millisecond)
	appendOne(t, h, "other.kind", "x")
	if _, err := other.Append(&log.Request{Events: []log.Proposed{{Type: "other.kind", Entity: "y", Data: []byte("1"), ExpectedVersion: -1}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		t.Fatalf("a wait answered on events its filter does not match: %d %s", res.w.Code, res.w.Body)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := other.Append(&log.Request{Events: []log.Proposed{{Type: "want.it", Entity: "y", Data: []byte("2"), ExpectedVersion: -1}}}); err != nil {
		t.Fatal(err)
	}
	res = <-ch
	if res.w.Code != 200 || !strings.Contains(res.w.Body.String(), `"type":"want.it"`) || strings.Contains(res.w.Body.String(), "other.kind") {
		t.Fatalf("cross-handle wake: %d after %v: %s", res.w.Code, res.d, res.w.Body)
	}

	// The timeout answers the empty page, with the cursor headers a
	// client loops on.
	res = <-waitRead(h, context.Background(), "/events?after=5&wait=1")
	if res.w.Code != 200 || res.d < time.Second || strings.TrimSpace(res.w.Body.String()) != "[]" {
		t.Fatalf("timeout: %d after %v: %q", res.w.Code, res.d, res.w.Body)
	}
	if res.w.Header().Get("Strata-Head-Seq") != "5" {
		t.Errorf("timeout answer's Strata-Head-Seq = %q, want 5", res.w.Header().Get("Strata-Head-Seq"))
	}

	// A client that goes away ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	ch = waitRead(h, ctx, "/events?after=5&wait=30")
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case res := <-ch:
		if res.d > 2*time.Second {
			t.Errorf("a cancelled wait took %v", res.d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a cancelled wait went on waiting")
	}
}

// TestLongPollBadWait: a wait out of range is a 400 naming the parameter.
func TestLongPollBadWait(t *testing.T) {
	h := newHandler(t, Config{})
	for _, v := range []string{"0", "-1", "x", "61", "1.5"} {
		w := serve(h, "GET", "/events?wait="+v, nil)
		if w.Code != 400 {
			t.Errorf("wait=%s: %d %s", v, w.Code, w.Body)
			continue
		}
		if b := errorBody(t, w); b["code"] != "invalid_parameter" || b["parameter"] != "wait" {
			t.Errorf("wait=%s: %v", v, b)
		}
	}
}
