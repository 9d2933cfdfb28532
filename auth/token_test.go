package auth

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata/internal/blake3"
)

func TestNewTokenAndParseToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, digest, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(secret) != 50 || !strings.HasPrefix(secret, "strata_") {
			t.Fatalf("NewToken = %q: want strata_ and 43 base64url characters", secret)
		}
		if digest != blake3.Sum256([]byte(secret)) {
			t.Fatal("digest is not BLAKE3-256 of the token")
		}
		d, ok := ParseToken(secret)
		if !ok || d != digest {
			t.Fatalf("ParseToken(NewToken()) = %x, %v", d, ok)
		}
		if seen[secret] {
			t.Fatal("NewToken repeated itself")
		}
		seen[secret] = true
	}
}

func TestParseTokenRefuses(t *testing.T) {
	good, _, _ := NewToken()
	body := good[len("strata_"):]
	for _, s := range []string{
		"",
		"strata_",
		"../../etc/passwd",
		"strata_../x",
		"strata_" + strings.Repeat(".", 43),
		"strata_../../../../../../../../../../etc/passwd00",
		"strata_" + body[:42],             // short
		good + "A",                        // long
		good + strings.Repeat("A", 10000), // overlong
		"STRATA_" + body,                  // prefix
		"strata-" + body,
		"strata_" + body[:42] + "+",  // std alphabet
		"strata_" + body[:42] + "/",  //
		"strata_" + body[:41] + "==", // padding
		"strata_" + body[:42] + "B",  // non-canonical last character: unused bits set
		"strata_" + body[:20] + "\x00" + body[21:],
		"strata_" + body[:20] + "é"[:1] + body[21:],
		"eyJhbGciOiJIUzI1NiJ9.e30.sig",
	} {
		if _, ok := ParseToken(s); ok {
			t.Errorf("ParseToken(%q) = ok", s)
		}
	}
}

func TestTokenID(t *testing.T) {
	var d [32]byte
	for i := range d {
		d[i] = byte(i)
	}
	if got, want := TokenID(d), "000102030405060708090a0b"; got != want {
		t.Errorf("TokenID = %q, want %q", got, want)
	}
}

func mustNewToken(tb testing.TB, tenant string, role Role, created, expires time.Time) (string, Token) {
	tb.Helper()
	secret, digest, err := NewToken()
	if err != nil {
		tb.Fatal(err)
	}
	return secret, Token{ID: TokenID(digest), Digest: digest, Tenant: tenant, Role: role, Name: "ci", Created: created, Expires: expires}
}

func TestTokenStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	s := OpenTokens(dir)
	if ts, err := s.List(); err != nil || len(ts) != 0 {
		t.Fatalf("List of a missing directory = %v, %v", ts, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	secret1, t1 := mustNewToken(t, "acme", RoleWriter, now, time.Time{})
	secret2, t2 := mustNewToken(t, "", RoleAdmin, now.Add(-time.Hour), now.Add(24*time.Hour))
	for _, tok := range []Token{t1, t2} {
		if err := s.Create(tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(t1); err == nil {
		t.Error("Create replaced an existing token")
	}

	// The file: its fields, its mode.
	path := filepath.Join(dir, t2.ID+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]string
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": t2.ID, "digest": hex.EncodeToString(t2.Digest[:]), "role": "admin", "name": "ci",
		"created": "2026-01-02T02:04:05Z", "expires": "2026-01-03T03:04:05Z"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("file field %s = %q, want %q", k, f[k], v)
		}
	}
	if _, ok := f["tenant"]; ok {
		t.Error("a token of no tenant has a tenant field")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}

	// Lookup.
	for _, tc := range []struct {
		secret string
		at     time.Time
		want   Token
		err    error
	}{
		{secret1, now, t1, nil},
		{secret1, now.Add(100 * 365 * 24 * time.Hour), t1, nil},
		{secret2, now, t2, nil},
		{secret2, now.Add(24*time.Hour - time.Nanosecond), t2, nil},
		{secret2, now.Add(24 * time.Hour), Token{}, ErrExpired},
	} {
		d, _ := ParseToken(tc.secret)
		got, err := s.Lookup(d, tc.at)
		if !errors.Is(err, tc.err) || err == nil && !got.Created.Equal(tc.want.Created) ||
			err == nil && (got.ID != tc.want.ID || got.Digest != tc.want.Digest || got.Tenant != tc.want.Tenant || got.Role != tc.want.Role || !got.Expires.Equal(tc.want.Expires)) {
			t.Errorf("Lookup(%s at %v) = %+v, %v; want %+v, %v", tc.want.ID, tc.at, got, err, tc.want, tc.err)
		}
	}
	unknown, _ := ParseToken(mustSecret(t))
	if _, err := s.Lookup(unknown, now); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup of an unknown token: %v, want ErrUnknown", err)
	}

	// List, by creation time.
	ts, err := s.List()
	if err != nil || len(ts) != 2 || ts[0].ID != t2.ID || ts[1].ID != t1.ID {
		t.Errorf("List = %v, %v; want [t2 t1]", ts, err)
	}

	// Revoke.
	got, err := s.Revoke(t1.ID)
	if err != nil || got.ID != t1.ID || got.Tenant != "acme" {
		t.Errorf("Revoke = %+v, %v", got, err)
	}
	d1, _ := ParseToken(secret1)
	if _, err := s.Lookup(d1, now); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup after Revoke: %v, want ErrUnknown", err)
	}
	if _, err := s.Revoke(t1.ID); !errors.Is(err, ErrUnknown) {
		t.Errorf("second Revoke: %v, want ErrUnknown", err)
	}
	if ts, _ := s.List(); len(ts) != 1 {
		t.Errorf("List after Revoke has %d tokens, want 1", len(ts))
	}
}

func mustSecret(tb testing.TB) string {
	s, _, err := NewToken()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestLookupComparesWholeDigest plants a file under a token's id whose
// digest differs after the id: the token must not be accepted.
func TestLookupComparesWholeDigest(t *testing.T) {
	dir := t.TempDir()
	s := OpenTokens(dir)
	secret, tok := mustNewToken(t, "acme", RoleReader, time.Now(), time.Time{})
	forged := tok
	forged.Digest[31] ^= 1
	b, _ := forged.marshal()
	os.WriteFile(filepath.Join(dir, tok.ID+".json"), b, 0o600)
	d, _ := ParseToken(secret)
	if _, err := s.Lookup(d, time.Now()); !errors.Is(err, ErrUnknown) {
		t.Errorf("Lookup with a digest differing in its last byte: %v, want ErrUnknown", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	s := OpenTokens(t.TempDir())
	now := time.Now()
	_, good := mustNewToken(t, "acme", RoleWriter, now, time.Time{})
	for _, tc := range []struct {
		what string
		edit func(*Token)
	}{
		{"id not of digest", func(t *Token) { t.ID = "000000000000000000000000" }},
		{"path in id", func(t *Token) { t.ID = "../../etc/passwd" }},
		{"bad role", func(t *Token) { t.Role = "root" }},
		{"no tenant, not admin", func(t *Token) { t.Tenant = "" }},
		{"bad tenant", func(t *Token) { t.Tenant = "../x" }},
	} {
		tok := good
		tc.edit(&tok)
		if err := s.Create(tok); err == nil {
			t.Errorf("Create with %s succeeded", tc.what)
		}
	}
	if ts, _ := s.List(); len(ts) != 0 {
		t.Errorf("refused tokens were stored: %v", ts)
	}
}

func TestRevokeRefusesBadIDs(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.json")
	os.WriteFile(victim, []byte("{}"), 0o600)
	s := OpenTokens(filepath.Join(dir, "tokens"))
	for _, id := range []string{"", "../victim", "..", "000102030405060708090A0B", "000102030405060708090a0", "000102030405060708090a0b0", "00010203040506070809/a0b"} {
		if _, err := s.Revoke(id); !errors.Is(err, ErrUnknown) {
			t.Errorf("Revoke(%q): %v, want ErrUnknown", id, err)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Revoke touched a file outside the store: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30d", 30 * day, true},
		{"1d", day, true},
		{"0d", 0, true},
		{"1y", 365 * day, true},
		{"2y", 730 * day, true},
		{"12h", 12 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"45s", 45 * time.Second, true},
		{"d", 0, false},
		{"y", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1w", 0, false},
		{"999999999y", 0, false}, // overflows
		{"30", 0, false},
		{"", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
