package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
)

// API tokens.
//
// A token is "strata_" followed by 32 bytes from crypto/rand in unpadded
// base64url: 50 characters, 256 bits of secret. It is shown once, when made;
// the server keeps only its digest, BLAKE3-256 of the whole token string, so
// a copy of the token directory lets no one in. A fast hash is enough: the
// token is random, not a password that could be guessed.
//
// The token id is the first 24 hex digits of the digest. It is public —
// tokens are listed and revoked by id, and it names the token in meta.by
// and in the audit log — and it is also the token's file name, so checking
// a token opens exactly one file, <dir>/<id>.json:
//
//	{"id":"…","digest":"<64 hex>","tenant":"acme","tenant_id":"<32 hex>",
//	 "role":"writer","name":"ci","created":"2026-01-02T15:04:05Z",
//	 "expires":"2026-04-02T15:04:05Z"}
//
// ("tenant" and "tenant_id" are absent for an admin bound to no tenant,
// "tenant_id" for a token made before tenants had creation ids, "expires"
// for a token that never expires). Files are written atomically with mode
// 0600.

// TokenPrefix starts every API token.
const TokenPrefix = "strata_"

const (
	tokenRandLen = 32
	tokenLen     = len(TokenPrefix) + 43 // base64 of 32 bytes, unpadded
	tokenIDLen   = 24
)

// Token is a stored API token: everything but the secret.
type Token struct {
	ID     string   // TokenID(Digest)
	Digest [32]byte // BLAKE3-256 of the secret
	Tenant string   // "" only for an admin bound to no tenant
	// TenantID is the creation id of Tenant when the token was made; the
	// token is good only while the tenant has it (Principal.Reaches).
	TenantID string
	Role     Role
	Name     string    // what the token is for, free text
	Created  time.Time // when it was made
	Expires  time.Time // zero if never
}

// NewToken makes a new token secret and returns it with its digest.
func NewToken() (secret string, digest [32]byte, err error) {
	var b [tokenRandLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", digest, err
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, blake3.Sum256([]byte(secret)), nil
}

// ParseToken returns the digest of s if s has the exact form of a token.
// Anything else — path fragments, other credentials, junk — is refused
// here, before it could reach the file system.
func ParseToken(s string) (digest [32]byte, ok bool) {
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return digest, false
	}
	var b [tokenRandLen + 1]byte
	// Strict: the last character carries 4 unused bits, which must be
	// zero, so each token has exactly one spelling.
	n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(s[len(TokenPrefix):]))
	if err != nil || n != tokenRandLen {
		return digest, false
	}
	return blake3.Sum256([]byte(s)), true
}

// TokenID returns the public id of the token with this digest.
func TokenID(digest [32]byte) string {
	return hex.EncodeToString(digest[:tokenIDLen/2])
}

// validTokenID reports whether id has the form of a token id: 24 lowercase
// hex digits. It is checked before an id becomes a file name.
func validTokenID(id string) bool {
	if len(id) != tokenIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// tokenFile is a token's file.
type tokenFile struct {
	ID       string `json:"id"`
	Digest   string `json:"digest"`
	Tenant   string `json:"tenant,omitempty"`
	TenantID string `json:"tenant_id,omitempty"`
	Role     Role   `json:"role"`
	Name     string `json:"name"`
	Created  string `json:"created"`
	Expires  string `json:"expires,omitempty"`
}

func (t Token) marshal() ([]byte, error) {
	f := tokenFile{ID: t.ID, Digest: hex.EncodeToString(t.Digest[:]), Tenant: t.Tenant, TenantID: t.TenantID, Role: t.Role, Name: t.Name,
		Created: t.Created.UTC().Format(time.RFC3339)}
	if !t.Expires.IsZero() {
		f.Expires = t.Expires.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(f)
	return append(b, '\n'), err
}

func unmarshalToken(b []byte) (Token, error) {
	var f tokenFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Token{}, err
	}
	t := Token{ID: f.ID, Tenant: f.Tenant, TenantID: f.TenantID, Role: f.Role, Name: f.Name}
	d, err := hex.DecodeString(f.Digest)
	if err != nil || len(d) != len(t.Digest) {
		return Token{}, errors.New("bad digest")
	}
	copy(t.Digest[:], d)
	if !validTokenID(t.ID) || t.ID != TokenID(t.Digest) {
		return Token{}, errors.New("id does not match digest")
	}
	if t.Created, err = time.Parse(time.RFC3339, f.Created); err != nil {
		return Token{}, err
	}
	if f.Expires != "" {
		if t.Expires, err = time.Parse(time.RFC3339, f.Expires); err != nil {
			return Token{}, err
		}
	}
	return t, nil
}

// TokenStore is a directory of token files. It holds no state, so opening
// one costs nothing; it is safe for concurrent use.
type TokenStore struct {
	dir string
}

// OpenTokens returns the token store in dir. It touches nothing: the
// directory is made by the first Create.
func OpenTokens(dir string) *TokenStore { return &TokenStore{dir: dir} }

func (s *TokenStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// Create stores t. It refuses a token whose id is taken — never replacing
// a file — and one whose fields are inconsistent.
func (s *TokenStore) Create(t Token) error {
	if t.ID != TokenID(t.Digest) {
		return fmt.Errorf("create token: id %q is not the id of its digest", clip(t.ID))
	}
	if !t.Role.Valid() {
		return fmt.Errorf("create token %s: invalid role %q", t.ID, clip(string(t.Role)))
	}
	global := t.Role == RoleAdmin || t.Role == RoleMetrics
	if t.Tenant == "" && !global || t.Tenant != "" && !ValidTenant(t.Tenant) {
		return fmt.Errorf("create token %s: invalid tenant %q (only an admin or metrics token may have none)", t.ID, clip(t.Tenant))
	}
	if t.Tenant != "" && global {
		return fmt.Errorf("create token %s: an %s token takes no tenant", t.ID, t.Role)
	}
	if !validTenantID(t.TenantID) {
		return fmt.Errorf("create token %s: invalid tenant id %q", t.ID, clip(t.TenantID))
	}
	b, err := t.marshal()
	if err != nil {
		return err
	}
	if err := fileutil.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	if err := createFile(s.path(t.ID), b); err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

// createFile writes a new file at path with mode 0600, atomically and
// without replacing one that exists (fileutil.CreateFile).
func createFile(path string, data []byte) error { return fileutil.CreateFile(path, data, 0o600) }

// Lookup returns the token with this digest, as of now. It reads exactly one
// file and compares the whole digest in constant time. A token not found,
// or whose stored digest differs (the id is only its first 96 bits), is
// ErrUnknown; an expired one ErrExpired.
func (s *TokenStore) Lookup(digest [32]byte, now time.Time) (Token, error) {
	id := TokenID(digest)
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrUnknown)
	}
	if err != nil {
		return Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	t, err := unmarshalToken(b)
	if err != nil {
		return Token{}, fmt.Errorf("token %s: damaged file: %v", id, err)
	}
	if subtle.ConstantTimeCompare(t.Digest[:], digest[:]) != 1 {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrUnknown)
	}
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return t, fmt.Errorf("token %s: %w", id, ErrExpired)
	}
	return t, nil
}

// List returns every stored token, expired ones included, sorted by
// creation time and then id. A missing directory is no tokens.
func (s *TokenStore) List() ([]Token, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var ts []Token
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validTokenID(id) {
			continue // temporary files and strangers
		}
		b, err := os.ReadFile(s.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // revoked meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t, err := unmarshalToken(b)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %s: damaged file: %v", e.Name(), err)
		}
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ts, nil
}

// Revoke deletes the token with this id and returns what it was. A token
// that does not exist is ErrUnknown, and so is an id not of the form of a
// token id, refused before the file system is touched.
func (s *TokenStore) Revoke(id string) (Token, error) {
	if !validTokenID(id) {
		return Token{}, fmt.Errorf("revoke token %q: not a token id (24 lowercase hex digits): %w", clip(id), ErrUnknown)
	}
	p := s.path(id)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, ErrUnknown)
	}
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	// A damaged file is still removed: revoking must always work.
	t, _ := unmarshalToken(b)
	t.ID = id
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Token{}, fmt.Errorf("revoke token %s: %w", id, ErrUnknown)
		}
		return Token{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if err := fileutil.SyncDir(s.dir); err != nil {
		return t, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return t, nil
}
