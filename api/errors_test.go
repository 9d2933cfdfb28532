package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"strata/blobs"
	"strata/jsonx"
	"strata/log"
	"strata/query"
	"strata/quota"
)

func TestReadParams(t *testing.T) {
	id := strings.Repeat("0a", 32)
	pid, _ := log.ParseID(id)
	ns := func(s string) *int64 {
		v, err := log.ParseTime(s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	ok := []struct {
		query string
		want  query.Params
	}{
		{"", query.Params{Limit: DefaultLimit}},
		{"from=" + id, query.Params{From: &pid, Limit: DefaultLimit}},
		{"to=" + id, query.Params{To: &pid, Limit: DefaultLimit}},
		{"after=42", query.Params{After: 42, Limit: DefaultLimit}},
		{"after=0", query.Params{Limit: DefaultLimit}},
		{"limit=7", query.Params{Limit: 7}},
		{"limit=1&limit=9", query.Params{Limit: 9}}, // the last one counts
		{"type=order.placed", query.Params{Type: "order.placed", Limit: DefaultLimit}},
		{"type=order.*", query.Params{Type: "order.*", Limit: DefaultLimit}},
		{"entity=books/*", query.Params{Entity: "books/*", Limit: DefaultLimit}},
		{"entity=order-1", query.Params{Entity: "order-1", Limit: DefaultLimit}},
		{"since=2026-11-22T10:00:00Z", query.Params{Since: ns("2026-11-22T10:00:00Z"), Limit: DefaultLimit}},
		{"until=2026-11-22T10:00:00.5%2B01:00", query.Params{Until: ns("2026-11-22T10:00:00.5+01:00"), Limit: DefaultLimit}},
		{"_=1700000000&_cache=x", query.Params{Limit: DefaultLimit}},
	}
	for _, tc := range ok {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readParams(q)
		if err != nil {
			t.Errorf("%q: %v", tc.query, err)
			continue
		}
		if s, w := fmt.Sprint(deref(got)), fmt.Sprint(deref(tc.want)); s != w {
			t.Errorf("%q: got %s, want %s", tc.query, s, w)
		}
	}

	bad := []struct{ query, param string }{
		{"from=xyz", "from"},
		{"from=" + strings.ToUpper(id), "from"},
		{"to=" + id[:63], "to"},
		{"after=-1", "after"},
		{"after=1.5", "after"},
		{"after=", "after"},
		{"limit=0", "limit"},
		{"limit=-3", "limit"},
		{"limit=ten", "limit"},
		{"type=", "type"},
		{"type=[", "type"},
		{"entity=", "entity"},
		{"entity=books/[a-", "entity"},
		{"since=yesterday", "since"},
		{"since=2026-11-22", "since"},
		{"until=10:00", "until"},
		{"limt=10", "limt"},
		{"Limit=10", "Limit"},
		{"_ok=1&nope=2", "nope"},
	}
	for _, tc := range bad {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = readParams(q)
		if err == nil {
			t.Errorf("%q: accepted", tc.query)
			continue
		}
		e := classify(err)
		if e.status != http.StatusBadRequest || e.code != "invalid_parameter" || e.extra["parameter"] != tc.param || !strings.Contains(e.message, tc.param) {
			t.Errorf("%q: %d %s %v %q, want 400 invalid_parameter naming %s", tc.query, e.status, e.code, e.extra, e.message, tc.param)
		}
	}
}

// deref makes Params printable by value.
func deref(p query.Params) string {
	s := fmt.Sprintf("after=%d limit=%d type=%q entity=%q", p.After, p.Limit, p.Type, p.Entity)
	for _, b := range []struct {
		name string
		id   *[32]byte
	}{{"from", p.From}, {"to", p.To}} {
		if b.id != nil {
			s += fmt.Sprintf(" %s=%x", b.name, *b.id)
		}
	}
	for _, b := range []struct {
		name string
		ns   *int64
	}{{"since", p.Since}, {"until", p.Until}} {
		if b.ns != nil {
			s += fmt.Sprintf(" %s=%d", b.name, *b.ns)
		}
	}
	return s
}

func TestBodyFormat(t *testing.T) {
	for _, tc := range []struct {
		ct     string
		ndjson bool
		status int // 0: accepted
	}{
		{"", false, 0},
		{"application/json", false, 0},
		{"application/json; charset=utf-8", false, 0},
		{"Application/JSON", false, 0},
		{"application/cloudevents-batch+json", false, 0},
		{"text/plain", false, 0},
		{"application/x-www-form-urlencoded", false, 0}, // curl --data
		{"application/x-ndjson", true, 0},
		{"application/ndjson", true, 0},
		{"application/jsonl", true, 0},
		{"application/x-jsonlines", true, 0},
		{"APPLICATION/X-NDJSON; charset=utf-8", true, 0},
		{"text/csv", false, 415},
		{"application/xml", false, 415},
		{"multipart/form-data; boundary=x", false, 415},
		{"application/octet-stream", false, 415},
		{"json", false, 415},
		{"application/json;;", false, 415},
	} {
		nd, err := bodyFormat(tc.ct)
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%q: %v", tc.ct, err)
		case tc.status == 0 && nd != tc.ndjson:
			t.Errorf("%q: ndjson %v, want %v", tc.ct, nd, tc.ndjson)
		case tc.status != 0 && err == nil:
			t.Errorf("%q: accepted (ndjson %v), want %d", tc.ct, nd, tc.status)
		case tc.status != 0:
			if e := classify(err); e.status != tc.status || e.code != "unsupported_media_type" {
				t.Errorf("%q: %d %s, want %d unsupported_media_type", tc.ct, e.status, e.code, tc.status)
			}
		}
	}
}

// TestClassify pins the one table of error → status: each error of the
// lower packages, bare and wrapped the way they return it.
func TestClassify(t *testing.T) {
	wrap := func(err error) error { return &log.Error{Op: "append", Dir: "/d", Err: err} }
	enospc := fmt.Errorf("%w: %w", log.ErrNoSpace, syscall.ENOSPC)
	var id [32]byte
	id[0] = 1
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		extra  []string // members besides code and message
	}{
		{"apiError", errorf("already_set_up", "short and stout"), 409, "already_set_up", nil},
		{"code missing from the table", errorf("teapot", "short and stout"), 500, "teapot", nil},
		{"FieldError", &jsonx.FieldError{Index: 2, Field: "type", Msg: "must be a string"}, 400, "invalid_event", []string{"index", "field"}},
		{"InvalidError", &log.InvalidError{Index: 1, Field: "entity", Err: errors.New("is empty")}, 400, "invalid_event", []string{"index", "field"}},
		{"InvalidError too large", &log.InvalidError{Index: 0, Field: "data", Err: log.ErrTooLarge}, 413, "event_too_large", []string{"index", "field"}},
		{"VersionConflict", &log.VersionConflictError{Index: 0, Entity: "x", Expected: 0, Current: 3}, 409, "version_conflict", []string{"index", "entity", "expected_version", "current_version"}},
		{"HeadConflict", &log.HeadConflictError{Expected: id, Current: log.Head{Seq: 4, ID: id}}, 409, "head_conflict", []string{"current_head"}},
		{"KeyConflict", &log.KeyConflictError{Index: 0, Key: "k", Existing: &log.Event{Seq: 3}}, 409, "key_conflict", []string{"index", "key", "existing_id", "existing_seq"}},
		{"FromNotFound", query.ErrFromNotFound, 404, "not_on_chain", nil},
		{"ToNotFound", query.ErrToNotFound, 404, "not_on_chain", nil},
		{"log NotFound", log.ErrNotFound, 404, "not_found", nil},
		{"LockTimeout", wrap(log.ErrLockTimeout), 503, "busy", nil},
		{"log NoSpace", wrap(enospc), 507, "disk_full", nil},
		{"blobs NoSpace", fmt.Errorf("store blob: %w", fmt.Errorf("%w: %w", blobs.ErrNoSpace, syscall.ENOSPC)), 507, "disk_full", nil},
		{"Failed", wrap(log.ErrFailed), 503, "log_failed", nil},
		{"Corrupt", fmt.Errorf("read: %w", log.ErrCorrupt), 500, "corrupt", nil},
		{"blobs NotFound", fmt.Errorf("open: %w", blobs.ErrNotFound), 404, "not_found", nil},
		{"InvalidHash", blobs.ErrInvalidHash, 400, "invalid_hash", nil},
		{"HashMismatch", fmt.Errorf("store: %w", blobs.ErrHashMismatch), 400, "hash_mismatch", nil},
		{"blobs TooLarge", fmt.Errorf("store: %w", blobs.ErrTooLarge), 413, "blob_too_large", nil},
		{"quota storage", fmt.Errorf("append: %w", &quota.ExceededError{Quota: quota.QuotaStorageBytes, Limit: 10}), 507, "quota_exceeded", []string{"quota", "limit"}},
		{"quota rate", &quota.ExceededError{Quota: quota.QuotaRequestsPerSecond, Limit: 10}, 429, "quota_exceeded", []string{"quota", "limit"}},
		{"other", errors.New("open /srv/data/tenants/x/log: permission denied"), 500, "internal", nil},
	} {
		w := httptest.NewRecorder()
		var logged bytes.Buffer
		h := &Handler{log: slog.New(slog.NewTextHandler(&logged, nil))}
		r, _ := h.begin(w, httptest.NewRequest("GET", "/events", nil))
		writeError(w, r, tc.err)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.status)
			continue
		}
		e := errorBody(t, w)
		if e["code"] != tc.code {
			t.Errorf("%s: code %v, want %s", tc.name, e["code"], tc.code)
		}
		for _, k := range tc.extra {
			if _, ok := e[k]; !ok {
				t.Errorf("%s: no %q in %s", tc.name, k, w.Body)
			}
		}
		if len(e) != 3+len(tc.extra) {
			t.Errorf("%s: members %v, want code, message, request_id and %v", tc.name, e, tc.extra)
		}
		// A server's failure is logged with its detail and told to the
		// client in general terms only; a client's error is not logged.
		if msg := e["message"].(string); tc.status >= 500 && (strings.Contains(msg, tc.err.Error()) || strings.Contains(msg, "/d")) {
			t.Errorf("%s: the answer shows the error: %q", tc.name, msg)
		}
		if (tc.status >= 500 && tc.code != "quota_exceeded") != (logged.Len() > 0) {
			t.Errorf("%s: status %d, logged %q", tc.name, tc.status, logged.String())
		}
		ra := w.Header().Get("Retry-After")
		if (tc.status == 503 || tc.status == 429) != (ra != "") {
			t.Errorf("%s: status %d with Retry-After %q", tc.name, tc.status, ra)
		}
	}
}

// TestBlobGetErrorsAreJSON: the answers http.ServeContent chooses for a
// blob's range or condition are JSON errors like every other (its own are
// plain text), and the rest of what it does is kept.
func TestBlobGetErrorsAreJSON(t *testing.T) {
	h := newHandler(t, Config{})
	w := serve(h, "PUT", "/storage/", strings.NewReader("0123456789"))
	if w.Code != 201 {
		t.Fatalf("put: %d %s", w.Code, w.Body)
	}
	var put struct{ Hash string }
	if err := json.Unmarshal(w.Body.Bytes(), &put); err != nil {
		t.Fatal(err)
	}
	path := "/storage/" + put.Hash
	w = serve(h, "GET", path, nil, "Range", "bytes=100-")
	if w.Code != 416 || errorBody(t, w)["code"] != "range_not_satisfiable" || w.Header().Get("Content-Range") != "bytes */10" {
		t.Errorf("range past the end: %d %q %s", w.Code, w.Header().Get("Content-Range"), w.Body)
	}
	w = serve(h, "GET", path, nil, "If-Match", `"`+strings.Repeat("0", 64)+`"`)
	if w.Code != 412 || errorBody(t, w)["code"] != "precondition_failed" {
		t.Errorf("If-Match another hash: %d %s", w.Code, w.Body)
	}
	w = serve(h, "GET", path, nil, "If-None-Match", `"`+put.Hash+`"`)
	if w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("If-None-Match its hash: %d %s", w.Code, w.Body)
	}
	w = serve(h, "GET", path, nil, "Range", "bytes=2-4")
	if w.Code != 206 || w.Body.String() != "234" || w.Header().Get("Content-Range") != "bytes 2-4/10" {
		t.Errorf("range: %d %q %s", w.Code, w.Header().Get("Content-Range"), w.Body)
	}
	w = serve(h, "GET", path, nil)
	if w.Code != 200 || w.Body.String() != "0123456789" {
		t.Errorf("whole: %d %s", w.Code, w.Body)
	}
}
