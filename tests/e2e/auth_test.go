package e2e_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// strata runs a CLI subcommand of the real binary on data and returns its
// standard output; it fails the test on a non-zero exit.
func strataCLI(t testing.TB, data string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--data", data)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// TestAccountsStandalone: tokens made with the CLI, against the real
// server: roles, tenants, meta.by, revocation, the audit log.
func TestAccountsStandalone(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop", "--tier", "unlimited")
	strataCLI(t, data, "", "tenant", "create", "other")
	writer := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "writer", "--name", "backend"))
	reader := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "reader"))
	device := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "appender"))
	adminTok := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--role", "admin"))
	s := startServer(t, data, "--auth=required")

	do(t, "GET", s.url+"/events", nil).wantError(t, 401, "unauthorized")
	ev := `{"type":"order.placed","entity":"o-1","data":{"n":1},"meta":{"by":"forged","source":"shop"}}`
	r := do(t, "POST", s.url+"/events", ev, bearer(writer)...).want(t, 201)
	do(t, "POST", s.url+"/events", ev, bearer(reader)...).wantError(t, 403, "forbidden")
	do(t, "POST", s.url+"/events", `{"type":"reading.taken","entity":"d-1","data":1}`, bearer(device)...).want(t, 201)
	do(t, "GET", s.url+"/events", nil, bearer(device)...).wantError(t, 403, "forbidden")
	do(t, "GET", s.url+"/events", nil, append(bearer(writer), "Strata-Tenant", "other")...).wantError(t, 403, "wrong_tenant")
	do(t, "GET", s.url+"/t/other/events", nil, bearer(writer)...).wantError(t, 403, "wrong_tenant")
	do(t, "GET", s.url+"/t/nosuch/events", nil, bearer(writer)...).wantError(t, 403, "wrong_tenant")

	// The server says who appended; the client's meta.by is replaced.
	evs := parseNDJSON(t, do(t, "GET", s.url+"/events", nil, append(bearer(reader), "Accept", "application/x-ndjson")...).want(t, 200).body)
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	var meta map[string]string
	json.Unmarshal(evs[0].Meta, &meta)
	if !strings.HasPrefix(meta["by"], "token:") || meta["source"] != "shop" {
		t.Fatalf("meta %s: want by=token:<id> and source kept", evs[0].Meta)
	}
	checkChain(t, evs)
	_ = r

	// An admin reaches any tenant, by header or path, and the admin API.
	do(t, "GET", s.url+"/t/other/head", nil, bearer(adminTok)...).want(t, 200)
	do(t, "GET", s.url+"/admin/tenants", nil, bearer(adminTok)...).want(t, 200)
	do(t, "GET", s.url+"/admin/tenants", nil, bearer(writer)...).wantError(t, 403, "forbidden")

	// Suspend through the API: 403 with the reason; resume: served again.
	do(t, "POST", s.url+"/admin/tenants/shop/suspend", `{"reason":"maintenance"}`, bearer(adminTok)...).want(t, 200)
	e := do(t, "GET", s.url+"/head", nil, bearer(reader)...).wantError(t, 403, "tenant_suspended")
	if !strings.Contains(fmt.Sprint(e["message"]), "maintenance") {
		t.Errorf("suspension message %v", e["message"])
	}
	do(t, "POST", s.url+"/admin/tenants/shop/resume", nil, bearer(adminTok)...).want(t, 200)
	do(t, "GET", s.url+"/head", nil, bearer(reader)...).want(t, 200)

	// Revoke the writer's token through the API (its id is in meta.by).
	id := strings.TrimPrefix(meta["by"], "token:")
	do(t, "DELETE", s.url+"/admin/tokens/"+id, nil, bearer(adminTok)...).want(t, 200)
	do(t, "POST", s.url+"/events", ev, bearer(writer)...).wantError(t, 401, "unauthorized")

	// The audit log has the suspension, the refusals and the revocation,
	// and its chain verifies.
	a := do(t, "GET", s.url+"/audit?tenant=shop&action=tenant.suspend", nil, append(bearer(adminTok), "Accept", "application/x-ndjson")...).want(t, 200)
	if n := len(parseNDJSON(t, a.body)); n != 1 {
		t.Errorf("%d tenant.suspend records: %s", n, a.body)
	}
	s.stop(os.Interrupt, 10*time.Second)
	cmd := exec.Command(bin, "verify", "--all", "--data", data)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit: OK") {
		t.Fatalf("strata verify --all: %v\n%s", err, out)
	}
}

// TestSessionInCGI: a user made with the real htpasswd -B (or strata user
// add) logs in once through CGI; later requests carry the session token.
func TestSessionInCGI(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	users := filepath.Join(data, "system", "users")
	if path, err := exec.LookPath("htpasswd"); err == nil {
		os.MkdirAll(filepath.Dir(users), 0o700)
		if out, err := exec.Command(path, "-B", "-b", "-c", users, "alice", "s3cret-pass").CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v %s", err, out)
		}
		strataCLI(t, data, "", "user", "grant", "alice", "--tenant", "shop", "--role", "writer")
	} else {
		t.Log("htpasswd not installed; the user is made with strata user add")
		strataCLI(t, data, "s3cret-pass\n", "user", "add", "alice", "--tenant", "shop", "--role", "writer", "--password-stdin")
	}
	c := cgiServer(t, data, "STRATA_AUTH=required")
	base := c.URL + "/api"
	do(t, "POST", base+"/session", `{"user":"alice","password":"wrong"}`).wantError(t, 401, "unauthorized")
	do(t, "POST", base+"/session", `{"user":"nobody","password":"wrong"}`).wantError(t, 401, "unauthorized")
	r := do(t, "POST", base+"/session", `{"user":"alice","password":"s3cret-pass"}`).want(t, 201)
	var sess struct{ Token, Tenant, Role string }
	json.Unmarshal(r.body, &sess)
	if sess.Tenant != "shop" || sess.Role != "writer" || sess.Token == "" {
		t.Fatalf("session answer %s", r.body)
	}
	do(t, "POST", base+"/events", `{"type":"a.b","entity":"x","data":1}`, bearer(sess.Token)...).want(t, 201)
	w := do(t, "GET", base+"/session", nil, bearer(sess.Token)...).want(t, 200)
	if !strings.Contains(string(w.body), `"principal":"user:alice"`) {
		t.Fatalf("whoami %s", w.body)
	}
	// Basic works too (and pays the hash each time in CGI).
	do(t, "GET", base+"/head", nil, "Authorization", "Basic YWxpY2U6czNjcmV0LXBhc3M=").want(t, 200)
	// A new password ends the session.
	strataCLI(t, data, "another-pass\n", "user", "passwd", "alice", "--password-stdin")
	do(t, "GET", base+"/head", nil, bearer(sess.Token)...).wantError(t, 401, "session_ended")
}

// TestQuotaUnderConcurrentCGI: many CGI processes at once never store more
// events in a day than the quota allows.
func TestQuotaUnderConcurrentCGI(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "small", "--tier", "unlimited", "--events-per-day", "25")
	tok := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "small", "--role", "writer"))
	c := cgiServer(t, data, "STRATA_AUTH=required")
	base := c.URL + "/api"
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 6; j++ {
				r, err := try("POST", base+"/events", `[{"type":"a.b","entity":"x","data":1},{"type":"a.b","entity":"y","data":2}]`, bearer(tok)...)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				codes[r.status]++
				mu.Unlock()
				if r.status == 429 && !strings.Contains(string(r.body), "events_per_day") {
					t.Errorf("429 without naming the quota: %s", r.body)
				}
			}
		}()
	}
	wg.Wait()
	h := do(t, "GET", base+"/head", nil, bearer(tok)...).want(t, 200)
	var hd head
	json.Unmarshal(h.body, &hd)
	if hd.Seq > 25 || codes[201] != int(hd.Seq)/2 || codes[429] == 0 {
		t.Fatalf("head seq %d with 2-event requests: %v; want at most 25 events", hd.Seq, codes)
	}
	q := do(t, "GET", base+"/quota", nil, bearer(tok)...).want(t, 200)
	if !strings.Contains(string(q.body), fmt.Sprintf(`"events_today":%d`, hd.Seq)) {
		t.Errorf("GET /quota: %s", q.body)
	}
	_ = http.StatusOK
}

// TestTraversalAttempts: names that try to leave their directory are
// refused before they touch the file system.
func TestTraversalAttempts(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	adminTok := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--role", "admin"))
	s := startServer(t, data, "--auth=required")
	before := listTree(t, data)
	for _, c := range []struct {
		method, path string
		hdr          []string
	}{
		{"GET", "/t/../events", nil},
		{"GET", "/t/..%2F..%2Fetc/events", nil},
		{"GET", "/events", []string{"Strata-Tenant", "../../etc"}},
		{"GET", "/events", []string{"Strata-Tenant", "Shop"}},
		{"GET", "/events", []string{"Strata-Tenant", "a/b"}},
		{"GET", "/storage/..%2F..%2Fsystem%2Fsecret", nil},
		{"GET", "/storage/" + strings.Repeat("../", 22) + "x", nil},
		{"GET", "/events/..%2Fsecret", nil},
		{"DELETE", "/admin/tokens/..%2F..%2Fsecret", nil},
		{"DELETE", "/admin/tenants/..%2Fsystem", nil},
		{"GET", "/admin/tenants/%2e%2e", nil},
	} {
		r := do(t, c.method, s.url+c.path, nil, append(bearer(adminTok), c.hdr...)...)
		if r.status != 400 && r.status != 404 {
			t.Errorf("%s %s %v: %d %s; want 400 or 404", c.method, c.path, c.hdr, r.status, r.body)
		}
	}
	for _, tok := range []string{"strata_../../system/secret", "strata_" + strings.Repeat("%", 43), "../secret", "strata_" + strings.Repeat("A", 44)} {
		r := do(t, "GET", s.url+"/head", nil, "Authorization", "Bearer "+tok)
		if r.status != 401 {
			t.Errorf("token %q: %d %s", tok, r.status, r.body)
		}
	}
	// An entity id is a name, never a path: one that looks like a path is
	// stored as an event and read back, and makes no file.
	evil := `../../../../tmp/strata-evil`
	do(t, "POST", s.url+"/t/shop/events", `{"type":"a.b","entity":"`+evil+`","data":1}`, bearer(adminTok)...).want(t, 201)
	r := do(t, "GET", s.url+"/t/shop/events?entity="+url.QueryEscape(evil), nil, bearer(adminTok)...).want(t, 200)
	if !strings.Contains(string(r.body), evil) {
		t.Errorf("entity read: %s", r.body)
	}
	if _, err := os.Stat("/tmp/strata-evil"); err == nil {
		t.Error("an entity id became a file")
	}
	s.stop(os.Interrupt, 10*time.Second)
	after := listTree(t, data)
	for p := range after {
		if !before[p] && !strings.Contains(p, "system/audit") && !strings.Contains(p, "system/throttle") && !strings.Contains(p, "system/metrics") && !strings.Contains(p, "/index") && !strings.Contains(p, "tenants/shop/") {
			t.Errorf("new file after the attempts: %s", p)
		}
	}
}

func listTree(t testing.TB, root string) map[string]bool {
	m := map[string]bool{}
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			m[rel] = true
		}
		return nil
	})
	return m
}

// TestJWKS: a server started with --jwks accepts an EdDSA JWT signed by a
// key of the file, and refuses one signed by another key.
func TestJWKS(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	jwks := filepath.Join(data, "jwks.json")
	os.WriteFile(jwks, fmt.Appendf(nil, `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q}]}`,
		base64.RawURLEncoding.EncodeToString(pub)), 0o644)
	s := startServer(t, data, "--auth=required", "--jwks", jwks, "--jwt-issuer", "https://idp.example")
	sign := func(key ed25519.PrivateKey, exp int64) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT","kid":"k1"}`))
		p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil,
			`{"sub":"svc","tenant":"shop","role":"writer","iss":"https://idp.example","iat":%d,"exp":%d}`, time.Now().Unix(), exp))
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(h+"."+p)))
	}
	now := time.Now().Unix()
	do(t, "POST", s.url+"/events", `{"type":"a.b","entity":"x","data":1}`, bearer(sign(priv, now+60))...).want(t, 201)
	do(t, "GET", s.url+"/head", nil, bearer(sign(other, now+60))...).wantError(t, 401, "")
	do(t, "GET", s.url+"/head", nil, bearer(sign(priv, now-3600))...).wantError(t, 401, "token_expired")
}

// TestStorageQuotaUnderConcurrentCGI: blob uploads from many CGI processes
// at once stay within the tenant's storage quota: the check and the
// counter share one lock across processes.
func TestStorageQuotaUnderConcurrentCGI(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "small", "--tier", "unlimited", "--storage", "20K")
	tok := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "small", "--role", "writer"))
	c := cgiServer(t, data, "STRATA_AUTH=required")
	base := c.URL + "/api"
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				body := bytes.Repeat([]byte{byte('a' + i), byte(j)}, 1000) // 2,000 distinct bytes
				r, err := try("PUT", base+"/storage/", body, bearer(tok)...)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				codes[r.status]++
				mu.Unlock()
				if r.status == 507 && !strings.Contains(string(r.body), "storage_bytes") {
					t.Errorf("507 without naming the quota: %s", r.body)
				}
			}
		}()
	}
	wg.Wait()
	q := do(t, "GET", base+"/quota", nil, bearer(tok)...).want(t, 200)
	var v struct {
		Usage struct {
			StorageBytes int64 `json:"storage_bytes"`
			Blobs        int64 `json:"blobs"`
		} `json:"usage"`
	}
	json.Unmarshal(q.body, &v)
	if v.Usage.StorageBytes > 20<<10 || int(v.Usage.Blobs) != codes[201] || codes[507] == 0 {
		t.Fatalf("usage %+v after %v: want at most 20 KiB stored and the rest refused with 507", v.Usage, codes)
	}
}
