package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"strata/admin"
	"strata/auth"
	"strata/coord"
	"strata/quota"
	"strata/tenants"
)

// readJSON decodes a small JSON request body (at most 64 KiB) into v,
// refusing unknown fields and member names given twice (auth.UniqueNames):
// encoding/json would take the last of {"tenant":"a","TENANT":""}, where
// a proxy or a log may read the first.
func readJSON(r *http.Request, v any) error {
	body, err := readBody(r, 64<<10, new(bytes.Buffer), nil)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf("invalid_body", "the request body: %v", err)
	}
	if err := auth.UniqueNames(body); err != nil {
		return errorf("invalid_body", "the request body: %v", err)
	}
	return nil
}

// service is the admin service acting for c's principal.
func (h *Handler) service(c *call) (*admin.Service, error) {
	a, err := h.auditLog()
	if err != nil {
		return nil, err
	}
	return &admin.Service{Data: h.cfg.DataDir, UsersFile: h.cfg.UsersFile, Audit: a, By: c.who.String(), Addr: c.addr, Now: timeNow}, nil
}

// adminError maps the admin service's errors to answers.
func adminError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, tenants.ErrInvalidName):
		writeError(w, r, errorf("invalid_tenant", "%v", err))
	case errors.Is(err, tenants.ErrNotFound), errors.Is(err, auth.ErrUnknown), errors.Is(err, admin.ErrNotFound):
		writeError(w, r, errorf("not_found", "%v", err))
	case errors.Is(err, tenants.ErrExists):
		writeError(w, r, errorf("exists", "%v", err))
	case errors.Is(err, admin.ErrInvalid), errors.Is(err, tenants.ErrInvalid):
		writeError(w, r, errorf("invalid", "%v", err))
	default:
		// Anything else failed on the server's side: its text, which may
		// name files, goes to the log only.
		writeError(w, r, err)
	}
}

func writeValue(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, body)
}

// tenantBody is what POST and PATCH /admin/tenants take.
type tenantBody struct {
	Name    string           `json:"name"`
	Tier    *string          `json:"tier"`
	Quota   *quota.Overrides `json:"quota"`
	Origins *[]string        `json:"cors_origins"`
}

func (h *Handler) tenantList(w http.ResponseWriter, r *http.Request, c *call) {
	cs, err := tenants.List(h.cfg.DataDir)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if cs == nil {
		cs = []tenants.Config{}
	}
	writeValue(w, r, http.StatusOK, cs)
}

func (h *Handler) tenantCreate(w http.ResponseWriter, r *http.Request, c *call) {
	var in tenantBody
	if err := readJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	cfg := tenants.Config{Name: in.Name}
	if in.Tier != nil {
		cfg.Tier = *in.Tier
	}
	if in.Quota != nil {
		cfg.Quota = *in.Quota
	}
	if in.Origins != nil {
		cfg.Origins = *in.Origins
	}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cfg, err = s.CreateTenant(cfg)
	if err != nil {
		adminError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusCreated, withLimits(cfg))
}

// tenantLimits is a tenant's configuration with the limits in effect (its
// tier with its overrides; a burst of 0 shown as the burst it means), the
// answer to every change of a tenant, as the CLI prints it.
type tenantLimits struct {
	tenants.Config
	Limits quota.Limits `json:"limits"`
}

func withLimits(cfg tenants.Config) tenantLimits { return tenantLimits{cfg, cfg.Limits()} }

// tenantView is a tenant's configuration with its quotas and usage.
type tenantView struct {
	tenants.Config
	Limits quota.Limits `json:"limits"`
	Usage  quota.Usage  `json:"usage"`
}

func (h *Handler) tenantShow(w http.ResponseWriter, r *http.Request, c *call) {
	cfg, err := tenants.Get(h.cfg.DataDir, c.arg)
	if err != nil {
		adminError(w, r, err)
		return
	}
	v := tenantView{Config: cfg, Limits: cfg.Limits()}
	if t, _, err := h.tenant(c.arg); err == nil {
		defer h.release(t)
		v.Usage, err = usage(t)
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	writeValue(w, r, http.StatusOK, v)
}

func (h *Handler) tenantPatch(w http.ResponseWriter, r *http.Request, c *call) {
	var in tenantBody
	if err := readJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	if in.Name != "" && in.Name != c.arg {
		writeError(w, r, errorf("invalid", "a tenant cannot be renamed"))
		return
	}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	action := "tenant.update"
	detail := map[string]any{}
	if in.Tier != nil || in.Quota != nil {
		action = "quota.update"
	}
	cfg, err := s.UpdateTenant(c.arg, action, detail, func(t *tenants.Config) error {
		if in.Tier != nil {
			t.Tier = *in.Tier
			detail["tier"] = *in.Tier
		}
		if in.Quota != nil {
			t.Quota = t.Quota.With(*in.Quota)
			detail["quota"] = t.Quota
		}
		if in.Origins != nil {
			t.Origins = *in.Origins
			detail["cors_origins"] = *in.Origins
		}
		return nil
	})
	h.forget(c.arg)
	if err != nil {
		adminError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, withLimits(cfg))
}

func (h *Handler) tenantDelete(w http.ResponseWriter, r *http.Request, c *call) {
	purge := r.URL.Query().Get("purge") == "true"
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h.forgetOpen(c.arg)
	d, err := s.DeleteTenant(c.arg, purge)
	if err != nil {
		adminError(w, r, err)
		return
	}
	// Where the data went, relative to the data directory: a client is
	// never told a server path.
	moved := d.MovedTo
	if moved != "" {
		if rel, err := filepath.Rel(h.cfg.DataDir, moved); err == nil && filepath.IsLocal(rel) {
			moved = filepath.ToSlash(rel)
		} else {
			moved = filepath.Base(moved)
		}
	}
	writeValue(w, r, http.StatusOK, map[string]any{"deleted": c.arg, "purged": purge, "moved_to": moved,
		"tokens_revoked": d.Tokens, "grants_removed": d.Users})
}

func (h *Handler) tenantSuspend(w http.ResponseWriter, r *http.Request, c *call) {
	var in struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := readJSON(r, &in); err != nil {
			writeError(w, r, err)
			return
		}
	}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cfg, err := s.Suspend(c.arg, in.Reason)
	h.forget(c.arg)
	if err != nil {
		adminError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, withLimits(cfg))
}

func (h *Handler) tenantResume(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cfg, err := s.Resume(c.arg)
	h.forget(c.arg)
	if err != nil {
		adminError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, withLimits(cfg))
}

// tokenView is a token as listed: never its secret or digest.
type tokenView struct {
	ID      string     `json:"id"`
	Name    string     `json:"name,omitempty"`
	Tenant  string     `json:"tenant,omitempty"`
	Role    auth.Role  `json:"role"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Token   string     `json:"token,omitempty"` // only in the answer that creates it
}

func viewToken(t auth.Token) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Tenant: t.Tenant, Role: t.Role, Created: t.Created}
	if !t.Expires.IsZero() {
		e := t.Expires
		v.Expires = &e
	}
	return v
}

func (h *Handler) tokenList(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ts, err := s.Tokens().List()
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := []tokenView{}
	for _, t := range ts {
		if q := r.URL.Query().Get("tenant"); q != "" && t.Tenant != q {
			continue
		}
		out = append(out, viewToken(t))
	}
	writeValue(w, r, http.StatusOK, out)
}

func (h *Handler) tokenCreate(w http.ResponseWriter, r *http.Request, c *call) {
	var in struct {
		Tenant  string `json:"tenant"`
		Role    string `json:"role"`
		Name    string `json:"name"`
		Expires string `json:"expires"` // a duration: "30d", "12h"
	}
	if err := readJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	role, err := auth.ParseRole(in.Role)
	if err != nil {
		writeError(w, r, errorf("invalid_role", "%v", err))
		return
	}
	var ttl time.Duration
	if in.Expires != "" {
		if ttl, err = auth.ParseDuration(in.Expires); err != nil || ttl <= 0 {
			writeError(w, r, errorf("invalid_expires", "expires %q: give a duration such as 30d or 12h", clip(in.Expires)))
			return
		}
	}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	secret, t, err := s.CreateToken(in.Tenant, role, in.Name, ttl)
	writeNewToken(w, r, secret, t, err)
}

// writeNewToken answers a token just made, with its secret — the only
// time the secret is shown.
func writeNewToken(w http.ResponseWriter, r *http.Request, secret string, t auth.Token, err error) {
	if err != nil {
		adminError(w, r, err)
		return
	}
	v := viewToken(t)
	v.Token = secret
	writeValue(w, r, http.StatusCreated, v)
}

func (h *Handler) tokenRevoke(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, err := s.RevokeToken(c.arg)
	h.acc.forgetTokens()
	if err != nil {
		adminError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, map[string]any{"revoked": t.ID})
}

func (h *Handler) userList(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	us, err := s.Users()
	if err != nil {
		writeError(w, r, err)
		return
	}
	if us == nil {
		us = []admin.User{}
	}
	writeValue(w, r, http.StatusOK, us)
}

func (h *Handler) userPut(w http.ResponseWriter, r *http.Request, c *call) {
	var in struct {
		Password string `json:"password"`
		Tenant   string `json:"tenant"`
		Role     string `json:"role"`
	}
	if err := readJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	var role auth.Role
	if in.Role != "" {
		var err error
		if role, err = auth.ParseRole(in.Role); err != nil {
			writeError(w, r, errorf("invalid_role", "%v", err))
			return
		}
	}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.SetUser(c.arg, in.Password, in.Tenant, role); err != nil {
		adminError(w, r, err)
		return
	}
	h.acc.reload()
	writeValue(w, r, http.StatusOK, map[string]any{"user": c.arg})
}

func (h *Handler) userDelete(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.DeleteUser(c.arg); err != nil {
		adminError(w, r, err)
		return
	}
	h.acc.reload()
	writeValue(w, r, http.StatusOK, map[string]any{"deleted": c.arg})
}

// quota serves GET /quota: the tenant's limits and what it uses.
func (h *Handler) quota(w http.ResponseWriter, r *http.Request, c *call) {
	u, err := usage(c.t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, map[string]any{"tenant": c.t.name, "tier": c.cfg.Tier, "limits": c.cfg.Limits(), "usage": u})
}

// usage measures what t holds.
func usage(t *tenant) (quota.Usage, error) {
	var u quota.Usage
	today, err := t.log.EventsToday()
	if err != nil {
		return u, err
	}
	u.EventsToday = int64(today)
	if u.LogBytes, err = t.log.Bytes(); err != nil {
		return u, err
	}
	store, err := t.store()
	if err != nil {
		return u, err
	}
	bu, err := store.Usage()
	if err != nil {
		return u, err
	}
	u.BlobBytes, u.Blobs = bu.Bytes, bu.Count
	u.StorageBytes = u.LogBytes + u.BlobBytes
	cache := coord.Cache{Dir: filepath.Join(t.dir, coordDir)}
	if u.CacheEntries, u.CacheBytes, err = cache.Usage(timeNow()); err != nil {
		return u, err
	}
	return u, nil
}

// forgetOpen closes the tenant's open log before its directory moves.
func (h *Handler) forgetOpen(name string) {
	h.mu.Lock()
	defer h.unlock()
	if t := h.tenants[name]; t != nil {
		h.dropLocked(t)
	}
}

var _ = strconv.Itoa
