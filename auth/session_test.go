package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = bytes.Repeat([]byte{0x5a}, 32)

func TestSession(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := SessionClaims{User: "alice", Tenant: "acme", Role: RoleWriter, Fingerprint: "0123456789abcdef", IssuedAt: now, Expires: now.Add(time.Hour)}
	tok := SignSession(testSecret, c)
	if !IsSessionToken(tok) || !LooksLikeJWT(tok) {
		t.Fatalf("SignSession = %q: not routed as a session token", tok)
	}
	got, err := VerifySession(testSecret, tok, now.Add(59*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.User != c.User || got.Tenant != c.Tenant || got.Role != c.Role || got.Fingerprint != c.Fingerprint ||
		!got.IssuedAt.Equal(c.IssuedAt) || !got.Expires.Equal(c.Expires) {
		t.Errorf("VerifySession = %+v, want %+v", got, c)
	}
	// An admin of no tenant.
	admin := SignSession(testSecret, SessionClaims{User: "root", Role: RoleAdmin, IssuedAt: now, Expires: now.Add(time.Hour)})
	if got, err := VerifySession(testSecret, admin, now); err != nil || got.Tenant != "" || got.Role != RoleAdmin {
		t.Errorf("admin session: %+v, %v", got, err)
	}

	other := bytes.Repeat([]byte{0xa5}, 32)
	k := keys(t)
	for _, tc := range []struct {
		name   string
		secret []byte
		token  string
		at     time.Time
		err    error
	}{
		{"expired", testSecret, tok, now.Add(time.Hour), ErrExpired},
		{"other secret", other, tok, now, ErrBadSignature},
		{"no secret", nil, tok, now, ErrBadSignature},
		{"tampered payload", testSecret, tamperPayload(tok, `"role":"writer"`, `"role":"admin" `), now, ErrBadSignature},
		{"foreign JWT signed with the session secret", testSecret,
			signJWT(map[string]any{"alg": "HS256"}, map[string]any{"iss": "idp", "sub": "alice", "role": "admin", "exp": now.Unix() + 60}, hs256(testSecret)), now, ErrMalformed},
		{"no exp", testSecret,
			signJWT(map[string]any{"alg": "HS256"}, map[string]any{"iss": SessionIssuer, "sub": "alice", "role": "admin"}, hs256(testSecret)), now, ErrMalformed},
		{"EdDSA", testSecret,
			signJWT(map[string]any{"alg": "EdDSA"}, map[string]any{"iss": SessionIssuer, "sub": "alice", "role": "admin", "exp": now.Unix() + 60}, edSign(k.ed)), now, ErrMalformed},
		{"alg none", testSecret,
			signJWT(map[string]any{"alg": "none"}, map[string]any{"iss": SessionIssuer, "sub": "alice", "role": "admin", "exp": now.Unix() + 60}, func([]byte) []byte { return nil }), now, ErrMalformed},
		{"junk", testSecret, "strata_xyz", now, ErrMalformed},
	} {
		if _, err := VerifySession(tc.secret, tc.token, tc.at); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}

// tamperPayload replaces old with new in a token's payload, keeping its
// signature.
func tamperPayload(tok, old, new string) string {
	parts := strings.Split(tok, ".")
	p, _ := b64.DecodeString(parts[1])
	parts[1] = b64.EncodeToString([]byte(strings.Replace(string(p), old, new, 1)))
	return strings.Join(parts, ".")
}

func TestSignSessionShortSecretPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("SignSession with a 16-byte secret did not panic")
		}
	}()
	SignSession(make([]byte, 16), SessionClaims{User: "a", Role: RoleReader})
}

func TestIsSessionToken(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{signJWT(map[string]any{"alg": "HS256"}, map[string]any{"iss": SessionIssuer}, hs256(testSecret)), true},
		{signJWT(map[string]any{"alg": "RS256"}, map[string]any{"iss": SessionIssuer}, hs256(testSecret)), true}, // routed, then refused
		{signJWT(map[string]any{"alg": "HS256"}, map[string]any{"iss": "https://idp"}, hs256(testSecret)), false},
		{signJWT(map[string]any{"alg": "HS256"}, map[string]any{"sub": "x"}, hs256(testSecret)), false},
		{"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", false}, // payload "not json"
		{"a.b.c", false},
		{"strata_abc", false},
		{"", false},
	} {
		if got := IsSessionToken(tc.s); got != tc.ok {
			t.Errorf("IsSessionToken(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "system", "secret")
	s1, err := LoadOrCreateSecret(path)
	if err != nil || len(s1) != 32 {
		t.Fatalf("LoadOrCreateSecret = %x, %v", s1, err)
	}
	if bytes.Equal(s1, make([]byte, 32)) {
		t.Error("the secret is all zeros")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret mode %v, want 0600", fi.Mode().Perm())
	}
	if s2, err := LoadOrCreateSecret(path); err != nil || !bytes.Equal(s1, s2) {
		t.Errorf("second LoadOrCreateSecret = %x, %v; want the first", s2, err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Error("a 5-byte secret file was accepted")
	}
}

// TestLoadOrCreateSecretRace checks that racing creators agree.
func TestLoadOrCreateSecretRace(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "secret")
		const n = 8
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				s, err := LoadOrCreateSecret(path)
				if err != nil {
					t.Error(err)
				}
				got[i] = s
			})
		}
		wg.Wait()
		for i := 1; i < n; i++ {
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("racing creators got different secrets: %x and %x", got[0], got[i])
			}
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(m) != 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}
}
