package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMutexContention: 8 CGI processes at a time and a standalone server
// on one data directory contend for one key. Every grant's fencing token
// is greater than the one before it, and no two contenders are ever in
// the critical section together.
func TestMutexContention(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	cgiBase := cgiServer(t, data).URL + "/api"
	var (
		mu     sync.Mutex
		holder = -1
		tokens []uint64
		wg     sync.WaitGroup
	)
	const contenders, grants = 10, 4
	for i := range contenders {
		base := cgiBase
		if i >= 8 {
			base = s.url // two server goroutines besides 8 CGI processes
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got := 0; got < grants; {
				r, err := try("POST", base+"/mutex/job/lock?ttl=30", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r.status == 409 {
					var e struct {
						Error struct{ Code, Expires string }
					}
					json.Unmarshal(r.body, &e)
					if e.Error.Code != "mutex_held" || e.Error.Expires == "" {
						t.Errorf("409 without the holder's expiry: %s", r.body)
						return
					}
					time.Sleep(2 * time.Millisecond)
					continue
				}
				if r.status != 200 {
					t.Errorf("lock: %s", r)
					return
				}
				var g struct {
					Token   uint64
					Expires time.Time
				}
				if err := json.Unmarshal(r.body, &g); err != nil || g.Token == 0 || time.Until(g.Expires) < 20*time.Second {
					t.Errorf("lock: %s", r.body)
					return
				}
				mu.Lock()
				if holder != -1 {
					t.Errorf("contender %d granted the lock while %d holds it", i, holder)
				}
				if n := len(tokens); n > 0 && g.Token <= tokens[n-1] {
					t.Errorf("token %d granted after %d", g.Token, tokens[n-1])
				}
				holder = i
				tokens = append(tokens, g.Token)
				mu.Unlock()
				time.Sleep(time.Millisecond) // the critical section
				mu.Lock()
				holder = -1
				mu.Unlock()
				if r, err := try("POST", base+"/mutex/job/unlock", fmt.Sprintf(`{"token":%d}`, g.Token)); err != nil || r.status != 200 {
					t.Errorf("unlock: %v %v", r, err)
					return
				}
				got++
			}
		}()
	}
	wg.Wait()
	if len(tokens) != contenders*grants {
		t.Fatalf("%d grants, want %d", len(tokens), contenders*grants)
	}
	// A stale token: the lock's last holder unlocks twice.
	do(t, "POST", cgiBase+"/mutex/job/unlock", fmt.Sprintf(`{"token":%d}`, tokens[len(tokens)-1])).wantError(t, 409, "not_holder")
	do(t, "POST", cgiBase+"/mutex/job/unlock", `{"tok":1}`).wantError(t, 400, "invalid_body")
	do(t, "POST", cgiBase+"/mutex/job/lock?ttl=0", nil).wantError(t, 400, "invalid_parameter")
	do(t, "POST", cgiBase+"/mutex/job/lock?ttl=3601", nil).wantError(t, 400, "invalid_parameter")
	do(t, "POST", cgiBase+"/mutex/a%20b/lock", nil).wantError(t, 400, "invalid_key")

	// Expiry frees a lock nobody released, across processes.
	r := do(t, "POST", s.url+"/mutex/short/lock?ttl=2", nil).want(t, 200)
	first := decode[struct {
		Key     string
		Token   uint64
		Expires string
	}](t, r.body)
	do(t, "POST", cgiBase+"/mutex/short/lock", nil).wantError(t, 409, "mutex_held")
	time.Sleep(2100 * time.Millisecond)
	r = do(t, "POST", cgiBase+"/mutex/short/lock", nil).want(t, 200)
	if g := decode[struct {
		Key     string
		Token   uint64
		Expires string
	}](t, r.body); g.Token <= first.Token {
		t.Fatalf("token %d after expiry, after %d", g.Token, first.Token)
	}
	do(t, "POST", s.url+"/mutex/short/unlock", fmt.Sprintf(`{"token":%d}`, first.Token)).wantError(t, 409, "not_holder")

	// A holder renews its lock past its first expiry, keeping its token.
	// (ttl=3: under the race detector a CGI lock and the renewal can
	// take over a second.)
	r = do(t, "POST", cgiBase+"/mutex/long/lock?ttl=3", nil).want(t, 200)
	g := decode[struct {
		Key     string
		Token   uint64
		Expires time.Time
	}](t, r.body)
	r = do(t, "POST", s.url+"/mutex/long/renew?ttl=60", fmt.Sprintf(`{"token":%d}`, g.Token)).want(t, 200)
	g2 := decode[struct {
		Key     string
		Token   uint64
		Expires time.Time
	}](t, r.body)
	if g2.Token != g.Token || !g2.Expires.After(g.Expires.Add(50*time.Second)) {
		t.Fatalf("renewal %+v of %+v", g2, g)
	}
	time.Sleep(1100 * time.Millisecond)
	do(t, "POST", cgiBase+"/mutex/long/lock", nil).wantError(t, 409, "mutex_held")
	do(t, "POST", cgiBase+"/mutex/long/renew", fmt.Sprintf(`{"token":%d}`, g.Token+1)).wantError(t, 409, "not_holder")
}

// TestCache: one cache across CGI and a standalone server on one data
// directory; values as sent; TTL expiry; the tenant's limit.
func TestCache(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	cgiBase := cgiServer(t, data).URL + "/api"
	v := `{"n":12345678901234567890, "list":[1,2.50]}`
	r := do(t, "PUT", cgiBase+"/cache/user:42?ttl=60", v).want(t, 200)
	put := decode[struct {
		Key     string
		Size    int
		Expires time.Time
	}](t, r.body)
	if put.Key != "user:42" || put.Size != len(v) || time.Until(put.Expires) < 55*time.Second {
		t.Fatalf("put: %s", r.body)
	}
	r = do(t, "GET", s.url+"/cache/user:42", nil).want(t, 200)
	if string(r.body) != v || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("standalone read %q (%s), want %q", r.body, r.header.Get("Content-Type"), v)
	}
	do(t, "PUT", s.url+"/cache/user:42", `"replaced"`).want(t, 200)
	if r := do(t, "GET", cgiBase+"/cache/user:42", nil).want(t, 200); string(r.body) != `"replaced"` {
		t.Fatalf("CGI read %q after the server replaced it", r.body)
	}
	do(t, "DELETE", cgiBase+"/cache/user:42", nil).want(t, 204)
	do(t, "GET", s.url+"/cache/user:42", nil).wantError(t, 404, "not_found")
	do(t, "DELETE", s.url+"/cache/user:42", nil).wantError(t, 404, "not_found")

	do(t, "PUT", cgiBase+"/cache/x", `{"a":`).wantError(t, 400, "invalid_body")
	do(t, "PUT", cgiBase+"/cache/x", ``).wantError(t, 400, "empty_body")
	do(t, "PUT", cgiBase+"/cache/x?ttl=-1", `1`).wantError(t, 400, "invalid_parameter")
	do(t, "PUT", cgiBase+"/cache/x?size=1", `1`).wantError(t, 400, "invalid_parameter")
	do(t, "PUT", cgiBase+"/cache/"+strings.Repeat("k", 129), `1`).wantError(t, 400, "invalid_key")
	do(t, "PUT", s.url+"/cache/x", strings.Repeat(" ", 1<<20+1)).wantError(t, 413, "body_too_large")

	// TTL: gone for every process once it passed.
	do(t, "PUT", s.url+"/cache/brief?ttl=2", `true`).want(t, 200)
	do(t, "GET", cgiBase+"/cache/brief", nil).want(t, 200)
	time.Sleep(2100 * time.Millisecond)
	do(t, "GET", cgiBase+"/cache/brief", nil).wantError(t, 404, "not_found")
	do(t, "GET", s.url+"/cache/brief", nil).wantError(t, 404, "not_found")

	// The tier limit, set like the others; expired entries make room.
	strataCLI(t, data, "", "tenant", "set", "default", "--cache-entries", "2")
	time.Sleep(1100 * time.Millisecond) // the server looks at the tenant's file once a second
	// (a lives 3 s: under the race detector the next two CGI requests
	// can take over a second, and a must still count when c is refused.)
	do(t, "PUT", cgiBase+"/cache/a?ttl=3", `1`).want(t, 200)
	do(t, "PUT", s.url+"/cache/b", `1`).want(t, 200)
	e := do(t, "PUT", cgiBase+"/cache/c", `1`).wantError(t, 507, "quota_exceeded")
	if e["quota"] != "cache_entries" {
		t.Fatalf("quota refusal names %v", e["quota"])
	}
	time.Sleep(3100 * time.Millisecond)
	do(t, "PUT", s.url+"/cache/c", `1`).want(t, 200)
	// GET /quota shows the cache's usage: b and c (a was swept), 33 bytes each.
	q := decode[map[string]any](t, do(t, "GET", cgiBase+"/quota", nil).want(t, 200).body)
	if u := q["usage"].(map[string]any); u["cache_entries"] != 2.0 || u["cache_bytes"] != 66.0 {
		t.Fatalf("GET /quota usage: %v", u)
	}
}

// sseClient reads the messages of an event stream: data lines, with the
// event's name ("" for the default).
type sseMsg struct{ id, event, data string }

func subscribe(t *testing.T, url string) (<-chan sseMsg, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("subscribe: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := make(chan sseMsg, 100)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.data != "" {
					ch <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data = line[6:]
			}
		}
	}()
	return ch, cancel
}

func next(t *testing.T, ch <-chan sseMsg) sseMsg {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
	}
	return sseMsg{}
}

// TestBroadcast: a message posted to one server process reaches a
// subscriber of another on the same data directory (as under mod_fcgid),
// and one of its own; other channels' messages do not; CGI answers 501.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	a := startServer(t, data)
	b := startServer(t, data)
	cgiBase := cgiServer(t, data).URL + "/api"
	subA, stopA := subscribe(t, a.url+"/broadcast/room-1/stream")
	defer stopA()
	subB, stopB := subscribe(t, b.url+"/broadcast/room-1/stream")
	defer stopB()
	r := do(t, "POST", b.url+"/broadcast/room-1", "{\"typing\": \"ann\"}\n").want(t, 202)
	if p := decode[struct {
		Channel string
		Seq     uint64
	}](t, r.body); p.Seq == 0 {
		t.Fatalf("post: %s", r.body)
	}
	do(t, "POST", a.url+"/broadcast/room-2", `{"elsewhere":true}`).want(t, 202)
	do(t, "POST", a.url+"/broadcast/room-1", `"bye"`).want(t, 202)
	for name, ch := range map[string]<-chan sseMsg{"other process": subA, "same process": subB} {
		if m := next(t, ch); m.data != `{"typing":"ann"}` || m.event != "" || m.id == "" {
			t.Fatalf("%s: first message %+v", name, m)
		}
		if m := next(t, ch); m.data != `"bye"` {
			t.Fatalf("%s: second message %+v", name, m)
		}
	}
	// As a WebSocket (strata serve), from after=0: what the ring holds.
	ws := wsDial(t, "ws"+strings.TrimPrefix(b.url, "http")+"/broadcast/room-1/stream?after=0", nil)
	for _, want := range []string{`{"typing":"ann"}`, `"bye"`} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, msg, err := ws.Read(ctx)
		cancel()
		var m struct {
			Seq  uint64
			Data json.RawMessage
		}
		if err != nil || json.Unmarshal(msg, &m) != nil || m.Seq == 0 || string(m.Data) != want {
			t.Fatalf("WebSocket message %q (%v), want seq and data %s", msg, err, want)
		}
	}
	do(t, "GET", a.url+"/broadcast/room-1/stream?after=x", nil).wantError(t, 400, "invalid_parameter")
	do(t, "POST", a.url+"/broadcast/room-1", `{"a":`).wantError(t, 400, "invalid_body")
	do(t, "POST", a.url+"/broadcast/room-1", strings.Repeat("1", 3<<10+1)).wantError(t, 413, "body_too_large")
	e := do(t, "POST", cgiBase+"/broadcast/room-1", `1`).wantError(t, 501, "needs_server")
	if msg, _ := e["message"].(string); !strings.Contains(msg, "CGI") {
		t.Fatalf("the 501 does not say why: %q", msg)
	}
	do(t, "GET", cgiBase+"/broadcast/room-1/stream", nil).wantError(t, 501, "needs_server")
}
