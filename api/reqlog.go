package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"

	"strata/jsonx"
)

// RequestIDHeader carries each request's id on every answer. The same id
// is in the request_id member of an error answer and in every line the
// server logs about the request, so a client's report of a failure leads
// the operator to its details.
const RequestIDHeader = "Strata-Request-Id"

// incomingIDHeader is the header a proxy in front (or the cgi package, from
// Apache's mod_unique_id) sets to the id it gave the request: when it is a
// plain token of at most 64 characters strata uses it too, so that one id
// runs through both servers' logs.
const incomingIDHeader = "X-Request-Id"

// reqInfo is what the handler knows of a request for its log lines.
type reqInfo struct {
	id  string
	log *slog.Logger
	c   *call // once routed: the tenant and principal
	// errCode is the code of the error answered, quota the quota that
	// refused the request: for the metrics.
	errCode, quota string
}

type reqInfoKey struct{}

// begin gives r its id, sends the id in the answer's header and returns r
// with the reqInfo the log lines need.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) (*http.Request, *reqInfo) {
	ri := &reqInfo{id: newRequestID(r.Header.Get(incomingIDHeader)), log: h.log}
	w.Header().Set(RequestIDHeader, ri.id)
	return r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri)), ri
}

// newRequestID returns incoming if it is a sane id, or else a new one: 8
// random bytes in hex, which costs nothing at start-up (math/rand/v2 seeds
// from the runtime) and is unique enough to find one request in a log.
func newRequestID(incoming string) string {
	if saneID(incoming) {
		return incoming
	}
	var b [8]byte
	u := rand.Uint64()
	for i := range b {
		b[i] = byte(u >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// saneID reports whether s can stand as a request id in answers and logs:
// 1–64 letters, digits and ._@- (mod_unique_id's ids, UUIDs, hex).
func saneID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-') {
			return false
		}
	}
	return true
}

func infoOf(r *http.Request) *reqInfo {
	if r != nil {
		if ri, _ := r.Context().Value(reqInfoKey{}).(*reqInfo); ri != nil {
			return ri
		}
	}
	return nil
}

// requestID is r's id ("-" for a request that did not come through
// ServeHTTP, which only tests make).
func requestID(r *http.Request) string {
	if ri := infoOf(r); ri != nil {
		return ri.id
	}
	return "-"
}

// defaultLogger writes text lines to standard error: Apache keeps a CGI
// program's standard error in its error log.
func defaultLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// logger returns the logger of the request's lines, each with its id;
// h's when ri is nil.
func (ri *reqInfo) logger(h *Handler) *slog.Logger {
	if ri == nil {
		l := defaultLogger()
		if h != nil {
			l = h.log
		}
		return l.With("request_id", "-")
	}
	return ri.log.With("request_id", ri.id)
}

// logFailure logs a request that failed on the server's side, with the
// error's full text, which its answer does not show.
func logFailure(r *http.Request, level slog.Level, e *apiError, err error) {
	attrs := []slog.Attr{
		slog.Int("status", e.status),
		slog.String("code", e.code),
	}
	ri := infoOf(r)
	if r != nil {
		attrs = append(attrs, slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)))
	}
	if ri != nil && ri.c != nil {
		if ri.c.t != nil {
			attrs = append(attrs, slog.String("tenant", ri.c.t.name))
		}
		if ri.c.who.Kind != "" {
			attrs = append(attrs, slog.String("principal", ri.c.who.String()))
		}
	}
	attrs = append(attrs, slog.String("err", err.Error()))
	ri.logger(nil).LogAttrs(context.Background(), level, "request failed", attrs...)
}

// writeFailed is a write of the answer that failed: the client went away,
// which is no fault of the server's.
type writeFailed struct{ err error }

func (e *writeFailed) Error() string { return "writing the answer: " + e.err.Error() }
func (e *writeFailed) Unwrap() error { return e.err }

// clientGone marks err, from a write of the answer, as writeFailed.
func clientGone(err error) error {
	if err == nil {
		return nil
	}
	return &writeFailed{err}
}

// logCut logs an answer cut short after its status was sent, which the
// client sees only as a broken connection: at level Error when the server
// failed, Info when the client went away.
func logCut(r *http.Request, err error) {
	level := slog.LevelError
	var wf *writeFailed
	if errors.As(err, &wf) {
		level = slog.LevelInfo
	}
	infoOf(r).logger(nil).LogAttrs(context.Background(), level, "answer cut short",
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)), slog.String("err", err.Error()))
}

// cutLine is the last line of an NDJSON answer cut short after its status
// was sent: an error in the form of every error answer, not an event.
func cutLine(r *http.Request) []byte {
	b := []byte(`{"error":{"code":"internal","message":`)
	b = jsonx.AppendString(b, "answer cut short: "+faultMessage["internal"]+"; see the server log for request "+requestID(r))
	b = append(b, `,"request_id":`...)
	b = jsonx.AppendString(b, requestID(r))
	return append(b, "}}\n"...)
}

// recoverPanic answers a request whose handler panicked as an internal
// error and logs the panic with its stack, under the request's id. An
// http.ErrAbortHandler, a deliberate cut, goes on up.
func recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	writeError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
}

// Broken is the handler of a CGI program that cannot serve (its
// configuration is wrong): it answers the request as an internal error and
// logs err under the request's id, so the client gets a JSON answer with
// the id rather than the web server's error page, and the operator finds
// the reason in the error log.
func Broken(err error, logger *slog.Logger) http.Handler {
	h := &Handler{log: logger}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = h.begin(w, r)
		writeError(w, r, fmt.Errorf("the server cannot start: %w", err))
	})
}
