package api

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"strata/blobs"
	"strata/log"
)

// Defaults for Config.
const (
	DefaultMaxBody  = 64 << 20 // one append request
	DefaultMaxEvent = 1 << 20  // one event's data and meta
	DefaultTenant   = "default"
)

// Config is what the handler needs to know; main fills it from flags, the
// environment or strata.conf.
type Config struct {
	DataDir  string
	MaxBody  int64 // bytes in one append request
	MaxEvent int64 // bytes of data+meta in one event
	MaxBlob  int64 // bytes in one blob; 0 = no limit
	Log      log.Options
	NoSync   bool // UNSAFE: no fsync anywhere (benchmarks of the CPU path only)
}

// Handler serves the HTTP API for every tenant under Config.DataDir.
type Handler struct {
	cfg Config

	mu      sync.Mutex
	tenants map[string]*tenant
}

// tenant is one tenant's open log and blob store, kept open between
// requests in long-running modes.
type tenant struct {
	name string
	log  *log.Log

	// The blob store opens on first use: a CGI request about events need
	// not pay for it.
	blobDir   string
	blobOpts  blobs.Options
	blobsOnce sync.Once
	blobs     *blobs.Store
	blobsErr  error

	// failedAt is when the log last refused appends after a failed write;
	// it is reopened (and so recovered) on a later request.
	failedAt time.Time
	// checkedAt is when the log was last checked for a replaced index
	// directory (someone deleted it to have it rebuilt).
	checkedAt time.Time
}

// store returns the tenant's blob store, opening it on first use.
func (t *tenant) store() (*blobs.Store, error) {
	t.blobsOnce.Do(func() { t.blobs, t.blobsErr = blobs.Open(t.blobDir, t.blobOpts) })
	return t.blobs, t.blobsErr
}

// New returns the handler. It opens tenants lazily, on their first request.
func New(cfg Config) *Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxEvent <= 0 {
		cfg.MaxEvent = DefaultMaxEvent
	}
	cfg.Log.NoSync = cfg.Log.NoSync || cfg.NoSync
	return &Handler{cfg: cfg, tenants: map[string]*tenant{}}
}

// TenantDir is where a tenant's files live.
func TenantDir(dataDir, name string) string { return filepath.Join(dataDir, "tenants", name) }

// tenant returns the open tenant, opening it on first use, and reopening
// it if its log failed a write over a second ago (reopening runs recovery,
// which either finds the log whole again or reports what is wrong) or if
// its index directory was replaced (checked at most once a second).
func (h *Handler) tenant(name string) (*tenant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.tenants[name]; t != nil {
		stale := false
		if time.Since(t.checkedAt) > time.Second {
			t.checkedAt = time.Now()
			stale = t.log.Stale()
		}
		if !stale && (t.failedAt.IsZero() || time.Since(t.failedAt) < time.Second) {
			return t, nil
		}
		delete(h.tenants, name)
		// Requests in flight finish on the old log; give them time.
		time.AfterFunc(time.Minute, func() { t.log.Close() })
	}
	dir := TenantDir(h.cfg.DataDir, name)
	l, err := log.Open(dir, h.cfg.Log)
	if err != nil {
		return nil, err
	}
	t := &tenant{name: name, log: l, checkedAt: time.Now(),
		blobDir: filepath.Join(dir, "blobs"), blobOpts: blobs.Options{MaxSize: h.cfg.MaxBlob, NoSync: h.cfg.NoSync}}
	h.tenants[name] = t
	return t, nil
}

// failed notes that t's log refused an append after a failed write.
func (h *Handler) failed(t *tenant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.failedAt.IsZero() {
		t.failedAt = time.Now()
	}
}

// Close closes every open tenant; call it after the server has drained.
func (h *Handler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first error
	for name, t := range h.tenants {
		if err := t.log.Close(); err != nil && first == nil {
			first = err
		}
		delete(h.tenants, name)
	}
	return first
}

// ServeHTTP routes a request. r.URL.Path is the path below the mount point.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	switch {
	case p == "/events":
		h.withTenant(w, r, h.events, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost)
	case strings.HasPrefix(p, "/events/"):
		h.withTenant(w, r, h.event, http.MethodGet, http.MethodHead)
	case p == "/head":
		h.withTenant(w, r, h.head, http.MethodGet, http.MethodHead)
	case p == "/storage" || p == "/storage/":
		h.withTenant(w, r, h.storagePut, http.MethodPut, http.MethodPost)
	case strings.HasPrefix(p, "/storage/"):
		h.withTenant(w, r, h.storage, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
	case p == "/health":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	default:
		writeError(w, errorf(http.StatusNotFound, "no_route", "no such path: %s", p))
	}
}

type tenantHandler func(http.ResponseWriter, *http.Request, *tenant)

// withTenant checks the method, opens the tenant and runs fn.
func (h *Handler) withTenant(w http.ResponseWriter, r *http.Request, fn tenantHandler, methods ...string) {
	if !allow(w, r, methods...) {
		return
	}
	t, err := h.tenant(DefaultTenant)
	if err != nil {
		writeError(w, err)
		return
	}
	fn(w, r, t)
}

// allow answers 405 with an Allow header unless r's method is listed.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(methods, ", ")))
	return false
}
