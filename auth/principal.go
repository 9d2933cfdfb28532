package auth

import "time"

// Principal is who made a request, as established by one credential.
type Principal struct {
	Kind    string    // "user", "token", "jwt", or "session" (a user who logged in via POST /session)
	Name    string    // user name, token id, or JWT sub
	Tenant  string    // "" only for an admin not bound to a tenant
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
