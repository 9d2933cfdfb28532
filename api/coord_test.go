package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
)

// A lock whose fdatasync fails, and a cache write on a full disk, answer a
// clean JSON error (no path) and change nothing: the next lock gets the
// next token, the cache keeps its value.
func TestCoordFaults(t *testing.T) {
	var l faultLog
	h := New(Config{DataDir: t.TempDir(), NoAuth: true, Logger: l.logger()}) // synced, as in production
	t.Cleanup(func() { h.Close() })
	lock := func() map[string]any {
		w := serve(h, "POST", "/mutex/m/lock?ttl=60", nil)
		var g map[string]any
		json.Unmarshal(w.Body.Bytes(), &g)
		return g
	}
	if g := lock(); g["token"] != float64(1) {
		t.Fatalf("first lock: %v", g)
	}
	serve(h, "POST", "/mutex/m/unlock", strings.NewReader(`{"token":1}`))
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync && filepath.Base(path) == "mutex" {
			return syscall.EIO
		}
		return nil
	})
	w := serve(h, "POST", "/mutex/m/lock?ttl=60", nil)
	undo()
	checkFault(t, w, h.cfg.DataDir, 500, "internal", &l, "input/output error")
	if g := lock(); g["token"] != float64(2) {
		t.Fatalf("lock after the failed one: %v, want token 2", g)
	}

	if w := serve(h, "PUT", "/cache/k", strings.NewReader(`"old"`)); w.Code != 200 {
		t.Fatalf("put: %d %s", w.Code, w.Body)
	}
	undo = fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpWrite && strings.Contains(path, "/coord/") {
			return syscall.ENOSPC
		}
		return nil
	})
	w = serve(h, "PUT", "/cache/k", strings.NewReader(`"new"`))
	undo()
	if w.Code != 507 || errorBody(t, w)["code"] != "disk_full" || strings.Contains(w.Body.String(), h.cfg.DataDir) {
		t.Fatalf("put on a full disk: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/cache/k", nil); w.Body.String() != `"old"` {
		t.Fatalf("after the failed put: %s", w.Body)
	}
}

// A broadcast stream: messages of its channel only, ids to resume from
// with Last-Event-ID, and an end event when the server drains.
func TestBroadcastStream(t *testing.T) {
	h := New(Config{DataDir: t.TempDir(), NoAuth: true, NoSync: true, LongRunning: true})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	post := func(ch, body string) {
		t.Helper()
		res, err := http.Post(srv.URL+"/broadcast/"+ch, "application/json", strings.NewReader(body))
		if err != nil || res.StatusCode != 202 {
			t.Fatalf("post: %v %v", res, err)
		}
		res.Body.Close()
	}
	open := func(lastID string) (*bufio.Scanner, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/broadcast/c/stream", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("stream: %v %v", res, err)
		}
		return bufio.NewScanner(res.Body), func() { cancel(); res.Body.Close() }
	}
	// next returns the next message's id, event and data.
	next := func(sc *bufio.Scanner) (id, event, data string) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for sc.Scan() {
				l := sc.Text()
				switch {
				case l == "" && data != "":
					return
				case strings.HasPrefix(l, "id: "):
					id = l[4:]
				case strings.HasPrefix(l, "event: "):
					event = l[7:]
				case strings.HasPrefix(l, "data: "):
					data = l[6:]
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("no message within 5 s")
		}
		return id, event, data
	}
	sc, stop := open("")
	post("other", `1`)
	post("c", "{ \"a\" : 1 }")
	id, _, data := next(sc)
	if data != `{"a":1}` {
		t.Fatalf("message %q (id %s)", data, id)
	}
	stop()
	post("c", `2`)
	// Reconnecting with the id of the last message seen gets the one
	// posted meanwhile.
	sc, stop = open(id)
	defer stop()
	if _, _, data := next(sc); data != `2` {
		t.Fatalf("after Last-Event-ID: %q", data)
	}
	h.Drain()
	if id2, event, data := next(sc); event != "end" || data != `{"reason":"shutdown","after":`+id2+`}` || id2 == id {
		t.Fatalf("on drain: event %q data %q", event, data)
	}
}

// A broadcast stream ends at Config.StreamTimeout with its resume point.
func TestBroadcastStreamTimeout(t *testing.T) {
	h := New(Config{DataDir: t.TempDir(), NoAuth: true, NoSync: true, LongRunning: true, StreamTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	start := time.Now()
	res, err := http.Get(srv.URL + "/broadcast/c/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(b), "event: end\nid: 0\ndata: {\"reason\":\"timeout\",\"after\":0}\n") || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("after %v: %q", time.Since(start), b)
	}
}
