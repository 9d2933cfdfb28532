package api

import (
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"strata/audit"
	"strata/auth"
	"strata/log"
	"strata/metrics"
)

// Defaults for Config.
const (
	DefaultMaxBody   = 64 << 20 // one append request
	DefaultMaxEvent  = 1 << 20  // one event's data and meta
	DefaultMaxEvents = 10000    // events in one append request
	// DefaultMaxInflight is the memory appends in flight may hold together
	// in one process (see limits.go).
	DefaultMaxInflight = 256 << 20
	DefaultTenant      = "default"
	DefaultSessionTTL  = 12 * time.Hour
	// DefaultCatchupBudget is Config.CatchupBudget's default.
	DefaultCatchupBudget = 2 * time.Second
)

// Config is what the handler needs to know; main fills it from flags, the
// environment or strata.conf.
type Config struct {
	DataDir  string
	MaxBody  int64 // bytes in one append request
	MaxEvent int64 // bytes of data+meta in one event
	// MaxEvents is the most events in one append request.
	MaxEvents int
	// MaxInflight bounds the bytes that append requests being read,
	// parsed and stored hold together in this process; a request past it
	// is answered 503 with Retry-After. Negative: no bound.
	MaxInflight int64
	MaxBlob     int64 // bytes in one blob; 0 = no limit
	Log         log.Options
	NoSync      bool // UNSAFE: no fsync anywhere (benchmarks of the CPU path only)

	// NoAuth serves every request without credentials, as an
	// administrator, in tenant "default" unless the request names
	// another. UNSAFE anywhere others can reach: for local development
	// and tests.
	NoAuth bool
	// UsersFile is the htpasswd file of users with passwords; default
	// <data>/system/users.
	UsersFile string
	// JWT verifies bearer tokens from an identity provider; nil refuses
	// them.
	JWT *auth.JWTConfig
	// SessionTTL is how long a session token from POST /session lasts.
	SessionTTL time.Duration
	// LongRunning says the handler lives in a server process (standalone
	// or FastCGI) rather than one CGI request: audit records are written
	// in batches and successful password checks are remembered briefly.
	LongRunning bool
	// Origins are the browser origins allowed in every tenant, besides
	// each tenant's own; a preflight that names no tenant is checked
	// against these alone.
	Origins []string
	// SetupKey, when set, lets POST /setup exchange it once for the first
	// administrator's token, on hosts where the CLI cannot run.
	SetupKey string
	// AuditAppends records every append request (principal, tenant, seq
	// range) in the audit log too, besides the meta.by that every event
	// carries in its own chain: for installations that want GET /audit to
	// answer "what did this credential write". It costs a second durable
	// write per append in CGI.
	AuditAppends bool
	// TrustProxy takes the client's address from X-Forwarded-For (the
	// last address in it), for a server behind a reverse proxy.
	TrustProxy bool
	// SnapshotEvery is how many versions of an entity lie between two
	// automatic snapshots (written by the reads that fold through them);
	// 0 is projections.DefaultSnapshotEvery, negative turns automatic
	// snapshots and the latest-state cache off.
	SnapshotEvery int
	// CatchupBudget is how long a read of a projection's result may
	// spend catching it up from the log (and a CGI request moving a
	// replay on); past it the answer is the result so far, marked behind.
	// Default DefaultCatchupBudget.
	CatchupBudget time.Duration
	// StreamTimeout ends a stream (GET /stream) this long after it began,
	// with an "end" message and the resume point, so that the client
	// reconnects. 0: DefaultStreamTimeout under CGI, where a stream holds
	// a process; none in a long-running process.
	StreamTimeout time.Duration
	// Heartbeat is how often an idle stream sends a comment; default
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger gets what the operator must know and a client is not told:
	// the details of every 5xx answer, under the request's id. Default:
	// text lines on standard error, which Apache keeps in its error log.
	Logger *slog.Logger
	// NoMetrics keeps this process from counting anything in the shared
	// metrics file (GET /metrics still answers, with what others count).
	NoMetrics bool
	// CompactAge, in a long-running server, compresses in the background
	// the sealed segments of the tenants open in this process, and of the
	// audit log, once they have not been written for this long
	// (compaction.go); 0: never.
	CompactAge time.Duration
}

// Handler serves the HTTP API for every tenant under Config.DataDir.
type Handler struct {
	cfg Config
	// draining is closed by Drain: long-polls stop waiting.
	draining latch
	acc      *accounts
	log      *slog.Logger

	// websockets counts the WebSocket streams running (hijacked: the
	// server's drain does not wait for them; Close does).
	websockets atomic.Int64

	mu      sync.Mutex
	tenants map[string]*tenant
	closing []*tenant // dropped and let go of, closed by unlock

	inflight *budget // append requests' memory; nil: unbounded

	metricsOnce sync.Once
	metrics     *metrics.Set // nil: off, or the file could not be opened

	auditOnce sync.Once
	audit     *audit.Log
	auditErr  error

	// compact is the background compaction (compaction.go); nil when
	// there is none.
	compact *compactor
}

// New returns the handler. It opens tenants lazily, on their first request.
func New(cfg Config) *Handler {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxEvent <= 0 {
		cfg.MaxEvent = DefaultMaxEvent
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.CatchupBudget <= 0 {
		cfg.CatchupBudget = DefaultCatchupBudget
	}
	if cfg.StreamTimeout <= 0 && !cfg.LongRunning {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.UsersFile == "" {
		cfg.UsersFile = filepath.Join(cfg.DataDir, systemDir, "users")
	}
	cfg.Log.NoSync = cfg.Log.NoSync || cfg.NoSync
	h := &Handler{cfg: cfg, tenants: map[string]*tenant{}, log: cfg.Logger, inflight: newBudget(cfg.MaxInflight, cfg.LongRunning)}
	if h.log == nil {
		h.log = defaultLogger()
	}
	h.acc = newAccounts(&h.cfg)
	h.startCompactor()
	return h
}

// Close closes every open tenant; call it after the server has drained.
func (h *Handler) Close() error {
	// A handler that closes is shutting down: streams still open (those
	// that took their connection over, which a server's drain does not
	// wait for, and whose Drain from standalone.Options.OnShutdown may not
	// have run yet) end saying so, not as if the tenant were reopened.
	h.Drain()
	h.waitWebSockets(wsCloseWait)
	// Before the tenants close: it holds references to those it works on.
	h.stopCompactor()
	h.mu.Lock()
	defer h.mu.Unlock()
	var first error
	for name, t := range h.tenants {
		delete(h.tenants, name)
		t.dropped = true
		t.gone.close()
		if t.refs > 0 {
			continue // closed by its last release
		}
		if err := t.close(); err != nil && first == nil {
			first = err
		}
	}
	if h.audit != nil {
		if err := h.audit.Close(); err != nil && first == nil {
			first = err
		}
	}
	h.acc.close()
	if h.cfg.LongRunning {
		// A CGI process exits next, which unmaps the file for nothing;
		// munmap would cost a TLB shootdown on every core it ran on.
		h.metrics.Close()
	}
	return first
}
