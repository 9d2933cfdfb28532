// Package auth establishes who a request comes from and what they may do.
// It knows nothing of HTTP: the api package takes credentials out of
// requests, calls this package, and turns its errors into status codes.
//
// # What it promises
//
//   - Secrets are never stored: the users file holds bcrypt or argon2id
//     hashes, the token directory BLAKE3 digests of random 256-bit tokens.
//   - Checking a credential costs what its kind must. Only a password check
//     pays a slow hash (bcrypt cost 10: ~50 ms); an API token costs one file
//     read, a session token or a JWT one signature check. Nothing is done at
//     package initialisation, since a CGI process pays it on every request.
//   - Answers do not leak: an unknown user takes as long to refuse as a
//     wrong password, digests and MACs are compared in constant time, and
//     error messages hold no secret.
//   - Files change atomically (temporary file, fsync, rename or link, fsync
//     of the directory) and are created with mode 0600 (0660 when the data
//     directory is shared with a group: internal/fileutil, perm.go).
//   - Password guessing is held back across processes (Throttle): an
//     attempt is counted before its hash is checked, and a count that
//     cannot be written refuses the login.
//   - A credential for a tenant is bound to the tenant's creation id, so
//     it never reaches a tenant created anew under a deleted one's name.
//
// # Files
//
//	users file            name:hash lines, as Apache's htpasswd writes (htpasswd.go)
//	grants file           "name tenant role" lines (grants.go)
//	tokens/<id>.json      one API token each (token.go)
//	secret                32 random bytes that sign session tokens (secret.go)
//	throttle              fixed-size table of failed logins (throttle.go)
//
// Where they live is the caller's choice. The formats are described in the
// files named.
//
// # Credentials
//
// A principal (Principal) is a user with a password (Users), an API token
// (TokenStore), a session token that a user's password bought
// (SignSession, VerifySession), or a JWT from an identity provider
// (JWTConfig). Each has a tenant and one of four roles; Role.Can is the one
// table of what a role may do.
package auth
