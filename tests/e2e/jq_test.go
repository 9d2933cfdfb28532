package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestJQProjections: jq projections on the real binary over HTTP — a
// compile error is a 400 naming the field with jq's message; a state
// projection makes GET /entities/<e> for the entities of its glob (and
// time travel), others keep the default merge; hostile programs (a loop,
// deep recursion, a huge allocation) fail their projection at the event
// that tripped them while the server, the other projections and a CGI
// process on the same data go on.
func TestJQProjections(t *testing.T) {
	s := startServer(t, "")
	base := s.url
	mustAppendBatch(t, base, `[
{"type":"order.placed","entity":"orders/1","data":{"qty":2,"note":"a"}},
{"type":"order.placed","entity":"users/1","data":{"name":"ann"}},
{"type":"order.paid","entity":"orders/1","data":{"qty":3}},
{"type":"order.placed","entity":"orders/2","data":{"qty":1,"boom":true}}
]`)

	e := do(t, "POST", base+"/projections", `{"name":"bad","kind":"custom","reduce":"$state + "}`).wantError(t, 400, "invalid_definition")
	if e["field"] != "reduce" || !strings.Contains(e["message"].(string), "unexpected EOF") {
		t.Errorf("compile error: %v", e)
	}
	do(t, "POST", base+"/projections", `{"name":"bad","kind":"custom","reduce":"1","key":"input"}`).wantError(t, 400, "invalid_definition")

	// A state projection for orders/*.
	do(t, "POST", base+"/projections", `{"name":"orders","kind":"state","entity":"orders/*","init":{"items":0},
		"reduce":".items += $event.data.qty | .last = $event.type | .v = $event.version"}`).want(t, 201)
	for path, want := range map[string]string{
		"/entities/orders/1":           `{"items":5,"last":"order.paid","v":2}`,
		"/entities/orders/1?version=1": `{"items":2,"last":"order.placed","v":1}`,
		"/entities/orders/2":           `{"items":1,"last":"order.placed","v":1}`,
		"/entities/users/1":            `{"name":"ann"}`,
	} {
		r := do(t, "GET", base+path, nil).want(t, 200)
		st := jsonOf[struct {
			State map[string]any `json:"state"`
		}](t, r)
		if got := string(mustJSON(t, st.State)); got != want {
			t.Errorf("GET %s: state %s; want %s", path, got, want)
		}
		if proj := r.header.Get("Strata-Projection"); (proj == "orders") != strings.HasPrefix(path, "/entities/orders/") {
			t.Errorf("GET %s: Strata-Projection %q", path, proj)
		}
	}

	// Hostile programs, each tripped by orders/2's event (seq 4).
	good := `{"name":"count","kind":"custom","init":0,"reduce":". + 1"}`
	do(t, "POST", base+"/projections", good).want(t, 201)
	for name, reduce := range map[string]string{
		"loop":    `if $event.data.boom then last(range(1e15)) else 0 end`,
		"recurse": `def f: [f]; if $event.data.boom then f else 0 end`,
		"sum":     `def f: 1 + f; if $event.data.boom then f else 0 end`,
		"memory":  `if $event.data.boom then [range(1e9) | {a: .}] else 0 end`,
		"huge":    `if $event.data.boom then "x" * 1e9 else 0 end`,
		"doubled": `if $event.data.boom then reduce range(64) as $i ("x"; . + .) else 0 end`,
	} {
		do(t, "POST", base+"/projections", `{"name":"`+name+`","kind":"custom","reduce":`+string(mustJSON(t, reduce))+`}`).want(t, 201)
		t0 := time.Now()
		e := do(t, "GET", base+"/projections/"+name+"/result", nil).wantError(t, 409, "projection_failed")
		if fa, _ := e["failed_at"].(map[string]any); fa["seq"] != float64(4) {
			t.Errorf("%s: %v", name, e)
		}
		t.Logf("%s: stopped in %v: %s", name, time.Since(t0).Round(time.Millisecond), e["message"])
		// (The memory case takes about 0.3 s to pass 64 MB; on a machine
		// too loaded for that within a second, time stops it first.)
		msg := e["message"].(string)
		if limit := map[string]string{"loop": "time", "recurse": "depth", "sum": "depth", "memory": "memory", "huge": "size", "doubled": "size"}[name]; !strings.Contains(msg, "past its "+limit+" limit") && (name != "memory" || !strings.Contains(msg, "past its time limit")) {
			t.Errorf("%s: %s; want the %s limit", name, msg, limit)
		}
		if a := getResult(t, base, "/projections/count/result"); string(a.Result) != "4" {
			t.Errorf("after %s, another projection: %s", name, a.Result)
		}
	}
	do(t, "GET", base+"/health", nil).want(t, 200)

	// A CGI process on the same data answers alike.
	cgi := cgiServer(t, s.data)
	r := do(t, "GET", cgi.URL+"/api/entities/orders/1", nil).want(t, 200)
	if !strings.Contains(string(r.body), `"state":{"items":5,"last":"order.paid","v":2}`) {
		t.Errorf("CGI entity: %s", r.body)
	}
	do(t, "GET", cgi.URL+"/api/projections/recurse/result", nil).wantError(t, 409, "projection_failed")
	// A hostile program folded first by a CGI process stops there too.
	do(t, "POST", base+"/projections", `{"name":"cgi-memory","kind":"custom","reduce":"if $event.data.boom then [range(1e9) | {a: .}] else 0 end"}`).want(t, 201)
	if e := do(t, "GET", cgi.URL+"/api/projections/cgi-memory/result", nil).wantError(t, 409, "projection_failed"); !strings.Contains(e["message"].(string), "past its memory limit") && !strings.Contains(e["message"].(string), "past its time limit") {
		t.Errorf("CGI hostile: %v", e)
	}
	if a := getResult(t, cgi.URL+"/api", "/projections/count/result"); string(a.Result) != "4" {
		t.Errorf("CGI count: %s", a.Result)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
