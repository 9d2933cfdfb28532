package auth

import (
	"strings"
	"testing"
	"time"
)

func TestRoleCan(t *testing.T) {
	// The whole matrix, written out: a change to Role.Can must change this.
	want := map[Role][]Permission{
		RoleAdmin:    {PermRead, PermAppend, PermBlobWrite, PermBlobDelete, PermInfo, PermDefine, PermAdmin, PermMetrics},
		RoleWriter:   {PermRead, PermAppend, PermBlobWrite, PermBlobDelete, PermInfo, PermDefine},
		RoleReader:   {PermRead, PermInfo},
		RoleAppender: {PermAppend, PermBlobWrite, PermInfo},
		RoleMetrics:  {PermMetrics},
		"":           nil,
		"root":       nil,
	}
	for role, perms := range want {
		for _, p := range append(Permissions(), "", "everything") {
			allowed := false
			for _, q := range perms {
				allowed = allowed || q == p
			}
			if got := role.Can(p); got != allowed {
				t.Errorf("Role(%q).Can(%q) = %v, want %v", role, p, got, allowed)
			}
		}
	}
}

func TestRolesAndPermissionsAreComplete(t *testing.T) {
	if got := len(Roles()); got != 5 {
		t.Errorf("Roles() has %d roles, want 5", got)
	}
	for _, r := range Roles() {
		if !r.Valid() {
			t.Errorf("Roles() lists invalid %q", r)
		}
	}
	// Every permission is granted to someone, and admin has them all.
	for _, p := range Permissions() {
		if !RoleAdmin.Can(p) {
			t.Errorf("admin cannot %q", p)
		}
	}
	if got := len(Permissions()); got != 8 {
		t.Errorf("Permissions() has %d, want 8", got)
	}
}

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Role
		ok   bool
	}{
		{"admin", RoleAdmin, true},
		{"writer", RoleWriter, true},
		{"reader", RoleReader, true},
		{"appender", RoleAppender, true},
		{"Admin", "", false},
		{"", "", false},
		{"admin ", "", false},
		{"superuser", "", false},
	} {
		got, err := ParseRole(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseRole(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil {
			for _, r := range Roles() {
				if !strings.Contains(err.Error(), string(r)) {
					t.Errorf("ParseRole(%q) error %q does not name %s", tc.in, err, r)
				}
			}
		}
	}
}

func TestValidTenant(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"acme", true},
		{"acme-2", true},
		{"0day", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-acme", false},
		{"Acme", false},
		{"acme_2", false},
		{"acme.org", false},
		{"../etc", false},
		{"a/b", false},
		{"*", false},
		{"é", false},
		{"acme\n", false},
	} {
		if got := ValidTenant(tc.name); got != tc.ok {
			t.Errorf("ValidTenant(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestPrincipalString(t *testing.T) {
	for _, tc := range []struct {
		p    Principal
		want string
	}{
		{Principal{Kind: "user", Name: "alice"}, "user:alice"},
		{Principal{Kind: "session", Name: "alice", Expires: time.Unix(1, 0)}, "user:alice"},
		{Principal{Kind: "token", Name: "0123456789abcdef01234567"}, "token:0123456789abcdef01234567"},
		{Principal{Kind: "jwt", Name: "sub-1", CredID: "jwt:https://idp/sub-1"}, "jwt:sub-1"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}
