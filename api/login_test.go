package api

import (
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"strata/auth"
)

// TestConcurrentGuesses: simultaneous password guesses from one address
// are counted before any password is checked, so only a user's free
// failures are ever checked, the right password among them or not.
func TestConcurrentGuesses(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if err := f.svc.SetUser("alice", "correct horse", "own", auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	const guesses = 60
	codes := make([]int, guesses)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range guesses {
		pass := "wrong" + string(rune('a'+i%26))
		if i == guesses/2 {
			pass = "correct horse"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/head", nil)
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+pass)))
			r.RemoteAddr = "192.0.2.7:4000"
			<-start
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			codes[i] = w.Code
		}()
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, c := range codes {
		if c != 429 {
			checked++
		}
	}
	if checked > 5 {
		t.Fatalf("%d of %d simultaneous guesses had their password checked; want at most 5: %v", checked, guesses, codes)
	}
}

// TestLoginThrottleFailsClosed: with the failed-login counters unwritable (here
// on a full device) a password login is refused with 503, never checked
// uncounted.
func TestLoginThrottleFailsClosed(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if err := f.svc.SetUser("alice", "correct horse", "own", auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.data, systemDir, throttleFile)
	os.Remove(path)
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	basic := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:correct horse"))}
	w := f.do("GET", "/head", "", basic...)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || strings.Contains(w.Body.String(), "/dev/full") {
		t.Fatalf("login with the throttle on a full device: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w := f.do("POST", "/session", `{"user":"alice","password":"correct horse"}`); w.Code != 503 {
		t.Fatalf("POST /session with the throttle on a full device: %d %s", w.Code, w.Body)
	}
	// Tokens need no throttle.
	if w := f.do("GET", "/head", "", tok(f.tokens["own/reader"])...); w.Code != 200 {
		t.Fatalf("a token: %d %s", w.Code, w.Body)
	}
}

// TestJunkTokensDoNotLockOutPasswords: refused bearer credentials are
// counted apart from password logins, so that one client behind a NAT
// sending stale tokens cannot lock everyone else out.
func TestJunkTokensDoNotLockOutPasswords(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if err := f.svc.SetUser("alice", "correct horse", "own", auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	send := func(hdr ...string) int {
		r := httptestRequest("GET", "/head", nil, hdr...)
		r.RemoteAddr = "192.0.2.8:4000"
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		return w.Code
	}
	for range 100 {
		if c := send(tok("strata_" + strings.Repeat("A", 43))...); c != 401 {
			t.Fatalf("a junk token: %d", c)
		}
	}
	if c := send("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:correct horse"))); c != 200 {
		t.Fatalf("a password login from the same address after 100 junk tokens: %d", c)
	}
}
