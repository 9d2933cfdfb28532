package auth

import "errors"

// Errors of credential checks. They are wrapped with what was being checked
// (fmt.Errorf("…: %w")), so test them with errors.Is. Their messages may be
// shown to clients: they never contain a secret.
var (
	// ErrUnknown: no such credential (an unknown or revoked token, a
	// JWT key id that is not configured).
	ErrUnknown = errors.New("unknown credential")
	// ErrExpired: the credential was valid but its lifetime is over.
	ErrExpired = errors.New("credential expired")
	// ErrBadSignature: a token's signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrMalformed: the credential is not in the expected format.
	ErrMalformed = errors.New("malformed credential")
	// ErrClaims: a signed token's claims are missing or invalid.
	ErrClaims = errors.New("invalid claims")
)
