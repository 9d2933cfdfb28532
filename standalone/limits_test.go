package standalone

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs Serve with opts on a free port until the test ends.
func serve(t *testing.T, h http.Handler, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	opts.Ready = func(a net.Addr) { ready <- a }
	go func() { done <- Serve(ctx, "127.0.0.1:0", h, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return (<-ready).String()
}

// readBodyHandler reads the whole body and answers how much, or 400.
var readBodyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "read %d", n)
})

// TestSlowBody: a body that trickles in below the minimum rate loses its
// connection after the grace period, whatever length it declared (1 TB
// used to buy a deadline of two years); a fast large body gets through.
func TestSlowBody(t *testing.T) {
	addr := serve(t, readBodyHandler, Options{BodyGrace: 300 * time.Millisecond, MinBodyRate: 1000})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", int64(1)<<40)
	cut := make(chan struct{})
	go func() { // half a byte a second, or so, until the server hangs up
		defer close(cut)
		for i := 0; i < 600; i++ {
			if _, err := conn.Write([]byte{'x'}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	select {
	case <-cut:
	case <-time.After(50 * time.Second):
		t.Fatal("a body trickling in at 10 bytes/s still connected after 50 s (grace 300 ms, minimum 1000 bytes/s)")
	}

	// 8 MB in one go: far above the minimum rate, so never cut.
	body := strings.Repeat("y", 8<<20)
	resp, err := http.Post("http://"+addr+"/x", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf("read %d", len(body)) {
		t.Fatalf("fast 8 MB body: %d %q", resp.StatusCode, b)
	}
}

// TestMaxConns: no more than MaxConns connections are served at once; the
// others wait, and are served once one closes.
func TestMaxConns(t *testing.T) {
	const max, clients = 2, 5
	var active, peak atomic.Int32
	entered := make(chan struct{}, clients)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		active.Add(-1)
		w.Header().Set("Connection", "close") // free the slot for the next client
		io.WriteString(w, "ok")
	})
	addr := serve(t, h, Options{MaxConns: max})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before Serve's: a failed test must not wait for the drain
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	for i := 0; i < max; i++ {
		<-entered
	}
	// The others are connected but not accepted: none can enter. (Waiting
	// longer can only make a broken cap more visible, never fail a good one.)
	time.Sleep(300 * time.Millisecond)
	if n := active.Load(); n != max {
		t.Fatalf("%d requests in handlers at once with MaxConns %d", n, max)
	}
	free()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p > max {
		t.Fatalf("peak %d connections served at once, cap %d", p, max)
	}
}

// TestEarlyAnswer: an answer given without reading the body (a 413 for a
// declared 1 TB, a 401) goes out at once, and without a 100 Continue, as
// net/http sends it. The slow-body wrapper used to hide the body from
// net/http, which then read up to 256 KB of it before answering: a client
// that waits for the answer before sending waited the whole grace period.
func TestEarlyAnswer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})
	addr := serve(t, h, Options{BodyGrace: time.Hour})
	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /x HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", expect, int64(1)<<40)
		// Bounds a hang (the grace is an hour), not a speed.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: no answer before the body: %v", expect, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%q: status %d, want 413 first", expect, resp.StatusCode)
		}
	}
}

// TestMaxConnsIdle: connections that hold a slot without a request in
// progress (never sent one, or idle between requests) make room for a new
// one when the server is full, the longest idle first; they used to keep
// every new client waiting in the accept queue until they timed out (10 s
// each round for silent ones, 120 s for idle keep-alives: 2,000 idle
// connections kept a new client out for minutes).
func TestMaxConnsIdle(t *testing.T) {
	const max = 2
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	addr := serve(t, h, Options{MaxConns: max})
	var held []net.Conn
	for i := 0; i < max; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if i == 0 { // one idle keep-alive, after a request; the other silent
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		held = append(held, conn)
	}
	for i := 0; i < 2*max; i++ {
		c := http.Client{Timeout: 30 * time.Second} // bounds a hang: idle keep-alives last 120 s
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d with %d idle connections open (cap %d): %v", i, max, max, err)
		}
		resp.Body.Close()
		c.CloseIdleConnections()
	}
	for i, conn := range held {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle connection %d still open: %v", i, err)
		}
	}
}

// TestStalledReader: a client that asks for a large answer and stops
// reading it loses its connection once the answer makes no progress for
// WriteStall, so it cannot hold a slot for ever: with the only slot taken
// by such a client, another is served. It used to wait for good.
func TestStalledReader(t *testing.T) {
	big := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(w, "ok")
			return
		}
		for i := 0; i < 256; i++ { // 256 MB: more than any socket buffers
			if _, err := w.Write(big); err != nil {
				return
			}
		}
	})
	addr := serve(t, h, Options{MaxConns: 1, WriteStall: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	c := http.Client{Timeout: 30 * time.Second}                  // bounds a hang, not a speed
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a request while a stalled reader holds the only slot: %v", err)
	}
	resp.Body.Close()
}
