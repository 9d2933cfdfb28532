package auth

import "fmt"

// Role is what a principal may do, granted per user, token or JWT.
type Role string

// The four roles. Their permissions are in Role.Can.
const (
	RoleAdmin    Role = "admin"
	RoleWriter   Role = "writer"
	RoleReader   Role = "reader"
	RoleAppender Role = "appender"
	// RoleMetrics is a scraper's: GET /metrics and the stats of every
	// tenant, nothing else. Only a token bound to no tenant has it.
	RoleMetrics Role = "metrics"
)

// Permission names one kind of request; each route requires one.
type Permission string

// The permissions a role may have.
const (
	PermRead       Permission = "read"        // read events, head, blobs
	PermAppend     Permission = "append"      // append events
	PermBlobWrite  Permission = "blob.write"  // upload blobs
	PermBlobDelete Permission = "blob.delete" // delete blobs
	PermInfo       Permission = "info"        // see one's own tenant's quota and usage, whoami
	// PermDefine defines, changes, pauses, rebuilds and deletes read
	// models (projections): durable records that cost the tenant CPU and
	// disk, so writers and administrators, not readers.
	PermDefine Permission = "define"
	PermAdmin  Permission = "admin" // accounts, tenants, audit, every tenant
	// PermMetrics reads the installation's metrics and stats: counts of
	// every tenant, no event. Administrators and scrapers' tokens.
	PermMetrics Permission = "metrics"
)

// Roles lists the roles, most powerful first.
func Roles() []Role { return []Role{RoleAdmin, RoleWriter, RoleReader, RoleAppender, RoleMetrics} }

// Permissions lists every permission.
func Permissions() []Permission {
	return []Permission{PermRead, PermAppend, PermBlobWrite, PermBlobDelete, PermInfo, PermDefine, PermAdmin, PermMetrics}
}

// Can reports whether the role grants p. This switch is the one table of
// who may do what; an unknown role may do nothing.
func (r Role) Can(p Permission) bool {
	switch r {
	case RoleAdmin:
		return p == PermRead || p == PermAppend || p == PermBlobWrite || p == PermBlobDelete || p == PermInfo || p == PermDefine || p == PermAdmin || p == PermMetrics
	case RoleWriter:
		return p == PermRead || p == PermAppend || p == PermBlobWrite || p == PermBlobDelete || p == PermInfo || p == PermDefine
	case RoleReader:
		return p == PermRead || p == PermInfo
	case RoleAppender:
		// An appender (a sensor, a service writing its own trail) writes
		// but cannot read back what others wrote.
		return p == PermAppend || p == PermBlobWrite || p == PermInfo
	case RoleMetrics:
		return p == PermMetrics
	}
	return false
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleWriter, RoleReader, RoleAppender, RoleMetrics:
		return true
	}
	return false
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: the roles are admin, writer, reader, appender and metrics", clip(s))
}

// ValidTenant reports whether name is a valid tenant name: 1–63 bytes of
// lowercase ASCII letters, digits and '-', not starting with '-'. It is
// ^[a-z0-9][a-z0-9-]{0,62}$ written out by hand, because a package-level
// regexp.MustCompile would be paid by every CGI process at start-up.
func ValidTenant(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens s for an error message, so a huge input does not become a
// huge message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
