package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"strata/admin"
	"strata/auth"
	"strata/internal/blake3"
	"strata/internal/fileutil"
)

// Files of the installation's accounts, under <data>/system; the ones the
// command line changes too are named once, in package admin.
const (
	systemDir    = admin.SystemDir
	grantsFile   = admin.GrantsFile // user → tenant and role
	tokensDir    = admin.TokensDir  // one file per API token, by id
	secretFile   = "secret"         // signs session tokens
	throttleFile = "throttle"       // failed logins, per user and address
	refusedFile  = "refused"        // refused requests, tallied per window for the audit log
	auditDir     = admin.AuditDir   // the audit log
)

// timeNow is the clock of authentication and quotas.
var timeNow = time.Now

// accounts reads the installation's users, grants and tokens. A CGI
// process reads what one request needs; a long-running one keeps the
// users and grants, looking at the files again at most once a second.
type accounts struct {
	cfg *Config
	dir string

	mu       sync.Mutex
	users    *auth.Users
	grants   map[string]auth.Grant
	stamp    string // of the users and grants files, as loaded
	loadedAt time.Time
	// passed remembers, in a long-running process, password checks that
	// succeeded, for a few minutes: a browser sending Basic credentials
	// on every request would otherwise pay a bcrypt each time. Keyed by a
	// keyed hash of user and password, never the password; forgotten
	// when the users file changes.
	passed  map[[32]byte]time.Time
	passKey [32]byte

	tokens *auth.TokenStore
	// known remembers, in a long-running process, tokens looked up in the
	// last second: reading a token's file costs more than the rest of a
	// small append's authentication. A token revoked by another process
	// stops working within the second; one revoked through this process's
	// admin API at once (forgetTokens).
	known    map[[32]byte]knownToken
	secret   []byte
	throttle *auth.Throttle
	refused  *auth.Throttle // tally of refused requests (Handler.deny)
}

type knownToken struct {
	tok auth.Token
	at  time.Time
}

// tokenTTL is how long a long-running process trusts a token it read.
const tokenTTL = time.Second

// lookupToken returns the token with digest.
func (a *accounts) lookupToken(digest [32]byte, now time.Time) (auth.Token, error) {
	if a.known != nil {
		a.mu.Lock()
		k, ok := a.known[digest]
		a.mu.Unlock()
		if ok && now.Sub(k.at) < tokenTTL && now.Sub(k.at) >= 0 {
			if !k.tok.Expires.IsZero() && !now.Before(k.tok.Expires) {
				return auth.Token{}, auth.ErrExpired
			}
			return k.tok, nil
		}
	}
	tok, err := a.tokens.Lookup(digest, now)
	if err == nil && a.known != nil {
		a.mu.Lock()
		if len(a.known) > 10000 {
			clear(a.known)
		}
		a.known[digest] = knownToken{tok, now}
		a.mu.Unlock()
	}
	return tok, err
}

// forgetTokens drops the remembered tokens: after a revocation.
func (a *accounts) forgetTokens() {
	a.mu.Lock()
	clear(a.known)
	a.mu.Unlock()
}

// passTTL bounds how long a long-running process trusts a password check.
const passTTL = 5 * time.Minute

func newAccounts(cfg *Config) *accounts {
	a := &accounts{cfg: cfg, dir: filepath.Join(cfg.DataDir, systemDir)}
	a.tokens = auth.OpenTokens(filepath.Join(a.dir, tokensDir))
	if cfg.LongRunning {
		a.passed = map[[32]byte]time.Time{}
		a.known = map[[32]byte]knownToken{}
		rand.Read(a.passKey[:])
	}
	return a
}

func (a *accounts) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.throttle != nil {
		a.throttle.Close()
		a.throttle = nil
	}
	if a.refused != nil {
		a.refused.Close()
		a.refused = nil
	}
}

// fileStamp identifies a file's version: its change time and size.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "-"
	}
	return fi.ModTime().String() + "/" + fmt.Sprint(fi.Size())
}

// load returns the users and grants, reading them if they changed. a.mu
// is held.
func (a *accounts) load() (*auth.Users, map[string]auth.Grant, error) {
	if a.users != nil && (!a.cfg.LongRunning || time.Since(a.loadedAt) < time.Second) {
		return a.users, a.grants, nil
	}
	grantsPath := filepath.Join(a.dir, grantsFile)
	stamp := fileStamp(a.cfg.UsersFile) + "|" + fileStamp(grantsPath)
	a.loadedAt = time.Now()
	if a.users != nil && stamp == a.stamp {
		return a.users, a.grants, nil
	}
	users, err := auth.LoadUsers(a.cfg.UsersFile)
	if err != nil {
		return nil, nil, err
	}
	grants, err := auth.LoadGrants(grantsPath)
	if err != nil {
		return nil, nil, err
	}
	a.users, a.grants, a.stamp = users, grants, stamp
	clear(a.passed)
	return users, grants, nil
}

// reload makes the next load read the files again: after this process
// changed them.
func (a *accounts) reload() {
	a.mu.Lock()
	a.users = nil
	a.mu.Unlock()
}

// getThrottle opens the failed-login counters on first use.
func (a *accounts) getThrottle() (*auth.Throttle, error) {
	return a.open(&a.throttle, throttleFile)
}

// getRefused opens the tally of refused requests on first use.
func (a *accounts) getRefused() (*auth.Throttle, error) {
	return a.open(&a.refused, refusedFile)
}

func (a *accounts) open(t **auth.Throttle, name string) (*auth.Throttle, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if *t == nil {
		if err := fileutil.MkdirAll(a.dir, 0o700); err != nil {
			return nil, err
		}
		th, err := auth.OpenThrottle(filepath.Join(a.dir, name))
		if err != nil {
			return nil, err
		}
		*t = th
	}
	return *t, nil
}

// getSecret returns the key that signs session tokens, made on first use.
func (a *accounts) getSecret() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.secret == nil {
		if err := fileutil.MkdirAll(a.dir, 0o700); err != nil {
			return nil, err
		}
		s, err := auth.LoadOrCreateSecret(filepath.Join(a.dir, secretFile))
		if err != nil {
			return nil, err
		}
		a.secret = s
	}
	return a.secret, nil
}

// authError is a refused authentication: 401, or 429 while a user or an
// address is held back after failed logins.
func authError(retry time.Duration, format string, args ...any) *apiError {
	if retry > 0 {
		e := errorf("too_many_failures", "too many failed logins; retry in %s", retry.Round(time.Second))
		e.retry = retry
		return e
	}
	return errorf("unauthorized", format, args...)
}

// reasonWrongPassword is the audit reason of a refused password, which the
// throttle has counted against the address already.
const reasonWrongPassword = "wrong password or unknown user"

// badCredentials is the one message for a refused user or password: it
// never says which of the two was wrong.
const badCredentials = "the user name or password is not right"

// authenticate finds the principal behind the request's Authorization
// header. Without accounts (NoAuth) everyone is an administrator.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, addr string) (auth.Principal, error) {
	if h.cfg.NoAuth {
		return auth.Principal{Kind: "none", Name: "anonymous", Role: auth.RoleAdmin, CredID: "none"}, nil
	}
	hdr := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(hdr, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case hdr == "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata", Basic realm="strata", charset="UTF-8"`)
		return auth.Principal{}, errorf("unauthorized", "this request needs credentials: Authorization: Bearer <token>, or Basic with a user and password")
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return auth.Principal{}, h.refuse(w, r, addr, "", "malformed Basic credentials", errorf("unauthorized", "the Basic credentials are not base64 of user:password"))
		}
		return h.password(w, r, addr, user, pass)
	case strings.EqualFold(scheme, "Bearer"):
		return h.bearer(w, r, addr, cred)
	}
	return auth.Principal{}, h.refuse(w, r, addr, "", "unknown scheme", errorf("unauthorized", "unknown authorization scheme %q: use Bearer or Basic", clip(scheme)))
}

// password checks a user's password, held back by the failed-login
// counters of the user and the address. The attempt is counted as a
// failure before the password is checked and taken back if it was right
// (auth.Throttle.Reserve), so simultaneous guesses cannot all run before
// the first is counted; counters that cannot be written refuse the login.
func (h *Handler) password(w http.ResponseWriter, r *http.Request, addr, user, pass string) (auth.Principal, error) {
	keys := []string{"user:" + user, "addr:" + addr}
	th, err := h.acc.getThrottle()
	if err != nil {
		return auth.Principal{}, fmt.Errorf("%w: %v", auth.ErrThrottle, err)
	}
	now := timeNow()
	wait, err := th.Reserve(now, keys...)
	if err != nil {
		return auth.Principal{}, err
	}
	if wait > 0 {
		return auth.Principal{}, authError(wait, "")
	}
	a := h.acc
	a.mu.Lock()
	users, grants, err := a.load()
	var key [32]byte
	cached := false
	if err == nil && a.passed != nil {
		key = blake3.Sum256([]byte(string(a.passKey[:]) + user + "\x00" + pass))
		exp, ok := a.passed[key]
		cached = ok && now.Before(exp)
	}
	a.mu.Unlock()
	if err != nil {
		return auth.Principal{}, err
	}
	if !cached && !users.Verify(user, pass) {
		// Counted already, by Reserve.
		return auth.Principal{}, h.refuse(w, r, addr, "user:"+user, reasonWrongPassword, authError(th.Blocked(now, keys...), badCredentials))
	}
	th.Succeed(now, "user:"+user)
	if err := th.Release(now, "addr:"+addr); err != nil {
		infoOf(r).logger(h).Warn("login: the address's reserved attempt not taken back", "user", user, "err", err.Error())
	}
	if !cached && a.passed != nil {
		a.mu.Lock()
		a.passed[key] = now.Add(passTTL)
		a.mu.Unlock()
	}
	g, ok := grants[user]
	if !ok {
		return auth.Principal{}, h.refuse(w, r, addr, "user:"+user, "no grant", errorf("no_grant", "the user %s has no tenant and role yet; an administrator grants them (strata user grant)", user))
	}
	return auth.Principal{Kind: "user", Name: user, Tenant: grantTenant(g), TenantID: g.TenantID, Role: g.Role, CredID: "user:" + user}, nil
}

func grantTenant(g auth.Grant) string {
	if g.Tenant == "*" {
		return ""
	}
	return g.Tenant
}

// bearer checks an API token, a session token or a JWT.
func (h *Handler) bearer(w http.ResponseWriter, r *http.Request, addr, cred string) (auth.Principal, error) {
	now := timeNow()
	switch {
	case strings.HasPrefix(cred, "strata_"):
		digest, ok := auth.ParseToken(cred)
		if !ok {
			return auth.Principal{}, h.refuse(w, r, addr, "", "malformed token", errorf("unauthorized", "the token is not one this server issued"))
		}
		tok, err := h.acc.lookupToken(digest, now)
		if err != nil {
			if errors.Is(err, auth.ErrExpired) {
				return auth.Principal{}, h.refuse(w, r, addr, "token:"+auth.TokenID(digest), "expired", errorf("token_expired", "the token has expired"))
			}
			if errors.Is(err, auth.ErrUnknown) {
				return auth.Principal{}, h.refuse(w, r, addr, "token:"+auth.TokenID(digest), "unknown or revoked token", errorf("unauthorized", "the token is not valid (unknown or revoked)"))
			}
			return auth.Principal{}, err
		}
		return auth.Principal{Kind: "token", Name: tok.ID, Tenant: tok.Tenant, TenantID: tok.TenantID, Role: tok.Role, CredID: "token:" + tok.ID, Expires: tok.Expires}, nil
	case auth.IsSessionToken(cred):
		secret, err := h.acc.getSecret()
		if err != nil {
			return auth.Principal{}, err
		}
		sc, err := auth.VerifySession(secret, cred, now)
		if err != nil {
			return auth.Principal{}, h.refuse(w, r, addr, "", "session: "+err.Error(), sessionError(err))
		}
		a := h.acc
		a.mu.Lock()
		users, grants, err := a.load()
		a.mu.Unlock()
		if err != nil {
			return auth.Principal{}, err
		}
		// The session ends when the password, the tenant (a tenant of
		// the same name created anew included) or the role changes, or
		// the user is removed.
		fp, ok := users.Fingerprint(sc.User)
		g, granted := grants[sc.User]
		if !ok || fp != sc.Fingerprint || !granted || grantTenant(g) != sc.Tenant || g.TenantID != sc.TenantID || g.Role != sc.Role {
			return auth.Principal{}, h.refuse(w, r, addr, "user:"+sc.User, "session of a changed account", errorf("session_ended", "the session has ended (the account changed); log in again"))
		}
		return auth.Principal{Kind: "session", Name: sc.User, Tenant: sc.Tenant, TenantID: sc.TenantID, Role: sc.Role, CredID: "user:" + sc.User, Expires: sc.Expires}, nil
	case auth.LooksLikeJWT(cred):
		if h.cfg.JWT == nil {
			return auth.Principal{}, h.refuse(w, r, addr, "", "jwt not configured", errorf("unauthorized", "this server accepts no JWTs from identity providers"))
		}
		p, err := h.cfg.JWT.Verify(cred, now)
		if err != nil {
			return auth.Principal{}, h.refuse(w, r, addr, "", "jwt: "+err.Error(), sessionError(err))
		}
		return p, nil
	}
	return auth.Principal{}, h.refuse(w, r, addr, "", "malformed bearer", errorf("unauthorized", "the bearer credential is neither a strata token nor a JWT"))
}

func sessionError(err error) *apiError {
	if errors.Is(err, auth.ErrExpired) {
		return errorf("token_expired", "the token has expired")
	}
	return errorf("unauthorized", "the token is not valid: %v", err)
}

// refuse records a refused authentication in the audit log, counts it
// against the address, and returns e. Once the address is held back its
// further refusals are not recorded one by one, so a flood of bad
// credentials cannot flood the audit log. Refused credentials other than
// passwords count under their own key ("bearer:<addr>"), never against
// the address's password logins: a client behind a NAT sending a stale
// token must not lock its neighbours out.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, addr, claimed, reason string, e *apiError) error {
	counted := reason == reasonWrongPassword
	key := "bearer:" + addr
	if counted {
		key = "addr:" + addr
	}
	if e.challenge() {
		// The challenge names the scheme that failed: invalid_token is for
		// bearer credentials only.
		switch scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); {
		case strings.EqualFold(scheme, "Basic"):
			w.Header().Set("WWW-Authenticate", `Basic realm="strata", charset="UTF-8"`)
		case strings.EqualFold(scheme, "Bearer"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="strata", error="invalid_token"`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
		}
	}
	if e.heldBack() {
		return e
	}
	if th, err := h.acc.getThrottle(); err == nil {
		// A wrong password was counted already, with its user.
		if !counted {
			th.Fail(timeNow(), key)
		}
		if th.Blocked(timeNow(), key) > time.Minute {
			return e
		}
	}
	if claimed == "" {
		claimed = "unknown"
	}
	h.recordAs(infoOf(r), claimed, addr, "auth.refused", "", e.status, map[string]any{"reason": reason, "method": r.Method, "path": clip(r.URL.Path)})
	return e
}
