package api

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata/admin"
	"strata/audit"
	"strata/auth"
	"strata/log"
	"strata/tenants"
)

// authFixture is a handler with accounts: tenants "own", "other" and
// "susp" (suspended), and a token for every role in each of them, and one
// expired.
type authFixture struct {
	h      *Handler
	data   string
	svc    *admin.Service
	tokens map[string]string // "<tenant>/<role>" → secret; "<tenant>/<role>/expired"
	// n numbers requests, each from its own address, so that failed-login
	// counters do not carry from one case to the next.
	n int
}

func newAuthHandler(t testing.TB, cfg Config) *authFixture {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.NoSync = true
	f := &authFixture{data: cfg.DataDir, tokens: map[string]string{}}
	al, err := audit.Open(filepath.Join(cfg.DataDir, systemDir, auditDir), log.Options{NoSync: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	f.svc = &admin.Service{Data: cfg.DataDir, By: "test", Audit: al}
	for _, name := range []string{"own", "other", "susp"} {
		if _, err := f.svc.CreateTenant(tenants.Config{Name: name, Tier: "unlimited"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range []string{"own", "susp"} {
		for _, role := range auth.Roles() {
			if role == auth.RoleMetrics {
				continue // a scraper's token: TestMetricsToken
			}
			bound := tn
			if role == auth.RoleAdmin {
				bound = "" // an admin takes no tenant
			}
			secret, _, err := f.svc.CreateToken(bound, role, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			f.tokens[tn+"/"+string(role)] = secret
			// A token that expired an hour ago.
			past := &admin.Service{Data: cfg.DataDir, By: "test", Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
			secret, _, err = past.CreateToken(bound, role, "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f.tokens[tn+"/"+string(role)+"/expired"] = secret
		}
	}
	if _, err := f.svc.Suspend("susp", "unpaid invoice"); err != nil {
		t.Fatal(err)
	}
	f.h = New(cfg)
	t.Cleanup(func() { f.h.Close() })
	return f
}

type httptestRecorder = httptest.ResponseRecorder

// do sends one request with headers (name, value pairs).
func (f *authFixture) do(method, target, body string, headers ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return f.serve(httptestRequest(method, target, rd, headers...))
}

func httptestRequest(method, target string, body io.Reader, headers ...string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// serve runs r, from an address of its own.
func (f *authFixture) serve(r *http.Request) *httptest.ResponseRecorder {
	f.n++
	r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4000", f.n>>16&255, f.n>>8&255, f.n&255)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// requestFor is a request on route rt that the handler can take in, with
// placeholders that name nothing that exists (so a DELETE deletes
// nothing).
func requestFor(rt route) (target, body string) {
	target = rt.path
	for _, ph := range []struct{ from, to string }{
		{"{id}", strings.Repeat("a", 64)},
		{"{blob}", strings.Repeat("b", 64)},
		{"{name}", "nosuch"},
		{"{entity...}", "books/nosuch"},
		{"{name...}", "nosuch/result"},
	} {
		target = strings.Replace(target, ph.from, ph.to, 1)
	}
	switch {
	case rt.path == "/stream":
		target += "?limit=1" // refused (400) once let through: a stream would not end
	case rt.method == "GET" || rt.method == "HEAD" || rt.method == "DELETE":
	case strings.HasPrefix(rt.path, "/events"):
		body = `{"type":"probe","entity":"e","data":1}`
	case strings.HasPrefix(rt.path, "/storage"):
		body = "blob bytes"
	default:
		body = `{}`
	}
	return target, body
}

// Principals of the access matrix: the four roles, and an admin bound to
// a tenant, which strata no longer makes but which credentials made
// before may be (confined to its tenant).
const (
	pAdmin = iota
	pTenantAdmin
	pWriter
	pReader
	pAppender
	nPrincipals
)

var principalNames = [nPrincipals]string{"admin", "tenant-bound admin", "writer", "reader", "appender"}

// access is the expected answer of access control to one route: whether
// the route reaches a tenant's data, whether it needs no credentials, and,
// for each principal acting in its own tenant, 0 (let through: whatever
// the handler then answers) or the status refused with.
type access struct {
	tenant, public bool
	want           [nPrincipals]int
}

// accessMatrix is who may do what, written out by hand — not computed from
// the route table it checks, so that a wrong permission in routes.go
// fails here. A new route must be added here too (TestAccessMatrix fails
// until it is).
var accessMatrix = func() map[string]access {
	const no = http.StatusForbidden
	var (
		read  = access{true, false, [nPrincipals]int{0, 0, 0, 0, no}}
		write = access{true, false, [nPrincipals]int{0, 0, 0, no, 0}} // append, upload
		del   = access{true, false, [nPrincipals]int{0, 0, 0, no, no}}
		// defining projections: writers and administrators
		define    = access{true, false, [nPrincipals]int{0, 0, 0, no, no}}
		info      = access{true, false, [nPrincipals]int{0, 0, 0, 0, 0}}
		whoami    = access{false, false, [nPrincipals]int{0, 0, 0, 0, 0}}
		open      = access{false, true, [nPrincipals]int{0, 0, 0, 0, 0}}
		adminOnly = access{false, false, [nPrincipals]int{0, no, no, no, no}}
		// a login with a wrong password, whoever asks
		login = access{false, true, [nPrincipals]int{401, 401, 401, 401, 401}}
	)
	return map[string]access{
		"GET /events":                      read,
		"HEAD /events":                     read,
		"PUT /events":                      write,
		"POST /events":                     write,
		"GET /events/{id}":                 read,
		"HEAD /events/{id}":                read,
		"GET /stream":                      read,
		"GET /head":                        read,
		"GET /entities":                    read,
		"GET /entities/{entity...}":        read,
		"PUT /entities":                    write,
		"PUT /entities/{entity...}":        write,
		"PATCH /entities":                  write,
		"PATCH /entities/{entity...}":      write,
		"DELETE /entities":                 write, // a tombstone is an append
		"DELETE /entities/{entity...}":     write,
		"POST /entities/{entity...}":       write, // …/revert
		"HEAD /head":                       read,
		"PUT /storage":                     write,
		"POST /storage":                    write,
		"PUT /storage/":                    write,
		"POST /storage/":                   write,
		"GET /storage/{blob}":              read,
		"HEAD /storage/{blob}":             read,
		"PUT /storage/{blob}":              write,
		"DELETE /storage/{blob}":           del,
		"GET /snapshots":                   read,
		"POST /snapshots":                  write, // snapshots on demand: work and disk
		"GET /snapshots/{entity...}":       read,  // …/latest
		"GET /projections":                 read,
		"POST /projections":                define,
		"GET /projections/{name...}":       read,
		"PUT /projections/{name}":          define,
		"DELETE /projections/{name}":       define,
		"POST /projections/{name}/pause":   define,
		"POST /projections/{name}/resume":  define,
		"POST /projections/{name}/rebuild": define,
		"GET /replays":                     read,
		"GET /replays/{id}":                read,
		"POST /replays/{id}/cancel":        define,
		"DELETE /replays/{id}":             define,
		"GET /consumers":                   read,
		"GET /consumers/{name}":            read,
		"PUT /consumers/{name}":            define,
		"DELETE /consumers/{name}":         define,
		"GET /consumers/{name}/events":     read,
		"GET /consumers/{name}/stream":     read,
		"PUT /consumers/{name}/position":   read, // a consumer's reader commits what it read
		"DELETE /consumers/{name}/lease":   read, // … and gives up its lease
		"POST /events/{id}/ack":            read,
		// coordination: reading the cache and listening are reads;
		// writing it, locking and posting are appends
		"GET /cache/{key}":                read,
		"PUT /cache/{key}":                write,
		"DELETE /cache/{key}":             write,
		"POST /mutex/{key}/lock":          write,
		"POST /mutex/{key}/unlock":        write,
		"POST /mutex/{key}/renew":         write,
		"POST /broadcast/{channel}":       write,
		"GET /broadcast/{channel}/stream": read,
		"GET /quota":                      info,
		"GET /session":                    whoami,
		"POST /session":                   login,
		"POST /setup":                     open,
		"GET /health":                     open,
		"HEAD /health":                    open,
		"GET /openapi.json":               open,
		"HEAD /openapi.json":              open,
		// operations: a scraper's token (role metrics) may use these
		// too (TestMetricsToken)
		"GET /ready":                         open,
		"HEAD /ready":                        open,
		"GET /metrics":                       adminOnly,
		"HEAD /metrics":                      adminOnly,
		"GET /stats":                         access{true, false, [nPrincipals]int{0, no, no, no, no}},
		"GET /admin/stats":                   adminOnly,
		"GET /admin/backup":                  adminOnly,
		"POST /admin/compaction":             adminOnly,
		"GET /admin/compaction":              adminOnly,
		"GET /audit":                         adminOnly,
		"GET /admin/tenants":                 adminOnly,
		"POST /admin/tenants":                adminOnly,
		"GET /admin/tenants/{name}":          adminOnly,
		"PATCH /admin/tenants/{name}":        adminOnly,
		"DELETE /admin/tenants/{name}":       adminOnly,
		"POST /admin/tenants/{name}/suspend": adminOnly,
		"POST /admin/tenants/{name}/resume":  adminOnly,
		"GET /admin/tokens":                  adminOnly,
		"POST /admin/tokens":                 adminOnly,
		"DELETE /admin/tokens/{id}":          adminOnly,
		"GET /admin/users":                   adminOnly,
		"PUT /admin/users/{name}":            adminOnly,
		"DELETE /admin/users/{name}":         adminOnly,
	}
}()

// legacyToken stores an API token the way strata stored them before an
// admin took no tenant — role admin, bound to tenant — and returns its
// secret.
func legacyToken(t testing.TB, data, tenant string, role auth.Role) string {
	t.Helper()
	secret, digest, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tenants.Get(data, tenant)
	if err != nil {
		t.Fatal(err)
	}
	id := auth.TokenID(digest)
	b := fmt.Sprintf(`{"id":%q,"digest":"%x","tenant":%q,"tenant_id":%q,"role":%q,"name":"legacy","created":"2026-01-01T00:00:00Z"}`+"\n", id, digest, tenant, c.ID, role)
	dir := filepath.Join(data, systemDir, tokensDir)
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestAccessMatrix walks every route with every principal in every
// situation and checks the answer against accessMatrix: 401 without good
// credentials; 403 for a principal without the permission, for another
// tenant's data (except to an administrator bound to no tenant) and for a
// suspended tenant; otherwise the request gets past access control
// (whatever the handler then makes of it).
func TestAccessMatrix(t *testing.T) {
	f := newAuthHandler(t, Config{})
	for _, rt := range routes {
		if _, ok := accessMatrix[rt.method+" "+rt.path]; !ok {
			t.Errorf("route %s %s is not in accessMatrix: write down who may use it", rt.method, rt.path)
		}
	}
	if len(accessMatrix) != len(routes) {
		t.Errorf("accessMatrix has %d routes, the route table %d", len(accessMatrix), len(routes))
	}
	bearer := func(s string) []string { return []string{"Authorization", "Bearer " + s} }
	// creds[tenant][principal]: the credentials of each principal acting in
	// tenant "own" or "susp".
	creds := map[string][nPrincipals][]string{}
	for _, tn := range []string{"own", "susp"} {
		creds[tn] = [nPrincipals][]string{
			// The administrator names the tenant it acts in.
			append(bearer(f.tokens[tn+"/admin"]), TenantHeader, tn),
			bearer(legacyToken(t, f.data, tn, auth.RoleAdmin)),
			bearer(f.tokens[tn+"/writer"]),
			bearer(f.tokens[tn+"/reader"]),
			bearer(f.tokens[tn+"/appender"]),
		}
	}
	roleOf := [nPrincipals]auth.Role{auth.RoleAdmin, auth.RoleAdmin, auth.RoleWriter, auth.RoleReader, auth.RoleAppender}
	type situation struct {
		name string
		// request adapts the request: its target and headers.
		request func(p int, target string) (string, []string)
		// expect is the status access control must answer, or 0 for
		// "let through", given the route's row of accessMatrix.
		expect func(a access, p int) int
	}
	denied := func(a access, p int, otherwise int) int {
		if a.want[p] != 0 {
			return a.want[p]
		}
		if a.tenant {
			return otherwise
		}
		return 0
	}
	unauthenticated := func(a access, p int) int {
		if a.public {
			// Open to all; a login with a wrong password 401 whoever asks.
			return a.want[p]
		}
		return http.StatusUnauthorized
	}
	situations := []situation{
		{"own tenant", func(p int, target string) (string, []string) { return target, creds["own"][p] },
			func(a access, p int) int { return a.want[p] }},
		{"other tenant by header", func(p int, target string) (string, []string) {
			h := creds["own"][p]
			if p == pAdmin {
				h = bearer(f.tokens["own/admin"])
			}
			return target, append(h, TenantHeader, "other")
		}, func(a access, p int) int {
			if p == pAdmin {
				return a.want[p]
			}
			return denied(a, p, http.StatusForbidden)
		}},
		{"other tenant by path", func(p int, target string) (string, []string) {
			h := creds["own"][p]
			if p == pAdmin {
				h = bearer(f.tokens["own/admin"])
			}
			return "/t/other" + target, h
		}, func(a access, p int) int {
			if p == pAdmin {
				return a.want[p]
			}
			return denied(a, p, http.StatusForbidden)
		}},
		{"suspended tenant", func(p int, target string) (string, []string) { return target, creds["susp"][p] },
			func(a access, p int) int { return denied(a, p, http.StatusForbidden) }},
		{"no credentials", func(p int, target string) (string, []string) { return target, nil }, unauthenticated},
		{"bad token", func(p int, target string) (string, []string) {
			return target, bearer("strata_" + strings.Repeat("A", 43))
		}, unauthenticated},
		{"bad password", func(p int, target string) (string, []string) {
			return target, []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "nobody%d:wrong", f.n))}
		}, unauthenticated},
		{"expired token", func(p int, target string) (string, []string) {
			return target, bearer(f.tokens["own/"+string(roleOf[p])+"/expired"])
		}, unauthenticated},
	}
	checked := 0
	for _, rt := range routes {
		a, ok := accessMatrix[rt.method+" "+rt.path]
		if !ok {
			continue
		}
		for p := range nPrincipals {
			for _, s := range situations {
				if (s.name == "bad password" || rt.path == "/session" && rt.method == "POST") && p != pAdmin {
					continue // the same for every principal, and each costs a bcrypt
				}
				if s.name == "other tenant by path" && !a.tenant {
					continue
				}
				target, body := requestFor(rt)
				target, hdr := s.request(p, target)
				if rt.path == "/session" && rt.method == "POST" {
					body = fmt.Sprintf(`{"user":"nobody%d","password":"wrong"}`, f.n)
				}
				w := f.do(rt.method, target, body, hdr...)
				want := s.expect(a, p)
				got := w.Code
				denied := got == http.StatusUnauthorized || got == http.StatusForbidden
				switch {
				case want == 0 && denied:
					t.Errorf("%s %s as %s, %s: %d %s; want access", rt.method, target, principalNames[p], s.name, got, w.Body)
				case want != 0 && got != want:
					t.Errorf("%s %s as %s, %s: %d %s; want %d", rt.method, target, principalNames[p], s.name, got, w.Body, want)
				}
				if want == http.StatusForbidden && s.name == "suspended tenant" && a.tenant && a.want[p] == 0 && rt.method != "HEAD" {
					if !strings.Contains(w.Body.String(), "tenant_suspended") || !strings.Contains(w.Body.String(), "unpaid invoice") {
						t.Errorf("%s %s suspended: %s", rt.method, target, w.Body)
					}
				}
				checked++
			}
		}
	}
	t.Logf("%d route × principal × situation cases", checked)
	// Nothing of the probes reached the suspended tenant's log.
	for _, tn := range []string{"susp"} {
		if _, err := os.Stat(filepath.Join(tenants.Dir(f.data, tn), "log")); err == nil {
			segs, _ := filepath.Glob(filepath.Join(tenants.Dir(f.data, tn), "log", "*"))
			for _, s := range segs {
				if fi, _ := os.Stat(s); fi != nil && fi.Size() > 64 {
					t.Errorf("tenant %s got writes: %s is %d bytes", tn, s, fi.Size())
				}
			}
		}
	}
}

// TestAdminTakesNoTenant: an admin "for a tenant" is refused wherever
// one could be made — the admin API's tokens and users, and so the CLI,
// which calls the same service — so nothing shows a scope that is not
// enforced.
func TestAdminTakesNoTenant(t *testing.T) {
	f := newAuthHandler(t, Config{})
	root := tok(f.tokens["own/admin"])
	if w := f.do("POST", "/admin/tokens", `{"tenant":"own","role":"admin"}`, root...); w.Code != 400 {
		t.Errorf("POST /admin/tokens for a tenant's admin: %d %s", w.Code, w.Body)
	}
	if w := f.do("PUT", "/admin/users/bob", `{"password":"correct horse","tenant":"own","role":"admin"}`, root...); w.Code != 400 {
		t.Errorf("PUT /admin/users for a tenant's admin: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/admin/tokens", `{"role":"admin"}`, root...); w.Code != 201 {
		t.Errorf("POST /admin/tokens for an admin: %d %s", w.Code, w.Body)
	}
	if _, _, err := f.svc.CreateToken("own", auth.RoleAdmin, "", 0); err == nil {
		t.Error("the admin service made an admin token for a tenant")
	}
}

func TestRouteTableIsWhole(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range routes {
		k := rt.method + " " + rt.path
		if seen[k] {
			t.Errorf("route %s twice", k)
		}
		seen[k] = true
		if (rt.scope == public) != (rt.perm == "") {
			t.Errorf("route %s: scope %d with permission %q", k, rt.scope, rt.perm)
		}
		if rt.serve == nil {
			t.Errorf("route %s has no handler", k)
		}
	}
}
