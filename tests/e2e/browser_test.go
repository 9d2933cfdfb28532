package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The browser is the client: headless Chromium (Debian's chromium package)
// loads a page from another origin that opens a plain EventSource, and a
// WebSocket, to a running strata, and must receive events written after
// it connected. The test drives the browser through the DevTools protocol
// (Runtime.evaluate of a promise), so it waits on what the page has seen,
// never on a fixed sleep.
//
// Without chromium the test skips, unless STRATA_REQUIRE_CHROMIUM=1, which
// .ci/run sets (it installs chromium): in CI a missing browser fails.

// chromiumPath finds the browser, or skips (fails when it is required).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STRATA_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed, and STRATA_REQUIRE_CHROMIUM=1 (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium; CI requires it)")
	return ""
}

// browser is a headless Chromium with one page, driven over the DevTools
// protocol.
type browser struct {
	t    *testing.T
	conn *websocket.Conn
	next int
}

var devtoolsLine = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// openBrowser starts chromium on pageURL and connects to that page.
func openBrowser(t *testing.T, pageURL string) *browser {
	path := chromiumPath(t)
	// The profile is not t.TempDir(): chromium's helper processes (renderer,
	// crash handler) may still write into it after the browser itself
	// exited, and TempDir's cleanup fails the test when its RemoveAll meets
	// a file appearing. The whole process group is killed, then the
	// directory removed, retried while stragglers exit.
	profile, err := os.MkdirTemp("", "strata-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--user-data-dir="+profile,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", pageURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		for i := 0; ; i++ {
			err := os.RemoveAll(profile)
			if err == nil {
				return
			}
			if i == 50 {
				t.Logf("chromium profile not removed: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	found := make(chan string, 1)
	var said strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			} else if said.Len() < 4000 {
				said.WriteString(sc.Text() + "\n")
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("chromium did not open its DevTools port within 60 s")
	}
	// The page's own target, from the browser's list.
	host := strings.TrimPrefix(wsURL, "ws://")
	host, _, _ = strings.Cut(host, "/")
	var pageWS string
	for deadline := time.Now().Add(30 * time.Second); pageWS == "" && time.Now().Before(deadline); {
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		for _, tg := range targets {
			if tg.Type == "page" && tg.URL == pageURL {
				pageWS = tg.WebSocketDebuggerURL
			}
		}
		if pageWS == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pageWS == "" {
		t.Fatalf("chromium shows no page target for %s", pageURL)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, pageWS, nil)
	if err != nil {
		t.Fatalf("connecting to the page's DevTools: %v", err)
	}
	conn.SetReadLimit(16 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	b := &browser{t: t, conn: conn}
	// The target is listed before its page has loaded: wait for the load.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var state, href string
		b.eval(`document.readyState`, &state)
		b.eval(`location.href`, &href)
		if state == "complete" && href == pageURL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page %s did not load within 30 s (%s, %s)", pageURL, href, state)
		}
	}
	return b
}

// eval evaluates a JavaScript expression in the page, awaiting it if it
// is a promise, and decodes its JSON value into v.
func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	b.next++
	id := b.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": "Runtime.evaluate", "params": map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		b.t.Fatalf("DevTools: %v", err)
	}
	for {
		_, data, err := b.conn.Read(ctx)
		if err != nil {
			b.t.Fatalf("DevTools: evaluating %.80q: %v", expr, err)
		}
		var r struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value json.RawMessage `json:"value"`
				} `json:"result"`
				ExceptionDetails *struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			} `json:"result"`
			Error *struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(data, &r) != nil || r.ID != id {
			continue // an event, or another answer
		}
		if r.Error != nil {
			b.t.Fatalf("DevTools: %s", r.Error.Message)
		}
		if e := r.Result.ExceptionDetails; e != nil {
			b.t.Fatalf("the page threw: %s %s", e.Text, e.Exception.Description)
		}
		if v != nil {
			if err := json.Unmarshal(r.Result.Result.Value, v); err != nil {
				b.t.Fatalf("the page's answer %s: %v", r.Result.Result.Value, err)
			}
		}
		return
	}
}

// browserPage subscribes with a plain EventSource and a plain WebSocket
// and keeps what each receives in window.sse and window.ws.
const browserPage = `<!doctype html><meta charset="utf-8"><title>strata live</title>
<script>
const base = %q;
window.sse = {open: false, ids: [], seqs: [], errors: 0};
window.ws = {open: false, ids: [], seqs: [], end: null, close: null};
const es = new EventSource(base + "/stream?after=%d");
es.onopen = () => { window.sse.open = true; };
es.onerror = () => { window.sse.errors++; };
es.onmessage = (m) => { const e = JSON.parse(m.data); window.sse.ids.push(m.lastEventId); window.sse.seqs.push(e.seq); };
const ws = new WebSocket(base.replace(/^http/, "ws") + "/stream?after=%d");
ws.onopen = () => { window.ws.open = true; };
ws.onmessage = (m) => { const e = JSON.parse(m.data); if (e.end) { window.ws.end = e.end; return; } window.ws.ids.push(e.id); window.ws.seqs.push(e.seq); };
ws.onclose = (c) => { window.ws.close = {code: c.code, reason: c.reason}; };
// until(pred): a promise resolved once pred() holds (rejected after 20 s).
window.until = (pred) => new Promise((resolve, reject) => {
  const t0 = Date.now();
  const tick = () => { if (pred()) resolve(true); else if (Date.now() - t0 > 20000) reject(new Error("timed out: " + JSON.stringify({sse: window.sse, ws: window.ws}))); else setTimeout(tick, 10); };
  tick();
});
</script><p>strata live</p>`

// TestBrowserEventSource: Chromium opens an EventSource and a WebSocket to
// strata from a page of another origin (allowed by --cors-origins); both
// get the stored events, then the events appended once they were open,
// in order, each with its id.
func TestBrowserEventSource(t *testing.T) {
	page := httptest.NewServer(nil)
	defer page.Close()
	s := startServer(t, "", "--cors-origins", page.URL)
	stored := appendN(t, s, "browser.stored", 2)
	page.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, s.url, 0, 0)
	})
	b := openBrowser(t, page.URL+"/")
	var ok bool
	b.eval(`until(() => window.sse.open && window.ws.open && window.sse.seqs.length == 2 && window.ws.seqs.length == 2)`, &ok)
	live := appendN(t, s, "browser.live", 3)
	b.eval(`until(() => window.sse.seqs.length == 5 && window.ws.seqs.length == 5)`, &ok)
	var got struct {
		SSE struct {
			IDs    []string `json:"ids"`
			Errors int      `json:"errors"`
		} `json:"sse"`
		WS struct {
			IDs []string `json:"ids"`
		} `json:"ws"`
	}
	b.eval(`({sse: window.sse, ws: window.ws})`, &got)
	want := append(append([]string(nil), stored...), live...)
	if strings.Join(got.SSE.IDs, ",") != strings.Join(want, ",") {
		t.Errorf("EventSource: lastEventIds %v, want %v", got.SSE.IDs, want)
	}
	if strings.Join(got.WS.IDs, ",") != strings.Join(want, ",") {
		t.Errorf("WebSocket: ids %v, want %v", got.WS.IDs, want)
	}
	if got.SSE.Errors != 0 {
		t.Errorf("EventSource: %d error events", got.SSE.Errors)
	}
}

// appendN appends n events of type typ, one request each, and returns
// their ids.
func appendN(t *testing.T, s *server, typ string, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		resp, err := client.Post(s.url+"/events", "application/json",
			strings.NewReader(fmt.Sprintf(`{"type":%q,"entity":"browser-%d","data":{"i":%d}}`, typ, i, i)))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("append: %d %v", resp.StatusCode, err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}
