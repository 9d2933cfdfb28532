package api

import (
	"net/http"
	"path/filepath"

	"strata/audit"
	"strata/query"
	"strata/tenants"
)

// auditLog opens the audit log on first use.
func (h *Handler) auditLog() (*audit.Log, error) {
	h.auditOnce.Do(func() {
		h.audit, h.auditErr = audit.Open(filepath.Join(h.cfg.DataDir, systemDir, auditDir), h.cfg.Log, h.cfg.LongRunning)
	})
	return h.audit, h.auditErr
}

// auditRead serves GET /audit: the audit log, read like /events, filtered
// by principal, tenant and action (and since, until, after, limit).
func (h *Handler) auditRead(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	p, err := readParams(q, "principal", "tenant", "action")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if p.Type != "" || p.Entity != "" {
		writeError(w, r, errorf("invalid_parameter", "filter the audit log by principal, tenant and action"))
		return
	}
	tenant, action := q.Get("tenant"), q.Get("action")
	if tenant != "" && tenant != audit.NoTenant && !tenants.ValidName(tenant) {
		writeError(w, r, errorf("invalid_tenant", "tenant %q: %v", clip(tenant), tenants.ErrInvalidName))
		return
	}
	if action != "" && !query.ValidPattern(action) {
		writeError(w, r, errorf("invalid_parameter", "parameter action: must be a name or a glob"))
		return
	}
	f := audit.Params(tenant, q.Get("principal"), action)
	p.Type, p.Entity = f.Type, f.Entity
	a, err := h.auditLog()
	if err != nil {
		writeError(w, r, err)
		return
	}
	a.Flush() // what was recorded before this request is in the answer
	readLog(w, r, a.Events(), p)
}
