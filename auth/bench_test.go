package auth

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// Benchmarks of what each kind of credential costs a request. In CGI each
// request pays one check; see also the package init cost (`GODEBUG=inittrace=1`).

func benchUsers(b *testing.B, hash string) *Users {
	path := filepath.Join(b.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice:"+hash+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return mustLoadUsers(b, path)
}

func BenchmarkVerifyBcrypt10(b *testing.B) {
	h, _ := HashPassword("correct horse")
	u := benchUsers(b, h)
	for b.Loop() {
		if !u.Verify("alice", "correct horse") {
			b.Fatal("no")
		}
	}
}

func BenchmarkVerifyUnknownUser(b *testing.B) {
	h, _ := HashPassword("correct horse")
	u := benchUsers(b, h)
	for b.Loop() {
		u.Verify("bob", "correct horse")
	}
}

// BenchmarkVerifyArgon2id uses OWASP's minimum, m=19456 (19 MiB), t=2, p=1.
func BenchmarkVerifyArgon2id(b *testing.B) {
	salt := make([]byte, 16)
	rand.Read(salt)
	h := argon2Hash{memory: 19456, time: 2, threads: 1, salt: salt}
	h.key = argon2.IDKey([]byte("correct horse"), salt, h.time, h.memory, h.threads, 32)
	u := benchUsers(b, h.String())
	for b.Loop() {
		if !u.Verify("alice", "correct horse") {
			b.Fatal("no")
		}
	}
}

func BenchmarkLoadUsers(b *testing.B) {
	path := filepath.Join(b.TempDir(), "users")
	f, _ := os.Create(path)
	for i := range 100 {
		fmt.Fprintf(f, "user%d:%s\n", i, dummyBcrypt[6])
	}
	f.Close()
	for b.Loop() {
		mustLoadUsers(b, path)
	}
}

func BenchmarkParseToken(b *testing.B) {
	s, _, _ := NewToken()
	for b.Loop() {
		ParseToken(s)
	}
}

// BenchmarkTokenLookup is a token check: parse, hash, read one file.
func BenchmarkTokenLookup(b *testing.B) {
	st := OpenTokens(b.TempDir())
	secret, tok := mustNewToken(b, "acme", RoleWriter, time.Now(), time.Time{})
	if err := st.Create(tok); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		d, _ := ParseToken(secret)
		if _, err := st.Lookup(d, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	k := keys(b)
	cfg := k.config()
	now := time.Unix(1_800_000_000, 0)
	claims := map[string]any{"iss": "https://idp.example", "sub": "alice", "tenant": "acme", "role": "writer", "iat": now.Unix(), "exp": now.Unix() + 3600}
	for _, tc := range []struct {
		alg  string
		sign func([]byte) []byte
	}{
		{"HS256", hs256(k.hs)},
		{"EdDSA", edSign(k.ed)},
		{"RS256", rsSign(k.rsa)},
	} {
		tok := signJWT(map[string]any{"alg": tc.alg, "typ": "JWT"}, claims, tc.sign)
		b.Run(tc.alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := cfg.Verify(tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSessionVerify(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	tok := SignSession(testSecret, SessionClaims{User: "alice", Tenant: "acme", Role: RoleWriter, Fingerprint: "0123456789abcdef", IssuedAt: now, Expires: now.Add(time.Hour)})
	for b.Loop() {
		if !IsSessionToken(tok) {
			b.Fatal("not a session")
		}
		if _, err := VerifySession(testSecret, tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignSession(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	c := SessionClaims{User: "alice", Tenant: "acme", Role: RoleWriter, Fingerprint: "0123456789abcdef", IssuedAt: now, Expires: now.Add(time.Hour)}
	for b.Loop() {
		SignSession(testSecret, c)
	}
}

func BenchmarkThrottle(b *testing.B) {
	path := filepath.Join(b.TempDir(), "throttle")
	th := mustOpenThrottle(b, path)
	now := time.Unix(1_800_000_000, 0)
	keys := []string{"user:alice", "addr:192.0.2.1"}
	b.Run("Blocked", func(b *testing.B) {
		for b.Loop() {
			th.Blocked(now, keys...)
		}
	})
	b.Run("Fail", func(b *testing.B) {
		for b.Loop() {
			th.Fail(now, keys...)
		}
	})
	// What a CGI process pays: open, check, close.
	b.Run("OpenBlockedClose", func(b *testing.B) {
		for b.Loop() {
			t, err := OpenThrottle(path)
			if err != nil {
				b.Fatal(err)
			}
			t.Blocked(now, keys...)
			t.Close()
		}
	})
}
