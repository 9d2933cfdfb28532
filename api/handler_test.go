package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// newHandler is a handler over a fresh data directory, closed when the test
// ends.
func newHandler(t testing.TB, cfg Config) *Handler {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.NoSync = true
	cfg.NoAuth = true // tests of accounts use newAuthHandler
	h := New(cfg)
	t.Cleanup(func() { h.Close() })
	return h
}

// serve runs one request through h. headers are name, value pairs.
func serve(h http.Handler, method, target string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// errorBody checks that w is a JSON error answer and returns its members.
func errorBody(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil {
		t.Fatalf("error body is not {\"error\":{…}} JSON (%v): %q", err, w.Body)
	}
	if c, _ := e.Error["code"].(string); c == "" {
		t.Errorf("error without a code: %s", w.Body)
	}
	if m, _ := e.Error["message"].(string); m == "" {
		t.Errorf("error without a message: %s", w.Body)
	}
	if id, _ := e.Error["request_id"].(string); id == "" || id != w.Header().Get(RequestIDHeader) {
		t.Errorf("error with request_id %q, header %s %q", id, RequestIDHeader, w.Header().Get(RequestIDHeader))
	}
	return e.Error
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHandler(t, Config{})
	hash := strings.Repeat("a", 64)
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/events", "GET, HEAD, PUT, POST, OPTIONS"},
		{"PATCH", "/events", "GET, HEAD, PUT, POST, OPTIONS"},
		{"POST", "/events/" + hash, "GET, HEAD, OPTIONS"},
		{"DELETE", "/events/" + hash, "GET, HEAD, OPTIONS"},
		{"PUT", "/head", "GET, HEAD, OPTIONS"},
		{"POST", "/head", "GET, HEAD, OPTIONS"},
		{"GET", "/storage/", "PUT, POST, OPTIONS"},
		{"DELETE", "/storage", "PUT, POST, OPTIONS"},
		{"POST", "/storage/" + hash, "GET, HEAD, PUT, DELETE, OPTIONS"},
		{"POST", "/health", "GET, HEAD, OPTIONS"},
	} {
		w := serve(h, tc.method, tc.path, nil)
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405", tc.method, tc.path, w.Code)
			continue
		}
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if code := errorBody(t, w)["code"]; code != "method_not_allowed" {
			t.Errorf("%s %s: code %v", tc.method, tc.path, code)
		}
	}
}

// TestErrorsAreJSON sends requests that must fail, through the whole
// handler, and checks each answer's status, code and JSON shape.
func TestErrorsAreJSON(t *testing.T) {
	h := newHandler(t, Config{MaxBody: 1 << 10, MaxEvent: 100})
	w := serve(h, "PUT", "/events", strings.NewReader(`{"type":"a.b","entity":"x","data":1}`))
	if w.Code != 201 {
		t.Fatalf("setup append: %d %s", w.Code, w.Body)
	}
	head := w.Header().Get("Strata-Head")
	other := strings.Repeat("b", 64)
	ev := `{"type":"a.b","entity":"x","data":2}`
	for _, tc := range []struct {
		method, target, body string
		headers              []string
		status               int
		code                 string
	}{
		{"GET", "/nope", "", nil, 404, "no_route"},
		{"GET", "/events?limit=0", "", nil, 400, "invalid_parameter"},
		{"GET", "/events?bogus=1", "", nil, 400, "invalid_parameter"},
		{"GET", "/events?from=" + other, "", nil, 404, "not_on_chain"},
		{"GET", "/events?to=" + other, "", nil, 404, "not_on_chain"},
		{"GET", "/events/" + other, "", nil, 404, "not_found"},
		{"GET", "/events/xyz", "", nil, 400, "invalid_id"},
		{"GET", "/storage/" + other, "", nil, 404, "not_found"},
		{"GET", "/storage/XYZ", "", nil, 400, "invalid_hash"},
		{"DELETE", "/storage/" + other, "", nil, 404, "not_found"},
		{"PUT", "/storage/" + other, "abc", nil, 400, "hash_mismatch"},
		{"PUT", "/events", ev, []string{"Content-Type", "text/csv"}, 415, "unsupported_media_type"},
		{"PUT", "/events", "", nil, 411, "length_required"},
		{"PUT", "/storage/", "", nil, 411, "length_required"},
		{"PUT", "/events", "", []string{"Content-Length", "0"}, 400, "empty_body"},
		{"PUT", "/events", "[" + strings.Repeat(ev+",", 40) + ev + "]", nil, 413, "body_too_large"},
		{"PUT", "/events", `{"type":"a.b","entity":"x","data":"` + strings.Repeat("z", 200) + `"}`, nil, 413, "event_too_large"},
		{"PUT", "/events", `{"type":"A B","entity":"x","data":1}`, nil, 400, "invalid_event"},
		{"PUT", "/events", `{"type":"a.b","data":1}`, nil, 400, "invalid_event"},
		{"PUT", "/events", `not json`, nil, 400, "invalid_event"},
		{"PUT", "/events", `{"type":"a.b","entity":"x","data":1,"expected_version":0}`, nil, 409, "version_conflict"},
		{"PUT", "/events", ev, []string{"If-Match", `"` + other + `"`}, 409, "head_conflict"},
		{"PUT", "/events", ev, []string{"If-Match", "yesterday"}, 400, "invalid_if_match"},
		{"PUT", "/events", `{"type":"a.b","entity":"x","key":"k","data":1}`, nil, 201, ""},
		{"PUT", "/events", `{"type":"a.b","entity":"x","key":"k","data":2}`, nil, 409, "key_conflict"},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		w := serve(h, tc.method, tc.target, body, tc.headers...)
		if w.Code != tc.status {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.target, w.Code, w.Body, tc.status, tc.code)
			continue
		}
		if tc.status < 300 {
			continue
		}
		if got := errorBody(t, w)["code"]; got != tc.code {
			t.Errorf("%s %s: code %v, want %s", tc.method, tc.target, got, tc.code)
		}
		if w.Header().Get("ETag") != "" || w.Header().Get("Link") != "" {
			t.Errorf("%s %s: error answer with ETag/Link headers: %v", tc.method, tc.target, w.Header())
		}
	}
	// Nothing the failures sent was stored: the setup event and the keyed
	// one only.
	if w := serve(h, "GET", "/head", nil); !strings.Contains(w.Body.String(), `"seq":2`) || head == "" {
		t.Errorf("head after the failed requests: %s", w.Body)
	}
}
