package api

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"strata/internal/fileutil"
	"strata/metrics"
)

// The metrics of an installation live in one file every process shares
// (metrics.FileName in the system directory): a CGI process maps it for
// its one request and adds to it, so GET /metrics means the same in every
// mode. Metrics are best-effort: if the file cannot be opened (an
// unwritable system directory, a full disk) the request is served all the
// same and its observations are lost; the reason is logged once per
// process.

// counters returns the shared metrics file, opening it on first use; nil
// (on which every method does nothing) if it cannot be opened or metrics
// are off.
func (h *Handler) counters() *metrics.Set {
	h.metricsOnce.Do(func() {
		if h.cfg.NoMetrics || h.cfg.DataDir == "" {
			return
		}
		dir := filepath.Join(h.cfg.DataDir, systemDir)
		path := filepath.Join(dir, metrics.FileName)
		var err error
		if h.metrics, err = metrics.Open(path); errors.Is(err, fs.ErrNotExist) {
			// The first request of a new data directory: make the system
			// directory (not stat'ed first on every CGI request).
			if err = fileutil.MkdirAll(dir, 0o700); err == nil {
				h.metrics, err = metrics.Open(path)
			}
		}
		if err != nil {
			h.log.Warn("metrics are off in this process: the metrics file cannot be opened", "err", err.Error())
		}
	})
	return h.metrics
}

// observer passes the tenant logs' work (fsyncs, group commits, lock
// waits) to the metrics file, opened when first told of something.
type observer struct{ h *Handler }

func (o observer) Synced(d time.Duration)     { o.h.counters().Synced(d) }
func (o observer) Group(n int)                { o.h.counters().Group(n) }
func (o observer) LockWaited(d time.Duration) { o.h.counters().LockWaited(d) }

// statusWriter remembers the status of the answer, for the request
// counters. Unwrap lets http.ResponseController (flushes, hijacks) reach
// the writer underneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ReadFrom keeps the server's sendfile path for blobs.
func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{s.ResponseWriter}, r)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe counts the request r, answered on route rt (nil: no route)
// with what sw saw, begun at t0.
func (h *Handler) observe(sw *statusWriter, r *http.Request, rt *route, ri *reqInfo, t0 time.Time) {
	if h.cfg.NoMetrics {
		return
	}
	m := h.counters()
	if m == nil {
		return
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	method, pattern := r.Method, ""
	if rt != nil {
		method, pattern = rt.method, rt.path
	}
	if !knownMethod(method) {
		method = "other"
	}
	m.HTTP(method, pattern, code, time.Since(t0))
	switch {
	case ri.errCode == "quota_exceeded":
		tenant := "_none"
		if ri.c != nil && ri.c.t != nil {
			tenant = ri.c.t.name
		} else if ri.c != nil && ri.c.who.Tenant != "" {
			tenant = ri.c.who.Tenant
		}
		m.QuotaRefused(tenant, ri.quota)
	case authFailure(ri.errCode):
		m.AuthFailed(ri.errCode)
	}
}

// knownMethod: a method label is one of these or "other", so a client
// cannot make series of its own.
func knownMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

// readKind names the kind of read a route is, for strata_reads_total:
// the first segment of the pattern of a GET or HEAD on the tenant's data.
// (Not looked up in the route table, which refers to metricsGet.)
func readKind(method, pattern string) string {
	if method != "GET" && method != "HEAD" {
		return ""
	}
	kind, _, _ := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
	switch kind {
	case "events", "head", "stream", "storage", "entities", "snapshots", "projections", "replays", "consumers", "cache", "broadcast":
		return kind
	}
	return ""
}

// metricsGet serves GET /metrics: the installation's counters, in the
// Prometheus text format.
func (h *Handler) metricsGet(w http.ResponseWriter, r *http.Request, c *call) {
	wr := metrics.Writer{B: make([]byte, 0, 64<<10)}
	h.counters().Write(&wr, metrics.Options{ReadKind: readKind})
	w.Header().Set("Content-Type", metrics.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(wr.B)
	}
}
