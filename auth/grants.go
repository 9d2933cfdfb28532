package auth

import (
	"fmt"
	"strings"
)

// Grant is what a user may do, and where.
type Grant struct {
	Tenant string // a tenant name, or "*" (admins only): not bound to a tenant
	Role   Role
	// TenantID is the creation id of Tenant when the grant was made, ""
	// for a grant made before tenants had ids or bound to no tenant; the
	// grant holds only while the tenant has it (Principal.Reaches).
	TenantID string
}

// AnyTenant is the tenant of a grant not bound to one tenant; only an admin
// may have it.
const AnyTenant = "*"

// check reports what is wrong with g.
func (g Grant) check() error {
	if !g.Role.Valid() {
		_, err := ParseRole(string(g.Role))
		return err
	}
	if g.Role == RoleMetrics {
		return fmt.Errorf("the metrics role is for a scraper's token (strata token create --role metrics), not a user")
	}
	if g.Tenant == AnyTenant {
		if g.Role != RoleAdmin {
			return fmt.Errorf("only an admin may be granted every tenant (%q), not a %s", AnyTenant, g.Role)
		}
		return nil
	}
	if !ValidTenant(g.Tenant) {
		return fmt.Errorf("invalid tenant name %q", clip(g.Tenant))
	}
	if !validTenantID(g.TenantID) {
		return fmt.Errorf("invalid tenant id %q", clip(g.TenantID))
	}
	return nil
}

// The grants file is strata's own, one grant a line:
//
//	# name tenant role [tenant-id]
//	alice  acme   writer 5f0c…e1
//	root   *      admin
//
// fields separated by spaces or tabs, blank lines and '#' comments ignored.
// The fourth field, the tenant's creation id, is absent in lines written
// before tenants had ids.
// The users file says who can log in; this one what they may do then. It
// is kept apart so that the users file stays one Apache can read.

// LoadGrants reads the grants file at path, keyed by user name. A missing
// file is no grants; a malformed line is an error naming it.
func LoadGrants(path string) (map[string]Grant, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	grants := make(map[string]Grant, len(lines))
	for i, line := range lines {
		if ignored(line) {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("grants file %s, line %d: want \"name tenant role [tenant-id]\"", path, i+1)
		}
		g := Grant{Tenant: f[1], Role: Role(f[2])}
		if len(f) == 4 {
			g.TenantID = f[3]
		}
		if err := g.check(); err != nil {
			return nil, fmt.Errorf("grants file %s, line %d: %w", path, i+1, err)
		}
		if _, dup := grants[f[0]]; !dup {
			grants[f[0]] = g
		}
	}
	return grants, nil
}

// validTenantID reports whether id can be a tenant's creation id as the
// tenants package makes them (32 lowercase hex digits), or is "": none.
func validTenantID(id string) bool {
	return id == "" || len(id) == 32 && strings.Trim(id, "0123456789abcdef") == ""
}

// grantee returns the user name of a grants-file line, or "".
func grantee(line string) string {
	if ignored(line) {
		return ""
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// SetGrant gives the user name grant g in the grants file at path,
// replacing any grant they had; other lines stay as they were. The tenant
// "" means AnyTenant. The file is replaced atomically and created with mode
// 0600 if missing.
func SetGrant(path, name string, g Grant) error {
	if !ValidUserName(name) {
		return fmt.Errorf("invalid user name %q", clip(name))
	}
	if g.Tenant == "" {
		g.Tenant = AnyTenant
	}
	if err := g.check(); err != nil {
		return fmt.Errorf("grant %s: %w", name, err)
	}
	line := name + " " + g.Tenant + " " + string(g.Role)
	if g.TenantID != "" {
		line += " " + g.TenantID
	}
	err := setLine(path, name, line, grantee)
	if err != nil {
		return fmt.Errorf("grant %s: %w", name, err)
	}
	return nil
}

// DeleteGrant removes the grant of the user name, reporting whether there
// was one.
func DeleteGrant(path, name string) (bool, error) {
	found, err := deleteLines(path, name, grantee)
	if err != nil {
		return false, fmt.Errorf("delete grant of %s: %w", name, err)
	}
	return found, nil
}
