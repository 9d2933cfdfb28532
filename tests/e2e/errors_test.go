package e2e_test

import (
	"bytes"
	"encoding/base64"
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
