package api

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"strata/audit"
	"strata/auth"
	"strata/quota"
	"strata/tenants"
)

// TenantHeader names the tenant of a request made by an administrator
// (or, redundantly, by anyone for their own tenant). A path prefix
// /t/<tenant>/ does the same and also reaches CORS preflights, which carry
// no custom headers.
const TenantHeader = "Strata-Tenant"

// call is one request that passed authorization: who makes it, and in
// which tenant (nil on public and system routes).
type call struct {
	who  auth.Principal
	t    *tenant
	cfg  tenants.Config
	arg  string // what the route's {…} segment matched
	addr string // the client's address
	// held are the tenants the request took a reference on, let go of
	// when it ends.
	held []*tenant
	ri   *reqInfo
}

// ServeHTTP authorizes and routes a request. r.URL.Path is the path below
// the mount point.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	w = sw
	r, ri := h.begin(w, r)
	var rt *route
	defer func() { h.observe(sw, r, rt, ri, t0) }()
	defer recoverPanic(w, r)
	securityHeaders(w, r)
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	pathTenant := ""
	if rest, ok := strings.CutPrefix(p, "/t/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		if !tenants.ValidName(name) {
			writeError(w, r, errorf("invalid_tenant", "tenant %q: %v", clip(name), tenants.ErrInvalidName))
			return
		}
		pathTenant, p = name, "/"+sub
		r.URL.Path = p
	}
	if r.Method == http.MethodOptions {
		h.options(w, r, p, pathTenant)
		return
	}
	rt, arg, methods := match(r.Method, p)
	if rt == nil {
		if methods == nil {
			writeError(w, r, errorf("no_route", "no such path: %s", clip(p)))
			return
		}
		// Counted under the path's pattern, never the raw path.
		rt = &route{method: r.Method, path: patternOf(p)}
		methods = append(methods, http.MethodOptions)
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, r, errorf("method_not_allowed", "%s is not allowed on %s; use %s", r.Method, clip(p), strings.Join(methods, ", ")))
		return
	}
	c := &call{arg: arg, addr: h.clientAddr(r), ri: ri}
	ri.c = c
	defer func() {
		for _, t := range c.held {
			h.release(t)
		}
	}()
	if rt.scope == public {
		h.cors(w, r, nil)
		rt.serve(h, w, r, c)
		return
	}
	if err := h.authorize(w, r, rt, c, pathTenant); err != nil {
		h.cors(w, r, c.t)
		writeError(w, r, err)
		return
	}
	h.cors(w, r, c.t)
	rt.serve(h, w, r, c)
}

// authorize authenticates the request and checks, in this order: the
// role's permission for the route, the tenant named (a principal reaches
// only its own), that the tenant exists and is active, and the
// credential's request rate. It fills in c.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, rt *route, c *call, pathTenant string) error {
	who, err := h.authenticate(w, r, c.addr)
	if err != nil {
		return err
	}
	c.who = who
	// A principal bound to a tenant acts only while the tenant of that
	// name is the one its credential was made for: never in a tenant
	// created anew under the name of a deleted one.
	var own *tenant
	var ownCfg tenants.Config
	if who.Tenant != "" {
		get := h.tenant
		if rt.scope != inTenant {
			get = h.tenantNoLog
		}
		t, cfg, err := get(who.Tenant)
		if err != nil && !errors.Is(err, errNoTenant) {
			return err
		}
		if t != nil {
			c.held = append(c.held, t)
		}
		if err == nil && who.Kind == "jwt" && who.Issued.IsZero() && !who.Reaches(cfg.ID, cfg.Created) {
			return h.refuse(w, r, c.addr, who.String(), "jwt without iat",
				errorf("unauthorized", "a JWT that names a tenant must say when it was issued (iat)"))
		}
		if err != nil || !who.Reaches(cfg.ID, cfg.Created) {
			return h.refuse(w, r, c.addr, who.String(), "credential of a deleted tenant",
				errorf("credential_revoked", "these credentials were for a tenant that has been deleted"))
		}
		own, ownCfg = t, cfg
		// Every request counts against the credential's rate, before
		// anything can refuse it: refusals must cost an attacker what
		// answers cost.
		if err := h.charge(own, ownCfg, who); err != nil {
			return err
		}
	}
	if !who.Can(rt.perm) {
		if who.Role.Can(rt.perm) {
			return h.deny(r, rt, c, "", errorf("forbidden", "an admin bound to a tenant reaches only its tenant, not %s %s", r.Method, clip(r.URL.Path)))
		}
		return h.deny(r, rt, c, "", errorf("forbidden", "the %s role may not %s %s", who.Role, r.Method, clip(r.URL.Path)))
	}
	if rt.scope != inTenant && rt.scope != inTenantFiles {
		return nil
	}
	name := pathTenant
	if len(r.Header.Values(TenantHeader)) > 1 {
		// net/http would take the first, Apache joins them, a proxy may
		// take the last: no guessing which one was meant.
		return errorf("invalid_tenant", "the %s header is given more than once", TenantHeader)
	}
	if hn := r.Header.Get(TenantHeader); hn != "" {
		if name != "" && hn != name {
			return errorf("invalid_tenant", "the %s header names %q but the path names %q", TenantHeader, clip(hn), name)
		}
		name = hn
	}
	if name == "" {
		name = who.Tenant
	}
	if name == "" {
		name = DefaultTenant
	}
	if !tenants.ValidName(name) {
		return errorf("invalid_tenant", "tenant %q: %v", clip(name), tenants.ErrInvalidName)
	}
	if who.Confined() && name != who.Tenant {
		// The same answer whether the tenant exists or not.
		return h.deny(r, rt, c, name, errorf("wrong_tenant", "these credentials are for another tenant"))
	}
	t, cfg := own, ownCfg
	if name != who.Tenant {
		get := h.tenant
		if rt.scope == inTenantFiles {
			get = h.tenantNoLog
		}
		if t, cfg, err = get(name); t != nil {
			c.held = append(c.held, t)
		}
	}
	if err != nil {
		if errors.Is(err, errNoTenant) {
			return errorf("no_tenant", "no tenant %q", name)
		}
		return err
	}
	c.t, c.cfg = t, cfg
	if cfg.State == tenants.Suspended {
		msg := "the tenant " + name + " is suspended; its data is kept but it serves no requests"
		if cfg.Reason != "" {
			msg += ": " + cfg.Reason
		}
		return errorf("tenant_suspended", "%s", msg)
	}
	if who.Tenant == "" {
		// An administrator bound to no tenant is charged in the tenant it
		// names.
		return h.charge(t, cfg, who)
	}
	return nil
}

// charge counts a request of who against the credential's rate in tenant
// t, whose configuration is cfg.
func (h *Handler) charge(t *tenant, cfg tenants.Config, who auth.Principal) error {
	lim := cfg.Limits()
	if lim.RequestsPerSecond <= 0 || h.cfg.NoAuth {
		return nil
	}
	rates, err := t.rates()
	if err != nil {
		return err
	}
	if ok, retry := rates.Allow(who.CredID, lim.RequestsPerSecond, lim.Burst, timeNow()); !ok {
		return &quota.ExceededError{Quota: quota.QuotaRequestsPerSecond, Limit: lim.RequestsPerSecond, RetryAfter: retry}
	}
	return nil
}

// denyWindow is the window in which repeated refusals of one principal on
// one route with one status make one audit record.
const denyWindow = time.Minute

// deny records a request refused by access control (403) in the audit log
// and returns e. Refusals repeat cheaply, so the audit log gets one record
// per principal, route and status a minute: the first refusal of each
// window is recorded, carrying how many more the key's previous window had
// ("repeated", since "repeated_since"). The tally lives in a file
// (system/refused), so CGI processes share it. If it cannot be used, every
// refusal is recorded.
func (h *Handler) deny(r *http.Request, rt *route, c *call, tenant string, e *apiError) error {
	detail := map[string]any{"method": r.Method, "path": clip(r.URL.Path)}
	if tally, err := h.acc.getRefused(); err == nil {
		key := c.who.String() + " " + rt.method + " " + rt.path + " " + e.code
		first, prev, since, err := tally.Tally(timeNow(), key, denyWindow)
		if err == nil && !first {
			return e
		}
		if prev > 0 {
			detail["repeated"], detail["repeated_since"] = prev, since.UTC()
		}
	}
	h.record(c, "access.denied", tenant, e.status, detail)
	return e
}

// record adds an audit record about c; a failure to record is reported
// on standard error and does not fail the request, which has been served
// (or refused) already.
func (h *Handler) record(c *call, action, tenant string, status int, detail map[string]any) {
	if tenant == "" && c.t != nil {
		tenant = c.t.name
	}
	h.recordAs(c.ri, c.who.String(), c.addr, action, tenant, status, detail)
}

// recordMutation records a change made outside the event log (blobs) by
// c's principal. Appends need no record here: each event carries its
// principal in meta.by, inside the tenant's own chain. Without accounts
// the principal is "anonymous", recorded all the same.
func (h *Handler) recordMutation(c *call, action string, status int, detail map[string]any) {
	h.record(c, action, "", status, detail)
}

// recordAs adds an audit record on behalf of principal.
func (h *Handler) recordAs(ri *reqInfo, principal, addr, action, tenant string, status int, detail map[string]any) {
	a, err := h.auditLog()
	if err == nil {
		err = a.Record(audit.Record{Action: action, Principal: principal, Tenant: tenant, Addr: addr, Status: status, Detail: detail})
	}
	if err != nil {
		ri.logger(h).Error("audit record lost", "action", action, "err", err.Error())
	}
}

// clientAddr is the address failed logins are counted against.
func (h *Handler) clientAddr(r *http.Request) string {
	if h.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			if i := strings.LastIndexByte(xff, ','); i >= 0 {
				xff = xff[i+1:]
			}
			return strings.TrimSpace(xff)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// securityHeaders go on every answer. The API serves data, never pages:
// nothing it sends may run as a script, be framed, or leak the URL on.
// Blobs are served with the type they were stored with, which may be
// text/html; the sandbox keeps such a blob from running in the API's
// origin.
func securityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// clip shortens what a client sent before it goes into a message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
