package e2e_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a CGI program's standard error, written by the handler's
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCGIFaultLogged: a failure on the server's side, in CGI, answers a
// JSON 500 with a request id and no path, and the program's standard error
// (Apache's error log) holds that id with the details. The failures: an
// unreadable grants file under a wrong password for an unknown user (an
// unauthenticated request), and a configuration strata cannot start with.
func TestCGIFaultLogged(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	for _, tc := range []struct {
		name   string
		env    []string
		detail string
	}{
		{"grants unreadable", nil, filepath.Join(data, "system", "grants")},
		{"bad configuration", []string{"STRATA_AUTH=bogus"}, "bogus"},
	} {
		var stderr lockedBuffer
		h := &cgi.Handler{Path: bin, Root: "/api", Env: append([]string{"STRATA_DATA=" + data}, tc.env...), Stderr: &stderr}
		srv := httptest.NewServer(h)
		if err := os.MkdirAll(filepath.Join(data, "system", "grants"), 0o700); err != nil {
			t.Fatal(err)
		}
		r := do(t, "GET", srv.URL+"/api/events", nil, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("nobody:wrong")))
		srv.Close()
		e := r.wantError(t, 500, "internal")
		id, _ := e["request_id"].(string)
		if strings.Contains(string(r.body), data) || strings.Contains(string(r.body), "grants") {
			t.Errorf("%s: the answer shows a path: %s", tc.name, r.body)
		}
		if msg, _ := e["message"].(string); !strings.Contains(msg, id) {
			t.Errorf("%s: the message does not give the request id: %q", tc.name, msg)
		}
		var line string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "request_id="+id+" ") {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, tc.detail) || !strings.Contains(line, "level=ERROR") {
			t.Errorf("%s: no log line with request_id=%s and %q; standard error:\n%s", tc.name, id, tc.detail, stderr.String())
		}
	}
}

// TestCGIDamagedRead: a read that meets a damaged record answers, in CGI,
// a JSON 500 with a request id when nothing of its page has gone out yet,
// and otherwise the part read so far, cut (no closing "]"), with the cut
// logged under the request id — never a goroutine dump in the error log.
func TestCGIDamagedRead(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	var stderr lockedBuffer
	h := &cgi.Handler{Path: bin, Root: "/api", Env: []string{"STRATA_DATA=" + data, "STRATA_AUTH=none"}, Stderr: &stderr}
	srv := httptest.NewServer(h)
	defer srv.Close()
	pad := strings.Repeat("x", 1000)
	var batch []string
	for i := 1; i <= 300; i++ {
		batch = append(batch, fmt.Sprintf(`{"type":"a","entity":"e","data":"ev-%03d-%s"}`, i, pad))
	}
	mustAppendBatch(t, srv.URL+"/api", "["+strings.Join(batch, ",")+"]")
	segs, _ := filepath.Glob(filepath.Join(data, "tenants", "default", "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("ev-200-"))
	if i < 0 {
		t.Fatal("event 200 not found in the segment")
	}
	b[i] ^= 0x20
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Damage within the first 64 KB of the page: an error answer.
	r := do(t, "GET", srv.URL+"/api/events?after=190", nil)
	e := r.wantError(t, 500, "corrupt")
	id, _ := e["request_id"].(string)
	if strings.Contains(string(r.body), data) {
		t.Errorf("the answer shows a path: %s", r.body)
	}
	if !strings.Contains(stderr.String(), "request_id="+id+" ") {
		t.Errorf("no log line with request_id=%s; standard error:\n%s", id, stderr.String())
	}

	// Damage past it: the status is sent, the answer is cut.
	r = do(t, "GET", srv.URL+"/api/events", nil).want(t, 200)
	if !bytes.HasPrefix(r.body, []byte(`[{"id"`)) || bytes.HasSuffix(bytes.TrimSpace(r.body), []byte("]")) {
		t.Errorf("a cut answer of %d bytes: %.40q … %q", len(r.body), r.body, r.body[max(0, len(r.body)-40):])
	}
	id = r.header.Get("Strata-Request-Id")
	if !strings.Contains(stderr.String(), `msg="answer cut short" request_id=`+id+" ") {
		t.Errorf("the cut is not logged under request_id=%s; standard error:\n%s", id, stderr.String())
	}
	if strings.Contains(stderr.String(), "goroutine") || strings.Contains(stderr.String(), "panic") {
		t.Errorf("a panic in the error log:\n%s", stderr.String())
	}
}

// TestCGIMissingDataDir: a CGI program whose STRATA_DATA names no directory
// (a typo in .htaccess) says so in the error log; the client sees only a
// 401, since no credential can be checked.
func TestCGIMissingDataDir(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "strata-dta")
	var stderr lockedBuffer
	srv := httptest.NewServer(&cgi.Handler{Path: bin, Root: "/api", Env: []string{"STRATA_DATA=" + missing}, Stderr: &stderr})
	defer srv.Close()
	do(t, "GET", srv.URL+"/api/head", nil, "Authorization", "Bearer strata_0123456789abcdef0123456789abcdef0123456789a").wantError(t, 401, "")
	if !strings.Contains(stderr.String(), "the data directory "+missing+" does not exist: check STRATA_DATA") {
		t.Errorf("no warning about the missing data directory; standard error:\n%s", stderr.String())
	}
}
