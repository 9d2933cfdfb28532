package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestOpenAPIResponsesConform sends a run of ordinary requests, good and
// bad, and checks each JSON answer against the schema the document gives
// for its operation and status (or "default"): the document describes
// what the handlers answer, not what they were meant to. The schemas are
// checked with a small validator of the keywords the document uses
// (checkSchema), so an unknown keyword fails here rather than pass
// unchecked.
func TestOpenAPIResponsesConform(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(openapiDoc), &doc); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, Config{})
	zero := strings.Repeat("0", 64)
	var first, blob, replay, token string
	steps := []struct {
		method, target, body string
		headers              []string
		after                func(body map[string]any)
	}{
		{"PUT", "/events", `{"type":"order.placed","entity":"orders/1","data":{"sku":"A-1"},"key":"k1"}`, nil, func(b map[string]any) { first, _ = b["id"].(string) }},
		{"PUT", "/events", `{"type":"order.placed","entity":"orders/1","data":{"sku":"A-1"},"key":"k1"}`, nil, nil}, // repeated: 200
		{"POST", "/events", `[{"type":"order.paid","entity":"orders/1","data":1},{"type":"order.paid","entity":"orders/2","data":2}]`, nil, nil},
		{"PUT", "/events", `{"type":"Bad Type","entity":"x","data":1}`, nil, nil},
		{"PUT", "/events", `{"type":"a","entity":"x","data":1}`, []string{"If-Match", `"` + zero + `"`}, nil},
		{"GET", "/events?limit=2", "", nil, nil},
		{"GET", "/events?limit=0", "", nil, nil},
		{"GET", "/events/{first}", "", nil, nil},
		{"GET", "/events/" + zero, "", nil, nil},
		{"GET", "/head", "", nil, nil},
		{"GET", "/entities/orders/1", "", nil, nil},
		{"GET", "/entities/orders/1?version=1", "", nil, nil},
		{"GET", "/entities/orders/1/history", "", nil, nil},
		{"GET", "/entities/orders/1/diff?from=1", "", nil, nil},
		{"GET", "/entities?prefix=orders/", "", nil, nil},
		{"PUT", "/entities/carts/7?expected_version=0", `{"qty":3}`, nil, nil},
		{"PATCH", "/entities/carts/7", `{"qty":4}`, nil, nil},
		{"POST", "/entities/carts/7/revert", `{"version":1}`, nil, nil},
		{"DELETE", "/entities/carts/7", "", nil, nil},
		{"GET", "/entities/carts/7", "", nil, nil}, // 410
		{"GET", "/entities/nosuch", "", nil, nil},
		{"PUT", "/storage/", "blob bytes", nil, func(b map[string]any) { blob, _ = b["hash"].(string) }},
		{"PUT", "/storage/", "blob bytes", nil, nil},
		{"DELETE", "/storage/{blob}", "", nil, nil},
		{"GET", "/storage/{blob}", "", nil, nil},
		{"POST", "/snapshots", `{"entity":"orders/1"}`, nil, nil},
		{"GET", "/snapshots?entity=orders/1", "", nil, nil},
		{"GET", "/snapshots/orders/1/latest", "", nil, nil},
		{"POST", "/projections", `{"name":"n","kind":"counter","by":"type","filter":{"types":["order.*"]}}`, nil, nil},
		{"GET", "/projections", "", nil, nil},
		{"GET", "/projections/n", "", nil, nil},
		{"GET", "/projections/n/result", "", nil, nil},
		{"POST", "/projections/n/pause", "", nil, nil},
		{"POST", "/projections/n/resume", "", nil, nil},
		{"POST", "/projections/n/rebuild", "", nil, func(b map[string]any) { replay, _ = b["id"].(string) }},
		{"GET", "/replays", "", nil, nil},
		{"GET", "/replays/{replay}", "", nil, nil},
		{"POST", "/replays/{replay}/cancel", "", nil, nil},
		{"DELETE", "/replays/{replay}", "", nil, nil},
		{"PUT", "/projections/n?expected_version=1", `{"kind":"counter","by":"entity"}`, nil, nil},
		{"GET", "/projections/n?version=1", "", nil, nil},
		{"POST", "/projections", `{"name":"n","kind":"counter"}`, nil, nil}, // 409 exists
		{"POST", "/projections", `{"name":"spend","kind":"custom","init":0,"reduce":"$state + 1","key":"$event.entity"}`, nil, nil},
		{"GET", "/projections/spend/result/orders/1", "", nil, nil},
		{"PUT", "/consumers/c", `{"filter":{"types":["order.*"]}}`, nil, nil},
		{"GET", "/consumers", "", nil, nil},
		{"GET", "/consumers/c", "", nil, nil},
		{"GET", "/consumers/c/events?reader=r", "", nil, nil},
		{"PUT", "/consumers/c/position?reader=r", `{"seq":1}`, nil, nil},
		{"DELETE", "/consumers/c/lease?reader=r", "", nil, nil},
		{"PUT", "/cache/k", `{"a":1}`, nil, nil},
		{"GET", "/cache/k", "", nil, nil},
		{"DELETE", "/cache/k", "", nil, nil},
		{"GET", "/cache/k", "", nil, nil},
		{"POST", "/mutex/m/lock?ttl=60", "", nil, nil},
		{"POST", "/mutex/m/lock?ttl=60", "", nil, nil}, // 409 mutex_held
		{"POST", "/mutex/m/renew?ttl=60", `{"token":1}`, nil, nil},
		{"POST", "/mutex/m/unlock", `{"token":1}`, nil, nil},
		{"POST", "/mutex/m/unlock", `{"token":1}`, nil, nil}, // 409 not_holder
		{"POST", "/broadcast/room", `{"a":1}`, nil, nil},
		{"POST", "/events/{first}/ack?consumer=c", "", nil, nil},
		{"POST", "/session", `{"user":"u","password":"p"}`, nil, nil},
		{"POST", "/setup", `{"key":"k"}`, nil, nil},
		{"POST", "/admin/tenants", `{"name":"shop"}`, nil, nil},
		{"GET", "/admin/tenants/shop", "", nil, nil},
		{"PATCH", "/admin/tenants/shop", `{"tier":"unlimited"}`, nil, nil},
		{"POST", "/admin/tenants/shop/suspend", `{"reason":"r"}`, nil, nil},
		{"POST", "/admin/tenants/shop/resume", "", nil, nil},
		{"POST", "/admin/tokens", `{"tenant":"shop","role":"reader","name":"t"}`, nil, func(b map[string]any) { token, _ = b["id"].(string) }},
		{"DELETE", "/admin/tokens/{token}", "", nil, nil},
		{"PUT", "/admin/users/alice", `{"password":"correct horse battery","tenant":"shop","role":"reader"}`, nil, nil},
		{"DELETE", "/admin/users/alice", "", nil, nil},
		{"DELETE", "/admin/tenants/shop", "", nil, nil},
		{"GET", "/quota", "", nil, nil},
		{"GET", "/health", "", nil, nil},
		{"GET", "/ready", "", nil, nil},
		{"GET", "/stats", "", nil, nil},
		{"GET", "/admin/stats", "", nil, nil},
		{"POST", "/admin/compaction?budget=5s", "", nil, nil},
		{"POST", "/admin/compaction?budget=forever", "", nil, nil}, // 400
		{"GET", "/admin/compaction", "", nil, nil},
		{"GET", "/admin/compaction?tenant=nosuch", "", nil, nil}, // 404
		{"GET", "/session", "", nil, nil},
		{"GET", "/audit", "", nil, nil},
		{"GET", "/admin/tenants", "", nil, nil},
		{"GET", "/admin/tokens", "", nil, nil},
		{"GET", "/admin/users", "", nil, nil},
		{"GET", "/events/{first}/nosuch", "", nil, nil}, // no route: 404 in the error shape
		{"GET", "/openapi.json", "", nil, nil},
		{"DELETE", "/consumers/c", "", nil, nil},
		{"DELETE", "/projections/n", "", nil, nil},
	}
	for _, s := range steps {
		target := strings.NewReplacer("{first}", first, "{blob}", blob, "{replay}", replay, "{token}", token).Replace(s.target)
		w := serve(h, s.method, target, strings.NewReader(s.body), s.headers...)
		where := fmt.Sprintf("%s %s → %d", s.method, target, w.Code)
		schema, ok := responseSchema(t, doc, s.method, strings.SplitN(target, "?", 2)[0], w.Code, w.Header().Get("Content-Type"))
		if !ok {
			t.Errorf("%s: the document describes no such answer", where)
			continue
		}
		if schema == nil {
			if w.Body.Len() != 0 {
				t.Errorf("%s: a body the document does not describe: %.200s", where, w.Body.Bytes())
			}
			continue
		}
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Errorf("%s: not JSON: %v", where, err)
			continue
		}
		if err := checkSchema(doc, schema, v, "body"); err != nil {
			t.Errorf("%s: %v\n%s", where, err, w.Body.Bytes())
		}
		if testing.Verbose() {
			t.Logf("%s %.200s", where, w.Body.Bytes())
		}
		if m, ok := v.(map[string]any); ok && s.after != nil {
			s.after(m)
		}
	}
}

// responseSchema finds the JSON schema of the answer status to method on
// path (a concrete path), or ok false when the document has no such
// operation or neither the status nor "default" among its responses.
func responseSchema(t *testing.T, doc map[string]any, method, path string, status int, contentType string) (schema any, ok bool) {
	t.Helper()
	paths := doc["paths"].(map[string]any)
	// The most literal template that matches: /entities/{entity}/history
	// before /entities/{entity}.
	best, bestLiteral := "", -1
	for p := range paths {
		// A parameter matches one segment or more (a rest segment).
		re := "^" + regexp.MustCompile(`\\\{[^}]*\\\}`).ReplaceAllString(regexp.QuoteMeta(p), `.+`) + "$"
		if !regexp.MustCompile(re).MatchString(path) {
			continue
		}
		literal := len(templateVar.ReplaceAllString(p, ""))
		if _, has := paths[p].(map[string]any)[strings.ToLower(method)]; has && literal > bestLiteral {
			best, bestLiteral = p, literal
		}
	}
	if best == "" {
		return nil, false
	}
	op := paths[best].(map[string]any)[strings.ToLower(method)].(map[string]any)
	responses := op["responses"].(map[string]any)
	r, found := responses[strconv.Itoa(status)]
	if !found {
		if r, found = responses["default"]; !found || status < 400 {
			return nil, false
		}
	}
	resp := oaDeref(doc, r).(map[string]any)
	content, _ := resp["content"].(map[string]any)
	mt, _, _ := strings.Cut(contentType, ";")
	if media, ok := content[strings.TrimSpace(mt)].(map[string]any); ok {
		return media["schema"], true
	}
	if len(content) == 0 {
		return nil, true
	}
	t.Errorf("%s %s → %d: Content-Type %q is not among the document's %v", method, path, status, contentType, oaKeys(content))
	return nil, true
}

func oaKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// oaDeref follows a local $ref ("#/components/…") to what it names.
func oaDeref(doc map[string]any, v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
			cur = cur.(map[string]any)[part]
		}
		v = cur
	}
}

// checkSchema validates v against schema, for the JSON Schema keywords the
// document uses; any other keyword is an error, so that nothing is
// skipped unnoticed.
func checkSchema(doc map[string]any, schema, v any, at string) error {
	s, ok := oaDeref(doc, schema).(map[string]any)
	if !ok {
		return fmt.Errorf("%s: schema %v is not an object", at, schema)
	}
	for kw, arg := range s {
		switch kw {
		case "description", "examples", "format", "contentMediaType", "additionalProperties", "maxLength", "minLength", "maximum":
			// annotations, or bounds the answers are not held to here
		case "type":
			types := []any{arg}
			if list, ok := arg.([]any); ok {
				types = list
			}
			okType := false
			for _, ty := range types {
				okType = okType || jsonType(v) == ty || ty == "number" && jsonType(v) == "integer"
			}
			if !okType {
				return fmt.Errorf("%s: is %s, want %v", at, jsonType(v), arg)
			}
		case "properties":
			obj, _ := v.(map[string]any)
			for name, sub := range arg.(map[string]any) {
				if val, has := obj[name]; has {
					if err := checkSchema(doc, sub, val, at+"."+name); err != nil {
						return err
					}
				}
			}
		case "required":
			obj, isObj := v.(map[string]any)
			for _, name := range arg.([]any) {
				if _, has := obj[name.(string)]; isObj && !has {
					return fmt.Errorf("%s: no %q", at, name)
				}
			}
		case "items":
			list, _ := v.([]any)
			for i, item := range list {
				if err := checkSchema(doc, arg, item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		case "oneOf":
			n := 0
			var errs []string
			for _, sub := range arg.([]any) {
				if err := checkSchema(doc, sub, v, at); err == nil {
					n++
				} else {
					errs = append(errs, err.Error())
				}
			}
			if n != 1 {
				return fmt.Errorf("%s: matches %d of oneOf, want 1 (%s)", at, n, strings.Join(errs, "; "))
			}
		case "pattern":
			if str, ok := v.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(str) {
				return fmt.Errorf("%s: %q does not match %s", at, str, arg)
			}
		case "enum":
			found := false
			for _, e := range arg.([]any) {
				found = found || e == v
			}
			if !found {
				return fmt.Errorf("%s: %v not in %v", at, v, arg)
			}
		case "minimum":
			if f, ok := v.(float64); ok && f < arg.(float64) {
				return fmt.Errorf("%s: %v < %v", at, f, arg)
			}
		default:
			return fmt.Errorf("%s: checkSchema does not know the keyword %q: teach it", at, kw)
		}
	}
	return nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}
