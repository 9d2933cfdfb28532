package api

import (
	"net/http"
	"strings"

	"strata/auth"
)

// scope says what a route reaches, and so what a request on it must name.
type scope int

const (
	// public routes need no credentials.
	public scope = iota
	// inTenant routes reach one tenant's data: the principal's own
	// tenant, or the one an administrator names.
	inTenant
	// system routes reach the installation: accounts, tenants, audit.
	system
	// inTenantFiles routes reach files of one tenant beside its log, never
	// the log itself, which a CGI request on them does not open.
	inTenantFiles
)

// route is one method on one path: the permission it needs, in one place
// for the whole API. Every request passes through authorize with its
// route's permission before any handler runs; no handler checks access on
// its own.
type route struct {
	method string
	// path is the route's path; a "{…}" segment matches any one segment,
	// which the handler gets as call.arg; a final "{….…}" matches the rest
	// of the path, slashes included (an entity such as books/42).
	path  string
	perm  auth.Permission // "" on public routes
	scope scope
	serve func(h *Handler, w http.ResponseWriter, r *http.Request, c *call)
}

// routes is the API: every route and the permission it needs.
var routes = []route{
	{"GET", "/events", auth.PermRead, inTenant, (*Handler).read},
	{"HEAD", "/events", auth.PermRead, inTenant, (*Handler).read},
	{"PUT", "/events", auth.PermAppend, inTenant, (*Handler).append},
	{"POST", "/events", auth.PermAppend, inTenant, (*Handler).append},
	{"GET", "/events/{id}", auth.PermRead, inTenant, (*Handler).event},
	{"HEAD", "/events/{id}", auth.PermRead, inTenant, (*Handler).event},
	// Live subscriptions (issue 9 §1): stored events, then live ones, as
	// Server-Sent Events.
	{"GET", "/stream", auth.PermRead, inTenant, (*Handler).stream},
	{"GET", "/head", auth.PermRead, inTenant, (*Handler).head},
	{"HEAD", "/head", auth.PermRead, inTenant, (*Handler).head},
	{"PUT", "/storage", auth.PermBlobWrite, inTenant, (*Handler).storagePut},
	{"POST", "/storage", auth.PermBlobWrite, inTenant, (*Handler).storagePut},
	{"PUT", "/storage/", auth.PermBlobWrite, inTenant, (*Handler).storagePut},
	{"POST", "/storage/", auth.PermBlobWrite, inTenant, (*Handler).storagePut},
	{"GET", "/storage/{blob}", auth.PermRead, inTenant, (*Handler).blobGet},
	{"HEAD", "/storage/{blob}", auth.PermRead, inTenant, (*Handler).blobGet},
	{"PUT", "/storage/{blob}", auth.PermBlobWrite, inTenant, (*Handler).blobPut},
	{"DELETE", "/storage/{blob}", auth.PermBlobDelete, inTenant, (*Handler).blobDelete},
	{"GET", "/entities", auth.PermRead, inTenant, (*Handler).entity},
	{"GET", "/entities/{entity...}", auth.PermRead, inTenant, (*Handler).entity},
	{"PUT", "/entities", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"PUT", "/entities/{entity...}", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"PATCH", "/entities", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"PATCH", "/entities/{entity...}", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"DELETE", "/entities", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"DELETE", "/entities/{entity...}", auth.PermAppend, inTenant, (*Handler).entityWrite},
	{"POST", "/entities/{entity...}", auth.PermAppend, inTenant, (*Handler).entityWrite},
	// A snapshot is a cache: anyone who may read states makes automatic
	// ones by reading; asking for them (work and disk on demand, every
	// entity at once) takes the right to append.
	{"GET", "/snapshots", auth.PermRead, inTenant, (*Handler).snapshotList},
	{"POST", "/snapshots", auth.PermAppend, inTenant, (*Handler).snapshotTake},
	{"GET", "/snapshots/{entity...}", auth.PermRead, inTenant, (*Handler).snapshotLatest},
	{"GET", "/projections", auth.PermRead, inTenant, (*Handler).projectionList},
	{"POST", "/projections", auth.PermDefine, inTenant, (*Handler).projectionCreate},
	{"GET", "/projections/{name...}", auth.PermRead, inTenant, (*Handler).projectionGet}, // <name>, <name>/result[/<key>]
	{"PUT", "/projections/{name}", auth.PermDefine, inTenant, (*Handler).projectionPut},
	{"DELETE", "/projections/{name}", auth.PermDefine, inTenant, (*Handler).projectionDelete},
	{"POST", "/projections/{name}/pause", auth.PermDefine, inTenant, (*Handler).projectionPause},
	{"POST", "/projections/{name}/resume", auth.PermDefine, inTenant, (*Handler).projectionResume},
	{"POST", "/projections/{name}/rebuild", auth.PermDefine, inTenant, (*Handler).projectionRebuild},
	{"GET", "/replays", auth.PermRead, inTenant, (*Handler).replayList},
	{"GET", "/replays/{id}", auth.PermRead, inTenant, (*Handler).replayGet},
	{"POST", "/replays/{id}/cancel", auth.PermDefine, inTenant, (*Handler).replayCancel},
	{"DELETE", "/replays/{id}", auth.PermDefine, inTenant, (*Handler).replayDelete},
	// Named consumers (consumers.go): definitions, reads under a lease,
	// positions, and acks that release writers waiting for them.
	{"GET", "/consumers", auth.PermRead, inTenant, (*Handler).consumerList},
	{"GET", "/consumers/{name}", auth.PermRead, inTenant, (*Handler).consumerGet},
	{"PUT", "/consumers/{name}", auth.PermDefine, inTenant, (*Handler).consumerPut},
	{"DELETE", "/consumers/{name}", auth.PermDefine, inTenant, (*Handler).consumerDelete},
	{"GET", "/consumers/{name}/events", auth.PermRead, inTenant, (*Handler).consumerEvents},
	{"GET", "/consumers/{name}/stream", auth.PermRead, inTenant, (*Handler).consumerStream},
	{"PUT", "/consumers/{name}/position", auth.PermRead, inTenant, (*Handler).consumerPosition},
	{"DELETE", "/consumers/{name}/lease", auth.PermRead, inTenant, (*Handler).consumerRelease},
	{"POST", "/events/{id}/ack", auth.PermRead, inTenant, (*Handler).eventAck},
	// Coordination (coord.go): cache, mutexes, broadcast.
	{"GET", "/cache/{key}", auth.PermRead, inTenantFiles, (*Handler).cacheGet},
	{"PUT", "/cache/{key}", auth.PermAppend, inTenantFiles, (*Handler).cachePut},
	{"DELETE", "/cache/{key}", auth.PermAppend, inTenantFiles, (*Handler).cacheDelete},
	{"POST", "/mutex/{key}/lock", auth.PermAppend, inTenantFiles, (*Handler).mutexLock},
	{"POST", "/mutex/{key}/unlock", auth.PermAppend, inTenantFiles, (*Handler).mutexUnlock},
	{"POST", "/mutex/{key}/renew", auth.PermAppend, inTenantFiles, (*Handler).mutexRenew},
	{"POST", "/broadcast/{channel}", auth.PermAppend, inTenantFiles, (*Handler).broadcastPost},
	{"GET", "/broadcast/{channel}/stream", auth.PermRead, inTenantFiles, (*Handler).broadcastStream},
	{"GET", "/quota", auth.PermInfo, inTenant, (*Handler).quota},
	{"GET", "/session", auth.PermInfo, system, (*Handler).whoami},
	{"POST", "/session", "", public, (*Handler).login},
	{"POST", "/setup", "", public, (*Handler).setup},
	{"GET", "/health", "", public, (*Handler).health},
	{"HEAD", "/health", "", public, (*Handler).health},
	// The OpenAPI 3.1 document of this table (openapi.go).
	{"GET", "/openapi.json", "", public, (*Handler).openapi},
	{"HEAD", "/openapi.json", "", public, (*Handler).openapi},
	// Operations (issue 10 §3): readiness, metrics, stats.
	{"GET", "/ready", "", public, (*Handler).ready},
	{"HEAD", "/ready", "", public, (*Handler).ready},
	{"GET", "/metrics", auth.PermMetrics, system, (*Handler).metricsGet},
	{"HEAD", "/metrics", auth.PermMetrics, system, (*Handler).metricsGet},
	{"GET", "/stats", auth.PermMetrics, inTenant, (*Handler).stats},
	{"GET", "/admin/stats", auth.PermMetrics, system, (*Handler).adminStats},
	// Backups over HTTP (issue 10 §1)
	{"GET", "/admin/backup", auth.PermAdmin, system, (*Handler).adminBackup},
	// Compaction of sealed segments (issue 10 §2): run within a budget, stats
	{"POST", "/admin/compaction", auth.PermAdmin, system, (*Handler).compactionRun},
	{"GET", "/admin/compaction", auth.PermAdmin, system, (*Handler).compactionStats},
	{"GET", "/audit", auth.PermAdmin, system, (*Handler).auditRead},
	{"GET", "/admin/tenants", auth.PermAdmin, system, (*Handler).tenantList},
	{"POST", "/admin/tenants", auth.PermAdmin, system, (*Handler).tenantCreate},
	{"GET", "/admin/tenants/{name}", auth.PermAdmin, system, (*Handler).tenantShow},
	{"PATCH", "/admin/tenants/{name}", auth.PermAdmin, system, (*Handler).tenantPatch},
	{"DELETE", "/admin/tenants/{name}", auth.PermAdmin, system, (*Handler).tenantDelete},
	{"POST", "/admin/tenants/{name}/suspend", auth.PermAdmin, system, (*Handler).tenantSuspend},
	{"POST", "/admin/tenants/{name}/resume", auth.PermAdmin, system, (*Handler).tenantResume},
	{"GET", "/admin/tokens", auth.PermAdmin, system, (*Handler).tokenList},
	{"POST", "/admin/tokens", auth.PermAdmin, system, (*Handler).tokenCreate},
	{"DELETE", "/admin/tokens/{id}", auth.PermAdmin, system, (*Handler).tokenRevoke},
	{"GET", "/admin/users", auth.PermAdmin, system, (*Handler).userList},
	{"PUT", "/admin/users/{name}", auth.PermAdmin, system, (*Handler).userPut},
	{"DELETE", "/admin/users/{name}", auth.PermAdmin, system, (*Handler).userDelete},
}

// match finds the route for method and path. With no route for the path
// it returns nil and no methods; with routes for the path but not the
// method, nil and the methods the path allows (for 405 and for CORS
// preflights).
func match(method, path string) (rt *route, arg string, methods []string) {
	for i := range routes {
		a, ok := matchPath(routes[i].path, path)
		if !ok {
			continue
		}
		if routes[i].method == method {
			return &routes[i], a, nil
		}
		methods = append(methods, routes[i].method)
	}
	return nil, "", methods
}

// matchPath matches path against a route path with at most one "{…}"
// segment and returns what that segment held; a "{….…}" segment, last in
// the pattern, holds the rest of the path, slashes included.
func matchPath(pattern, path string) (string, bool) {
	i := strings.IndexByte(pattern, '{')
	if i < 0 {
		return "", pattern == path
	}
	j := strings.IndexByte(pattern, '}')
	prefix, suffix := pattern[:i], pattern[j+1:]
	if !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, suffix) || len(path) < len(prefix)+len(suffix)+1 {
		return "", false
	}
	arg := path[len(prefix) : len(path)-len(suffix)]
	if strings.IndexByte(arg, '/') >= 0 && !strings.HasSuffix(pattern[:j], "...") {
		return "", false
	}
	return arg, true
}

// patternOf is the pattern of the first route whose path matches path.
func patternOf(path string) string {
	for i := range routes {
		if _, ok := matchPath(routes[i].path, path); ok {
			return routes[i].path
		}
	}
	return ""
}
