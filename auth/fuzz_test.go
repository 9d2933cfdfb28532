package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzParseToken(f *testing.F) {
	good, _, _ := NewToken()
	for _, s := range []string{good, "", "strata_", "strata_../x", "../../etc/passwd", good[:49] + "B", good + "A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseToken(s)
		if !ok {
			return
		}
		// Accepted: exactly the form NewToken makes, and an id that is a
		// safe file name.
		if len(s) != 50 || !strings.HasPrefix(s, TokenPrefix) || strings.ContainsAny(s, "./\\+=\x00") {
			t.Fatalf("ParseToken accepted %q", s)
		}
		if id := TokenID(d); !validTokenID(id) {
			t.Fatalf("TokenID = %q", id)
		}
	})
}

func FuzzVerifyJWT(f *testing.F) {
	k := keys(f)
	cfg := k.config()
	now := time.Unix(1_800_000_000, 0)
	claims := map[string]any{"iss": "https://idp.example", "sub": "a", "tenant": "t", "role": "reader", "exp": now.Unix() + 60}
	for _, s := range []string{
		signJWT(map[string]any{"alg": "HS256"}, claims, hs256(k.hs)),
		signJWT(map[string]any{"alg": "EdDSA", "kid": "ed"}, claims, edSign(k.ed)),
		signJWT(map[string]any{"alg": "RS256"}, claims, rsSign(k.rsa)),
		SignSession(testSecret, SessionClaims{User: "a", Role: RoleAdmin, Expires: now.Add(time.Hour)}),
		"a.b.c", "..", "", "e30.e30.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cfg.Verify(s, now)
		if !LooksLikeJWT(s) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify(%q) of a non-JWT: %v", s, err)
		}
		if err == nil && (p.Name == "" || !p.Role.Valid() || p.Kind != "jwt") {
			t.Fatalf("Verify(%q) accepted %+v", s, p)
		}
		IsSessionToken(s)
		if c, err := VerifySession(testSecret, s, now); err == nil && (c.User == "" || !c.Role.Valid()) {
			t.Fatalf("VerifySession(%q) accepted %+v", s, c)
		}
	})
}
