package api

import (
	"errors"
	"path/filepath"
	"sync"
	"time"

	"strata/blobs"
	"strata/coord"
	"strata/log"
	"strata/quota"
	"strata/tenants"
)

// tenant is one tenant's open log, blob store and configuration, kept
// between requests in long-running modes.
type tenant struct {
	name string
	dir  string
	log  *log.Log // nil in a tenant from tenantNoLog

	// The blob store and the rate table open on first use: a CGI
	// request about events need not pay for them.
	blobOpts  blobs.Options
	blobsOnce sync.Once
	blobs     *blobs.Store
	blobsErr  error
	rateOnce  sync.Once
	rate      *quota.Rate
	rateErr   error

	// cfg is the tenant's configuration as of cfgStamp, looked at again at
	// most once a second (and at once after a change made through this
	// handler). h.mu guards the three.
	cfg      tenants.Config
	cfgStamp string
	cfgAt    time.Time

	// failedAt is when the log last refused appends after a failed write;
	// it is reopened (and so recovered) on a later request.
	failedAt time.Time
	// checkedAt is when the log was last checked for a replaced index
	// directory (someone deleted it to have it rebuilt).
	checkedAt time.Time

	// refs counts the requests using the tenant (Handler.tenant takes a
	// reference, Handler.release lets go of it); dropped says the handler
	// no longer hands it out. The last release of a dropped tenant closes
	// it, so a long read that began before a reopen or a deletion finishes
	// on open files. h.mu guards both.
	refs    int
	dropped bool

	// ps is the tenant's projection engine and, in a long-running
	// server, its background worker (projworker.go).
	ps projState
	// tail wakes this process's long-polls of the tenant (GET
	// /events?wait=) when it appends.
	tail tailSignal
	// acks wakes this process's writers waiting for consumers
	// (Strata-Wait-Consumer) when it commits a position or an ack.
	acks tailSignal
	// The broadcast ring (coord.go) opens on first use, in long-running
	// modes only.
	ringOnce sync.Once
	ring     *coord.Ring
	ringErr  error
	// hub fans the tenant's new events out to this process's streams
	// (hub.go); gone is closed when the tenant is dropped, which ends
	// them (their clients reconnect to the tenant as it is now).
	hub  hub
	gone latch

	closeOnce sync.Once
	closeErr  error
}

// store returns the tenant's blob store, opening it on first use.
func (t *tenant) store() (*blobs.Store, error) {
	t.blobsOnce.Do(func() { t.blobs, t.blobsErr = blobs.Open(filepath.Join(t.dir, "blobs"), t.blobOpts) })
	return t.blobs, t.blobsErr
}

// rates returns the tenant's request-rate table, opening it on first use.
func (t *tenant) rates() (*quota.Rate, error) {
	t.rateOnce.Do(func() { t.rate, t.rateErr = quota.OpenRate(filepath.Join(t.dir, "rate")) })
	return t.rate, t.rateErr
}

// close closes the tenant's files, once.
func (t *tenant) close() error {
	t.closeOnce.Do(func() {
		t.stopWorker()
		t.hub.close()
		if t.rate != nil {
			t.rate.Close()
		}
		if t.ring != nil {
			t.ring.Close()
		}
		if t.log != nil { // nil: from tenantNoLog
			t.closeErr = t.log.Close()
		}
	})
	return t.closeErr
}

// errNoTenant: the tenant named does not exist (or no longer does).
var errNoTenant = errors.New("no such tenant")

// errRecreated: the tenant open was deleted and another made under its
// name; recheckLocked has dropped it.
var errRecreated = errors.New("tenant created anew")

// tenant returns the open tenant, opening it on first use, with a
// reference taken: the caller lets go of it with release when it is done
// (ServeHTTP does for c.held). It looks at the
// tenant's configuration again if a second has passed (so a suspension or
// a deletion made elsewhere takes effect within a second), and reopens the
// log if it failed a write over a second ago (reopening runs recovery,
// which either finds the log whole again or reports what is wrong) or if
// its index directory was replaced.
func (h *Handler) tenant(name string) (*tenant, tenants.Config, error) {
	h.mu.Lock()
	defer h.unlock()
	now := time.Now()
	if t := h.tenants[name]; t != nil {
		err := h.recheckLocked(t, now)
		if err != nil && err != errRecreated {
			return nil, tenants.Config{}, err
		}
		stale := err == errRecreated
		if !stale && now.Sub(t.checkedAt) > time.Second {
			t.checkedAt = now
			stale = t.log.Stale()
		}
		if !stale && (t.failedAt.IsZero() || now.Sub(t.failedAt) < time.Second) {
			t.refs++
			return t, t.cfg, nil
		}
		if !errors.Is(err, errRecreated) {
			h.dropLocked(t)
		}
	}
	if h.cfg.NoAuth && !tenants.Exists(h.cfg.DataDir, name) {
		// Without accounts a tenant springs into being on first use.
		if err := tenants.Ensure(h.cfg.DataDir, name); err != nil {
			return nil, tenants.Config{}, err
		}
	}
	cfg, stamp, err := h.loadConfig(name)
	if err != nil {
		return nil, tenants.Config{}, err
	}
	dir := tenants.Dir(h.cfg.DataDir, name)
	opts := h.cfg.Log
	if !h.cfg.NoMetrics {
		opts.Observer = observer{h}
	}
	l, err := log.Open(dir, opts)
	if err != nil {
		return nil, tenants.Config{}, err
	}
	t := &tenant{name: name, dir: dir, log: l, checkedAt: now, cfg: cfg, cfgStamp: stamp, cfgAt: now,
		blobOpts: blobs.Options{MaxSize: h.cfg.MaxBlob, NoSync: h.cfg.NoSync}}
	h.tenants[name] = t
	t.refs++
	return t, cfg, nil
}

// loadConfig reads tenant name's configuration and its stamp, errNoTenant
// if there is no such tenant.
func (h *Handler) loadConfig(name string) (tenants.Config, string, error) {
	stamp := tenants.Stamp(h.cfg.DataDir, name)
	if stamp == "" {
		return tenants.Config{}, "", errNoTenant
	}
	cfg, err := tenants.Get(h.cfg.DataDir, name)
	if errors.Is(err, tenants.ErrNotFound) {
		return tenants.Config{}, "", errNoTenant
	}
	return cfg, stamp, err
}

// tenantNoLog is tenant for a request that needs only the tenant's
// configuration and its rate table, never its log: one of a principal
// bound to the tenant on a route outside it (GET /session, an admin route
// it is refused). A process that serves one request (CGI) gets the
// tenant without opening its log — which would cost a hundred system
// calls, and fail the request if the log is damaged or busy recovering;
// it is dropped from the start, so the request's release closes it. Routes
// on files beside the log (scope inTenantFiles) use it too.
// Long-running processes, and a tenant already open, go through tenant.
func (h *Handler) tenantNoLog(name string) (*tenant, tenants.Config, error) {
	h.mu.Lock()
	open := h.tenants[name] != nil
	h.mu.Unlock()
	if open || h.cfg.LongRunning {
		return h.tenant(name)
	}
	if h.cfg.NoAuth && !tenants.Exists(h.cfg.DataDir, name) {
		if err := tenants.Ensure(h.cfg.DataDir, name); err != nil {
			return nil, tenants.Config{}, err
		}
	}
	cfg, _, err := h.loadConfig(name)
	if err != nil {
		return nil, tenants.Config{}, err
	}
	t := &tenant{name: name, dir: tenants.Dir(h.cfg.DataDir, name), cfg: cfg, refs: 1, dropped: true}
	return t, cfg, nil
}

// release lets go of a reference that tenant took; the last one of a
// dropped tenant closes it.
func (h *Handler) release(t *tenant) {
	h.mu.Lock()
	defer h.unlock()
	t.refs--
	if t.refs == 0 && t.dropped {
		h.closing = append(h.closing, t)
	}
}

// unlock unlocks h.mu and then closes the tenants that were let go of
// meanwhile: closing syncs files, which must not hold up other requests.
func (h *Handler) unlock() {
	closing := h.closing
	h.closing = nil
	h.mu.Unlock()
	for _, t := range closing {
		if err := t.close(); err != nil {
			h.log.Warn("close tenant", "tenant", t.name, "err", err.Error())
		}
	}
}

// recheckLocked reads t's configuration again if a second has passed and
// its file changed; a deleted tenant is dropped (errNoTenant). h.mu is
// held.
func (h *Handler) recheckLocked(t *tenant, now time.Time) error {
	if now.Sub(t.cfgAt) <= time.Second {
		return nil
	}
	if stamp := tenants.Stamp(h.cfg.DataDir, t.name); stamp != t.cfgStamp {
		if stamp == "" {
			h.dropLocked(t)
			return errNoTenant
		}
		cfg, err := tenants.Get(h.cfg.DataDir, t.name)
		if err != nil {
			return err
		}
		if cfg.ID != t.cfg.ID {
			// Deleted and created again elsewhere: another tenant, whose
			// files are not the ones open.
			h.dropLocked(t)
			return errRecreated
		}
		t.cfg, t.cfgStamp = cfg, stamp
	}
	t.cfgAt = now
	return nil
}

// dropLocked forgets t. Requests in flight finish on it: it is closed when
// the last of them lets go (release), or at once if none holds it. h.mu
// is held, and unlocked with h.unlock, which does the closing.
func (h *Handler) dropLocked(t *tenant) {
	if h.tenants[t.name] == t {
		delete(h.tenants, t.name)
	}
	if !t.dropped && t.refs == 0 {
		h.closing = append(h.closing, t)
	}
	t.dropped = true
	t.gone.close()
}

// forget reads the tenant's configuration again, after this handler
// changed it, so the change holds from the next request on.
func (h *Handler) forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.tenants[name]; t != nil {
		if cfg, err := tenants.Get(h.cfg.DataDir, name); err == nil {
			t.cfg, t.cfgStamp, t.cfgAt = cfg, tenants.Stamp(h.cfg.DataDir, name), time.Now()
		} else {
			t.cfgAt, t.cfgStamp = time.Time{}, "?"
		}
	}
}

// failed notes that t's log refused an append after a failed write.
func (h *Handler) failed(t *tenant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.failedAt.IsZero() {
		t.failedAt = time.Now()
	}
}
