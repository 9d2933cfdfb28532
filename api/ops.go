package api

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"strata/internal/fileutil"
	"strata/tenants"
)

// ready serves GET /ready, for a load balancer: 200 when the server can
// take writes, 503 with the reasons when it cannot — the data directory
// is not writable, or a tenant's open log refuses appends after a failed
// write. GET /health says only that the process answers. The reasons name
// no path and no tenant (the route is public); the server log has the
// details.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request, c *call) {
	var reasons []string
	if f, err := fileutil.CreateTemp(h.cfg.DataDir, ".ready-*", 0o600); err != nil {
		infoOf(r).logger(h).Warn("not ready: the data directory is not writable", "err", err.Error())
		reasons = append(reasons, "the data directory is not writable")
	} else {
		f.Close()
		fileutil.Remove(f.Name())
	}
	h.mu.Lock()
	failed := 0
	for name, t := range h.tenants {
		if !t.failedAt.IsZero() || t.log != nil && t.log.Failed() != nil {
			failed++
			infoOf(r).logger(h).Warn("not ready: a tenant's log refuses appends after a failed write", "tenant", name)
		}
	}
	open := len(h.tenants)
	h.mu.Unlock()
	if failed > 0 {
		reasons = append(reasons, strconv.Itoa(failed)+" open tenant log(s) refuse appends after a failed write")
	}
	w.Header().Set("Cache-Control", "no-store")
	if len(reasons) > 0 {
		e := errorf("not_ready", "not ready: %s", strings.Join(reasons, "; "))
		e.extra = map[string]any{"reasons": reasons}
		writeError(w, r, e)
		return
	}
	b := []byte(`{"status":"ready","open_logs":`)
	b = strconv.AppendInt(b, int64(open), 10)
	writeJSON(w, http.StatusOK, append(b, "}\n"...))
}

// tenantStats is what GET /stats answers about one tenant: counts kept as
// the tenant is written (the log's head and mapped indexes, the blob
// store's usage counter, segment sizes), never a scan of the log.
type tenantStats struct {
	Tenant    string `json:"tenant"`
	Events    uint64 `json:"events"`
	Entities  uint64 `json:"entities"`
	Blobs     int64  `json:"blobs"`
	Bytes     int64  `json:"bytes"` // log_bytes + blob_bytes
	LogBytes  int64  `json:"log_bytes"`
	BlobBytes int64  `json:"blob_bytes"`
	Head      string `json:"head"` // the newest event's id, "" when empty
}

// statsOf measures t.
func statsOf(t *tenant) (tenantStats, error) {
	s := tenantStats{Tenant: t.name}
	head, err := t.log.Head()
	if err != nil {
		return s, err
	}
	s.Events = head.Seq
	if head.Seq > 0 {
		s.Head = hex.EncodeToString(head.ID[:])
	}
	if s.Entities, err = t.log.Entities(); err != nil {
		return s, err
	}
	if s.LogBytes, err = t.log.Bytes(); err != nil {
		return s, err
	}
	store, err := t.store()
	if err != nil {
		return s, err
	}
	bu, err := store.Usage()
	if err != nil {
		return s, err
	}
	s.Blobs, s.BlobBytes = bu.Count, bu.Bytes
	s.Bytes = s.LogBytes + s.BlobBytes
	return s, nil
}

// stats serves GET /stats: the counts of the tenant the request reaches.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request, c *call) {
	s, err := statsOf(c.t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeValue(w, r, http.StatusOK, s)
}

// adminStats serves GET /admin/stats: the counts of every tenant, for an
// administrator or a scraper's token. Each tenant's log is opened (in CGI,
// for this request): its cost grows with the tenants, not their events.
func (h *Handler) adminStats(w http.ResponseWriter, r *http.Request, c *call) {
	cs, err := tenants.List(h.cfg.DataDir)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		Tenants []tenantStats `json:"tenants"`
	}{Tenants: []tenantStats{}}
	for _, cfg := range cs {
		t, _, err := h.tenant(cfg.Name)
		if err != nil {
			continue // deleted meanwhile, or unreadable: the others still count
		}
		s, err := statsOf(t)
		h.release(t)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out.Tenants = append(out.Tenants, s)
	}
	writeValue(w, r, http.StatusOK, out)
}
