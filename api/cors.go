package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"strata/tenants"
)

// CORS: a browser app on another origin may call a tenant when its origin
// is among the tenant's allowed origins (or the installation's). Such an
// app authenticates with an Authorization header, never with cookies, so
// credentials mode is granted only to origins named exactly; "*" lets any
// origin read without credentials.
const (
	corsHeaders = "Authorization, Content-Type, If-Match, If-None-Match, Range, Accept, Strata-Tenant, X-Request-Id"
	corsExpose  = "Strata-Request-Id, Strata-Head, Strata-Head-Seq, Strata-Next-After, Strata-Behind, ETag, Link, Location, Content-Location, Retry-After, Content-Range"
)

// allowedOrigin says how origin may call: "" not at all, "*" without
// credentials, or origin itself.
func (h *Handler) allowedOrigin(origin string, tenantOrigins []string) string {
	if origin == "" {
		return ""
	}
	for _, list := range [][]string{tenantOrigins, h.cfg.Origins} {
		if slices.Contains(list, origin) {
			return origin
		}
	}
	if slices.Contains(tenantOrigins, "*") || slices.Contains(h.cfg.Origins, "*") {
		return "*"
	}
	return ""
}

// cors adds the CORS headers of an answer to a cross-origin request.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request, t *tenant) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	var list []string
	if t != nil {
		h.mu.Lock()
		list = t.cfg.Origins
		h.mu.Unlock()
	}
	hd := w.Header()
	hd.Add("Vary", "Origin")
	switch allow := h.allowedOrigin(origin, list); allow {
	case "":
	case "*":
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Expose-Headers", corsExpose)
	default:
		hd.Set("Access-Control-Allow-Origin", allow)
		hd.Set("Access-Control-Allow-Credentials", "true")
		hd.Set("Access-Control-Expose-Headers", corsExpose)
	}
}

// origins returns the tenant's allowed origins as the requests that follow
// a preflight will see them: from the configuration this process holds for
// the tenant, if it has the tenant open, else from its file. An unknown
// tenant has none — the same answer as a tenant that does not allow the
// origin.
func (h *Handler) origins(name string) []string {
	h.mu.Lock()
	t := h.tenants[name]
	var list []string
	if t != nil && h.recheckLocked(t, time.Now()) == nil {
		list = t.cfg.Origins
	} else {
		t = nil
	}
	h.mu.Unlock()
	if t != nil {
		return list
	}
	if c, err := tenants.Get(h.cfg.DataDir, name); err == nil {
		return c.Origins
	}
	return nil
}

// options answers OPTIONS: a CORS preflight, or a plain question about
// the methods a path allows. A preflight carries no credentials and no
// custom headers, so the tenant it is for is the one in the path
// (/t/<tenant>/…); without one only the installation's origins apply.
func (h *Handler) options(w http.ResponseWriter, r *http.Request, p, pathTenant string) {
	_, _, methods := match("", p)
	if methods == nil {
		writeError(w, r, errorf("no_route", "no such path: %s", clip(p)))
		return
	}
	methods = append(methods, http.MethodOptions)
	hd := w.Header()
	hd.Set("Allow", strings.Join(methods, ", "))
	origin := r.Header.Get("Origin")
	want := r.Header.Get("Access-Control-Request-Method")
	if origin == "" || want == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var list []string
	if pathTenant != "" {
		list = h.origins(pathTenant)
	}
	allow := h.allowedOrigin(origin, list)
	hd.Add("Vary", "Origin")
	if allow == "" || !slices.Contains(methods, want) {
		writeError(w, r, errorf("cors_denied", "the origin %s may not call %s %s here", clip(origin), clip(want), clip(p)))
		return
	}
	hd.Set("Access-Control-Allow-Origin", allow)
	if allow != "*" {
		hd.Set("Access-Control-Allow-Credentials", "true")
	}
	hd.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	hd.Set("Access-Control-Allow-Headers", corsHeaders)
	hd.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
