// Package api is strata's one http.Handler, served the same way in every
// mode (CGI, FastCGI, standalone). It routes on r.URL.Path, which the mode
// sets to the path below the mount point, and it is the only package that
// turns errors into HTTP status codes (errors.go holds the table).
//
// Access control has one place too: routes.go lists every route with the
// permission it needs, and ServeHTTP authorizes each request against it —
// who the credentials are (authn.go), whether their role has the
// permission, whether the tenant they name is theirs, exists and is
// active, and whether the credential is within its request rate — before
// any handler runs. No handler checks access on its own. Quotas on what a
// request stores are checked where it is stored, under the lock that makes
// them hold across processes.
//
// Every error answer is JSON: {"error":{"code":"…","message":"…",
// "request_id":"…"}}; errors.go holds the one table of code → status,
// and a fault on the server's side is logged (slog, standard error) under
// the request id, never shown to the client. A
// request body is read whole (up to a limit) before anything is written, so
// no request, however malformed, leaves anything half-written.
//
// Read models (projdefs.go, projresult.go, replays.go, projworker.go):
// projection definitions are events of the tenant's own log, of reserved
// strata.* types on strata/ entities that clients may not write
// (reserved.go); the server writes them through commit, as every append.
// Results come from package projections' engine, caught up within the
// catch-up budget on read and, in a long-running server, by a background
// worker per tenant; replays move on in budgeted steps in CGI and in the
// background otherwise.
package api
