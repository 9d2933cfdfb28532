package api

import (
	"encoding/json"
	"net/http"
	"time"

	"strata/auth"
)

// login serves POST /session: a user's password (as Basic credentials, or
// a JSON body {"user","password"}) buys a session token, signed with the
// installation's secret and good for SessionTTL. Only the login pays the
// password hash; requests with the token cost an HMAC and a look at the
// users file, which also ends the session as soon as the password, the
// tenant or the role changes. A session cannot be revoked on its own before
// it expires — change the password, or the grant, to end it.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, c *call) {
	if h.cfg.NoAuth {
		writeError(w, r, errorf("no_accounts", "this server runs without accounts (auth=none): there is nothing to log in to"))
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		var in struct {
			User     string `json:"user"`
			Password string `json:"password"`
		}
		if err := readJSON(r, &in); err != nil || in.User == "" {
			writeError(w, r, errorf("invalid_login", `send {"user":"…","password":"…"} as JSON, or Basic credentials`))
			return
		}
		user, pass = in.User, in.Password
	}
	who, err := h.password(w, r, c.addr, user, pass)
	if err != nil {
		writeError(w, r, err)
		return
	}
	secret, err := h.acc.getSecret()
	if err != nil {
		writeError(w, r, err)
		return
	}
	h.acc.mu.Lock()
	users, _, err := h.acc.load()
	h.acc.mu.Unlock()
	if err != nil {
		writeError(w, r, err)
		return
	}
	fp, _ := users.Fingerprint(user)
	now := timeNow()
	exp := now.Add(h.cfg.SessionTTL)
	token := auth.SignSession(secret, auth.SessionClaims{User: user, Tenant: who.Tenant, TenantID: who.TenantID, Role: who.Role, Fingerprint: fp, IssuedAt: now, Expires: exp})
	c.who = who
	h.record(c, "session.create", who.Tenant, http.StatusCreated, map[string]any{"expires": exp.UTC()})
	body, _ := json.Marshal(map[string]any{
		"token": token, "token_type": "Bearer", "expires": exp.UTC().Format(time.RFC3339),
		"user": user, "tenant": who.Tenant, "role": who.Role,
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, body)
}

// whoami serves GET /session: who the credentials are, in which tenant.
func (h *Handler) whoami(w http.ResponseWriter, r *http.Request, c *call) {
	out := map[string]any{"principal": c.who.String(), "kind": c.who.Kind, "role": c.who.Role, "tenant": c.who.Tenant}
	if !c.who.Expires.IsZero() {
		out["expires"] = c.who.Expires.UTC().Format(time.RFC3339)
	}
	body, _ := json.Marshal(out)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// health serves GET /health.
func (h *Handler) health(w http.ResponseWriter, r *http.Request, c *call) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}
