// Package api is strata's one http.Handler, served the same way in every
// mode (CGI, FastCGI, standalone). It routes on r.URL.Path, which the mode
// sets to the path below the mount point, and it is the only package that
// turns errors into HTTP status codes (errors.go holds the table).
//
// Every error answer is JSON: {"error":{"code":"…","message":"…"}}. A
// request body is read whole (up to a limit) before anything is written, so
// no request, however malformed, leaves anything half-written.
package api
