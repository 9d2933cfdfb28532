package api

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReopenAfterFailure: a tenant whose log failed a write is replaced by
// a freshly opened one on the first request over a second later, and
// requests still holding the old tenant (withTenant looked it up before)
// finish on it: a read answers what the log holds, not an empty page, and
// an append succeeds or is retryable, never a 500.
func TestReopenAfterFailure(t *testing.T) {
	h := newHandler(t, Config{})
	for range 3 {
		if w := serve(h, "PUT", "/events", strings.NewReader(`{"type":"a.b","entity":"x","data":1}`)); w.Code != 201 {
			t.Fatalf("append: %d %s", w.Code, w.Body)
		}
	}
	old, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	h.failed(old)
	first := old.failedAt
	h.failed(old)
	if old.failedAt != first {
		t.Errorf("a second failure moved failedAt from %v to %v: the second must run from the first", first, old.failedAt)
	}
	if same, _, _ := h.tenant(DefaultTenant); same != old {
		t.Fatal("the tenant was reopened less than a second after its failure")
	}
	old.failedAt = time.Now().Add(-2 * time.Second)
	fresh, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || !fresh.failedAt.IsZero() {
		t.Fatalf("a tenant failed 2 s ago was not replaced by a fresh one")
	}
	if again, _, _ := h.tenant(DefaultTenant); again != fresh {
		t.Fatal("the fresh tenant was replaced again")
	}

	w := httptest.NewRecorder()
	h.read(w, httptest.NewRequest("GET", "/events", nil), &call{t: old})
	if w.Code != 200 || strings.Count(w.Body.String(), `"seq"`) != 3 {
		t.Errorf("GET /events in flight across a reopen: %d %q (Strata-Head-Seq %s), want the 3 events",
			w.Code, strings.TrimSpace(w.Body.String()), w.Header().Get("Strata-Head-Seq"))
	}
	w = httptest.NewRecorder()
	h.append(w, httptest.NewRequest("PUT", "/events", strings.NewReader(`{"type":"a.b","entity":"x","data":2}`)), &call{t: old})
	if w.Code != 201 && (w.Code != 503 || w.Header().Get("Retry-After") == "") {
		t.Errorf("PUT /events in flight across a reopen: %d %s, want 201, or 503 with Retry-After", w.Code, strings.TrimSpace(w.Body.String()))
	}
	stored := 3
	if w.Code == 201 {
		stored++
	}

	// The fresh tenant sees everything and appends after it.
	w = serve(h, "PUT", "/events", strings.NewReader(`{"type":"a.b","entity":"x","data":3}`))
	if w.Code != 201 || !strings.Contains(w.Body.String(), `"version":`+string(rune('0'+stored+1))) {
		t.Errorf("append on the fresh tenant: %d %s, want version %d", w.Code, w.Body, stored+1)
	}
}
