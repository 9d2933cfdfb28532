// Package standalone serves an http.Handler on a TCP port until the process
// is told to stop; then it stops accepting, lets requests in flight finish
// (so every append that was acknowledged, or is about to be, is on disk),
// and returns.
package standalone

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os/signal"
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
}

// Slow clients: a request's headers must arrive within ReadHeaderTimeout,
// and its body at no less than minBodyRate after a grace period, so a
// client that dribbles bytes cannot hold a connection (and a goroutine)
// for ever, while a large upload on a slow line still gets through.
const (
	bodyGrace   = 30 * time.Second
	minBodyRate = 16 << 10 // bytes per second
)

// bodyDeadline sets each request's read deadline from its length.
func bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := bodyGrace
		if r.ContentLength > 0 {
			d += time.Duration(r.ContentLength/minBodyRate) * time.Second
		} else if r.ContentLength < 0 {
			d = 10 * time.Minute // chunked: its length is unknown
		}
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// Serve listens on addr and serves h until SIGTERM or SIGINT (or ctx ends).
func Serve(ctx context.Context, addr string, h http.Handler, opts Options) error {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           bodyDeadline(h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         opts.TLS,
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
