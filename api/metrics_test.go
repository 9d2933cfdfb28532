package api

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"strata/auth"
	"strata/internal/fileutil"
	"strata/metrics"
	"strata/quota"
	"strata/tenants"
)

// A scraper's token (role metrics, no tenant) reads /metrics and
// /admin/stats and nothing else; the counters move as requests are made.
func TestMetricsToken(t *testing.T) {
	f := newAuthHandler(t, Config{})
	secret, _, err := f.svc.CreateToken("", auth.RoleMetrics, "scraper", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.CreateToken("own", auth.RoleMetrics, "", 0); err == nil {
		t.Errorf("a metrics token bound to a tenant was made")
	}
	scraper := []string{"Authorization", "Bearer " + secret}
	writer := []string{"Authorization", "Bearer " + f.tokens["own/writer"]}
	if w := f.do("POST", "/events", `[{"type":"a","entity":"e","data":1},{"type":"a","entity":"f","data":22}]`, writer...); w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
	f.do("GET", "/events", "", writer...)
	f.do("GET", "/events", "", "Authorization", "Bearer nonsense")
	w := f.do("GET", "/metrics", "", scraper...)
	if w.Code != 200 || w.Header().Get("Content-Type") != metrics.ContentType {
		t.Fatalf("GET /metrics: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{
		`strata_events_appended_total{tenant="own"} 2`,
		`strata_log_events{tenant="own"} 2`,
		`strata_http_requests_total{method="POST",route="/events",code="201"} 1`,
		`strata_http_requests_total{method="GET",route="/events",code="200"} 1`,
		`strata_http_requests_total{method="GET",route="/events",code="401"} 1`,
		`strata_auth_failures_total{code="unauthorized"} 1`,
		`strata_reads_total{kind="events"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if w := f.do("GET", "/admin/stats", "", scraper...); w.Code != 200 || !strings.Contains(w.Body.String(), `"tenant":"own","events":2,"entities":2`) {
		t.Errorf("GET /admin/stats: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{"/events", "/stats", "/admin/tenants", "/session"} {
		if w := f.do("GET", p, "", scraper...); w.Code != 403 {
			t.Errorf("metrics token on GET %s: %d, want 403", p, w.Code)
		}
	}
	if w := f.do("GET", "/stats", "", writer...); w.Code != 403 {
		t.Errorf("writer on GET /stats: %d, want 403", w.Code)
	}
	admin := []string{"Authorization", "Bearer " + f.tokens["own/admin"], TenantHeader, "own"}
	if w := f.do("GET", "/stats", "", admin...); w.Code != 200 || !strings.Contains(w.Body.String(), `"events":2`) {
		t.Errorf("admin GET /stats: %d %s", w.Code, w.Body)
	}
}

// The metrics file cannot be made (a directory stands in its place): the
// request is served all the same; metrics are best-effort.
func TestMetricsFileUnusable(t *testing.T) {
	h := newHandler(t, Config{NoAuth: true})
	os.MkdirAll(filepath.Join(h.cfg.DataDir, systemDir, metrics.FileName), 0o700)
	if w := serve(h, "POST", "/events", strings.NewReader(`{"type":"a","entity":"e","data":1}`)); w.Code != 201 {
		t.Fatalf("append with no metrics file: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/metrics", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "strata_goroutines") {
		t.Errorf("GET /metrics: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/ready", nil); w.Code != 200 {
		t.Errorf("GET /ready: %d %s", w.Code, w.Body)
	}
}

// Every step of making and mapping the metrics file fails in turn (a full
// disk, a failed map): the append is served, and the next request, the
// fault gone, counts again.
func TestMetricsFileFaults(t *testing.T) {
	for _, op := range []fileutil.Op{fileutil.OpCreate, fileutil.OpTruncate, fileutil.OpPreallocate, fileutil.OpMmap} {
		t.Run(string(op), func(t *testing.T) {
			data := t.TempDir()
			undo := fileutil.Inject(func(o fileutil.Op, path string) error {
				if o == op && strings.HasSuffix(path, metrics.FileName) {
					return syscall.ENOSPC
				}
				return nil
			})
			h := newHandler(t, Config{DataDir: data})
			if w := serve(h, "POST", "/events", strings.NewReader(`{"type":"a","entity":"e","data":1}`)); w.Code != 201 {
				t.Fatalf("append with %s failing: %d %s", op, w.Code, w.Body)
			}
			undo()
			h2 := newHandler(t, Config{DataDir: data})
			serve(h2, "POST", "/events", strings.NewReader(`{"type":"a","entity":"e","data":2}`))
			w := serve(h2, "GET", "/metrics", nil)
			if !strings.Contains(w.Body.String(), `strata_events_appended_total{tenant="default"} 1`+"\n") {
				t.Errorf("after the fault: %s", w.Body)
			}
		})
	}
}

// A request refused by a quota is counted by tenant and quota; one
// refused for its credentials by error code.
func TestMetricsRefusals(t *testing.T) {
	f := newAuthHandler(t, Config{})
	one := int64(1)
	if _, err := f.svc.UpdateTenant("own", "quota.update", nil, func(c *tenants.Config) error {
		c.Quota = quota.Overrides{EventsPerDay: &one}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.h.forget("own")
	writer := []string{"Authorization", "Bearer " + f.tokens["own/writer"]}
	if w := f.do("POST", "/events", `[{"type":"a","entity":"x","data":1},{"type":"a","entity":"x","data":2}]`, writer...); w.Code != 429 {
		t.Fatalf("over events_per_day: %d %s", w.Code, w.Body)
	}
	f.do("GET", "/events", "", "Authorization", "Bearer "+f.tokens["own/writer/expired"])
	f.do("GET", "/admin/tenants", "", writer...)
	w := f.do("GET", "/metrics", "", "Authorization", "Bearer "+f.tokens["own/admin"])
	for _, want := range []string{
		`strata_quota_refusals_total{tenant="own",quota="events_per_day"} 1`,
		`strata_auth_failures_total{code="token_expired"} 1`,
		`strata_auth_failures_total{code="forbidden"} 1`,
		`strata_http_requests_total{method="POST",route="/events",code="429"} 1`,
	} {
		if !strings.Contains(w.Body.String(), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// GET /ready answers 503 not_ready, with reasons naming no path or
// tenant, while the data directory cannot be written or an open log
// refuses appends after a failed write; 200 otherwise.
func TestReady(t *testing.T) {
	h := newHandler(t, Config{})
	if w := serve(h, "GET", "/ready", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"ready"`) {
		t.Fatalf("GET /ready: %d %s", w.Code, w.Body)
	}
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpCreate && path == h.cfg.DataDir { // the probe's temp file

			return syscall.EROFS
		}
		return nil
	})
	w := serve(h, "GET", "/ready", nil)
	undo()
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"code":"not_ready"`) || !strings.Contains(w.Body.String(), "data directory is not writable") || strings.Contains(w.Body.String(), h.cfg.DataDir) {
		t.Errorf("GET /ready, data directory read-only: %d %s", w.Code, w.Body)
	}
	serve(h, "POST", "/events", strings.NewReader(`{"type":"a","entity":"e","data":0}`)) // the segment exists
	undo = fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpWrite && strings.HasSuffix(path, ".seg") {
			return syscall.EIO
		}
		return nil
	})
	w = serve(h, "POST", "/events", strings.NewReader(`{"type":"a","entity":"e","data":1}`))
	undo()
	if w.Code < 500 {
		t.Fatalf("append with fsync failing: %d %s", w.Code, w.Body)
	}
	w = serve(h, "GET", "/ready", nil)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "refuse appends") || strings.Contains(w.Body.String(), `default`) {
		t.Errorf("GET /ready, a failed log: %d %s", w.Code, w.Body)
	}
}
