// Package tenants keeps the registry of an installation's tenants: which
// exist, whether each is active or suspended, its quota tier and
// overrides, and the browser origins allowed to call it.
//
// A tenant is a directory, <data>/tenants/<name>/, and everything it owns
// lives below it: its log, its indexes, its blobs, its rate counters and
// its configuration, tenant.json. A name is checked against
// ^[a-z0-9][a-z0-9-]{0,62}$ before it is ever joined to a path, so nothing
// a request says can reach outside that directory. A tenant directory
// without tenant.json (one made before tenants had configuration) is an
// active tenant of the default tier.
//
// Changes are atomic (temporary file, fsync, rename, fsync of the
// directory) and made under a lock on the tenant's tenant.lock, so that
// the CLI, CGI processes and a running server can change a tenant at the
// same time without losing an update. Deleting a tenant moves its
// directory to <data>/deleted/, so the name is free again and the data is
// still there for the operator to restore or remove; purge removes it.
//
// # Creation ids
//
// Create gives every tenant a random id (Config.ID) that it keeps for
// life. Credentials bound to a tenant — API tokens, user grants, the
// session tokens a grant buys — record that id beside the name, and the
// server accepts them only while the tenant bearing the name has the same
// id. So deleting a tenant (with or without purge) ends them, and a new
// tenant of the same name can never be reached by them, even if a copy of
// an old token file or grants line survives.
//
// Tenants made before ids existed have none (""), and neither do the
// credentials made for them: those stay valid, as before, until the
// tenant is deleted. A tenant created again afterwards always gets an id,
// which a credential without one never matches. Deleting a tenant also
// removes the tokens and grants bound to its name (admin.DeleteTenant).
package tenants
