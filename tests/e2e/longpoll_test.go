package e2e_test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLongPoll: GET /events?wait= with the real binary. A standalone
// server's waiting read is woken by an append from a CGI process (another
// process: it sees it by polling the shared head) and by one through
// itself; a CGI waiting read is woken by the standalone server's append;
// and an empty tail answers the empty page at the timeout.
func TestLongPoll(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	cgiBase := c.URL + "/api"
	mustAppend(t, s.url, `{"type":"a.b","entity":"x","data":0}`)

	type answer struct {
		r       *response
		err     error
		elapsed time.Duration
	}
	wait := func(url string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			r, err := try("GET", url, nil)
			ch <- answer{r, err, time.Since(start)}
		}()
		return ch
	}
	// wake checks that a read waiting at url answers with the event that
	// write appends, soon after the append.
	wake := func(name, url, writeBase, want string) {
		t.Helper()
		ch := wait(url)
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		mustAppend(t, writeBase, `{"type":"a.b","entity":"x","data":"`+want+`"}`)
		a := <-ch
		lat := time.Since(start)
		if a.err != nil {
			t.Fatalf("%s: %v", name, a.err)
		}
		if a.r.status != 200 || !strings.Contains(string(a.r.body), want) || a.elapsed < 250*time.Millisecond {
			t.Fatalf("%s: %s after %v", name, a.r, a.elapsed)
		}
		if lat > 3*time.Second {
			t.Errorf("%s: answered %v after the append", name, lat)
		}
		t.Logf("%s: answered %v after the append was sent", name, lat)
	}
	wake("standalone woken by a CGI append", s.url+"/events?after=1&wait=10", cgiBase, "cgi-1")
	wake("standalone woken by its own append", s.url+"/events?after=2&wait=10", s.url, "self-1")
	wake("CGI woken by a standalone append", cgiBase+"/events?after=3&wait=10", s.url, "standalone-1")

	// The timeout: the empty page, with the headers of an empty page.
	a := <-wait(cgiBase + "/events?after=4&wait=1")
	if a.err != nil || a.r.status != 200 || strings.TrimSpace(string(a.r.body)) != "[]" || a.elapsed < time.Second {
		t.Fatalf("CGI timeout: %v %v after %v", a.err, a.r, a.elapsed)
	}
	a = <-wait(s.url + "/events?after=4&wait=1")
	if a.err != nil || a.r.status != 200 || strings.TrimSpace(string(a.r.body)) != "[]" || a.elapsed < time.Second {
		t.Fatalf("standalone timeout: %v %v after %v", a.err, a.r, a.elapsed)
	}
	do(t, "GET", s.url+"/events?wait=61", nil).wantError(t, 400, "invalid_parameter")
}

// TestLongPollDrain: a standalone server told to stop answers its waiting
// long-polls at once, the empty page with its cursor, and exits promptly,
// not after its drain timeout.
func TestLongPollDrain(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	mustAppend(t, s.url, `{"type":"a.b","entity":"x","data":0}`)
	ch := make(chan *response, 1)
	go func() {
		r, err := try("GET", s.url+"/events?after=1&wait=50", nil)
		if err != nil {
			t.Errorf("waiting read: %v", err)
		}
		ch <- r
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if code := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM with a long-poll waiting", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the server took %v to stop with a long-poll waiting", d)
	}
	r := <-ch
	if r == nil || r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("the waiting read at shutdown: %v", r)
	}
}
