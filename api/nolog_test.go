package api

import (
	"os"
	"path/filepath"
	"testing"

	"strata/tenants"
)

// TestSystemRouteNeedsNoLog: a principal bound to a tenant, on a route
// outside the tenant (GET /session, an admin route it is refused), is
// authorized from the tenant's configuration and rate table alone; a
// process serving one request (CGI) does not open the tenant's log for it.
// So such a request neither pays for the log nor fails with it: with the
// log damaged, GET /session still answers 200 and a refused admin route
// 403, while the tenant's own routes report the damage.
func TestSystemRouteNeedsNoLog(t *testing.T) {
	f := newAuthHandler(t, Config{})
	w := f.do("POST", "/events", `{"type":"a","entity":"e","data":1}`, tok(f.tokens["own/writer"])...)
	if w.Code != 201 {
		t.Fatalf("append: %d %s", w.Code, w.Body)
	}
	f.h.Close()
	f.h = New(Config{DataDir: f.data, NoSync: true})
	segs, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, "own"), "log", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment found")
	}
	for _, s := range segs {
		fh, err := os.OpenFile(s, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt([]byte("XXXXXXXX"), 0) // the magic: the log no longer opens
		fh.Close()
	}
	if w := f.do("GET", "/session", "", tok(f.tokens["own/reader"])...); w.Code != 200 {
		t.Errorf("GET /session of a tenant whose log is damaged: %d %s, want 200", w.Code, w.Body)
	}
	if w := f.do("GET", "/admin/tokens", "", tok(f.tokens["own/reader"])...); w.Code != 403 {
		t.Errorf("a reader on an admin route: %d %s, want 403", w.Code, w.Body)
	}
	f.h.mu.Lock()
	opened := f.h.tenants["own"] != nil
	f.h.mu.Unlock()
	if opened {
		t.Error("the tenant's log was opened for routes outside the tenant")
	}
	if w := f.do("GET", "/events", "", tok(f.tokens["own/reader"])...); w.Code != 500 {
		t.Errorf("GET /events of the damaged log: %d %s, want 500", w.Code, w.Body)
	}
}
