package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"strata/tenants"
)

// faultLog captures the handler's log lines as JSON objects.
type faultLog struct{ bytes.Buffer }

func (l *faultLog) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// lines returns the lines logged with request id.
func (l *faultLog) lines(t *testing.T, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		if m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// checkFault checks a 5xx answer: it names no server path and gives the
// request id, which the log has too, with the error's detail (mustLog).
func checkFault(t *testing.T, w *httptestRecorder, data string, status int, code string, l *faultLog, mustLog string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	e := errorBody(t, w)
	id, _ := e["request_id"].(string)
	if e["code"] != code {
		t.Errorf("code %v, want %s", e["code"], code)
	}
	if strings.Contains(w.Body.String(), data) || strings.Contains(w.Body.String(), "/tenants/") || strings.Contains(w.Body.String(), "system/") {
		t.Errorf("the answer shows a server path: %s", w.Body)
	}
	if msg, _ := e["message"].(string); !strings.Contains(msg, id) {
		t.Errorf("the message does not give the request id %s: %q", id, msg)
	}
	lines := l.lines(t, id)
	if len(lines) != 1 {
		t.Fatalf("%d log lines with request id %s, want 1; the log:\n%s", len(lines), id, l.String())
	}
	if err, _ := lines[0]["err"].(string); !strings.Contains(err, mustLog) {
		t.Errorf("the log line's err %q does not hold %q", err, mustLog)
	}
	if lines[0]["status"] != float64(status) || lines[0]["level"] != "ERROR" {
		t.Errorf("log line %v: want level ERROR and status %d", lines[0], status)
	}
}

// TestFaultAnswers: a failure on the server's side is answered with a
// request id and no path, and logged under that id with the detail; here
// an unreadable grants file under a wrong password for an unknown user
// (an unauthenticated request), and a damaged segment.
func TestFaultAnswers(t *testing.T) {
	var l faultLog
	f := newAuthHandler(t, Config{Logger: l.logger()})

	grants := filepath.Join(f.data, systemDir, grantsFile)
	os.Remove(grants)
	// A directory in the file's place: unreadable even by root.
	if err := os.Mkdir(grants, 0o700); err != nil {
		t.Fatal(err)
	}
	w := f.do("GET", "/events", "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("nobody:wrong")))
	checkFault(t, w, f.data, 500, "internal", &l, grants)
	if err := os.Remove(grants); err != nil {
		t.Fatal(err)
	}

	// A damaged segment: its magic overwritten.
	w = f.do("POST", "/events", `{"type":"a","entity":"e","data":1}`, tok(f.tokens["own/writer"])...)
	if w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
	f.h.Close()
	segs, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, "own"), "*", "*.seg"))
	if more, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, "own"), "*.seg")); len(more) > 0 {
		segs = append(segs, more...)
	}
	if len(segs) == 0 {
		t.Fatal("no segment found")
	}
	for _, s := range segs {
		fh, err := os.OpenFile(s, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt([]byte("XXXXXXXX"), 0)
		fh.Close()
	}
	w = f.do("GET", "/events", "", tok(f.tokens["own/reader"])...)
	checkFault(t, w, f.data, 500, "corrupt", &l, "bad magic")
}

// TestDamagedRecordAnswer: a read that meets a damaged record before
// anything of its page has left the server (the first 64 KB) is answered
// 500 with a request id, not a 200 cut short — under FastCGI the cut also
// cost the process (the cgi package now survives it: TestFastCGIAbort).
func TestDamagedRecordAnswer(t *testing.T) {
	var l faultLog
	f := newAuthHandler(t, Config{Logger: l.logger()})
	for _, d := range []string{`"one"`, `"marker-two"`, `"three"`} {
		if w := f.do("POST", "/events", `{"type":"a","entity":"e","data":`+d+`}`, tok(f.tokens["own/writer"])...); w.Code != 201 {
			t.Fatalf("append: %d %s", w.Code, w.Body)
		}
	}
	f.h.Close()
	segs, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, "own"), "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want 1", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("marker-two"))
	if i < 0 {
		t.Fatal("the second event's data is not in the segment")
	}
	b[i] ^= 0x20 // seq 2's checksum no longer matches
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	w := f.do("GET", "/events", "", tok(f.tokens["own/reader"])...)
	checkFault(t, w, f.data, 500, "corrupt", &l, "checksum") // as an entity read or GET /events/{id} says it
	if w.Header().Get("Link") != "" || w.Header().Get("Strata-Next-After") != "" {
		t.Errorf("an error answer with a next page: %v", w.Header())
	}
}

// TestCutAnswerEndsWithError: an NDJSON read that meets a damaged record
// after its status went out (past the first 64 KB) ends with an error line
// carrying the request id before the cut. Behind CGI and FastCGI the cut
// never reaches the client (Apache ends the answer as if whole), and a
// client following Strata-Next-After skipped the unreadable events without
// knowing.
func TestCutAnswerEndsWithError(t *testing.T) {
	var l faultLog
	f := newAuthHandler(t, Config{Logger: l.logger()})
	pad := strings.Repeat("x", 300)
	var batch strings.Builder
	for i := range 400 {
		fmt.Fprintf(&batch, `{"type":"a","entity":"e%d","data":"%s-%03d"}`+"\n", i, pad, i)
	}
	if w := f.do("POST", "/events", batch.String(), append(tok(f.tokens["own/writer"]), "Content-Type", "application/x-ndjson")...); w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
	f.h.Close()
	segs, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, "own"), "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want 1", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(pad+"-350"))
	if i < 0 {
		t.Fatal("event 351's data is not in the segment")
	}
	b[i] ^= 0x20 // seq 351's checksum no longer matches
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Fatalf("the read ended with %v, want the cut (http.ErrAbortHandler)", v)
			}
		}()
		r := httptestRequest("GET", "/events?after=0&limit=400", nil, append(tok(f.tokens["own/reader"]), "Accept", "application/x-ndjson")...)
		f.h.ServeHTTP(w, r)
	}()
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
	if w.Code != 200 || len(lines) != 351 {
		t.Fatalf("%d with %d lines, want 200 with the 350 events before the damage and one more", w.Code, len(lines))
	}
	var last struct {
		Error struct {
			Code      string
			RequestID string `json:"request_id"`
		}
	}
	id := w.Header().Get(RequestIDHeader)
	if err := json.Unmarshal([]byte(lines[350]), &last); err != nil || last.Error.Code != "internal" || last.Error.RequestID != id || id == "" {
		t.Fatalf("last line %q: %v; want an internal error with the request id %q", lines[350], err, id)
	}
	if strings.Contains(w.Body.String(), f.data) {
		t.Fatal("the answer names a server path")
	}
}

// TestPanicAnswer: a handler's panic is an internal error with a request
// id, logged with the panic under that id.
func TestPanicAnswer(t *testing.T) {
	var l faultLog
	h := &Handler{log: l.logger()}
	w := httptest.NewRecorder()
	r, _ := h.begin(w, httptest.NewRequest("GET", "/events", nil))
	func() {
		defer recoverPanic(w, r)
		panic("open /srv/secret: boom")
	}()
	checkFault(t, w, "/srv", 500, "internal", &l, "open /srv/secret: boom")
}

// TestNoPathInAnswers breaks the installation's files one at a time — a
// directory where a file should be or the other way round, which no
// process can read whatever its rights, or a damaged file — and sends
// requests of every kind, with and without valid credentials: no answer
// may name a server path, and every fault must be logged under the id its
// answer gives.
func TestNoPathInAnswers(t *testing.T) {
	swapDir := func(path string) error { // a directory in a file's place
		os.RemoveAll(path)
		return os.Mkdir(path, 0o700)
	}
	swapFile := func(path string) error { // a file in a directory's place
		os.RemoveAll(path)
		return os.WriteFile(path, []byte("not a directory\n"), 0o600)
	}
	garble := func(path string) error { return os.WriteFile(path, []byte("{\"name\":"), 0o600) }
	for _, tc := range []struct {
		name   string
		path   string // under the data directory
		break_ func(string) error
	}{
		{"grants", "system/grants", swapDir},
		{"users", "system/users", swapDir},
		{"tokens", "system/tokens", swapFile},
		{"throttle", "system/throttle", swapDir},
		{"secret", "system/secret", swapDir},
		{"audit", "system/audit", swapFile},
		{"tenant.json", "tenants/own/tenant.json", garble},
		{"tenant.json a directory", "tenants/own/tenant.json", swapDir},
		{"blobs", "tenants/own/blobs", swapFile},
		{"log", "tenants/own/log", swapFile},
		{"tenants", "tenants", swapFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l faultLog
			f := newAuthHandler(t, Config{Logger: l.logger()})
			if err := tc.break_(filepath.Join(f.data, tc.path)); err != nil {
				t.Fatal(err)
			}
			basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("nobody:wrong"))
			for _, rq := range []struct {
				method, target, body string
				headers              []string
			}{
				{"GET", "/events", "", []string{"Authorization", basic}},
				{"GET", "/events", "", tok(f.tokens["own/reader"])},
				{"POST", "/events", `{"type":"a","entity":"e","data":1}`, tok(f.tokens["own/writer"])},
				{"PUT", "/storage/", "blob", tok(f.tokens["own/writer"])},
				{"GET", "/quota", "", tok(f.tokens["own/reader"])},
				{"POST", "/session", `{"user":"nobody","password":"wrong"}`, nil},
				{"GET", "/admin/tenants", "", tok(f.tokens["own/admin"])},
				{"GET", "/admin/tenants/own", "", tok(f.tokens["own/admin"])},
				{"POST", "/admin/tenants", `{"name":"fresh"}`, tok(f.tokens["own/admin"])},
				{"POST", "/admin/tokens", `{"tenant":"own","role":"reader"}`, tok(f.tokens["own/admin"])},
				{"PUT", "/admin/users/carol", `{"password":"pw-carol-1","tenant":"own","role":"reader"}`, tok(f.tokens["own/admin"])},
				{"GET", "/audit", "", tok(f.tokens["own/admin"])},
			} {
				w := f.do(rq.method, rq.target, rq.body, rq.headers...)
				what := rq.method + " " + rq.target
				if strings.Contains(w.Body.String(), f.data) || strings.Contains(w.Body.String(), os.TempDir()) {
					t.Errorf("%s: the answer names a path: %d %s", what, w.Code, w.Body)
				}
				if w.Code < 500 {
					continue
				}
				e := errorBody(t, w)
				if e["code"] == "quota_exceeded" {
					continue
				}
				id, _ := e["request_id"].(string)
				if len(l.lines(t, id)) != 1 {
					t.Errorf("%s: %d %s: no log line with its request id", what, w.Code, w.Body)
				}
			}
		})
	}
}

// TestRequestID: every answer, success or error, carries a request id; a
// sane incoming X-Request-Id (a proxy's, or Apache's UNIQUE_ID passed on by
// the cgi package) is used as it is, anything else replaced by strata's own.
func TestRequestID(t *testing.T) {
	h := newHandler(t, Config{})
	own := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for _, tc := range []struct{ incoming, want string }{
		{"", ""},
		{"Z2xvYmFsLWlk@A-AAAAE", "Z2xvYmFsLWlk@A-AAAAE"}, // mod_unique_id
		{"3f2b8c1e-9d4a-4b7e-8f00-1234567890ab", "3f2b8c1e-9d4a-4b7e-8f00-1234567890ab"},
		{"a", "a"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
		{strings.Repeat("x", 65), ""},
		{"has space", ""},
		{"new\nline", ""},
		{"quote\"", ""},
		{"ünïcode", ""},
	} {
		for _, target := range []string{"/head", "/nowhere"} {
			w := serve(h, "GET", target, nil, "X-Request-Id", tc.incoming)
			got := w.Header().Get(RequestIDHeader)
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("%s with X-Request-Id %q: id %q, want it kept", target, tc.incoming, got)
			case tc.want == "" && (!own.MatchString(got) || seen[got]):
				t.Errorf("%s with X-Request-Id %q: id %q, want a new 16-hex id", target, tc.incoming, got)
			}
			seen[got] = true
			if w.Code >= 400 {
				errorBody(t, w) // checks the body's request_id is the header's
			}
		}
	}
}
