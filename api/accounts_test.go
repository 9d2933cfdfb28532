package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"strata/auth"
	"strata/quota"
	"strata/tenants"
)

func tok(s string) []string { return []string{"Authorization", "Bearer " + s} }

// TestMetaByCannotBeForged: the principal lands in meta.by, over the
// client's own.
func TestMetaByCannotBeForged(t *testing.T) {
	f := newAuthHandler(t, Config{})
	w := f.do("POST", "/events", `[{"type":"a.b","entity":"x","data":1,"meta":{"by":"admin","\u0062y":"x","src":"s"}},{"type":"a.b","entity":"y","data":2}]`, tok(f.tokens["own/writer"])...)
	if w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = f.do("GET", "/events", "", tok(f.tokens["own/reader"])...)
	var evs []struct{ Meta map[string]string }
	json.Unmarshal(w.Body.Bytes(), &evs)
	if len(evs) != 2 {
		t.Fatalf("%s", w.Body)
	}
	for _, e := range evs {
		if !strings.HasPrefix(e.Meta["by"], "token:") {
			t.Errorf("meta %v: by is not the token", e.Meta)
		}
	}
	if evs[0].Meta["src"] != "s" {
		t.Errorf("the client's other meta was lost: %v", evs[0].Meta)
	}
}

// TestQuotas: each quota refuses with its status and names itself, and
// GET /quota shows limits and usage.
func TestQuotas(t *testing.T) {
	f := newAuthHandler(t, Config{})
	set := func(o quota.Overrides) {
		t.Helper()
		if _, err := f.svc.UpdateTenant("own", "quota.update", nil, func(c *tenants.Config) error {
			c.Tier = "unlimited"
			c.Quota = o
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		f.h.forget("own")
	}
	n := func(v int64) *int64 { return &v }
	writer := tok(f.tokens["own/writer"])
	set(quota.Overrides{EventsPerDay: n(3)})
	if w := f.do("POST", "/events", `[{"type":"a","entity":"x","data":1},{"type":"a","entity":"x","data":2}]`, writer...); w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w := f.do("POST", "/events", `[{"type":"a","entity":"x","data":1},{"type":"a","entity":"x","data":2}]`, writer...)
	if w.Code != 429 || !strings.Contains(w.Body.String(), `"quota":"events_per_day"`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("over events_per_day: %d %s %v", w.Code, w.Body, w.Header())
	}
	if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":3}`, writer...); w.Code != 201 {
		t.Fatalf("the last event of the day: %d %s", w.Code, w.Body)
	}
	w = f.do("GET", "/quota", "", tok(f.tokens["own/appender"])...)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"events_today":3`) || !strings.Contains(w.Body.String(), `"events_per_day":3`) {
		t.Fatalf("GET /quota: %d %s", w.Code, w.Body)
	}

	set(quota.Overrides{MaxBlob: n(10)})
	w = f.do("PUT", "/storage/", "more than ten bytes", writer...)
	if w.Code != 413 || !strings.Contains(w.Body.String(), `"quota":"max_blob"`) {
		t.Fatalf("over max_blob: %d %s", w.Code, w.Body)
	}
	// A chunked upload has no length to check first: refused on the way.
	r := httptestRequest("PUT", "/storage/", strings.NewReader("more than ten bytes"), writer...)
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	w = f.serve(r)
	if w.Code != 413 || !strings.Contains(w.Body.String(), `"quota":"max_blob"`) {
		t.Fatalf("chunked over max_blob: %d %s", w.Code, w.Body)
	}

	set(quota.Overrides{StorageBytes: n(1000)})
	if w := f.do("PUT", "/storage/", strings.Repeat("a", 300), writer...); w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = f.do("PUT", "/storage/", strings.Repeat("b", 600), writer...)
	if w.Code != 507 || !strings.Contains(w.Body.String(), `"quota":"storage_bytes"`) {
		t.Fatalf("over storage_bytes: %d %s", w.Code, w.Body)
	}
	w = f.do("POST", "/events", `{"type":"a","entity":"x","data":"`+strings.Repeat("c", 800)+`"}`, writer...)
	if w.Code != 507 {
		t.Fatalf("append over storage_bytes: %d %s", w.Code, w.Body)
	}

	rps := 1.0
	burst := 2
	set(quota.Overrides{RequestsPerSecond: &rps, Burst: &burst})
	codes := []int{}
	for i := 0; i < 4; i++ {
		codes = append(codes, f.do("GET", "/head", "", writer...).Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[3] != 429 {
		t.Fatalf("1 rps, burst 2: %v", codes)
	}
	// Another credential has its own budget.
	if w := f.do("GET", "/head", "", tok(f.tokens["own/reader"])...); w.Code != 200 {
		t.Fatalf("another credential: %d", w.Code)
	}
}

// TestCORS: preflights and answers carry CORS headers only for allowed
// origins; credentials only to named ones.
func TestCORS(t *testing.T) {
	f := newAuthHandler(t, Config{Origins: []string{"https://all.example"}})
	pre := func(path, origin string) *httptestRecorder {
		return f.do("OPTIONS", path, "", "Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	}
	if w := pre("/t/own/events", "https://evil.example"); w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from a stranger: %d %v", w.Code, w.Header())
	}
	if w := pre("/t/own/events", "https://all.example"); w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://all.example" {
		t.Fatalf("preflight from an installation origin: %d %v", w.Code, w.Header())
	}
	f.svc.UpdateTenant("own", "tenant.update", nil, func(c *tenants.Config) error {
		c.Origins = []string{"https://app.example"}
		return nil
	})
	f.h.forget("own")
	w := pre("/t/own/events", "https://app.example")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from the tenant's origin: %d %v", w.Code, w.Header())
	}
	if w := pre("/t/other/events", "https://app.example"); w.Code != 403 {
		t.Fatalf("preflight to another tenant: %d", w.Code)
	}
	w = f.do("GET", "/t/own/head", "", append(tok(f.tokens["own/reader"]), "Origin", "https://app.example")...)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Strata-Head") {
		t.Fatalf("CORS answer: %d %v", w.Code, w.Header())
	}
	w = f.do("GET", "/t/own/head", "", append(tok(f.tokens["own/reader"]), "Origin", "https://evil.example")...)
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS headers for a stranger: %v", w.Header())
	}
	for _, h := range []string{"X-Content-Type-Options", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if w.Header().Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

// hs256 signs claims with secret.
func hs256(secret []byte, claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p, _ := json.Marshal(claims)
	msg := h + "." + base64.RawURLEncoding.EncodeToString(p)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestJWT: an identity provider's HS256 token is a principal; an expired
// or wrongly signed one is refused.
func TestJWT(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	f := newAuthHandler(t, Config{JWT: &auth.JWTConfig{HS256Secret: secret, Issuer: "idp"}})
	now := time.Now().Unix()
	good := hs256(secret, map[string]any{"sub": "svc-1", "tenant": "own", "role": "writer", "iss": "idp", "iat": now, "exp": now + 60})
	w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, tok(good)...)
	if w.Code != 201 {
		t.Fatalf("JWT append: %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/session", "", tok(good)...); !strings.Contains(w.Body.String(), `"principal":"jwt:svc-1"`) {
		t.Fatalf("whoami: %s", w.Body)
	}
	for name, bad := range map[string]string{
		"expired":     hs256(secret, map[string]any{"sub": "s", "tenant": "own", "role": "writer", "iss": "idp", "exp": now - 3600}),
		"wrong key":   hs256([]byte(strings.Repeat("x", 32)), map[string]any{"sub": "s", "tenant": "own", "role": "writer", "iss": "idp", "exp": now + 60}),
		"wrong iss":   hs256(secret, map[string]any{"sub": "s", "tenant": "own", "role": "writer", "iss": "other", "exp": now + 60}),
		"bad role":    hs256(secret, map[string]any{"sub": "s", "tenant": "own", "role": "root", "iss": "idp", "exp": now + 60}),
		"bad tenant":  hs256(secret, map[string]any{"sub": "s", "tenant": "../x", "role": "writer", "iss": "idp", "exp": now + 60}),
		"alg none":    strings.SplitN(good, ".", 2)[0][:0] + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(good, ".")[1] + ".",
		"garbage sig": good[:len(good)-4] + "AAAA",
	} {
		if w := f.do("GET", "/head", "", tok(bad)...); w.Code != 401 {
			t.Errorf("%s JWT: %d %s", name, w.Code, w.Body)
		}
	}
}

// TestSessionAndAudit: a login through the API, a session, and the audit
// records they leave, read back with filters.
func TestSessionAndAudit(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if err := f.svc.SetUser("alice", "correct horse", "own", auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	if w := f.do("POST", "/session", `{"user":"alice","password":"wrong"}`); w.Code != 401 {
		t.Fatalf("wrong password: %d", w.Code)
	}
	w := f.do("POST", "/session", `{"user":"alice","password":"correct horse"}`)
	var s struct{ Token, Role, Tenant string }
	json.Unmarshal(w.Body.Bytes(), &s)
	if w.Code != 201 || s.Role != "reader" || s.Tenant != "own" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	if w := f.do("GET", "/head", "", tok(s.Token)...); w.Code != 200 {
		t.Fatalf("with the session: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, tok(s.Token)...); w.Code != 403 {
		t.Fatalf("a reader's session appends: %d", w.Code)
	}
	// A new role ends the session.
	f.svc.SetUser("alice", "", "own", auth.RoleWriter)
	f.h.acc.reload() // what a server does within a second, and its own admin API at once
	if w := f.do("GET", "/head", "", tok(s.Token)...); w.Code != 401 {
		t.Fatalf("session after a role change: %d %s", w.Code, w.Body)
	}
	admin := tok(f.tokens["own/admin"])
	read := func(q string) []map[string]any {
		t.Helper()
		w := f.do("GET", "/audit?"+q, "", append(admin, "Accept", "application/x-ndjson")...)
		if w.Code != 200 {
			t.Fatalf("GET /audit?%s: %d %s", q, w.Code, w.Body)
		}
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
			if line != "" {
				var m map[string]any
				json.Unmarshal([]byte(line), &m)
				out = append(out, m)
			}
		}
		return out
	}
	if got := read("action=session.create"); len(got) != 1 {
		t.Errorf("session.create records: %v", got)
	}
	if got := read("principal=user:alice&action=auth.refused"); len(got) != 2 {
		t.Errorf("refusals of alice: %d %v", len(got), got)
	}
	if got := read("tenant=susp&action=tenant.suspend"); len(got) != 1 {
		t.Errorf("suspension record: %v", got)
	}
	if got := read("action=access.denied"); len(got) != 1 {
		t.Errorf("access.denied records: %d", len(got))
	}
	if w := f.do("GET", "/audit", "", tok(f.tokens["own/writer"])...); w.Code != 403 {
		t.Errorf("a writer reads the audit log: %d", w.Code)
	}
	_ = fmt.Sprint
}

// TestAuditAppends: with AuditAppends each append request is also an
// audit record; without, the event's meta.by is the record.
func TestAuditAppends(t *testing.T) {
	for _, on := range []bool{false, true} {
		f := newAuthHandler(t, Config{AuditAppends: on})
		if w := f.do("POST", "/events", `[{"type":"a","entity":"x","data":1},{"type":"a","entity":"y","data":2}]`, tok(f.tokens["own/writer"])...); w.Code != 201 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		w := f.do("GET", "/audit?action=events.append&tenant=own", "", tok(f.tokens["own/admin"])...)
		n := strings.Count(w.Body.String(), `"type":"events.append"`)
		if want := map[bool]int{false: 0, true: 1}[on]; n != want || (on && !strings.Contains(w.Body.String(), `\"events\":2`) && !strings.Contains(w.Body.String(), `"events":2`)) {
			t.Errorf("AuditAppends %v: %d events.append records: %s", on, n, w.Body)
		}
	}
}

// TestSetup: the setup key buys the first administrator's token once.
func TestSetup(t *testing.T) {
	dir := t.TempDir()
	h := New(Config{DataDir: dir, NoSync: true, SetupKey: "a-long-setup-key-1234"})
	t.Cleanup(func() { h.Close() })
	f := &authFixture{h: h, data: dir}
	if w := f.do("POST", "/setup", `{"key":"wrong"}`); w.Code != 401 {
		t.Fatalf("wrong key: %d %s", w.Code, w.Body)
	}
	w := f.do("POST", "/setup", `{"key":"a-long-setup-key-1234"}`)
	var v struct{ Token, Role string }
	json.Unmarshal(w.Body.Bytes(), &v)
	if w.Code != 201 || v.Role != "admin" || !strings.HasPrefix(v.Token, "strata_") {
		t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/admin/tenants", `{"name":"shop"}`, tok(v.Token)...); w.Code != 201 {
		t.Fatalf("the setup token as admin: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/setup", `{"key":"a-long-setup-key-1234"}`); w.Code != 409 {
		t.Fatalf("second setup: %d %s", w.Code, w.Body)
	}
	off := newAuthHandler(t, Config{})
	if w := off.do("POST", "/setup", `{"key":"anything"}`); w.Code != 404 {
		t.Fatalf("setup without a key configured: %d", w.Code)
	}
}
