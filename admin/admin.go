// Package admin carries out the changes an administrator makes to an
// installation — tenants, their quotas and origins, users, grants and API
// tokens — for the CLI and the admin API alike, and records each one in
// the audit log with who made it. Whatever the way in, a change is checked
// the same way and leaves the same record.
package admin

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"strata/audit"
	"strata/auth"
	"strata/internal/fileutil"
	"strata/tenants"
)

// Files of the accounts under <data>/system.
const (
	SystemDir  = "system"
	GrantsFile = "grants"
	TokensDir  = "tokens"
	AuditDir   = "audit"
)

// Errors.
var (
	ErrInvalid  = errors.New("invalid")
	ErrNotFound = errors.New("not found")
)

// Service makes changes on behalf of one principal.
type Service struct {
	Data      string // the data directory
	UsersFile string // the htpasswd file; default <data>/system/users
	Audit     *audit.Log
	By        string // the principal, for the audit log: "user:alice", "cli:root"
	Addr      string // the client's address, if any
	Now       func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) system() string { return filepath.Join(s.Data, SystemDir) }

func (s *Service) usersFile() string {
	if s.UsersFile != "" {
		return s.UsersFile
	}
	return filepath.Join(s.system(), "users")
}

func (s *Service) grantsFile() string { return filepath.Join(s.system(), GrantsFile) }

// Tokens is the installation's token store.
func (s *Service) Tokens() *auth.TokenStore {
	return auth.OpenTokens(filepath.Join(s.system(), TokensDir))
}

// record writes one audit record; a change that cannot be recorded is
// reported, though it was made.
func (s *Service) record(action, tenant string, detail map[string]any) error {
	if s.Audit == nil {
		return nil
	}
	err := s.Audit.Record(audit.Record{Action: action, Principal: s.By, Tenant: tenant, Addr: s.Addr, Detail: detail})
	if err != nil {
		return fmt.Errorf("the change was made but not recorded in the audit log: %w", err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// CreateTenant makes a tenant.
func (s *Service) CreateTenant(c tenants.Config) (tenants.Config, error) {
	c, err := tenants.Create(s.Data, c, s.now())
	if err != nil {
		return c, err
	}
	return c, s.record("tenant.create", c.Name, map[string]any{"tier": c.Tier, "quota": c.Quota, "cors_origins": c.Origins})
}

// UpdateTenant applies fn to the tenant under its lock and records the
// change as action ("tenant.update", "quota.update", "tenant.suspend", …).
func (s *Service) UpdateTenant(name, action string, detail map[string]any, fn func(*tenants.Config) error) (tenants.Config, error) {
	c, err := tenants.Update(s.Data, name, s.now(), fn)
	if err != nil {
		return c, err
	}
	return c, s.record(action, name, detail)
}

// Suspend stops a tenant from serving requests; its data stays.
func (s *Service) Suspend(name, reason string) (tenants.Config, error) {
	return s.UpdateTenant(name, "tenant.suspend", map[string]any{"reason": reason}, func(c *tenants.Config) error {
		c.State, c.Reason = tenants.Suspended, reason
		return nil
	})
}

// Resume serves a suspended tenant again.
func (s *Service) Resume(name string) (tenants.Config, error) {
	return s.UpdateTenant(name, "tenant.resume", nil, func(c *tenants.Config) error {
		c.State, c.Reason = tenants.Active, ""
		return nil
	})
}

// Deleted is what deleting a tenant did.
type Deleted struct {
	MovedTo string   `json:"moved_to"`       // where the data went; "" if purged
	Tokens  []string `json:"tokens_revoked"` // ids of the tokens removed
	Users   []string `json:"grants_removed"` // users whose grant was taken back
}

// DeleteTenant takes a tenant out of service (see tenants.Delete) and
// revokes every credential bound to it: its API tokens are removed and
// its users' grants taken back, which also ends their sessions. Even a
// credential that survived this (a copy of a token file) is bound to the
// tenant's creation id, which a new tenant of the same name never has.
func (s *Service) DeleteTenant(name string, purge bool) (Deleted, error) {
	moved, err := tenants.Delete(s.Data, name, purge, s.now())
	if err != nil {
		return Deleted{}, err
	}
	d := Deleted{MovedTo: moved}
	var rerr error
	d.Tokens, d.Users, rerr = s.revokeTenant(name)
	if d.Tokens == nil {
		d.Tokens = []string{}
	}
	if d.Users == nil {
		d.Users = []string{}
	}
	detail := map[string]any{"purged": purge, "moved_to": moved, "tokens_revoked": d.Tokens, "grants_removed": d.Users}
	if err := s.record("tenant.delete", name, detail); err != nil {
		return d, err
	}
	if rerr != nil {
		return d, fmt.Errorf("the tenant was deleted, but not every credential bound to it was removed (they no longer work): %w", rerr)
	}
	return d, nil
}

// revokeTenant removes the tokens and grants bound to the tenant name,
// returning the ids of the tokens and the names of the users.
func (s *Service) revokeTenant(name string) (tokens, users []string, err error) {
	ts, err := s.Tokens().List()
	if err != nil {
		return nil, nil, err
	}
	for _, t := range ts {
		if t.Tenant != name {
			continue
		}
		if _, err := s.Tokens().Revoke(t.ID); err != nil && !errors.Is(err, auth.ErrUnknown) {
			return tokens, nil, err
		}
		tokens = append(tokens, t.ID)
	}
	gs, err := auth.LoadGrants(s.grantsFile())
	if err != nil {
		return tokens, nil, err
	}
	for u, g := range gs {
		if g.Tenant != name {
			continue
		}
		if _, err := auth.DeleteGrant(s.grantsFile(), u); err != nil {
			return tokens, users, err
		}
		users = append(users, u)
	}
	sort.Strings(users)
	return tokens, users, nil
}

// CheckGrant reports what is wrong with giving a principal tenant and
// role: an administrator has no tenant ("*" or "") — an administrator is
// the installation's, and one "for a tenant" would be a scope nothing
// enforces — and anyone else has one that exists. It returns the tenant's
// creation id, to which the credential is bound.
func (s *Service) CheckGrant(tenant string, role auth.Role) (id string, err error) {
	if tenant == "" || tenant == "*" {
		if role != auth.RoleAdmin && role != auth.RoleMetrics {
			return "", invalid("only an admin may be bound to no tenant; give --tenant")
		}
		return "", nil
	}
	if role == auth.RoleMetrics {
		return "", invalid("a metrics token is the installation's scraper and takes no tenant")
	}
	if role == auth.RoleAdmin {
		return "", invalid("an admin is the installation's and takes no tenant (it reaches every tenant); a tenant's own credentials are writers, readers or appenders")
	}
	if !tenants.ValidName(tenant) {
		return "", tenants.ErrInvalidName
	}
	c, err := tenants.Get(s.Data, tenant)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// CreateToken makes an API token and returns its secret, which is shown
// this once and stored nowhere.
func (s *Service) CreateToken(tenant string, role auth.Role, name string, ttl time.Duration) (string, auth.Token, error) {
	tid, err := s.CheckGrant(tenant, role)
	if err != nil {
		return "", auth.Token{}, err
	}
	if tenant == "*" {
		tenant = ""
	}
	if len(name) > 128 {
		return "", auth.Token{}, invalid("a token name is at most 128 bytes")
	}
	secret, digest, err := auth.NewToken()
	if err != nil {
		return "", auth.Token{}, err
	}
	now := s.now().UTC()
	t := auth.Token{ID: auth.TokenID(digest), Tenant: tenant, TenantID: tid, Role: role, Name: name, Created: now}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	copy(t.Digest[:], digest[:])
	if err := fileutil.MkdirAll(filepath.Join(s.system(), TokensDir), 0o700); err != nil {
		return "", auth.Token{}, err
	}
	if err := s.Tokens().Create(t); err != nil {
		return "", auth.Token{}, err
	}
	detail := map[string]any{"id": t.ID, "role": string(role), "name": name}
	if !t.Expires.IsZero() {
		detail["expires"] = t.Expires
	}
	return secret, t, s.record("token.create", tenant, detail)
}

// HasAdmin reports whether any credential of the installation is an
// administrator's: a token, or a user's grant.
func (s *Service) HasAdmin() (bool, error) {
	ts, err := s.Tokens().List()
	if err != nil {
		return false, err
	}
	// An admin bound to a tenant (made before admins took none) is
	// confined to it: not the installation's administrator.
	for _, t := range ts {
		if t.Role == auth.RoleAdmin && t.Tenant == "" {
			return true, nil
		}
	}
	gs, err := auth.LoadGrants(s.grantsFile())
	if err != nil {
		return false, err
	}
	for _, g := range gs {
		if g.Role == auth.RoleAdmin && g.Tenant == auth.AnyTenant {
			return true, nil
		}
	}
	return false, nil
}

// RevokeToken removes a token; requests with it fail from then on.
func (s *Service) RevokeToken(id string) (auth.Token, error) {
	t, err := s.Tokens().Revoke(id)
	if err != nil {
		return t, err
	}
	return t, s.record("token.revoke", t.Tenant, map[string]any{"id": t.ID, "name": t.Name})
}

// User is a user with a password and its grant.
type User struct {
	Name   string    `json:"name"`
	Tenant string    `json:"tenant,omitempty"`
	Role   auth.Role `json:"role,omitempty"`
}

// Users lists the users of the users file with their grants, and grants
// whose user has no password (yet).
func (s *Service) Users() ([]User, error) {
	us, err := auth.LoadUsers(s.usersFile())
	if err != nil {
		return nil, err
	}
	gs, err := auth.LoadGrants(s.grantsFile())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []User
	for _, n := range us.Names() {
		g := gs[n]
		out = append(out, User{Name: n, Tenant: g.Tenant, Role: g.Role})
		seen[n] = true
	}
	for n, g := range gs {
		if !seen[n] {
			out = append(out, User{Name: n, Tenant: g.Tenant, Role: g.Role})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// SetUser sets a user's password (when password is not empty) and grant
// (when role is not empty). A new user needs both.
func (s *Service) SetUser(name, password, tenant string, role auth.Role) error {
	if !auth.ValidUserName(name) {
		// No user can have such a name, so the rule to give is a new one's
		// (README's), which is stricter and thus refuses it too.
		return invalid("%v", auth.CheckNewUserName(name))
	}
	if err := s.checkNewUser(name); err != nil {
		return err
	}
	var tid string
	if role != "" {
		var err error
		if tid, err = s.CheckGrant(tenant, role); err != nil {
			return err
		}
	}
	if err := fileutil.MkdirAll(s.system(), 0o700); err != nil {
		return err
	}
	detail := map[string]any{"user": name}
	if password != "" {
		hash, err := auth.HashPassword(password)
		if err != nil {
			return invalid("password: %v", err) // too long for bcrypt
		}
		if err := auth.SetUser(s.usersFile(), name, hash); err != nil {
			return err
		}
		detail["password"] = "changed"
	}
	if role != "" {
		if tenant == "" {
			tenant = "*"
		}
		if err := auth.SetGrant(s.grantsFile(), name, auth.Grant{Tenant: tenant, Role: role, TenantID: tid}); err != nil {
			return err
		}
		detail["role"], detail["grant_tenant"] = string(role), tenant
	}
	if password == "" && role == "" {
		return invalid("nothing to change: give a password, a role, or both")
	}
	t := tenant
	if t == "*" {
		t = ""
	}
	return s.record("user.set", t, detail)
}

// checkNewUser refuses the name of a new user — one in neither the users
// nor the grants file — outside auth.CheckNewUserName's safe set, or that
// could pass for an existing user's (auth.LookAlike: "Alice" beside
// "alice", "alice" beside an "аlice" with a Cyrillic а from htpasswd).
func (s *Service) checkNewUser(name string) error {
	us, err := auth.LoadUsers(s.usersFile())
	if err != nil {
		return err
	}
	gs, err := auth.LoadGrants(s.grantsFile())
	if err != nil {
		return err
	}
	names := us.Names()
	for n := range gs {
		names = append(names, n)
	}
	if slices.Contains(names, name) {
		return nil // an existing user keeps its name
	}
	if err := auth.CheckNewUserName(name); err != nil {
		return invalid("%v", err)
	}
	look := auth.LookAlike(name)
	for _, n := range names {
		if auth.LookAlike(n) == look {
			return invalid("user name %q: the user %q exists, and the two could pass for one another", name, n)
		}
	}
	return nil
}

// DeleteUser removes a user's password and grant.
func (s *Service) DeleteUser(name string) error {
	a, err := auth.DeleteUser(s.usersFile(), name)
	if err != nil {
		return err
	}
	b, err := auth.DeleteGrant(s.grantsFile(), name)
	if err != nil {
		return err
	}
	if !a && !b {
		return fmt.Errorf("user %s: %w", name, ErrNotFound)
	}
	return s.record("user.delete", "", map[string]any{"user": name})
}
