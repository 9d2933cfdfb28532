package api

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata/auth"
	"strata/tenants"
)

// TestDeletedTenantCredentials: deleting a tenant, with or without purge,
// ends every credential bound to it — tokens, user grants, sessions — and
// a tenant created again under the same name is out of their reach, even
// when a token file or a grants line survives the deletion (restored from
// a backup, copied aside).
func TestDeletedTenantCredentials(t *testing.T) {
	t.Cleanup(func() { timeNow = time.Now })
	for _, purge := range []bool{false, true} {
		timeNow = time.Now
		f := newAuthHandler(t, Config{JWT: &auth.JWTConfig{HS256Secret: []byte(strings.Repeat("k", 32)), Issuer: "idp"}})
		rootSecret, _, err := f.svc.CreateToken("", auth.RoleAdmin, "root", 0)
		if err != nil {
			t.Fatal(err)
		}
		root := tok(rootSecret)
		writer := tok(f.tokens["own/writer"])
		if err := f.svc.SetUser("alice", "correct horse", "own", auth.RoleWriter); err != nil {
			t.Fatal(err)
		}
		basic := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:correct horse"))}
		w := f.do("POST", "/session", `{"user":"alice","password":"correct horse"}`)
		var s struct{ Token string }
		json.Unmarshal(w.Body.Bytes(), &s)
		if w.Code != 201 {
			t.Fatalf("login: %d %s", w.Code, w.Body)
		}
		session := tok(s.Token)
		now := time.Now().Unix()
		jwt := tok(hs256([]byte(strings.Repeat("k", 32)), map[string]any{"sub": "svc", "tenant": "own", "role": "writer", "iss": "idp", "iat": now, "exp": now + 600}))
		// A JWT that does not say when it was issued cannot be told from
		// one issued for a tenant since deleted: it is refused.
		undated := tok(hs256([]byte(strings.Repeat("k", 32)), map[string]any{"sub": "svc", "tenant": "own", "role": "writer", "iss": "idp", "exp": now + 7200}))
		if w := f.do("GET", "/head", "", undated...); w.Code != 401 {
			t.Fatalf("purge %v: a JWT without iat: %d %s", purge, w.Code, w.Body)
		}
		for name, cred := range map[string][]string{"token": writer, "password": basic, "session": session, "jwt": jwt} {
			if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, cred...); w.Code != 201 {
				t.Fatalf("%s before the deletion: %d %s", name, w.Code, w.Body)
			}
		}
		// What an operator might restore or copy aside.
		tokenFiles, _ := filepath.Glob(filepath.Join(f.data, systemDir, tokensDir, "*.json"))
		saved := map[string][]byte{}
		for _, p := range tokenFiles {
			saved[p], _ = os.ReadFile(p)
		}
		grants, _ := os.ReadFile(filepath.Join(f.data, systemDir, grantsFile))

		target := "/admin/tenants/own"
		if purge {
			target += "?purge=true"
		}
		// The new tenant is made an hour later, so that JWTs issued before
		// it can be told from JWTs issued after (iat is in seconds).
		timeNow = func() time.Time { return time.Now().Add(time.Hour) }
		w = f.do("DELETE", target, "", root...)
		var d struct {
			Tokens  []string `json:"tokens_revoked"`
			Users   []string `json:"grants_removed"`
			MovedTo string   `json:"moved_to"`
		}
		json.Unmarshal(w.Body.Bytes(), &d)
		// own's writer, reader and appender, and one expired of each
		if w.Code != 200 || len(d.Tokens) != 6 || len(d.Users) != 1 || d.Users[0] != "alice" {
			t.Fatalf("delete: %d %s", w.Code, w.Body)
		}
		// Where the data went, as a path in the data directory: never the
		// server's own path.
		if purge != (d.MovedTo == "") || strings.HasPrefix(d.MovedTo, "/") || strings.Contains(d.MovedTo, f.data) {
			t.Errorf("delete (purge %v): moved_to %q", purge, d.MovedTo)
		} else if !purge {
			if _, err := os.Stat(filepath.Join(f.data, d.MovedTo)); err != nil {
				t.Errorf("moved_to %q is not in the data directory: %v", d.MovedTo, err)
			}
		}
		if w := f.do("POST", "/admin/tenants", `{"name":"own"}`, root...); w.Code != 201 {
			t.Fatalf("create again: %d %s", w.Code, w.Body)
		}
		check := func(when string) {
			t.Helper()
			for name, cred := range map[string][]string{"token": writer, "password": basic, "session": session} {
				for _, rq := range [][2]string{{"POST", "/events"}, {"GET", "/events"}, {"GET", "/head"}, {"GET", "/session"}} {
					w := f.do(rq[0], rq[1], `{"type":"a","entity":"x","data":1}`, cred...)
					if w.Code != 401 && w.Code != 403 {
						t.Errorf("purge %v, %s, %s %s %s: %d %s", purge, when, name, rq[0], rq[1], w.Code, w.Body)
					}
				}
			}
		}
		check("after the deletion")
		// The deletion removed the tokens and the grant.
		if ts, _ := f.svc.Tokens().List(); func() bool {
			for _, tk := range ts {
				if tk.Tenant == "own" {
					return true
				}
			}
			return false
		}() {
			t.Errorf("purge %v: tokens of the deleted tenant remain", purge)
		}
		if b, _ := os.ReadFile(filepath.Join(f.data, systemDir, grantsFile)); strings.Contains(string(b), "alice") {
			t.Errorf("purge %v: the grant of the deleted tenant remains: %s", purge, b)
		}
		// Even restored, the old credentials do not reach the new tenant.
		for p, b := range saved {
			os.WriteFile(p, b, 0o600)
		}
		os.WriteFile(filepath.Join(f.data, systemDir, grantsFile), grants, 0o600)
		f.h.acc.reload()
		check("with the credentials restored")
		if w := f.do("GET", "/head", "", writer...); !strings.Contains(w.Body.String(), "credential_revoked") {
			t.Errorf("purge %v: a restored token: %d %s", purge, w.Code, w.Body)
		}
		// A JWT issued before the new tenant existed is not for it; one
		// issued since is.
		if w := f.do("GET", "/head", "", jwt...); w.Code != 401 {
			t.Errorf("purge %v: an old JWT: %d %s", purge, w.Code, w.Body)
		}
		if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, undated...); w.Code != 401 {
			t.Errorf("purge %v: an old JWT without iat: %d %s", purge, w.Code, w.Body)
		}
		fresh := tok(hs256([]byte(strings.Repeat("k", 32)), map[string]any{"sub": "svc", "tenant": "own", "role": "writer", "iss": "idp", "iat": timeNow().Unix(), "exp": now + 7200}))
		if w := f.do("GET", "/head", "", fresh...); w.Code != 200 {
			t.Errorf("purge %v: a new JWT: %d %s", purge, w.Code, w.Body)
		}
		// Credentials made for the new tenant work.
		secret, _, err := f.svc.CreateToken("own", auth.RoleWriter, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, tok(secret)...); w.Code != 201 {
			t.Fatalf("purge %v: a new token: %d %s", purge, w.Code, w.Body)
		}
		if w := f.do("GET", "/head", "", tok(secret)...); !strings.Contains(w.Body.String(), `"seq":1`) {
			t.Errorf("purge %v: the new tenant holds old events: %s", purge, w.Body)
		}
	}
}

// TestLegacyCredentials: a tenant made before tenants had creation ids
// (no tenant.json, or one without "id") and its credentials (no tenant id)
// keep working; once the tenant is deleted and created again they do not.
func TestLegacyCredentials(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if err := tenants.Ensure(f.data, "old"); err != nil {
		t.Fatal(err)
	}
	secret, tk, err := f.svc.CreateToken("old", auth.RoleWriter, "", 0)
	if err != nil || tk.TenantID != "" {
		t.Fatalf("%v %+v", err, tk)
	}
	if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, tok(secret)...); w.Code != 201 {
		t.Fatalf("legacy token: %d %s", w.Code, w.Body)
	}
	path := filepath.Join(f.data, systemDir, tokensDir, tk.ID+".json")
	saved, _ := os.ReadFile(path)
	if _, err := f.svc.DeleteTenant("old", true); err != nil {
		t.Fatal(err)
	}
	f.h.forgetOpen("old")
	if _, err := f.svc.CreateTenant(tenants.Config{Name: "old"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, saved, 0o600)
	if w := f.do("GET", "/head", "", tok(secret)...); w.Code != 401 {
		t.Fatalf("legacy token after the tenant was created again: %d %s", w.Code, w.Body)
	}
}

// TestAdminBodyDuplicateNames: an admin API body naming a member twice —
// spelt the same, escaped, or in other case, which encoding/json would
// all merge into one field, taking the last — is refused: {"tenant":
// "own","role":"admin","tenant":""} read by a proxy or a log as a
// tenant's admin made an installation-wide one here.
func TestAdminBodyDuplicateNames(t *testing.T) {
	f := newAuthHandler(t, Config{})
	root := tok(f.tokens["own/admin"])
	for _, body := range []string{
		`{"tenant":"own","role":"admin","tenant":""}`,
		`{"tenant":"own","role":"admin","TENANT":""}`,
		`{"tenant":"own","role":"admin","\u0074enant":""}`,
		`{"tenant":"own","role":"reader","Role":"writer"}`,
	} {
		if w := f.do("POST", "/admin/tokens", body, root...); w.Code != 400 {
			t.Errorf("POST /admin/tokens %s: %d %s", body, w.Code, w.Body)
		}
	}
	if w := f.do("PUT", "/admin/users/bob", `{"password":"correct horse","tenant":"own","role":"reader","role":"admin","tenant":""}`, root...); w.Code != 400 {
		t.Errorf("PUT /admin/users with role and tenant twice: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/admin/tokens", `{"tenant":"own","role":"reader"}`, root...); w.Code != 201 {
		t.Errorf("POST /admin/tokens: %d %s", w.Code, w.Body)
	}
}

// TestTenantHeaderTwice: two Strata-Tenant headers are refused, not read
// as the first (net/http) — Apache joins them into one value, a proxy may
// take the last — so every mode answers the same and none guesses.
func TestTenantHeaderTwice(t *testing.T) {
	f := newAuthHandler(t, Config{})
	r := httptestRequest("GET", "/head", nil, tok(f.tokens["own/admin"])...)
	r.Header.Add(TenantHeader, "own")
	r.Header.Add(TenantHeader, "other")
	if w := f.serve(r); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_tenant") {
		t.Errorf("two %s headers: %d %s", TenantHeader, w.Code, w.Body)
	}
}
