// Package standalone serves an http.Handler on a TCP port until the process
// is told to stop; then it stops accepting, lets requests in flight finish
// (so every append that was acknowledged, or is about to be, is on disk),
// and returns. Meanwhile it bounds what slow or many clients can hold: the
// connections open at once (Options.MaxConns), how slowly a request's
// headers and body may arrive, whatever length the body declares, and how
// long an answer may wait for a client that stopped reading it.
package standalone

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options tune the server.
type Options struct {
	// DrainTimeout bounds the wait for requests in flight at shutdown.
	DrainTimeout time.Duration
	// Ready, if set, is called with the listening address once accepting.
	Ready func(addr net.Addr)
	TLS   *tls.Config
	// MaxConns caps the connections open at once (DefaultMaxConns when 0,
	// no cap when negative). Past it, a new connection replaces the one
	// idle the longest (see limitListener), or waits in the kernel's
	// accept queue while every connection is busy with a request.
	MaxConns int
	// BodyGrace and MinBodyRate (bytes per second) bound slow request
	// bodies; see bodyDeadline. Zero means the defaults.
	BodyGrace   time.Duration
	MinBodyRate int64
	// WriteStall ends a connection whose answer makes no progress for
	// this long: the client stopped reading (writeStall when 0).
	WriteStall time.Duration
	// ErrorLog gets net/http's own complaints (TLS handshakes, malformed
	// connections); nil: the standard logger.
	ErrorLog *log.Logger
	// OnShutdown, if set, is called as the drain starts: to end requests
	// that would otherwise hold it for their own time (long-polls).
	OnShutdown func()
}

// DefaultMaxConns is the connection cap of a standalone server: each
// connection costs a goroutine and some 10 KB of buffers, and request
// bodies held in memory are bounded apart from it (api: in-flight bytes),
// so this keeps a flood of idle or slow connections from exhausting file
// descriptors and memory while serving far more clients than 2 cores can.
const DefaultMaxConns = 512

// Slow clients: a request's headers must arrive within ReadHeaderTimeout,
// and its body, after a grace period, at no less than minBodyRate on
// average, so a client that dribbles bytes cannot hold a connection (and a
// goroutine) for ever, while a large upload on a slow line still gets
// through. The declared length plays no part: declaring 1 TB buys nothing.
const (
	bodyGrace   = 30 * time.Second
	minBodyRate = 16 << 10 // bytes per second
)

// bodyDeadline gives each request's body a read deadline that moves
// forward as bytes arrive: grace + received/rate after the request began.
func bodyDeadline(h http.Handler, grace time.Duration, rate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		start := time.Now()
		rc.SetReadDeadline(start.Add(grace))
		if r.Body != nil && r.Body != http.NoBody {
			// On a copy of the request: net/http looks at the original's
			// body after the handler to decide how to finish (answer a
			// handler that read nothing at once, without 100 Continue);
			// one of its own types hidden behind ours, it would first read
			// up to 256 KB of the body, a slow client's whole grace period.
			r2 := new(http.Request)
			*r2 = *r
			r2.Body = &rateBody{ReadCloser: r.Body, rc: rc, start: start, grace: grace, rate: rate, set: start.Add(grace)}
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

// rateBody extends the connection's read deadline as the body arrives.
type rateBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	got   int64
	set   time.Time // the deadline last set
}

func (b *rateBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.got += int64(n)
	d := b.start.Add(b.grace + time.Duration(float64(b.got)/float64(b.rate)*float64(time.Second)))
	// Moving a deadline costs a timer reset: do it once a second at most.
	if d.Sub(b.set) >= time.Second {
		b.rc.SetReadDeadline(d)
		b.set = d
	}
	return n, err
}

// limitListener keeps at most cap(sem) connections open at once. When it
// is full, a new connection takes the place of the one idle the longest —
// open without a request in progress: none sent yet, or between requests
// (net/http's StateNew and StateIdle, reported to track) — so that idle
// or silent connections, however many, cannot keep a client out; it waits
// for a connection to close only when every one is busy with a request.
// (A keep-alive connection closed so is one any HTTP client expects: the
// server may close an idle connection at any time.)
type limitListener struct {
	net.Listener
	sem    chan struct{}
	done   chan struct{} // closed by Close, so a full Accept returns too
	closer sync.Once

	mu   sync.Mutex
	idle map[*limitConn]time.Time // since when each idle connection is so; mu

	stall time.Duration // see limitConn.Write
}

// newLimitListener caps ln at n connections (none when n <= 0); each
// connection's writes end it after stall without progress.
func newLimitListener(ln net.Listener, n int, stall time.Duration) *limitListener {
	l := &limitListener{Listener: ln, done: make(chan struct{}), idle: make(map[*limitConn]time.Time), stall: stall}
	if n > 0 {
		l.sem = make(chan struct{}, n)
	}
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for admitted := l.sem == nil; !admitted; {
		select {
		case l.sem <- struct{}{}:
			admitted = true
			continue
		default:
		}
		wait := l.closeIdlest()
		if wait == 0 {
			continue // one was closed: its slot is free
		}
		select {
		case l.sem <- struct{}{}:
			admitted = true
		case <-time.After(wait):
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	lc := &limitConn{Conn: c, stall: l.stall}
	lc.release = func() {
		l.mu.Lock()
		delete(l.idle, lc)
		l.mu.Unlock()
		if l.sem != nil {
			<-l.sem
		}
	}
	return lc, nil
}

// minIdle is how long a connection must have been idle before it may be
// closed for a new one: a client's request, just connected, is not yet
// read (StateNew) but arrives within it, so a burst of new connections
// does not close one another.
const minIdle = time.Second

// closeIdlest closes the connection idle the longest if it has been idle
// for minIdle, and returns 0; else how long to wait before trying again
// (minIdle when no connection is idle).
func (l *limitListener) closeIdlest() time.Duration {
	l.mu.Lock()
	var oldest *limitConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest == nil {
		l.mu.Unlock()
		return minIdle
	}
	if age := time.Since(since); age < minIdle {
		l.mu.Unlock()
		return minIdle - age
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	oldest.Close()
	return 0
}

// track is the server's ConnState hook: it keeps the set of idle
// connections.
func (l *limitListener) track(c net.Conn, s http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: ours is underneath
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle:
		if !lc.closed.Load() {
			l.idle[lc] = time.Now()
		}
	default:
		delete(l.idle, lc)
	}
}

func (l *limitListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	closed  atomic.Bool
	release func()

	stall       time.Duration
	deadlineSet atomic.Int64 // when the write deadline was last moved, Unix ns
}

// writeStall is how long an answer may make no progress: a client that
// stops reading (a GET of a million events, never read) would otherwise
// hold its connection, its goroutine and its slot under MaxConns for ever,
// and enough of them would keep every other client out.
const writeStall = 30 * time.Second

// writePiece bounds one write, so that the deadline measures progress, not
// the time a large write takes: a client reading 64 KB in writeStall, 2 KB/s,
// is slow but still served.
const writePiece = 64 << 10

// Write moves the write deadline stall ahead as the answer goes out.
func (c *limitConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		piece := p[:min(len(p), writePiece)]
		// Moving a deadline costs a timer reset: once a second at most.
		if now := time.Now(); now.UnixNano()-c.deadlineSet.Load() >= int64(time.Second) {
			c.deadlineSet.Store(now.UnixNano())
			c.Conn.SetWriteDeadline(now.Add(c.stall))
		}
		n, err := c.Conn.Write(piece)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (c *limitConn) Close() error {
	c.closed.Store(true)
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Serve listens on addr and serves h until SIGTERM or SIGINT (or ctx ends).
func Serve(ctx context.Context, addr string, h http.Handler, opts Options) error {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.BodyGrace <= 0 {
		opts.BodyGrace = bodyGrace
	}
	if opts.MinBodyRate <= 0 {
		opts.MinBodyRate = minBodyRate
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if opts.WriteStall <= 0 {
		opts.WriteStall = writeStall
	}
	limit := newLimitListener(ln, opts.MaxConns, opts.WriteStall)
	ln = limit
	srv := &http.Server{
		Handler:           bodyDeadline(h, opts.BodyGrace, opts.MinBodyRate),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         opts.TLS,
		ErrorLog:          opts.ErrorLog,
	}
	srv.ConnState = limit.track
	if opts.OnShutdown != nil {
		srv.RegisterOnShutdown(opts.OnShutdown)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if opts.TLS != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	err = srv.Shutdown(drain)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
