package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"
	"unicode"
)

// JWTs from an identity provider.
//
// The algorithm a token names must be one the configuration has a key for,
// and the key must be of that algorithm's type: HS256 only ever with
// HS256Secret, RS256 only with RSA keys, EdDSA only with Ed25519 keys. So
// an attacker cannot pass an RS256 public key off as an HMAC secret (the
// classic algorithm confusion), and "none" is never accepted.
//
// Claims read: sub (required), role (required: admin, writer, reader or
// appender), tenant (required unless role is admin), exp (required), nbf and
// iat (optional), iss (required to equal Issuer when set), aud (required to
// contain Audience when set).

// Algorithms accepted in the "alg" header.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
// JWTConfig.Leeway is zero.
const DefaultLeeway = 60 * time.Second

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// minHS256Secret is the shortest HS256 secret used; with a shorter one
// HS256 is refused.
const minHS256Secret = 32

// JWTConfig says which JWTs are accepted.
type JWTConfig struct {
	HS256Secret []byte        // at least 32 bytes; nil: HS256 refused
	Keys        []JWK         // EdDSA and RS256 public keys, from LoadJWKS
	Issuer      string        // if set, "iss" must equal it
	Audience    string        // if set, "aud" must be or contain it
	Leeway      time.Duration // clock skew allowed on exp, nbf and iat; 0: DefaultLeeway, negative: none
}

// JWK is one public key of a JWKS.
type JWK struct {
	Kid string           // key id; "" if the key has none
	Key crypto.PublicKey // ed25519.PublicKey (EdDSA) or *rsa.PublicKey (RS256)
}

// Alg returns the algorithm the key verifies, or "" for a key of another
// type.
func (k JWK) Alg() string {
	switch k.Key.(type) {
	case ed25519.PublicKey:
		return AlgEdDSA
	case *rsa.PublicKey:
		return AlgRS256
	}
	return ""
}

// jwkJSON is a key as a JWKS file has it.
type jwkJSON struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	N   string `json:"n"`
	E   string `json:"e"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// LoadJWKS reads the public keys of a JWKS file,
// {"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…},{"kty":"RSA","n":…,"e":…,"kid":…}]}.
// Keys strata cannot use — other key types (EC), keys for encryption
// ("use":"enc"), keys marked for another algorithm — are skipped, as an
// identity provider's set often holds some; a malformed key of a usable
// type, an RSA key under 2048 bits, or a set with no usable key is an
// error.
func LoadJWKS(path string) ([]JWK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", path, err)
	}
	var keys []JWK
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key crypto.PublicKey
		switch {
		case k.Kty == "OKP" && k.Crv == "Ed25519" && (k.Alg == "" || k.Alg == AlgEdDSA || k.Alg == "Ed25519"):
			x, err := b64.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("JWKS %s, key %d: x is not a base64url Ed25519 public key", path, i)
			}
			key = ed25519.PublicKey(x)
		case k.Kty == "RSA" && (k.Alg == "" || k.Alg == AlgRS256):
			pub, err := rsaKey(k.N, k.E)
			if err != nil {
				return nil, fmt.Errorf("JWKS %s, key %d: %v", path, i, err)
			}
			key = pub
		default:
			continue
		}
		keys = append(keys, JWK{Kid: k.Kid, Key: key})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS %s: no Ed25519 or RSA signing key", path)
	}
	return keys, nil
}

// rsaKey makes an RSA public key of a JWK's n and e.
func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, err := b64.DecodeString(n64)
	if err != nil || len(nb) == 0 || nb[0] == 0 {
		return nil, errors.New("n is not a base64url big-endian integer")
	}
	eb, err := b64.DecodeString(e64)
	if err != nil || len(eb) == 0 || len(eb) > 4 || eb[0] == 0 {
		return nil, errors.New("e is not a base64url big-endian integer")
	}
	e := 0
	for _, c := range eb {
		e = e<<8 | int(c)
	}
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return nil, fmt.Errorf("unusable RSA exponent %d", e)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: e}
	if pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits: at least %d are needed", pub.N.BitLen(), minRSABits)
	}
	return pub, nil
}

// leeway returns the clock skew to allow.
func (c *JWTConfig) leeway() time.Duration {
	switch {
	case c.Leeway == 0:
		return DefaultLeeway
	case c.Leeway < 0:
		return 0
	}
	return c.Leeway
}

// Verify checks a JWT from an identity provider and returns its principal,
// of Kind "jwt". Errors wrap ErrMalformed (not a JWT), ErrBadSignature
// (refused algorithm, unknown key id, signature that does not verify),
// ErrExpired (exp in the past) or ErrClaims (claims missing or invalid,
// nbf in the future, wrong issuer or audience), with what was wrong.
// A nil config accepts no JWT.
func (c *JWTConfig) Verify(token string, now time.Time) (Principal, error) {
	if c == nil {
		return Principal{}, fmt.Errorf("%w: no JWT is accepted here", ErrBadSignature)
	}
	j, err := parseJWS(token)
	if err != nil {
		return Principal{}, err
	}
	if err := c.verifySignature(j); err != nil {
		return Principal{}, err
	}
	return c.principal(j.payload, now)
}

// verifySignature checks j's signature with a configured key of the
// algorithm j names.
func (c *JWTConfig) verifySignature(j jws) error {
	alg := j.header.Alg
	if alg == AlgHS256 {
		// RFC 7518 §3.2: an HS256 key has at least 256 bits. A shorter one
		// (an empty secret file, say) would make tokens forgeable.
		if len(c.HS256Secret) < minHS256Secret {
			return fmt.Errorf("%w: alg HS256 is not accepted here", ErrBadSignature)
		}
		mac := hmac.New(sha256.New, c.HS256Secret)
		mac.Write([]byte(j.signed))
		if !hmac.Equal(mac.Sum(nil), j.sig) {
			return ErrBadSignature
		}
		return nil
	}
	if alg != AlgRS256 && alg != AlgEdDSA {
		return fmt.Errorf("%w: alg %q is not accepted", ErrBadSignature, clip(alg))
	}
	tried := false
	for _, k := range c.Keys {
		if j.header.Kid != "" && k.Kid != j.header.Kid {
			continue
		}
		if k.Alg() != alg {
			if j.header.Kid != "" {
				return fmt.Errorf("%w: key %q is not an %s key", ErrBadSignature, clip(k.Kid), alg)
			}
			continue
		}
		tried = true
		if verifyWith(k.Key, j) {
			return nil
		}
	}
	switch {
	case !tried && j.header.Kid != "":
		return fmt.Errorf("%w: no key with kid %q", ErrBadSignature, clip(j.header.Kid))
	case !tried:
		return fmt.Errorf("%w: no %s key configured", ErrBadSignature, alg)
	}
	return ErrBadSignature
}

// verifyWith checks j's signature with a public key.
func verifyWith(key crypto.PublicKey, j jws) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return len(j.sig) == ed25519.SignatureSize && ed25519.Verify(k, []byte(j.signed), j.sig)
	case *rsa.PublicKey:
		h := sha256.Sum256([]byte(j.signed))
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], j.sig) == nil
	}
	return false
}

// principal checks the claims of a verified token.
func (c *JWTConfig) principal(payload []byte, now time.Time) (Principal, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return Principal{}, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	// bad is the first claim found of the wrong type.
	var bad error
	str := func(name string) string {
		var s string
		if raw, ok := claims[name]; ok && json.Unmarshal(raw, &s) != nil && bad == nil {
			bad = fmt.Errorf("%w: %s is not a string", ErrClaims, name)
		}
		return s
	}
	date := func(name string) time.Time {
		raw, ok := claims[name]
		if !ok {
			return time.Time{}
		}
		t, ok := numericDate(raw)
		if !ok && bad == nil {
			bad = fmt.Errorf("%w: %s is not a NumericDate", ErrClaims, name)
		}
		return t
	}
	p := Principal{Name: str("sub"), Tenant: str("tenant")}
	role, iss := str("role"), str("iss")
	exp, nbf, iat := date("exp"), date("nbf"), date("iat")
	if bad != nil {
		return Principal{}, bad
	}
	leeway := c.leeway()
	switch {
	case p.Name == "":
		return Principal{}, fmt.Errorf("%w: sub is missing", ErrClaims)
	case len(p.Name) > 255 || strings.ContainsFunc(p.Name, unicode.IsControl):
		return Principal{}, fmt.Errorf("%w: sub is too long or has control characters", ErrClaims)
	case exp.IsZero():
		return Principal{}, fmt.Errorf("%w: exp is missing", ErrClaims)
	case !now.Before(exp.Add(leeway)):
		return Principal{}, fmt.Errorf("JWT of %s: %w", clip(p.Name), ErrExpired)
	case !nbf.IsZero() && now.Add(leeway).Before(nbf):
		return Principal{}, fmt.Errorf("%w: not valid before %s (nbf)", ErrClaims, nbf.UTC().Format(time.RFC3339))
	case !iat.IsZero() && now.Add(leeway).Before(iat):
		return Principal{}, fmt.Errorf("%w: issued in the future (iat)", ErrClaims)
	case c.Issuer != "" && iss != c.Issuer:
		return Principal{}, fmt.Errorf("%w: issuer %q is not %q", ErrClaims, clip(iss), c.Issuer)
	}
	if c.Audience != "" && !hasAudience(claims["aud"], c.Audience) {
		return Principal{}, fmt.Errorf("%w: audience is not %q", ErrClaims, c.Audience)
	}
	var err error
	if p.Role, err = ParseRole(role); err != nil {
		return Principal{}, fmt.Errorf("%w: role: %v", ErrClaims, err)
	}
	switch {
	case p.Role == RoleMetrics:
		return Principal{}, fmt.Errorf("%w: role metrics is a token's only", ErrClaims)
	case p.Tenant == "" || p.Tenant == AnyTenant:
		if p.Role != RoleAdmin {
			return Principal{}, fmt.Errorf("%w: tenant is missing (only an admin may have none)", ErrClaims)
		}
		p.Tenant = ""
	case !ValidTenant(p.Tenant):
		return Principal{}, fmt.Errorf("%w: invalid tenant %q", ErrClaims, clip(p.Tenant))
	}
	p.Kind = "jwt"
	p.CredID = "jwt:" + iss + "/" + p.Name
	p.Expires = exp
	p.Issued = iat
	return p, nil
}

// hasAudience reports whether an "aud" claim, a string or an array of
// strings, contains want.
func hasAudience(raw json.RawMessage, want string) bool {
	if raw == nil {
		return false
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}
