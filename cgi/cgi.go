// Package cgi runs an http.Handler as a CGI program (one request per
// process) or under a FastCGI process manager such as mod_fcgid, mending
// what real web servers do differently from Go's own test host
// (tests/apache/e2e.sh checks each on a real Apache):
//
//   - routing: r.URL.Path is set to PATH_INFO, the path below the script,
//     whatever REQUEST_URI said (a rewrite from /api/… leaves /api in it);
//   - chunked uploads: Apache passes them with no CONTENT_LENGTH, and the
//     body must then be read to the end of standard input;
//   - early answers: the body is always drained before the program exits,
//     or mod_cgid drops the answer;
//   - short bodies: standard input that ends before CONTENT_LENGTH bytes is
//     a read error (io.ErrUnexpectedEOF), as net/http makes it in
//     standalone, not a complete body: the client went away mid-request,
//     and what arrived must not be stored as if it were all;
//   - credentials: behind a rewrite with its own RewriteEngine, or passed
//     with SetEnvIf/RewriteRule [E=…], the Authorization header arrives as
//     REDIRECT_HTTP_AUTHORIZATION (or HTTP_AUTHORIZATION set by the
//     server's configuration); it is put back in the request;
//   - request ids: mod_unique_id's UNIQUE_ID becomes the request's id, so
//     an answer's id is the one in Apache's own logs.
package cgi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"runtime/debug"
	"strings"
)

// IsCGI reports whether the process was started as a CGI program.
func IsCGI() bool { return os.Getenv("GATEWAY_INTERFACE") != "" }

// Serve answers the one request of this CGI process with h.
func Serve(h http.Handler) error {
	return cgi.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fix(r, os.Getenv("PATH_INFO"), os.Getenv("HTTP_TRANSFER_ENCODING"), os.Getenv("CONTENT_LENGTH"), os.Stdin)
		fixAuth(r, os.Getenv)
		fixRequestID(r, os.Getenv)
		run(h, w, r) // a cut answer ends as far as it got: nothing better is left
		// Read what the handler left unread, so the server sends the answer.
		io.Copy(io.Discard, r.Body)
		io.Copy(io.Discard, os.Stdin)
	}))
}

// run calls h and recovers its panic, as net/http's server does for a
// connection: http.ErrAbortHandler, the handler's way of cutting an answer
// whose status is already sent, quietly (the handler has logged why), any
// other with its stack on standard error (the web server's error log). It
// reports whether the answer was cut. Unrecovered, the panic would print a
// goroutine dump for every cut read under CGI, and under FastCGI end the
// process and every request in flight in it.
func run(h http.Handler, w http.ResponseWriter, r *http.Request) (cut bool) {
	defer func() {
		if v := recover(); v != nil {
			cut = true
			if v != http.ErrAbortHandler {
				fmt.Fprintf(os.Stderr, "strata: panic serving %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
			}
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

// fix applies the environment of a CGI request to r (a pure function of its
// inputs, for tests).
func fix(r *http.Request, pathInfo, transferEncoding, contentLength string, stdin io.Reader) {
	if pathInfo == "" {
		pathInfo = "/"
	}
	r.URL.Path = pathInfo
	r.URL.RawPath = ""
	if contentLength == "" && strings.Contains(strings.ToLower(transferEncoding), "chunked") {
		r.Body = io.NopCloser(stdin)
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
	}
	exact(r)
}

// exact makes r's body fail with io.ErrUnexpectedEOF if it ends before
// r.ContentLength bytes. net/http/cgi reads standard input through an
// io.LimitReader, which takes an early end for the end of the body.
func exact(r *http.Request) {
	if r.ContentLength > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &exactBody{ReadCloser: r.Body, left: r.ContentLength}
	}
}

// exactBody reads exactly left bytes: fewer is an error, more are not read.
type exactBody struct {
	io.ReadCloser
	left int64
}

func (b *exactBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	switch {
	case b.left <= 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// fixAuth restores the Authorization header from the variables Apache
// uses when the header reached it only through a rewrite or SetEnvIf.
func fixAuth(r *http.Request, getenv func(string) string) {
	if r.Header.Get("Authorization") != "" {
		return
	}
	for _, k := range []string{"HTTP_AUTHORIZATION", "REDIRECT_HTTP_AUTHORIZATION", "REDIRECT_REDIRECT_HTTP_AUTHORIZATION"} {
		if v := getenv(k); v != "" {
			r.Header.Set("Authorization", v)
			return
		}
	}
}

// fixRequestID passes on the id Apache's mod_unique_id gave the request
// (UNIQUE_ID, also what %{UNIQUE_ID}e logs) as X-Request-Id, which the
// handler takes as the request's id: the server's id, not the client's,
// when there is one.
func fixRequestID(r *http.Request, getenv func(string) string) {
	if id := getenv("UNIQUE_ID"); id != "" {
		r.Header.Set("X-Request-Id", id)
	}
}

// IsFastCGI reports whether standard input is a socket, which is how a
// FastCGI process manager (mod_fcgid) starts its workers.
func IsFastCGI() bool {
	st, err := os.Stdin.Stat()
	return err == nil && st.Mode()&os.ModeSocket != 0
}
