package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateProjectionRoutes: on the real binary, standalone and CGI, an
// entity a state projection makes has that projection's state on every
// entity route: each version in its history and every diff agree with GET
// /entities/<e>?version=n, and GET /entities?prefix= answers (and filters
// with where=) the projection's current state; an entity no state
// projection matches keeps the merge everywhere. A CGI process starting
// from no cache at all answers the same.
func TestStateProjectionRoutes(t *testing.T) {
	s := startServer(t, "")
	mustAppendBatch(t, s.url, `[
{"type":"order.placed","entity":"orders/1","data":{"qty":2,"note":"a"}},
{"type":"user.joined","entity":"users/1","data":{"name":"ann"}},
{"type":"order.note","entity":"orders/1","data":{"qty":100}},
{"type":"order.paid","entity":"orders/1","data":{"qty":3,"note":null}},
{"type":"order.placed","entity":"orders/2","data":{"qty":1}},
{"type":"user.renamed","entity":"users/1","data":{"name":"bo","x":1}}
]`)
	do(t, "POST", s.url+"/projections", `{"name":"orders","kind":"state","entity":"orders/*","init":{"items":0},
		"reduce":".items += $event.data.qty | .last = $event.type","filter":{"types":["order.placed","order.paid","entity.*"]}}`).want(t, 201)
	do(t, "DELETE", s.url+"/entities/orders/2", nil).want(t, 200)
	do(t, "PUT", s.url+"/entities/orders/2", `{"qty":4}`).want(t, 200)

	type version struct {
		Entity     string          `json:"entity"`
		Version    uint64          `json:"version"`
		Deleted    bool            `json:"deleted"`
		State      json.RawMessage `json:"state"`
		Projection string          `json:"projection"`
	}
	check := func(mode, base string) {
		for _, c := range []struct{ entity, by string }{{"orders/1", "orders"}, {"orders/2", "orders"}, {"users/1", ""}} {
			r := do(t, "GET", base+"/entities/"+c.entity+"/history", nil).want(t, 200)
			if got := r.header.Get("Strata-Projection"); got != c.by {
				t.Errorf("%s %s history: Strata-Projection %q", mode, c.entity, got)
			}
			hist := jsonOf[[]version](t, r)
			states := []string{"null"}
			for _, v := range hist {
				g, err := try("GET", fmt.Sprintf("%s/entities/%s?version=%d", base, c.entity, v.Version), nil)
				if err != nil {
					t.Fatal(err)
				}
				var one version
				json.Unmarshal(g.body, &one)
				switch {
				case v.Deleted && (g.status != 410 || string(v.State) != "null"):
					t.Errorf("%s %s version %d: deleted, state %s; GET %d", mode, c.entity, v.Version, v.State, g.status)
				case !v.Deleted && (g.status != 200 || string(one.State) != string(v.State) || g.header.Get("Strata-Projection") != c.by):
					t.Errorf("%s %s version %d: history %s; GET %d %s", mode, c.entity, v.Version, v.State, g.status, g.body)
				}
				states = append(states, string(v.State))
			}
			for from := range states {
				for to := max(from, 1); to < len(states); to++ {
					r := do(t, "GET", fmt.Sprintf("%s/entities/%s/diff?from=%d&to=%d", base, c.entity, from, to), nil).want(t, 200)
					d := jsonOf[struct {
						Patch json.RawMessage `json:"patch"`
					}](t, r)
					if !sameAfterPatch(t, states[from], string(d.Patch), states[to]) || r.header.Get("Strata-Projection") != c.by {
						t.Errorf("%s %s diff %d..%d: %s does not take %s to %s", mode, c.entity, from, to, d.Patch, states[from], states[to])
					}
				}
			}
		}
		want := map[string]string{
			"orders/1": `{"items":5,"last":"order.paid"}`,
			"orders/2": `{"items":5,"last":"entity.put"}`,
			"users/1":  `{"name":"bo","x":1}`,
		}
		page := jsonOf[[]version](t, do(t, "GET", base+"/entities?prefix=", nil).want(t, 200))
		if len(page) != 3 {
			t.Errorf("%s search: %+v", mode, page)
		}
		for _, v := range page {
			if string(v.State) != want[v.Entity] || (v.Projection == "orders") != strings.HasPrefix(v.Entity, "orders/") {
				t.Errorf("%s search %s: %s by %q", mode, v.Entity, v.State, v.Projection)
			}
		}
		page = jsonOf[[]version](t, do(t, "GET", base+"/entities?prefix=&where="+url.QueryEscape(`.items == 5 and .last == "entity.put"`), nil).want(t, 200))
		if len(page) != 1 || page[0].Entity != "orders/2" {
			t.Errorf("%s search where: %+v", mode, page)
		}
	}
	check("standalone", s.url)
	if err := os.RemoveAll(filepath.Join(s.data, "tenants", "default", "cache")); err != nil {
		t.Fatal(err)
	}
	cgi := cgiServer(t, s.data)
	check("CGI", cgi.URL+"/api")
}

// sameAfterPatch reports whether merge patch takes JSON a to JSON b, as
// RFC 7386 applies it (members set to null are deleted, as a merge
// patch must).
func sameAfterPatch(t *testing.T, a, patch, b string) bool {
	t.Helper()
	var va, vp, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(patch), &vp) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		t.Fatalf("not JSON: %s %s %s", a, patch, b)
	}
	got, _ := json.Marshal(mergePatch(va, vp))
	want, _ := json.Marshal(dropNulls(vb))
	return string(got) == string(want)
}

func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return dropNulls(patch)
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	out := map[string]any{}
	for k, v := range t {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = mergePatch(out[k], v)
		}
	}
	return out
}

func dropNulls(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		if x != nil {
			out[k] = dropNulls(x)
		}
	}
	return out
}
