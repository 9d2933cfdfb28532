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
			secret, _, err := f.svc.CreateToken(tn, role, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			f.tokens[tn+"/"+string(role)] = secret
			// A token that expired an hour ago.
			past := &admin.Service{Data: cfg.DataDir, By: "test", Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
			secret, _, err = past.CreateToken(tn, role, "", time.Hour)
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
	} {
		target = strings.Replace(target, ph.from, ph.to, 1)
	}
	switch {
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

// TestAccessMatrix walks every route with every role in every situation and
// checks the answer against the permission table (routes): 401 without
// good credentials, 403 for a role without the permission, for another
// tenant's data and for a suspended tenant; otherwise the request gets
// past access control (whatever the handler then makes of it).
func TestAccessMatrix(t *testing.T) {
	f := newAuthHandler(t, Config{})
	type situation struct {
		name   string
		header func(role auth.Role) []string
		// expect is the status access control must answer, or 0 for
		// "let through".
		expect func(rt route, role auth.Role) int
	}
	bearer := func(s string) []string { return []string{"Authorization", "Bearer " + s} }
	allowedIn := func(rt route, role auth.Role, deny int) int {
		switch {
		case rt.method == "POST" && rt.path == "/session":
			return http.StatusUnauthorized // a login with a wrong password, whoever asks
		case rt.scope == public:
			return 0
		case !role.Can(rt.perm):
			return http.StatusForbidden
		case rt.scope == system:
			return 0
		}
		return deny
	}
	situations := []situation{
		{"own tenant", func(r auth.Role) []string { return bearer(f.tokens["own/"+string(r)]) },
			func(rt route, r auth.Role) int { return allowedIn(rt, r, 0) }},
		{"other tenant", func(r auth.Role) []string {
			return append(bearer(f.tokens["own/"+string(r)]), TenantHeader, "other")
		}, func(rt route, r auth.Role) int {
			if r == auth.RoleAdmin {
				return allowedIn(rt, r, 0)
			}
			return allowedIn(rt, r, http.StatusForbidden)
		}},
		{"other tenant by path", func(r auth.Role) []string { return bearer(f.tokens["own/"+string(r)]) },
			func(rt route, r auth.Role) int {
				if r == auth.RoleAdmin {
					return allowedIn(rt, r, 0)
				}
				return allowedIn(rt, r, http.StatusForbidden)
			}},
		{"suspended tenant", func(r auth.Role) []string { return bearer(f.tokens["susp/"+string(r)]) },
			func(rt route, r auth.Role) int { return allowedIn(rt, r, http.StatusForbidden) }},
		{"no credentials", func(auth.Role) []string { return nil },
			func(rt route, _ auth.Role) int { return unauthenticated(rt) }},
		{"bad token", func(auth.Role) []string { return bearer("strata_" + strings.Repeat("A", 43)) },
			func(rt route, _ auth.Role) int { return unauthenticated(rt) }},
		{"bad password", func(auth.Role) []string {
			return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "nobody%d:wrong", f.n))}
		},
			func(rt route, _ auth.Role) int { return unauthenticated(rt) }},
		{"expired token", func(r auth.Role) []string { return bearer(f.tokens["own/"+string(r)+"/expired"]) },
			func(rt route, _ auth.Role) int { return unauthenticated(rt) }},
	}
	checked := 0
	for _, rt := range routes {
		for _, role := range auth.Roles() {
			for _, s := range situations {
				if (s.name == "bad password" || rt.path == "/session" && rt.method == "POST") && role != auth.RoleAdmin {
					continue // the same for every role, and each costs a bcrypt
				}
				target, body := requestFor(rt)
				if s.name == "other tenant by path" {
					if rt.scope != inTenant {
						continue
					}
					target = "/t/other" + target
				}
				hdr := s.header(role)
				if rt.path == "/session" && rt.method == "POST" {
					body = fmt.Sprintf(`{"user":"nobody%d","password":"wrong"}`, f.n)
				}
				w := f.do(rt.method, target, body, hdr...)
				want := s.expect(rt, role)
				got := w.Code
				denied := got == http.StatusUnauthorized || got == http.StatusForbidden
				switch {
				case want == 0 && denied:
					t.Errorf("%s %s as %s, %s: %d %s; want access", rt.method, target, role, s.name, got, w.Body)
				case want != 0 && got != want:
					t.Errorf("%s %s as %s, %s: %d %s; want %d", rt.method, target, role, s.name, got, w.Body, want)
				}
				if want == http.StatusForbidden && s.name == "suspended tenant" && rt.scope == inTenant && role.Can(rt.perm) && rt.method != "HEAD" {
					if !strings.Contains(w.Body.String(), "tenant_suspended") || !strings.Contains(w.Body.String(), "unpaid invoice") {
						t.Errorf("%s %s suspended: %s", rt.method, target, w.Body)
					}
				}
				checked++
			}
		}
	}
	t.Logf("%d route × role × situation cases", checked)
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

// unauthenticated is what a request without good credentials gets: 401,
// except on public routes (POST /session with a wrong password is 401
// too).
func unauthenticated(rt route) int {
	if rt.scope == public && !(rt.method == "POST" && rt.path == "/session") {
		return 0
	}
	return http.StatusUnauthorized
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
