package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwtKeys are the test keys. They are fixed, not generated: generating
// two RSA keys took most of each fuzz worker's start (FuzzVerifyJWT ran 14
// inputs in 2 s), and a failing fuzz input that carries a valid signature
// reproduces only with the same keys. They are test keys, in testdata, and
// sign nothing else.
type jwtKeys struct {
	hs       []byte
	ed       ed25519.PrivateKey
	ed2      ed25519.PrivateKey // a key the verifier does not know
	rsa      *rsa.PrivateKey
	rsa2     *rsa.PrivateKey
	rsaSmall *rsa.PrivateKey // 1024 bits: too small to be accepted
	rsaDER   []byte          // the RSA public key, as an attacker might feed it to HS256
	rsaJWKN  string
}

var (
	testKeysOnce sync.Once
	testKeys     jwtKeys
)

func keys(tb testing.TB) *jwtKeys {
	testKeysOnce.Do(func() {
		k := &testKeys
		k.hs = []byte("an HS256 secret of at least 32 bytes!")
		k.ed = ed25519.NewKeyFromSeed([]byte("strata test key ed, seed 32 byte"))
		k.ed2 = ed25519.NewKeyFromSeed([]byte("strata test key ed2 seed 32 byte"))
		k.rsa = rsaTestKey("rsa-a.pem")
		k.rsa2 = rsaTestKey("rsa-b.pem")
		k.rsaSmall = rsaTestKey("rsa-small.pem")
		k.rsaDER, _ = x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		k.rsaJWKN = base64.RawURLEncoding.EncodeToString(k.rsa.PublicKey.N.Bytes())
	})
	return &testKeys
}

// rsaTestKey reads a PKCS #8 RSA key from testdata/jwt (made with openssl
// genpkey -algorithm RSA).
func rsaTestKey(name string) *rsa.PrivateKey {
	b, err := os.ReadFile(filepath.Join("testdata", "jwt", name))
	if err != nil {
		panic(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		panic(name + ": no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		panic(name + ": " + err.Error())
	}
	return k.(*rsa.PrivateKey)
}

func (k *jwtKeys) config() *JWTConfig {
	return &JWTConfig{
		HS256Secret: k.hs,
		Keys: []JWK{
			{Kid: "ed", Key: k.ed.Public()},
			{Kid: "rsa", Key: &k.rsa.PublicKey},
		},
		Issuer: "https://idp.example",
	}
}

// signJWT makes a compact JWS of header and claims, signed by sign.
func signJWT(header, claims map[string]any, sign func(signed []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return signed + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(signed)))
}

func hs256(secret []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(b)
		return m.Sum(nil)
	}
}

func edSign(k ed25519.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte { return ed25519.Sign(k, b) }
}

func rsSign(k *rsa.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte {
		h := sha256.Sum256(b)
		s, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		if err != nil {
			panic(err)
		}
		return s
	}
}

func TestJWTVerify(t *testing.T) {
	k := keys(t)
	cfg := k.config()
	now := time.Unix(1_800_000_000, 0)
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://idp.example", "sub": "alice", "tenant": "acme", "role": "writer",
			"iat": now.Unix() - 10, "exp": now.Unix() + 3600}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hdr := func(alg, kid string) map[string]any {
		h := map[string]any{"alg": alg, "typ": "JWT"}
		if kid != "" {
			h["kid"] = kid
		}
		return h
	}
	del := func(names ...string) func(map[string]any) {
		return func(c map[string]any) {
			for _, n := range names {
				delete(c, n)
			}
		}
	}
	set := func(name string, v any) func(map[string]any) {
		return func(c map[string]any) { c[name] = v }
	}
	for _, tc := range []struct {
		name  string
		token string
		err   error // nil: accepted
	}{
		{"HS256", signJWT(hdr("HS256", ""), claims(nil), hs256(k.hs)), nil},
		{"EdDSA with kid", signJWT(hdr("EdDSA", "ed"), claims(nil), edSign(k.ed)), nil},
		{"EdDSA without kid", signJWT(hdr("EdDSA", ""), claims(nil), edSign(k.ed)), nil},
		{"RS256 with kid", signJWT(hdr("RS256", "rsa"), claims(nil), rsSign(k.rsa)), nil},
		{"RS256 without kid", signJWT(hdr("RS256", ""), claims(nil), rsSign(k.rsa)), nil},
		{"admin without tenant", signJWT(hdr("EdDSA", ""), claims(func(c map[string]any) { c["role"] = "admin"; delete(c, "tenant") }), edSign(k.ed)), nil},
		{"fractional exp", signJWT(hdr("EdDSA", ""), claims(set("exp", float64(now.Unix())+0.5)), edSign(k.ed)), nil},
		{"expired within leeway", signJWT(hdr("EdDSA", ""), claims(set("exp", now.Unix()-59)), edSign(k.ed)), nil},
		{"nbf within leeway", signJWT(hdr("EdDSA", ""), claims(set("nbf", now.Unix()+59)), edSign(k.ed)), nil},
		{"aud ignored when not configured", signJWT(hdr("EdDSA", ""), claims(set("aud", "other")), edSign(k.ed)), nil},

		{"expired", signJWT(hdr("EdDSA", ""), claims(set("exp", now.Unix()-61)), edSign(k.ed)), ErrExpired},
		{"nbf in the future", signJWT(hdr("EdDSA", ""), claims(set("nbf", now.Unix()+61)), edSign(k.ed)), ErrClaims},
		{"iat in the future", signJWT(hdr("EdDSA", ""), claims(set("iat", now.Unix()+3600)), edSign(k.ed)), ErrClaims},
		{"wrong signature EdDSA", signJWT(hdr("EdDSA", "ed"), claims(nil), edSign(k.ed2)), ErrBadSignature},
		{"unknown signer EdDSA, no kid", signJWT(hdr("EdDSA", ""), claims(nil), edSign(k.ed2)), ErrBadSignature},
		{"wrong signature RS256", signJWT(hdr("RS256", "rsa"), claims(nil), rsSign(k.rsa2)), ErrBadSignature},
		{"wrong secret HS256", signJWT(hdr("HS256", ""), claims(nil), hs256([]byte("another secret"))), ErrBadSignature},
		{"alg none", signJWT(hdr("none", ""), claims(nil), func([]byte) []byte { return nil }), ErrBadSignature},
		{"alg None", signJWT(hdr("None", ""), claims(nil), func([]byte) []byte { return nil }), ErrBadSignature},
		{"alg HS512", signJWT(hdr("HS512", ""), claims(nil), hs256(k.hs)), ErrBadSignature},
		{"alg ES256", signJWT(hdr("ES256", ""), claims(nil), hs256(k.hs)), ErrBadSignature},
		{"alg confusion: HS256 keyed with the RSA public key", signJWT(hdr("HS256", "rsa"), claims(nil), hs256(k.rsaDER)), ErrBadSignature},
		{"alg confusion: HS256 keyed with the Ed25519 public key", signJWT(hdr("HS256", "ed"), claims(nil), hs256(k.ed.Public().(ed25519.PublicKey))), ErrBadSignature},
		{"alg confusion: RS256 header, RSA kid, EdDSA signature", signJWT(hdr("RS256", "ed"), claims(nil), edSign(k.ed)), ErrBadSignature},
		{"alg confusion: EdDSA header on the RSA key", signJWT(hdr("EdDSA", "rsa"), claims(nil), rsSign(k.rsa)), ErrBadSignature},
		{"unknown kid", signJWT(hdr("EdDSA", "other"), claims(nil), edSign(k.ed)), ErrBadSignature},
		{"missing sub", signJWT(hdr("EdDSA", ""), claims(del("sub")), edSign(k.ed)), ErrClaims},
		{"missing role", signJWT(hdr("EdDSA", ""), claims(del("role")), edSign(k.ed)), ErrClaims},
		{"missing exp", signJWT(hdr("EdDSA", ""), claims(del("exp")), edSign(k.ed)), ErrClaims},
		{"missing tenant", signJWT(hdr("EdDSA", ""), claims(del("tenant")), edSign(k.ed)), ErrClaims},
		{"tenant * for a writer", signJWT(hdr("EdDSA", ""), claims(set("tenant", "*")), edSign(k.ed)), ErrClaims},
		{"bad role", signJWT(hdr("EdDSA", ""), claims(set("role", "root")), edSign(k.ed)), ErrClaims},
		{"bad tenant", signJWT(hdr("EdDSA", ""), claims(set("tenant", "../acme")), edSign(k.ed)), ErrClaims},
		{"tenant not a string", signJWT(hdr("EdDSA", ""), claims(set("tenant", 7)), edSign(k.ed)), ErrClaims},
		{"exp not a number", signJWT(hdr("EdDSA", ""), claims(set("exp", "tomorrow")), edSign(k.ed)), ErrClaims},
		{"sub with control characters", signJWT(hdr("EdDSA", ""), claims(set("sub", "al\nice")), edSign(k.ed)), ErrClaims},
		{"wrong iss", signJWT(hdr("EdDSA", ""), claims(set("iss", "https://evil.example")), edSign(k.ed)), ErrClaims},
		{"missing iss", signJWT(hdr("EdDSA", ""), claims(del("iss")), edSign(k.ed)), ErrClaims},
		{"crit header", signJWT(map[string]any{"alg": "EdDSA", "crit": []string{"exp"}}, claims(nil), edSign(k.ed)), ErrMalformed},
		{"payload not an object", signJWT(hdr("EdDSA", ""), nil, edSign(k.ed)), ErrMalformed},
		{"two parts", "eyJhbGciOiJFZERTQSJ9.e30", ErrMalformed},
		{"padding", signJWT(hdr("EdDSA", ""), claims(nil), edSign(k.ed)) + "=", ErrMalformed},
		{"empty", "", ErrMalformed},
	} {
		p, err := cfg.Verify(tc.token, now)
		if tc.err == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if p.Kind != "jwt" || p.Name != "alice" || p.CredID != "jwt:https://idp.example/alice" || p.Expires.IsZero() {
				t.Errorf("%s: principal %+v", tc.name, p)
			}
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}

// TestJWTTamper flips each byte of a valid token: none may verify.
func TestJWTTamper(t *testing.T) {
	k := keys(t)
	cfg := k.config()
	now := time.Unix(1_800_000_000, 0)
	tok := signJWT(map[string]any{"alg": "EdDSA"}, map[string]any{"iss": "https://idp.example", "sub": "a", "tenant": "t", "role": "reader", "exp": now.Unix() + 60}, edSign(k.ed))
	if _, err := cfg.Verify(tok, now); err != nil {
		t.Fatal(err)
	}
	for i := range len(tok) {
		b := []byte(tok)
		b[i] ^= 0x01
		if _, err := cfg.Verify(string(b), now); err == nil {
			t.Errorf("a token changed at byte %d verifies", i)
		}
	}
}

func TestJWTPrincipal(t *testing.T) {
	k := keys(t)
	cfg := k.config()
	cfg.Audience = "strata"
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		claims map[string]any
		want   Principal
		ok     bool
	}{
		{map[string]any{"iss": "https://idp.example", "sub": "svc", "tenant": "acme", "role": "appender", "exp": now.Unix() + 60, "aud": "strata"},
			Principal{Kind: "jwt", Name: "svc", Tenant: "acme", Role: RoleAppender, CredID: "jwt:https://idp.example/svc", Expires: now.Add(time.Minute)}, true},
		{map[string]any{"iss": "https://idp.example", "sub": "root", "tenant": "*", "role": "admin", "exp": now.Unix() + 60, "aud": []string{"x", "strata"}},
			Principal{Kind: "jwt", Name: "root", Role: RoleAdmin, CredID: "jwt:https://idp.example/root", Expires: now.Add(time.Minute)}, true},
		{map[string]any{"iss": "https://idp.example", "sub": "svc", "tenant": "acme", "role": "reader", "exp": now.Unix() + 60, "aud": "other"}, Principal{}, false},
		{map[string]any{"iss": "https://idp.example", "sub": "svc", "tenant": "acme", "role": "reader", "exp": now.Unix() + 60}, Principal{}, false},
	} {
		p, err := cfg.Verify(signJWT(map[string]any{"alg": "EdDSA"}, tc.claims, edSign(k.ed)), now)
		if (err == nil) != tc.ok || err == nil && (withoutExpires(p) != withoutExpires(tc.want) || !p.Expires.Equal(tc.want.Expires)) {
			t.Errorf("claims %v: %+v, %v; want %+v, ok %v", tc.claims, p, err, tc.want, tc.ok)
		}
	}
}

func withoutExpires(p Principal) Principal { p.Expires = time.Time{}; return p }

func TestJWTLeeway(t *testing.T) {
	k := keys(t)
	now := time.Unix(1_800_000_000, 0)
	tok := signJWT(map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "tenant": "t", "role": "reader", "exp": now.Unix() - 30}, hs256(k.hs))
	for _, tc := range []struct {
		leeway time.Duration
		ok     bool
	}{{0, true}, {-1, false}, {10 * time.Second, false}, {time.Minute, true}} {
		cfg := &JWTConfig{HS256Secret: k.hs, Leeway: tc.leeway}
		if _, err := cfg.Verify(tok, now); (err == nil) != tc.ok {
			t.Errorf("leeway %v: %v, want ok %v", tc.leeway, err, tc.ok)
		}
	}
	// With no HS256 secret configured, or one too short, HS256 is refused;
	// and a nil config accepts nothing.
	for _, cfg := range []*JWTConfig{{}, {HS256Secret: []byte{}}, {HS256Secret: k.hs[:31]}, nil} {
		short := signJWT(map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "tenant": "t", "role": "reader", "exp": now.Unix() + 30}, hs256(cfg.secret()))
		if _, err := cfg.Verify(short, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("HS256 with secret %q: %v, want ErrBadSignature", cfg.secret(), err)
		}
	}
}

func TestLoadJWKS(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	edX := base64.RawURLEncoding.EncodeToString(k.ed.Public().(ed25519.PublicKey))
	smallN := base64.RawURLEncoding.EncodeToString(k.rsaSmall.PublicKey.N.Bytes())
	e := base64.RawURLEncoding.EncodeToString(big.NewInt(65537).Bytes())
	for _, tc := range []struct {
		name, json string
		kids       []string
		ok         bool
	}{
		{"ed and rsa, EC skipped", `{"keys":[
			{"kty":"OKP","crv":"Ed25519","x":"` + edX + `","kid":"a"},
			{"kty":"EC","crv":"P-256","x":"x","y":"y","kid":"ec"},
			{"kty":"RSA","n":"` + k.rsaJWKN + `","e":"` + e + `","kid":"b","alg":"RS256","use":"sig"},
			{"kty":"RSA","n":"` + k.rsaJWKN + `","e":"` + e + `","kid":"enc","use":"enc"},
			{"kty":"RSA","n":"` + k.rsaJWKN + `","e":"` + e + `","kid":"ps","alg":"PS256"}]}`, []string{"a", "b"}, true},
		{"no usable key", `{"keys":[{"kty":"EC","crv":"P-256"}]}`, nil, false},
		{"empty", `{"keys":[]}`, nil, false},
		{"not JSON", `keys`, nil, false},
		{"short x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`, nil, false},
		{"small RSA", `{"keys":[{"kty":"RSA","n":"` + smallN + `","e":"` + e + `"}]}`, nil, false},
		{"even e", `{"keys":[{"kty":"RSA","n":"` + k.rsaJWKN + `","e":"AQAA"}]}`, nil, false},
		{"e = 1", `{"keys":[{"kty":"RSA","n":"` + k.rsaJWKN + `","e":"AQ"}]}`, nil, false},
	} {
		path := filepath.Join(dir, "jwks.json")
		os.WriteFile(path, []byte(tc.json), 0o600)
		got, err := LoadJWKS(path)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
			continue
		}
		var kids []string
		for _, k := range got {
			kids = append(kids, k.Kid)
		}
		if strings.Join(kids, ",") != strings.Join(tc.kids, ",") {
			t.Errorf("%s: kids %v, want %v", tc.name, kids, tc.kids)
		}
	}
	if _, err := LoadJWKS(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadJWKS of a missing file succeeded")
	}

	// The keys loaded verify tokens.
	path := filepath.Join(dir, "jwks.json")
	os.WriteFile(path, []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"`+edX+`","kid":"a"},{"kty":"RSA","n":"`+k.rsaJWKN+`","e":"`+e+`","kid":"b"}]}`), 0o600)
	jwks, err := LoadJWKS(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &JWTConfig{Keys: jwks}
	now := time.Unix(1_800_000_000, 0)
	c := map[string]any{"sub": "a", "tenant": "t", "role": "reader", "exp": now.Unix() + 60}
	for alg, sign := range map[string]func([]byte) []byte{"EdDSA": edSign(k.ed), "RS256": rsSign(k.rsa)} {
		if _, err := cfg.Verify(signJWT(map[string]any{"alg": alg}, c, sign), now); err != nil {
			t.Errorf("%s with keys from a JWKS: %v", alg, err)
		}
	}
	if alg := (JWK{Key: "not a key"}).Alg(); alg != "" {
		t.Errorf("Alg of a foreign key = %q", alg)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"eyJhbGciOiJIUzI1NiJ9.e30.c2ln", true},
		{"a.b.", true}, // unsigned: routed here, refused by Verify
		{"a.b", false},
		{"a.b.c.d", false},
		{".b.c", false},
		{"a..c", false},
		{"a.b.c=", false},
		{"a.b+.c", false},
		{"a b.c.d", false},
		{"strata_abc", false},
		{"", false},
		{"a." + strings.Repeat("b", maxJWTLen) + ".c", false},
	} {
		if got := LooksLikeJWT(tc.s); got != tc.ok {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", clip(tc.s), got, tc.ok)
		}
	}
}

// secret returns the config's HS256 secret, nil for a nil config.
func (c *JWTConfig) secret() []byte {
	if c == nil {
		return nil
	}
	return c.HS256Secret
}

// TestJWTDuplicateNames: a token with a member name twice, in its header
// or its claims, at any depth, spelt the same or escaped, is refused —
// never read as its last value.
func TestJWTDuplicateNames(t *testing.T) {
	k := keys(t)
	cfg := k.config()
	now := time.Unix(1_800_000_000, 0)
	exp := fmt.Sprint(now.Unix() + 60)
	raw := func(header, claims string) string {
		signed := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		return signed + "." + base64.RawURLEncoding.EncodeToString(hs256(k.hs)([]byte(signed)))
	}
	good := `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","exp":` + exp + `}`
	if _, err := cfg.Verify(raw(`{"alg":"HS256"}`, good), now); err != nil {
		t.Fatalf("the token without duplicates: %v", err)
	}
	for name, tc := range map[string][2]string{
		"role twice":     {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","role":"admin","exp":` + exp + `}`},
		"role escaped":   {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","r\u006fle":"admin","exp":` + exp + `}`},
		"tenant twice":   {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","exp":` + exp + `,"tenant":"other"}`},
		"nested":         {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","exp":` + exp + `,"x":[{"a":1,"a":2}]}`},
		"alg twice":      {`{"alg":"none","alg":"HS256"}`, good},
		"kid twice":      {`{"alg":"HS256","kid":"a","kid":"b"}`, good},
		"trailing value": {`{"alg":"HS256"}`, good + `{}`},
		// encoding/json matches struct fields without regard to case, so
		// these would be one member to a Go reader and two to others.
		"alg in capitals":  {`{"alg":"HS256","ALG":"none"}`, good},
		"role in capitals": {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","tenant":"acme","role":"reader","Role":"admin","exp":` + exp + `}`},
		"sub with long s":  {`{"alg":"HS256"}`, `{"iss":"https://idp.example","sub":"s","ſub":"t","tenant":"acme","role":"reader","exp":` + exp + `}`},
	} {
		if _, err := cfg.Verify(raw(tc[0], tc[1]), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Session tokens are read by the same code.
	secret := []byte(strings.Repeat("s", 32))
	payload := `{"iss":"strata-session","sub":"a","role":"reader","role":"admin","fp":"x","iat":1,"exp":` + exp + `}`
	signed := sessionHeader + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	if _, err := VerifySession(secret, signed+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)), now); !errors.Is(err, ErrMalformed) {
		t.Errorf("a session token with role twice: %v, want ErrMalformed", err)
	}
	for _, dup := range []string{`"ROLE":"admin"`, `"Sub":"root"`, `"TENANT":""`} {
		payload := `{"iss":"strata-session","sub":"a","tenant":"acme","role":"reader","fp":"x","iat":1,"exp":` + exp + `,` + dup + `}`
		signed := sessionHeader + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(signed))
		if c, err := VerifySession(secret, signed+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("a session token with %s: %+v %v, want ErrMalformed", dup, c, err)
		}
	}
}
