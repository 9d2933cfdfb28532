package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"strata/log"
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
	// old is held, as by requests in flight, till the end.
	old, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	defer h.release(old)
	h.failed(old)
	first := old.failedAt
	h.failed(old)
	if old.failedAt != first {
		t.Errorf("a second failure moved failedAt from %v to %v: the second must run from the first", first, old.failedAt)
	}
	same, _, _ := h.tenant(DefaultTenant)
	h.release(same)
	if same != old {
		t.Fatal("the tenant was reopened less than a second after its failure")
	}
	old.failedAt = time.Now().Add(-2 * time.Second)
	fresh, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	h.release(fresh)
	if fresh == old || !fresh.failedAt.IsZero() {
		t.Fatalf("a tenant failed 2 s ago was not replaced by a fresh one")
	}
	again, _, _ := h.tenant(DefaultTenant)
	h.release(again)
	if again != fresh {
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

// TestTenantClosedByLastUser: a tenant the handler drops (deleted,
// reopened) stays open for the requests still using it — a long read
// keeps reading — and is closed when the last of them lets go, not
// after some time; one that nobody holds is closed at once.
func TestTenantClosedByLastUser(t *testing.T) {
	h := newHandler(t, Config{})
	for range 3 {
		if w := serve(h, "PUT", "/events", strings.NewReader(`{"type":"a.b","entity":"x","data":1}`)); w.Code != 201 {
			t.Fatalf("append: %d %s", w.Code, w.Body)
		}
	}
	closed := func(tn *tenant) bool {
		_, err := tn.log.Lookup([32]byte{1})
		return errors.Is(err, log.ErrClosed)
	}
	// Two requests in flight, say a long streaming read and a short one.
	long, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := h.tenant(DefaultTenant)
	if short != long {
		t.Fatal("two lookups gave two tenants")
	}
	h.forgetOpen(DefaultTenant) // as before a deletion
	if closed(long) {
		t.Fatal("a dropped tenant was closed while requests were using it")
	}
	h.release(short)
	w := httptest.NewRecorder()
	h.read(w, httptest.NewRequest("GET", "/events", nil), &call{t: long})
	if w.Code != 200 || strings.Count(w.Body.String(), `"seq"`) != 3 {
		t.Fatalf("a read on a dropped tenant still held: %d %s", w.Code, w.Body)
	}
	h.release(long)
	if !closed(long) {
		t.Fatal("a dropped tenant was not closed when its last user let go")
	}
	// Through ServeHTTP: each request lets go when it ends, so a tenant
	// dropped between requests is closed at once.
	if w := serve(h, "GET", "/head", nil); w.Code != 200 {
		t.Fatalf("head: %d", w.Code)
	}
	h.mu.Lock()
	idle := h.tenants[DefaultTenant]
	refs := idle.refs
	h.mu.Unlock()
	if refs != 0 {
		t.Fatalf("%d references held after the requests ended", refs)
	}
	h.forgetOpen(DefaultTenant)
	if !closed(idle) {
		t.Fatal("a dropped tenant that nobody used was not closed at once")
	}
	if w := serve(h, "GET", "/events", nil); w.Code != 200 || strings.Count(w.Body.String(), `"seq"`) != 3 {
		t.Fatalf("after the reopen: %d %s", w.Code, w.Body)
	}
}
