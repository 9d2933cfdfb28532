package auth

import "time"

// Principal is who made a request, as established by one credential.
type Principal struct {
	Kind   string // "user", "token", "jwt", or "session" (a user who logged in via POST /session)
	Name   string // user name, token id, or JWT sub
	Tenant string // "" only for an admin not bound to a tenant
	// TenantID is the creation id of the tenant the credential was made
	// for ("" for one made before tenants had ids); the credential holds
	// only while the tenant named Tenant still has this id. A JWT names
	// its tenant by name only: see Issued.
	TenantID string
	// Issued is when a JWT was issued (iat), zero if it does not say. A
	// JWT issued before its tenant was created is not for that tenant.
	Issued  time.Time
	Role    Role      // what the principal may do
	CredID  string    // the credential, for per-credential rate limits: "user:alice", "token:<id>", "jwt:<iss>/<sub>"
	Expires time.Time // when the credential expires; zero if never
}

// String is the principal as recorded in an event's meta.by and in the
// audit log: "user:alice", "token:<id>", "jwt:<sub>". A session is its
// user, so a user's events read the same however they logged in. Without
// accounts (--auth=none) everyone is "anonymous".
func (p Principal) String() string {
	kind := p.Kind
	switch kind {
	case "session":
		kind = "user"
	case "none":
		return "anonymous"
	}
	return kind + ":" + p.Name
}

// Reaches reports whether p, bound to a tenant, may still act in the
// tenant now bearing that name, whose creation id is id and which was
// created at created. A tenant deleted and created again under its old
// name has a new id, so credentials made for the old one no longer
// reach it. An identity provider's JWT names its tenant only by name: it
// reaches the tenant unless it was issued before the tenant was created;
// one without iat could have been issued for a tenant since deleted, so
// it reaches only a tenant made before creation ids (id "").
func (p Principal) Reaches(id string, created time.Time) bool {
	if p.Kind == "jwt" {
		// created is kept to the nanosecond, iat to the second.
		return id == "" || !p.Issued.IsZero() && !p.Issued.Before(created.Truncate(time.Second))
	}
	return p.TenantID == id
}

// Can reports whether p may do what perm names: what its role may
// (Role.Can), except that an administrator bound to a tenant has none of
// the installation's powers (PermAdmin). strata makes no such
// administrator any more — an admin takes no tenant — but credentials
// made before (a token, a grant, or a JWT with role admin and a tenant)
// are confined to their tenant, as what was shown when they were made
// said, rather than reaching everything.
func (p Principal) Can(perm Permission) bool {
	if (perm == PermAdmin || perm == PermMetrics) && p.Tenant != "" {
		return false
	}
	return p.Role.Can(perm)
}

// Confined reports whether p reaches only its own tenant: everyone but an
// administrator bound to no tenant.
func (p Principal) Confined() bool { return p.Role != RoleAdmin || p.Tenant != "" }
