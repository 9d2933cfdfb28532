package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"strata/internal/blake3"
)

// oaParam is an OpenAPI parameter object, as far as the tests read it.
type oaParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
	Rest bool   `json:"x-strata-rest"`
}

// oaOperation is an OpenAPI operation, as far as the tests read it.
type oaOperation struct {
	Parameters []oaParam          `json:"parameters"`
	Security   *[]json.RawMessage `json:"security"`
}

// oaDoc is the OpenAPI document, as far as the tests read it.
type oaDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Comps   struct {
		Parameters map[string]oaParam `json:"parameters"`
	} `json:"components"`
}

// oaMethods are the operation keys of an OpenAPI path item.
var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) *oaDoc {
	t.Helper()
	var d oaDoc
	if err := json.Unmarshal([]byte(openapiDoc), &d); err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.1.") {
		t.Fatalf(`"openapi" is %q, want 3.1.x`, d.OpenAPI)
	}
	return &d
}

// resolve follows a parameter's $ref into components.parameters.
func (d *oaDoc) resolve(t *testing.T, p oaParam) oaParam {
	t.Helper()
	if p.Ref == "" {
		return p
	}
	name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
	q, found := d.Comps.Parameters[name]
	if !ok || !found {
		t.Fatalf("parameter $ref %q resolves to nothing", p.Ref)
	}
	return q
}

var templateVar = regexp.MustCompile(`\{([^}]*)\}`)

// TestOpenAPIMatchesRoutes fails when api/openapi.json and the route table
// disagree, in either direction. Each operation's path, its {…} filled
// with sample values, must reach a route of the same method through the
// router itself (match), and every route must be reached by at least one
// operation. Path parameters: an operation declares exactly its
// template's; a route's "{x}" is the operation's first parameter, named
// x, holding exactly that one segment; a route's rest segment "{x...}"
// (an entity, which may hold slashes) is described by one or more
// operations whose first parameter is x and whose further segments
// (/history, /result/{key}) lie inside the rest: GET
// /entities/{entity...} is GET /entities/{entity},
// /entities/{entity}/history and /entities/{entity}/diff in the
// document. A parameter that may itself hold slashes (an entity, not a
// projection's name) is marked "x-strata-rest": true, and only a rest
// segment may be. Public routes are exactly the operations with "security": []
// (or a list allowing no credentials, {}).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	d := loadOpenAPI(t)
	reached := map[*route]bool{}
	for path, item := range d.Paths {
		var shared []oaParam
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for _, m := range oaMethods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			method := strings.ToUpper(m)
			where := method + " " + path
			// The template's variables and the declared path parameters.
			vars := templateVar.FindAllStringSubmatch(path, -1)
			declared := map[string]oaParam{}
			for _, p := range append(append([]oaParam(nil), shared...), op.Parameters...) {
				if p = d.resolve(t, p); p.In == "path" {
					declared[p.Name] = p
				}
			}
			if len(declared) != len(vars) {
				t.Errorf("%s: %d path parameters declared, %d in the path", where, len(declared), len(vars))
			}
			concrete := path
			for i, v := range vars {
				if _, ok := declared[v[1]]; !ok {
					t.Errorf("%s: path parameter %q is not declared", where, v[1])
				}
				concrete = strings.Replace(concrete, v[0], fmt.Sprintf("p%d", i), 1)
			}
			rt, arg, _ := match(method, concrete)
			if rt == nil {
				t.Errorf("%s is in api/openapi.json but no route serves it (%s)", where, concrete)
				continue
			}
			reached[rt] = true
			// The route's own parameter and the operation's first.
			i := strings.IndexByte(rt.path, '{')
			switch {
			case i < 0 && len(vars) > 0:
				t.Errorf("%s: route %s %s takes no parameter", where, rt.method, rt.path)
			case i >= 0 && len(vars) == 0:
				t.Errorf("%s: route %s %s takes a parameter the operation does not declare", where, rt.method, rt.path)
			case i >= 0:
				name := rt.path[i+1 : strings.IndexByte(rt.path, '}')]
				name, rest := strings.CutSuffix(name, "...")
				if vars[0][1] != name {
					t.Errorf("%s: its first path parameter is %q, route %s %s's is %q", where, vars[0][1], rt.method, rt.path, name)
				}
				if declared[vars[0][1]].Rest && !rest {
					t.Errorf("%s: parameter %q is marked x-strata-rest, but route %s %s takes one segment", where, vars[0][1], rt.method, rt.path)
				}
				if !rest && (arg != "p0" || len(vars) != 1) {
					t.Errorf("%s: route %s %s's one segment holds %q, not just the parameter", where, rt.method, rt.path, arg)
				}
				if rest && !strings.HasPrefix(arg, "p0") {
					t.Errorf("%s: route %s %s's rest %q does not start with the parameter", where, rt.method, rt.path, arg)
				}
			}
			public := false
			if op.Security != nil {
				for _, s := range *op.Security {
					public = public || string(s) == "{}"
				}
				public = public || len(*op.Security) == 0
			}
			if public != (rt.scope == scope(0) && rt.perm == "") {
				t.Errorf("%s: the document says public=%v, route %s %s the opposite", where, public, rt.method, rt.path)
			}
		}
	}
	for i := range routes {
		if rt := &routes[i]; !reached[rt] {
			t.Errorf("route %s %s is not in api/openapi.json: describe it there", rt.method, rt.path)
		}
	}
}

// TestOpenAPIETag keeps openapiETag the document's hash, so that an edited
// document is never served under its old tag.
func TestOpenAPIETag(t *testing.T) {
	sum := blake3.Sum256([]byte(openapiDoc))
	if want := `"` + hex.EncodeToString(sum[:8]) + `"`; openapiETag != want {
		t.Errorf("api/openapi.json changed: set openapiETag in api/openapi.go to `%s`", want)
	}
}

// TestOpenAPIServe: GET /openapi.json is the embedded document, public,
// with its ETag and Cache-Control; If-None-Match answers 304, HEAD no body.
func TestOpenAPIServe(t *testing.T) {
	f := newAuthHandler(t, Config{})
	w := f.do("GET", "/openapi.json", "")
	if w.Code != 200 || w.Body.String() != openapiDoc {
		t.Fatalf("GET /openapi.json without credentials: %d, %d bytes of %d", w.Code, w.Body.Len(), len(openapiDoc))
	}
	h := w.Header()
	if h.Get("Content-Type") != "application/json" || h.Get("ETag") != openapiETag || !strings.Contains(h.Get("Cache-Control"), "max-age") {
		t.Errorf("headers %v", h)
	}
	if w := f.do("GET", "/openapi.json", "", "If-None-Match", openapiETag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := f.do("HEAD", "/openapi.json", ""); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// queryExceptions are where TestOpenAPIQueryParams's probe and the
// document differ on purpose: "<METHOD> <path> <parameter>" → why.
var queryExceptions = map[string]string{
	// The ?entity= form of an entity's routes is documented on /entities
	// (the path form refuses it: "is given in the path too").
	"GET /entities/{entity} entity":         "?entity= form",
	"PUT /entities/{entity} entity":         "?entity= form",
	"PATCH /entities/{entity} entity":       "?entity= form",
	"DELETE /entities/{entity} entity":      "?entity= form",
	"GET /entities/{entity}/history entity": "?entity= form",
	"GET /entities/{entity}/diff entity":    "?entity= form",
	"POST /entities/{entity}/revert entity": "?entity= form",
	// A point in time applies to GET /entities?entity= (a state), not to a
	// search: the probe, which names no entity, gets the search.
	"GET /entities version": "with ?entity= only",
	"GET /entities seq":     "with ?entity= only",
	"GET /entities at":      "with ?entity= only",
	"GET /entities as_of":   "with ?entity= only",
	// readParams's message lists GET /events' parameters; a stream refuses
	// these first (it has no end).
	"GET /stream to":    "refused by streamParams",
	"GET /stream until": "refused by streamParams",
	"GET /stream limit": "refused by streamParams",
}

// TestOpenAPIQueryParams holds the document's query parameters to the
// handlers' own lists (readParams, checkParams): every parameter a handler
// names when it refuses an unknown one ("unknown; use a, b, c") is
// documented on that operation, and no documented parameter is refused as
// unknown. Each operation is asked with a sample path (that names nothing
// that exists) on an empty tenant.
func TestOpenAPIQueryParams(t *testing.T) {
	d := loadOpenAPI(t)
	h := newHandler(t, Config{})
	listed := regexp.MustCompile(`unknown; use ([a-z_, ]+)$`)
	probed := 0
	for path, item := range d.Paths {
		var shared []oaParam
		if raw, ok := item["parameters"]; ok {
			json.Unmarshal(raw, &shared)
		}
		for _, m := range oaMethods {
			raw, ok := item[m]
			if !ok || m == "head" {
				continue
			}
			var op oaOperation
			json.Unmarshal(raw, &op)
			method := strings.ToUpper(m)
			where := method + " " + path
			documented := map[string]bool{}
			for _, p := range append(append([]oaParam(nil), shared...), op.Parameters...) {
				if p = d.resolve(t, p); p.In == "query" {
					documented[p.Name] = true
				}
			}
			target := templateVar.ReplaceAllStringFunc(path, func(v string) string {
				switch v {
				case "{id}", "{blob}":
					return strings.Repeat("a", 64)
				}
				return "nosuch"
			})
			ask := func(query string) (int, string) {
				// A stream or a long-poll that gets going is cut short:
				// only the refusals before it matter here.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				r := httptest.NewRequest(method, target+"?"+query, strings.NewReader("{}")).WithContext(ctx)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				var e struct {
					Error struct{ Code, Message string }
				}
				json.Unmarshal(w.Body.Bytes(), &e)
				return w.Code, e.Error.Message
			}
			if code, msg := ask("zzprobe=1"); code == http.StatusBadRequest && strings.HasPrefix(msg, "parameter zzprobe: unknown") {
				probed++
				if m := listed.FindStringSubmatch(msg); m != nil {
					for _, name := range strings.Split(m[1], ", ") {
						if !documented[name] && queryExceptions[where+" "+name] == "" {
							t.Errorf("%s: the handler takes ?%s=, the document does not say so", where, name)
						}
					}
				}
			}
			for name := range documented {
				if _, msg := ask(name + "=1"); strings.HasPrefix(msg, "parameter "+name+": unknown") && queryExceptions[where+" "+name] == "" {
					t.Errorf("%s: the document has ?%s=, the handler refuses it: %s", where, name, msg)
				}
			}
		}
	}
	if probed < 30 {
		t.Errorf("only %d operations refused an unknown parameter: the probe no longer reaches the handlers' checks", probed)
	}
	t.Logf("%d operations probed", probed)
}

// servedByNetHTTP are request headers the document describes that
// net/http answers for strata (http.ServeContent), not strata's own code.
var servedByNetHTTP = map[string]bool{"Range": true, "If-None-Match": true}

// TestOpenAPIHeaders: every request header the document describes is one
// that strata reads — its name is a string in api's code — so that the
// document cannot promise a header nothing looks at.
func TestOpenAPIHeaders(t *testing.T) {
	var src strings.Builder
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["in"] == "header" {
				if name, _ := x["name"].(string); name != "" {
					seen[name] = true
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	var doc any
	if err := json.Unmarshal([]byte(openapiDoc), &doc); err != nil {
		t.Fatal(err)
	}
	walk(doc)
	if len(seen) == 0 {
		t.Fatal("no header parameters found in the document")
	}
	for name := range seen {
		if !servedByNetHTTP[name] && !strings.Contains(src.String(), `"`+name+`"`) {
			t.Errorf("the document describes request header %s, which no code in api reads", name)
		}
	}
}
