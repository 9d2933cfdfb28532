package e2e_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// holdTenantLock takes the flock every writer of the default tenant takes,
// as another process would, and returns its release.
func holdTenantLock(t *testing.T, data string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(data, "tenants", "default", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the tenant lock file: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flock: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	released := false
	release := func() {
		if !released {
			released = true
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestLockTimeout: while another process holds the tenant's flock, an
// append waits at most --lock-timeout, then answers 503 with Retry-After,
// having stored nothing; reads go on.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, "--lock-timeout", "300ms")
	mustAppend(t, s.url, `{"type":"a","entity":"e"}`)
	release := holdTenantLock(t, data)
	start := time.Now()
	r := do(t, "PUT", s.url+"/events", `{"type":"a","entity":"e"}`)
	r.wantError(t, 503, "busy")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("answered after %v with a 300ms lock timeout", d)
	}
	if h := mustHead(t, s.url); h.Seq != 1 {
		t.Errorf("head seq %d while locked, want 1", h.Seq)
	}
	// The same through CGI.
	c := cgiServer(t, data, "STRATA_LOCK_TIMEOUT=300ms")
	r = do(t, "PUT", c.URL+"/api/events", `{"type":"a","entity":"e"}`)
	r.wantError(t, 503, "busy")
	if r.header.Get("Retry-After") == "" {
		t.Error("CGI 503 without Retry-After")
	}
	// A writer waiting when the lock is released gets through.
	done := make(chan *response)
	go func() {
		r, _ := try("PUT", s.url+"/events", `{"type":"a","entity":"e"}`)
		done <- r
	}()
	time.Sleep(100 * time.Millisecond)
	release()
	if r := <-done; r == nil || r.status != 201 {
		t.Fatalf("append after the lock was released: %v", r)
	}
	mustAppend(t, c.URL+"/api", `{"type":"a","entity":"e"}`)
	checkChain(t, readAll(t, s.url))
	mustVerify(t, data, 3)
}
