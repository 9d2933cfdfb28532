package api

import (
	_ "embed" // the OpenAPI document is compiled in
	"net/http"
	"strings"
	"time"
)

// openapiDoc is the OpenAPI 3.1 document of every route (openapi.json,
// edited by hand beside routes.go; TestOpenAPIMatchesRoutes fails when the
// two disagree). A string, so that it stays in the binary's read-only data:
// serving it costs no start-up and no copy.
//
//go:embed openapi.json
var openapiDoc string

// openapiETag is the document's entity tag: the first 16 hex digits of its
// BLAKE3 hash, a constant so that nothing is hashed at start-up or per
// request. TestOpenAPIETag says the value to put here after an edit.
const openapiETag = `"382d50825d93f84c"`

// openapi serves GET and HEAD /openapi.json. http.ServeContent answers
// If-None-Match (304) and Range against the constant ETag.
func (h *Handler) openapi(w http.ResponseWriter, r *http.Request, c *call) {
	hd := w.Header()
	hd.Set("ETag", openapiETag)
	hd.Set("Content-Type", "application/json")
	// Public and the same for everyone; revalidated after an hour, so
	// clients see an upgraded server's routes soon after.
	hd.Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(openapiDoc))
}
