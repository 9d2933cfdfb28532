package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Session tokens.
//
// POST /session exchanges a password for a session token, so that the
// requests after a login pay an HMAC instead of a bcrypt — which matters
// in CGI, where nothing is remembered between requests. A session token is
// an HS256 JWT signed with the installation's own secret
// (LoadOrCreateSecret), with the claims
//
//	{"iss":"strata-session","sub":"alice","tenant":"acme","tid":"<tenant id>",
//	 "role":"writer","fp":"<Users.Fingerprint>","iat":…,"exp":…}
//
// Whoever checks one must then check that the user still exists with the
// same fingerprint and grant (tenant id included): that is what ends a
// session when the password or the grant changes, or the tenant is deleted.

// SessionIssuer is the "iss" of every session token.
const SessionIssuer = "strata-session"

// sessionHeader is base64url of {"alg":"HS256","typ":"JWT"}, the header of
// every session token.
const sessionHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// SessionClaims is what a session token says.
type SessionClaims struct {
	User        string
	Tenant      string // "" for an admin bound to no tenant
	TenantID    string // the tenant's creation id, from the grant
	Role        Role
	Fingerprint string // Users.Fingerprint of the user when the session began
	IssuedAt    time.Time
	Expires     time.Time
}

// sessionJSON is the payload of a session token.
type sessionJSON struct {
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
	Tenant string `json:"tenant,omitempty"`
	Tid    string `json:"tid,omitempty"`
	Role   Role   `json:"role"`
	Fp     string `json:"fp"`
	Iat    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

// minSecretLen is the shortest secret that may sign sessions.
const minSecretLen = 32

// SignSession returns a session token for c, signed with secret. Times are
// kept to the second. It panics on a secret shorter than 32 bytes, which
// would make tokens forgeable: secrets come from LoadOrCreateSecret.
func SignSession(secret []byte, c SessionClaims) string {
	if len(secret) < minSecretLen {
		panic("auth: session secret shorter than 32 bytes")
	}
	payload, _ := json.Marshal(sessionJSON{Iss: SessionIssuer, Sub: c.User, Tenant: c.Tenant, Tid: c.TenantID, Role: c.Role,
		Fp: c.Fingerprint, Iat: c.IssuedAt.Unix(), Exp: c.Expires.Unix()})
	signed := sessionHeader + "." + b64.EncodeToString(payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + b64.EncodeToString(mac.Sum(nil))
}

// VerifySession checks a session token against secret and returns its
// claims. Errors wrap ErrMalformed (not a session token), ErrBadSignature
// or ErrExpired.
func VerifySession(secret []byte, token string, now time.Time) (SessionClaims, error) {
	j, err := parseJWS(token)
	if err != nil {
		return SessionClaims{}, err
	}
	if j.header.Alg != AlgHS256 {
		return SessionClaims{}, fmt.Errorf("%w: a session token is HS256, not %q", ErrMalformed, clip(j.header.Alg))
	}
	if len(secret) < minSecretLen {
		return SessionClaims{}, fmt.Errorf("%w: no session secret", ErrBadSignature)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(j.signed))
	if !hmac.Equal(mac.Sum(nil), j.sig) {
		return SessionClaims{}, ErrBadSignature
	}
	var s sessionJSON
	if err := json.Unmarshal(j.payload, &s); err != nil {
		return SessionClaims{}, fmt.Errorf("%w: session payload: %v", ErrMalformed, err)
	}
	switch {
	case s.Iss != SessionIssuer:
		return SessionClaims{}, fmt.Errorf("%w: not a session token", ErrMalformed)
	case s.Sub == "" || !s.Role.Valid() || s.Exp == 0:
		return SessionClaims{}, fmt.Errorf("%w: session without user, role or expiry", ErrMalformed)
	}
	c := SessionClaims{User: s.Sub, Tenant: s.Tenant, TenantID: s.Tid, Role: s.Role, Fingerprint: s.Fp,
		IssuedAt: time.Unix(s.Iat, 0), Expires: time.Unix(s.Exp, 0)}
	if !now.Before(c.Expires) {
		return SessionClaims{}, fmt.Errorf("session of %s: %w", clip(s.Sub), ErrExpired)
	}
	return c, nil
}

// IsSessionToken reports whether s looks like a session token — a JWT whose
// payload says iss "strata-session" — without checking its signature. It
// routes a Bearer credential to VerifySession rather than to
// JWTConfig.Verify.
func IsSessionToken(s string) bool {
	if !LooksLikeJWT(s) {
		return false
	}
	_, rest, _ := strings.Cut(s, ".")
	p, _, _ := strings.Cut(rest, ".")
	b, err := b64.DecodeString(p)
	if err != nil {
		return false
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	return json.Unmarshal(b, &claims) == nil && claims.Iss == SessionIssuer
}
