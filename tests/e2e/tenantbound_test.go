package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventually polls f until it returns "" or 10 s pass, and then fails
// with what f last said. A running server sees a change the CLI made
// within a second; this waits for it without asserting how long it took.
func eventually(t testing.TB, f func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeletedTenantCredentialsE2E: a tenant deleted with the CLI while a
// server runs, and created again under its name: the old tenant's token
// reaches nothing, even restored from a copy, and the new tenant is
// empty. An admin "for a tenant" is refused by the CLI.
func TestDeletedTenantCredentialsE2E(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop", "--tier", "unlimited")
	writer := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "writer"))
	files, _ := filepath.Glob(filepath.Join(data, "system", "tokens", "*.json"))
	if len(files) != 1 {
		t.Fatalf("token files: %v", files)
	}
	saved, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, data, "--auth=required")
	do(t, "POST", s.url+"/events", `{"type":"a","entity":"x","data":1}`, bearer(writer)...).want(t, 201)

	strataCLI(t, data, "", "tenant", "delete", "shop", "--purge")
	strataCLI(t, data, "", "tenant", "create", "shop", "--tier", "unlimited")
	if _, err := os.Stat(files[0]); err == nil {
		t.Fatal("the token file of the deleted tenant is still there")
	}
	os.WriteFile(files[0], saved, 0o600) // restored from a backup
	eventually(t, func() string {
		r, err := try("GET", s.url+"/head", nil, bearer(writer)...)
		if err != nil {
			return err.Error()
		}
		if r.status != 401 || !strings.Contains(string(r.body), "credential_revoked") {
			return "the old tenant's token on the new tenant: " + r.String()
		}
		return ""
	})
	if r := do(t, "POST", s.url+"/events", `{"type":"a","entity":"x","data":1}`, bearer(writer)...); r.status != 401 {
		t.Fatalf("an append with the old tenant's token: %s", r)
	}
	fresh := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "writer"))
	if r := do(t, "GET", s.url+"/head", nil, bearer(fresh)...).want(t, 200); !strings.Contains(string(r.body), `"seq":0`) {
		t.Fatalf("the new tenant's head: %s", r)
	}

	out, errOut, code := cliRun(t, "", "token", "create", "--tenant", "shop", "--role", "admin", "--data", data)
	if code == 0 || strings.Contains(out, "strata_") || strings.Contains(errOut, "role admin, tenant shop") {
		t.Fatalf("token create --tenant shop --role admin: exit %d, %q, %q", code, out, errOut)
	}
}
