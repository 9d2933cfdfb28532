package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/jsonx"

	"strata/quota"
	"strata/tenants"
)

// call runs one request and checks its status; it returns the answer.
func mustServe(t *testing.T, h *Handler, method, target, body string, status int) *httptest.ResponseRecorder {
	t.Helper()
	var w *httptest.ResponseRecorder
	if body == "" {
		w = serve(h, method, target, nil)
	} else {
		w = serve(h, method, target, strings.NewReader(body))
	}
	if w.Code != status {
		t.Fatalf("%s %s %.80s: %d %s, want %d", method, target, body, w.Code, w.Body, status)
	}
	return w
}

type resultAnswer struct {
	Name    string          `json:"name"`
	Version uint64          `json:"version"`
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Behind  bool            `json:"behind"`
}

func result(t *testing.T, h *Handler, target string) resultAnswer {
	t.Helper()
	w := mustServe(t, h, "GET", target, "", 200)
	var a resultAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("GET %s: %v %s", target, err, w.Body)
	}
	if !strings.HasPrefix(w.Body.String(), `{"name":`) || !strings.Contains(w.Body.String(), fmt.Sprintf(`,"version":%d,"seq":%d,"id":"%s","result":`, a.Version, a.Seq, a.ID)) {
		t.Errorf("GET %s: fields out of order: %s", target, w.Body)
	}
	if w.Header().Get("Strata-Head") != a.ID || w.Header().Get("Strata-Head-Seq") != fmt.Sprint(a.Seq) {
		t.Errorf("GET %s: Strata-Head %q %q, body %d %s", target, w.Header().Get("Strata-Head"), w.Header().Get("Strata-Head-Seq"), a.Seq, a.ID)
	}
	return a
}

type defStatus struct {
	Name       string          `json:"name"`
	Version    uint64          `json:"version"`
	Definition json.RawMessage `json:"definition"`
	State      string          `json:"state"`
	Processed  uint64          `json:"processed"`
	LastSeq    uint64          `json:"last_seq"`
	Paused     bool            `json:"paused"`
	Record     struct {
		Entity  string `json:"entity"`
		Version uint64 `json:"version"`
		Seq     uint64 `json:"seq"`
	} `json:"record"`
}

func definition(t *testing.T, w *httptest.ResponseRecorder) defStatus {
	t.Helper()
	var d defStatus
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatalf("%v %s", err, w.Body)
	}
	return d
}

// TestProjectionLifecycle: define, read, append, read again, change the
// definition, pause, resume, time travel, delete — each definition change
// an event of the tenant's own log.
func TestProjectionLifecycle(t *testing.T) {
	for _, long := range []bool{false, true} {
		t.Run(fmt.Sprintf("long-running=%v", long), func(t *testing.T) {
			h := newHandler(t, Config{LongRunning: long})
			mustServe(t, h, "POST", "/events", `[{"type":"order.placed","entity":"o1"},{"type":"order.placed","entity":"o2"},{"type":"order.paid","entity":"o1","data":{"amount":10}}]`, 201)
			w := mustServe(t, h, "POST", "/projections", `{"name":"per-type","kind":"counter","by":"type"}`, 201)
			d := definition(t, w)
			// A long-running server's worker may have folded it already.
			if d.Name != "per-type" || d.Version != 1 || d.Record.Entity != "strata/projections/per-type" || (d.State != "created" && !(long && d.State == "running")) {
				t.Errorf("POST /projections: %s", w.Body)
			}
			mustServe(t, h, "POST", "/projections", `{"name":"per-type","kind":"counter","by":"entity"}`, 409)
			a := result(t, h, "/projections/per-type/result")
			if string(a.Result) != `{"order.paid":1,"order.placed":2}` || a.Seq != 4 || a.Version != 1 {
				t.Errorf("result: %+v %s", a, a.Result)
			}
			mustServe(t, h, "POST", "/events", `{"type":"order.placed","entity":"o3"}`, 201)
			if a = result(t, h, "/projections/per-type/result"); string(a.Result) != `{"order.paid":1,"order.placed":3}` || a.Seq != 5 {
				t.Errorf("result after an append: %+v %s", a, a.Result)
			}
			// Time travel: as of seq 2 (the definition at seq 4 is not an
			// event the counter counts).
			if a = result(t, h, "/projections/per-type/result?seq=2"); string(a.Result) != `{"order.placed":2}` || a.Seq != 2 {
				t.Errorf("result at seq 2: %+v %s", a, a.Result)
			}
			// A key of the result.
			if a = result(t, h, "/projections/per-type/result/order.placed"); string(a.Result) != `3` {
				t.Errorf("key: %+v %s", a, a.Result)
			}
			mustServe(t, h, "GET", "/projections/per-type/result/nosuch", "", 404)
			// A new version counts per entity.
			w = mustServe(t, h, "PUT", "/projections/per-type", `{"kind":"counter","by":"entity"}`, 200)
			if d = definition(t, w); d.Version != 2 {
				t.Errorf("PUT: %s", w.Body)
			}
			if a = result(t, h, "/projections/per-type/result"); string(a.Result) != `{"o1":2,"o2":1,"o3":1}` || a.Version != 2 {
				t.Errorf("result of version 2: %+v %s", a, a.Result)
			}
			// Pages of a keyed result, at the head and at a point.
			w = mustServe(t, h, "GET", "/projections/per-type/result?limit=2", "", 200)
			if !strings.Contains(w.Body.String(), `"result":{"o1":2,"o2":1}`) || !strings.Contains(w.Header().Get("Link"), "after=o2") {
				t.Errorf("page at the head: %s %v", w.Body, w.Header())
			}
			w = mustServe(t, h, "GET", "/projections/per-type/result?limit=5&after=o1&seq=3", "", 200)
			if !strings.Contains(w.Body.String(), `"seq":3,`) || !strings.Contains(w.Body.String(), `"result":{"o2":1}`) || w.Header().Get("Link") != "" {
				t.Errorf("page at seq 3: %s %v", w.Body, w.Header())
			}
			// The same definition again changes nothing.
			if d = definition(t, mustServe(t, h, "PUT", "/projections/per-type", `{"name":"per-type","kind":"counter","by":"entity"}`, 200)); d.Version != 2 {
				t.Errorf("PUT again: version %d", d.Version)
			}
			// Pause: the result stays where it was.
			if d = definition(t, mustServe(t, h, "POST", "/projections/per-type/pause", "", 200)); d.State != "paused" || !d.Paused {
				t.Errorf("pause: %+v", d)
			}
			mustServe(t, h, "POST", "/events", `{"type":"order.placed","entity":"o4"}`, 201)
			if a = result(t, h, "/projections/per-type/result"); strings.Contains(string(a.Result), "o4") {
				t.Errorf("a paused result moved: %s", a.Result)
			}
			if d = definition(t, mustServe(t, h, "POST", "/projections/per-type/resume", "", 200)); d.Paused {
				t.Errorf("resume: %+v", d)
			}
			if a = result(t, h, "/projections/per-type/result"); !strings.Contains(string(a.Result), `"o4":1`) {
				t.Errorf("resumed result: %s", a.Result)
			}
			// The first version is still there to read.
			if d = definition(t, mustServe(t, h, "GET", "/projections/per-type?version=1", "", 200)); d.Version != 1 || !strings.Contains(string(d.Definition), `"type"`) {
				t.Errorf("version 1: %+v %s", d, d.Definition)
			}
			// The definitions are events of the log, like any other.
			evs := allEvents(t, h)
			var types []string
			for _, e := range evs {
				if strings.HasPrefix(e.Type, "strata.") {
					types = append(types, e.Type)
				}
			}
			if strings.Join(types, " ") != "strata.projection.defined strata.projection.defined strata.projection.paused strata.projection.resumed" {
				t.Errorf("definition events: %v", types)
			}
			var list []defStatus
			json.Unmarshal(mustServe(t, h, "GET", "/projections", "", 200).Body.Bytes(), &list)
			if len(list) != 1 || list[0].Name != "per-type" {
				t.Errorf("GET /projections: %+v", list)
			}
			mustServe(t, h, "DELETE", "/projections/per-type", "", 200)
			mustServe(t, h, "GET", "/projections/per-type", "", 410)
			mustServe(t, h, "GET", "/projections/per-type/result", "", 410)
			json.Unmarshal(mustServe(t, h, "GET", "/projections", "", 200).Body.Bytes(), &list)
			if len(list) != 0 {
				t.Errorf("GET /projections after delete: %+v", list)
			}
			// Defined again under the same name, versions go on.
			if d = definition(t, mustServe(t, h, "POST", "/projections", `{"name":"per-type","kind":"counter","by":"type"}`, 201)); d.Version != 6 {
				t.Errorf("defined again: version %d", d.Version)
			}
		})
	}
}

// TestProjectionRefusals: bad definitions and names are 400 naming the
// field; the tier's limit on projections holds.
func TestProjectionRefusals(t *testing.T) {
	h := newHandler(t, Config{})
	for _, c := range []struct {
		method, target, body string
		status               int
		code                 string
	}{
		{"POST", "/projections", `{"name":"x","kind":"nosuch"}`, 400, "invalid_definition"},
		{"POST", "/projections", `{"name":"Bad Name","kind":"counter","by":"type"}`, 400, "invalid_definition"},
		{"POST", "/projections", `{"kind":"counter","by":"type"}`, 400, "invalid_definition"},
		{"POST", "/projections", `[1]`, 400, "invalid_definition"},
		{"POST", "/projections", `{"name":"x","kind":"counter","by":"type","extra":1}`, 400, "invalid_definition"},
		{"PUT", "/projections/x", `{"name":"y","kind":"counter","by":"type"}`, 400, "invalid_definition"},
		{"GET", "/projections/Bad", ``, 400, "invalid_name"},
		{"GET", "/projections/nosuch", ``, 404, "not_found"},
		{"GET", "/projections/nosuch/result", ``, 404, "not_found"},
		{"GET", "/projections/nosuch/other", ``, 404, "no_route"},
		{"POST", "/projections/nosuch/pause", ``, 404, "not_found"},
		{"DELETE", "/projections/nosuch", ``, 404, "not_found"},
		{"GET", "/replays/nosuch", ``, 404, "not_found"},
	} {
		var w *httptest.ResponseRecorder
		if c.body == "" {
			w = serve(h, c.method, c.target, nil)
		} else {
			w = serve(h, c.method, c.target, strings.NewReader(c.body))
		}
		if w.Code != c.status || errorBody(t, w)["code"] != c.code {
			t.Errorf("%s %s %s: %d %s, want %d %s", c.method, c.target, c.body, w.Code, w.Body, c.status, c.code)
		}
	}
	if n := len(allEvents(t, h)); n != 0 {
		t.Errorf("refused requests stored %d events", n)
	}
}

// TestProjectionLimit: a tier's projections quota counts the projections
// defined and not deleted.
func TestProjectionLimit(t *testing.T) {
	f := newAuthHandler(t, Config{})
	two := int64(2)
	if _, err := f.svc.UpdateTenant("own", "quota.update", nil, func(c *tenants.Config) error {
		c.Quota = quota.Overrides{Projections: &two}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.h.forget("own")
	writer := tok(f.tokens["own/writer"])
	for i := range 2 {
		if w := f.do("POST", "/projections", fmt.Sprintf(`{"name":"p%d","kind":"counter","by":"type"}`, i), writer...); w.Code != 201 {
			t.Fatalf("projection %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := f.do("POST", "/projections", `{"name":"p2","kind":"counter","by":"type"}`, writer...)
	if w.Code != 403 || !strings.Contains(w.Body.String(), `"quota":"projections"`) {
		t.Fatalf("third projection: %d %s", w.Code, w.Body)
	}
	if w := f.do("DELETE", "/projections/p0", "", writer...); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/projections", `{"name":"p2","kind":"counter","by":"type"}`, writer...); w.Code != 201 {
		t.Fatalf("after a delete: %d %s", w.Code, w.Body)
	}
	// A reader reads results but defines nothing.
	reader := tok(f.tokens["own/reader"])
	if w := f.do("GET", "/projections/p1/result", "", reader...); w.Code != 200 {
		t.Errorf("reader reads: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/projections/p1/pause", "", reader...); w.Code != 403 {
		t.Errorf("reader pauses: %d %s", w.Code, w.Body)
	}
}

// TestReplayCGI: in a handler of one request at a time (CGI), a replay
// moves on in steps of at most the budget, in the requests that read it.
func TestReplayCGI(t *testing.T) {
	h := newHandler(t, Config{CatchupBudget: time.Millisecond})
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, `{"type":"t%d","entity":"e%d"}`+"\n", i%7, i%13)
	}
	if w := serve(h, "POST", "/events", strings.NewReader(b.String()), "Content-Type", "application/x-ndjson"); w.Code != 201 {
		t.Fatal(w.Code, w.Body)
	}
	mustServe(t, h, "POST", "/projections", `{"name":"c","kind":"counter","by":"type"}`, 201)
	w := mustServe(t, h, "POST", "/projections/c/rebuild", `{"types":["t1","t2"]}`, 202)
	var rp struct {
		ID, State   string
		Done, Total uint64
	}
	json.Unmarshal(w.Body.Bytes(), &rp)
	if rp.ID == "" || rp.Total != 5002 || w.Header().Get("Location") != "../../replays/"+rp.ID {
		t.Fatalf("rebuild: %s %v", w.Body, w.Header())
	}
	for i := 0; rp.State != "completed"; i++ {
		if i > 10000 {
			t.Fatalf("replay never completed: %+v", rp)
		}
		json.Unmarshal(mustServe(t, h, "GET", "/replays/"+rp.ID, "", 200).Body.Bytes(), &rp)
		if rp.State != "running" && rp.State != "completed" {
			t.Fatalf("replay: %+v", rp)
		}
	}
	h2 := newHandler(t, Config{DataDir: h.cfg.DataDir})
	a := result(t, h2, "/projections/c/result")
	if string(a.Result) != `{"t1":715,"t2":714}` {
		t.Errorf("rebuilt with types t1, t2: %s", a.Result)
	}
	// A second replay, cancelled, then deleted.
	w = mustServe(t, h, "POST", "/projections/c/rebuild", ``, 202)
	json.Unmarshal(w.Body.Bytes(), &rp)
	if rp.State == "completed" {
		t.Skip("the rebuild finished within one step")
	}
	json.Unmarshal(mustServe(t, h, "POST", "/replays/"+rp.ID+"/cancel", ``, 200).Body.Bytes(), &rp)
	if rp.State != "cancelled" {
		t.Errorf("cancelled: %+v", rp)
	}
	mustServe(t, h, "POST", "/replays/"+rp.ID+"/cancel", ``, 409)
	mustServe(t, h, "DELETE", "/replays/"+rp.ID, ``, 204)
	mustServe(t, h, "GET", "/replays/"+rp.ID, ``, 404)
	var list []map[string]any
	json.Unmarshal(mustServe(t, h, "GET", "/replays", ``, 200).Body.Bytes(), &list)
	if len(list) != 1 {
		t.Errorf("replays: %v", list)
	}
}

// TestRebuildNarrowDurable: a rebuild's narrowing is a record in the log
// (strata.projection.rebuilt), not a cache: with the whole cache deleted
// a new process answers the same, at the same definition version; a
// plain rebuild clears the narrowing and so does a new version (PUT).
func TestRebuildNarrowDurable(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "POST", "/events", `[{"type":"a","entity":"x"},{"type":"b","entity":"y"},{"type":"a","entity":"y"}]`, 201)
	mustServe(t, h, "POST", "/projections", `{"name":"c","kind":"counter","by":"type"}`, 201)
	cache := filepath.Join(h.cfg.DataDir, "tenants", "default", "cache")
	rebuild := func(body, want string) {
		t.Helper()
		var rp struct{ ID, State string }
		json.Unmarshal(mustServe(t, h, "POST", "/projections/c/rebuild", body, 202).Body.Bytes(), &rp)
		for i := 0; rp.State != "completed"; i++ {
			if i > 1000 {
				t.Fatalf("replay never completed: %+v", rp)
			}
			json.Unmarshal(mustServe(t, h, "GET", "/replays/"+rp.ID, "", 200).Body.Bytes(), &rp)
		}
		if a := result(t, h, "/projections/c/result"); string(a.Result) != want {
			t.Fatalf("rebuilt with %s: %s, want %s", body, a.Result, want)
		}
		if err := os.RemoveAll(cache); err != nil {
			t.Fatal(err)
		}
		if a := result(t, newHandler(t, Config{DataDir: h.cfg.DataDir}), "/projections/c/result"); string(a.Result) != want {
			t.Fatalf("rebuilt with %s, the cache deleted: %s, want %s", body, a.Result, want)
		}
	}
	var d struct {
		Version   uint64
		Narrowing json.RawMessage
		Record    struct{ Version uint64 }
	}
	describe := func(version uint64, narrowing string) {
		t.Helper()
		d.Narrowing = nil
		json.Unmarshal(mustServe(t, h, "GET", "/projections/c", "", 200).Body.Bytes(), &d)
		if d.Version != version || string(d.Narrowing) != narrowing {
			t.Fatalf("GET /projections/c: version %d narrowing %s; want %d %s", d.Version, d.Narrowing, version, narrowing)
		}
	}
	rebuild(`{"types":["a"],"from":"2000-01-01T01:00:00+01:00"}`, `{"a":2}`)
	describe(1, `{"from":"2000-01-01T00:00:00Z","types":["a"]}`)
	if d.Record.Version != 2 {
		t.Errorf("record version after a rebuild: %d", d.Record.Version)
	}
	rebuild(`{"entity":"y"}`, `{"a":1,"b":1}`)
	describe(1, `{"entity":"y"}`)
	rebuild(``, `{"a":2,"b":1}`)
	describe(1, ``)
	rebuild(`{"types":["b"]}`, `{"b":1}`)
	// A new version of the definition is folded whole.
	mustServe(t, h, "PUT", "/projections/c", `{"kind":"counter","by":"entity"}`, 200)
	describe(6, ``)
	if a := result(t, h, "/projections/c/result"); string(a.Result) != `{"x":1,"y":2}` {
		t.Errorf("after PUT: %s", a.Result)
	}
	// The narrowing of version 1 is still that version's, in its history.
	json.Unmarshal(mustServe(t, h, "GET", "/projections/c?version=5", "", 200).Body.Bytes(), &d)
	if string(d.Narrowing) != `{"types":["b"]}` {
		t.Errorf("version 5: %s", d.Narrowing)
	}
}

// TestProjectionFaults: the name catalog is a cache: a disk that refuses
// to write it costs a scan, never a wrong answer; a replay record that
// cannot be written is a 5xx that names no path, and nothing half-made
// stays behind it.
func TestProjectionFaults(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "POST", "/events", `[{"type":"a","entity":"x"},{"type":"b","entity":"y"}]`, 201)
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if strings.Contains(path, "projdefs") || strings.Contains(path, "replays") {
			return syscall.EIO
		}
		return nil
	})
	defer undo()
	mustServe(t, h, "POST", "/projections", `{"name":"c","kind":"counter","by":"type"}`, 201)
	var list []defStatus
	json.Unmarshal(mustServe(t, h, "GET", "/projections", "", 200).Body.Bytes(), &list)
	if len(list) != 1 || list[0].Name != "c" {
		t.Errorf("GET /projections without its cache: %+v", list)
	}
	w := serve(h, "POST", "/projections/c/rebuild", nil)
	if w.Code != 500 || strings.Contains(w.Body.String(), h.cfg.DataDir) || strings.Contains(w.Body.String(), "replays") {
		t.Errorf("rebuild on a failing disk: %d %s", w.Code, w.Body)
	}
	undo()
	if a := result(t, h, "/projections/c/result"); string(a.Result) != `{"a":1,"b":1}` {
		t.Errorf("result: %s", a.Result)
	}
	json.Unmarshal(mustServe(t, h, "GET", "/replays", "", 200).Body.Bytes(), &list)
	if len(list) != 0 {
		t.Errorf("replays after a failed start: %+v", list)
	}
	json.Unmarshal(mustServe(t, h, "GET", "/projections", "", 200).Body.Bytes(), &list)
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "tenants", "default", "cache", "projdefs", "catalog.json")); err != nil || len(list) != 1 {
		t.Errorf("catalog after the disk came back: %v %+v", err, list)
	}
}

// TestStateReducer: a projection of kind state replaces the default merge
// in GET /entities for the entities its glob matches, at the head and in
// time travel; others, and all once it is deleted, keep the default.
func TestStateReducer(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "POST", "/events", `[{"type":"order.paid","entity":"orders/1","data":{"amount":10}},{"type":"x","entity":"users/1","data":{"amount":1}},{"type":"order.paid","entity":"orders/1","data":{"amount":5}}]`, 201)
	w := serve(h, "POST", "/projections", strings.NewReader(`{"name":"orders","kind":"state","entity":"orders/*","init":{"total":0},"reduce":"$state | .total += $event.data.amount"}`))
	if w.Code == 400 {
		t.Skipf("kind state not available: %s", w.Body)
	}
	state := func(target string) (string, string) {
		w := mustServe(t, h, "GET", target, "", 200)
		var s struct {
			State json.RawMessage `json:"state"`
		}
		json.Unmarshal(w.Body.Bytes(), &s)
		return string(s.State), w.Header().Get("Strata-Projection")
	}
	if s, by := state("/entities/orders/1"); s != `{"total":15}` || by != "orders" {
		t.Errorf("orders/1: %s by %q", s, by)
	}
	if s, _ := state("/entities/orders/1?version=1"); s != `{"total":10}` {
		t.Errorf("orders/1 at version 1: %s", s)
	}
	if s, by := state("/entities/users/1"); s != `{"amount":1}` || by != "" {
		t.Errorf("users/1 (default merge): %s by %q", s, by)
	}
	mustServe(t, h, "DELETE", "/projections/orders", "", 200)
	if s, by := state("/entities/orders/1"); s != `{"amount":5}` || by != "" {
		t.Errorf("orders/1 after the reducer's deletion: %s by %q", s, by)
	}
}

// TestProjectionExpectedVersion: changes to a definition may expect its
// record's version (optimistic concurrency): another is 409
// version_conflict with the current one, and stores nothing.
func TestProjectionExpectedVersion(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "PUT", "/projections/p?expected_version=0", `{"kind":"counter","by":"type"}`, 201)
	mustServe(t, h, "PUT", "/projections/p?expected_version=0", `{"kind":"counter","by":"entity"}`, 409)
	w := mustServe(t, h, "POST", "/projections/p/pause?expected_version=2", "", 409)
	if e := errorBody(t, w); e["code"] != "version_conflict" || e["current_version"] != float64(1) || e["entity"] != "strata/projections/p" {
		t.Errorf("conflict: %s", w.Body)
	}
	mustServe(t, h, "POST", "/projections/p/pause?expected_version=1", "", 200)
	mustServe(t, h, "PUT", "/projections/p?expected_version=2", `{"kind":"counter","by":"entity"}`, 200)
	mustServe(t, h, "DELETE", "/projections/p?expected_version=2", "", 409)
	mustServe(t, h, "DELETE", "/projections/p?expected_version=3", "", 200)
	mustServe(t, h, "POST", "/projections?expected_version=0", `{"name":"q","kind":"counter","by":"type"}`, 400)
	mustServe(t, h, "PUT", "/projections/p?expected_version=x", `{"kind":"counter","by":"type"}`, 400)
	var n int
	for _, e := range allEvents(t, h) {
		if e.Entity == "strata/projections/p" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d events of p, want 4 (defined, paused, defined, deleted)", n)
	}
}

// TestResultBehind: past the catch-up budget a read answers the result so
// far, marked behind in the body and the headers, and the next reads go
// on from there until it is whole.
func TestResultBehind(t *testing.T) {
	h := newHandler(t, Config{CatchupBudget: time.Nanosecond})
	var b strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&b, `{"type":"t%d","entity":"e"}`+"\n", i%2)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i := 0; i < len(lines); i += 10000 {
		w := serve(h, "POST", "/events", strings.NewReader(strings.Join(lines[i:min(i+10000, len(lines))], "")), "Content-Type", "application/x-ndjson")
		if w.Code != 201 {
			t.Fatal(w.Code, w.Body)
		}
	}
	mustServe(t, h, "POST", "/projections", `{"name":"c","kind":"counter","by":"type"}`, 201)
	sawBehind := false
	for n := 0; ; n++ {
		w := mustServe(t, h, "GET", "/projections/c/result", "", 200)
		var a resultAnswer
		json.Unmarshal(w.Body.Bytes(), &a)
		if a.Behind != (w.Header().Get("Strata-Behind") == "true") {
			t.Fatalf("behind %v, Strata-Behind %q", a.Behind, w.Header().Get("Strata-Behind"))
		}
		if !a.Behind {
			if string(a.Result) != `{"t0":100000,"t1":100000}` || a.Seq != 200001 {
				t.Errorf("whole: %d %s", a.Seq, a.Result)
			}
			break
		}
		sawBehind = true
		if n > 1000 {
			t.Fatal("never caught up")
		}
	}
	if !sawBehind {
		t.Error("a budget of a nanosecond never answered behind")
	}
}

// TestWorkerStopsOnClose: a long-running handler's projection worker
// keeps a result current without reads and stops when the handler closes.
func TestWorkerStopsOnClose(t *testing.T) {
	h := New(Config{DataDir: t.TempDir(), NoAuth: true, NoSync: true, LongRunning: true})
	mustServe(t, h, "POST", "/projections", `{"name":"c","kind":"counter","by":"type"}`, 201)
	mustServe(t, h, "POST", "/events", `[{"type":"a","entity":"x"},{"type":"b","entity":"x"}]`, 201)
	h.mu.Lock()
	tn := h.tenants[DefaultTenant]
	h.mu.Unlock()
	w := tn.ps.worker.Load()
	if w == nil {
		t.Fatal("no worker after a definition")
	}
	// Kept current in the background: the status reaches the head with
	// no read of the result.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if d := definition(t, mustServe(t, h, "GET", "/projections/c", "", 200)); d.LastSeq == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not catch up")
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker still runs after Close")
	}
}

// TestStateReducerRoutes: for an entity a state projection makes, history
// and diff answer the projection's states — each version's the same as
// GET /entities/<e>?version=n — with Strata-Projection, through a filter
// that skips some of its events and a tombstone; an entity of no state
// projection keeps the merge on every route.
func TestStateReducerRoutes(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "POST", "/events", `[
{"type":"order.paid","entity":"orders/1","data":{"amount":10}},
{"type":"x","entity":"users/1","data":{"amount":1}},
{"type":"order.note","entity":"orders/1","data":{"amount":100}},
{"type":"order.paid","entity":"orders/1","data":{"amount":5,"z":null}},
{"type":"order.paid","entity":"orders/2","data":{"amount":7}},
{"type":"x","entity":"users/1","data":{"amount":2}}]`, 201)
	mustServe(t, h, "POST", "/projections", `{"name":"orders","kind":"state","entity":"orders/*","init":{"total":0},
		"reduce":"$state | .total += $event.data.amount | .n = $event.version","filter":{"types":["order.paid","entity.*"]}}`, 201)
	mustServe(t, h, "DELETE", "/entities/orders/1", "", 200)
	mustServe(t, h, "PUT", "/entities/orders/1", `{"amount":1}`, 200)

	type version struct {
		Version uint64          `json:"version"`
		Deleted bool            `json:"deleted"`
		State   json.RawMessage `json:"state"`
	}
	for _, c := range []struct {
		entity, by string
		n          uint64
	}{{"orders/1", "orders", 5}, {"users/1", "", 2}} {
		w := mustServe(t, h, "GET", "/entities/"+c.entity+"/history", "", 200)
		if got := w.Header().Get("Strata-Projection"); got != c.by {
			t.Errorf("%s history: Strata-Projection %q", c.entity, got)
		}
		var hist []version
		json.Unmarshal(w.Body.Bytes(), &hist)
		if uint64(len(hist)) != c.n {
			t.Fatalf("%s history: %s", c.entity, w.Body)
		}
		states := []string{"null"} // by version; 0: before the first
		for _, v := range hist {
			w := serve(h, "GET", "/entities/"+c.entity+"?version="+fmt.Sprint(v.Version), nil)
			var s version
			json.Unmarshal(w.Body.Bytes(), &s)
			if v.Deleted {
				if w.Code != 410 || string(v.State) != "null" {
					t.Errorf("%s version %d: deleted in history (%s), GET %d", c.entity, v.Version, v.State, w.Code)
				}
			} else if w.Code != 200 || string(s.State) != string(v.State) || w.Header().Get("Strata-Projection") != c.by {
				t.Errorf("%s version %d: history %s, GET %d %s", c.entity, v.Version, v.State, w.Code, s.State)
			}
			states = append(states, string(v.State))
			// Pages of one agree with the whole.
			w = mustServe(t, h, "GET", fmt.Sprintf("/entities/%s/history?after=%d&limit=1", c.entity, v.Version-1), "", 200)
			var page []version
			json.Unmarshal(w.Body.Bytes(), &page)
			if len(page) != 1 || string(page[0].State) != string(v.State) || (w.Header().Get("Link") != "") != (v.Version < c.n) {
				t.Errorf("%s page after %d: %s (Link %q)", c.entity, v.Version-1, w.Body, w.Header().Get("Link"))
			}
		}
		if c.by != "" && strings.Join(states, " ") != `null {"n":1,"total":10} {"n":1,"total":10} {"n":3,"total":15} null {"n":5,"total":16}` {
			t.Errorf("%s states: %v", c.entity, states)
		}
		for from := uint64(0); from <= c.n; from++ {
			for to := max(from, 1); to <= c.n; to++ {
				w := mustServe(t, h, "GET", fmt.Sprintf("/entities/%s/diff?from=%d&to=%d", c.entity, from, to), "", 200)
				var d struct {
					Patch json.RawMessage `json:"patch"`
				}
				json.Unmarshal(w.Body.Bytes(), &d)
				want, _, _ := jsonx.MergeDiff(nil, []byte(states[from]), []byte(states[to]))
				if string(d.Patch) != string(want) || w.Header().Get("Strata-Projection") != c.by {
					t.Errorf("%s diff %d..%d: %s; want %s (%s to %s)", c.entity, from, to, d.Patch, want, states[from], states[to])
				}
			}
		}
	}
	if w := mustServe(t, h, "GET", "/entities/orders/1/history?after=5", "", 200); strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("history past the end: %s", w.Body)
	}
	mustServe(t, h, "GET", "/entities/orders/9/history", "", 404)
	mustServe(t, h, "GET", "/entities/orders/1/diff?from=6", "", 404)
	mustServe(t, h, "GET", "/entities/orders/1/diff?from=2&to=9", "", 404)
	mustServe(t, h, "GET", "/entities/orders/1/diff?from=3&to=2", "", 400)

	// A narrowed rebuild (a durable record): history folds with the
	// narrowing too, as every read of the projection does.
	var rp struct{ ID, State string }
	json.Unmarshal(mustServe(t, h, "POST", "/projections/orders/rebuild", `{"types":["entity.*"]}`, 202).Body.Bytes(), &rp)
	for i := 0; rp.State != "completed"; i++ {
		if i > 1000 {
			t.Fatalf("replay never completed: %+v", rp)
		}
		json.Unmarshal(mustServe(t, h, "GET", "/replays/"+rp.ID, "", 200).Body.Bytes(), &rp)
	}
	var hist []version
	json.Unmarshal(mustServe(t, h, "GET", "/entities/orders/1/history", "", 200).Body.Bytes(), &hist)
	for _, v := range hist {
		var s version
		w := serve(h, "GET", fmt.Sprintf("/entities/orders/1?version=%d", v.Version), nil)
		json.Unmarshal(w.Body.Bytes(), &s)
		if !v.Deleted && string(s.State) != string(v.State) {
			t.Errorf("narrowed, version %d: history %s, GET %s", v.Version, v.State, s.State)
		}
	}
	if len(hist) != 5 || string(hist[2].State) != `{"total":0}` || string(hist[4].State) != `{"n":5,"total":1}` {
		t.Errorf("narrowed history: %+v", hist)
	}

	// A reducer that fails at the entity's event: the same 409 as GET.
	mustServe(t, h, "PUT", "/projections/orders", `{"kind":"state","entity":"orders/*","reduce":"if $event.version == 2 then error(\"no\") else . end"}`, 200)
	for _, target := range []string{"/entities/orders/1?version=2", "/entities/orders/1/history", "/entities/orders/1/diff?from=0&to=3"} {
		w := mustServe(t, h, "GET", target, "", 409)
		if e := errorBody(t, w); e["code"] != "projection_failed" || e["projection"] != "orders" {
			t.Errorf("%s: %s", target, w.Body)
		}
	}
	// Before the failing event the states are readable, as by GET.
	mustServe(t, h, "GET", "/entities/orders/1/diff?from=0&to=1", "", 200)
	mustServe(t, h, "GET", "/entities/orders/1/history?limit=1", "", 200)
	// At another entity's event: orders/2's reads fail too once past it,
	// as GET does — also when no read folded the projection that far yet.
	mustServe(t, h, "GET", "/entities/orders/2/history", "", 409)
	mustServe(t, h, "GET", "/entities/orders/2/diff?from=0", "", 409)
	mustServe(t, h, "GET", "/entities/orders/2", "", 409)
	mustServe(t, h, "PUT", "/projections/orders", `{"kind":"state","entity":"orders/*","reduce":"if $event.version == 3 then error(\"no\") else . end"}`, 200)
	mustServe(t, h, "GET", "/entities/orders/2/history", "", 409)
	mustServe(t, h, "GET", "/entities/orders/2/history?limit=0", "", 400)
}

// TestStateReducerSearch: GET /entities?prefix= answers, for the entities a
// state projection makes, the projection's state (the same as GET
// /entities/<e>, with "projection") and applies where= to it; other
// entities keep the merge; a failed projection is the 409 GET answers.
func TestStateReducerSearch(t *testing.T) {
	h := newHandler(t, Config{})
	mustServe(t, h, "POST", "/events", `[
{"type":"order.paid","entity":"orders/1","data":{"amount":10}},
{"type":"order.paid","entity":"orders/2","data":{"amount":3}},
{"type":"order.note","entity":"orders/3","data":{"amount":50}},
{"type":"x","entity":"ordersx","data":{"amount":1}},
{"type":"order.paid","entity":"orders/1","data":{"amount":5}}]`, 201)
	mustServe(t, h, "POST", "/projections", `{"name":"orders","kind":"state","entity":"orders/*","init":{"total":0},
		"reduce":".total += $event.data.amount","filter":{"types":["order.paid"]}}`, 201)
	mustServe(t, h, "DELETE", "/entities/orders/2", "", 200)
	type state struct {
		Entity     string          `json:"entity"`
		State      json.RawMessage `json:"state"`
		Projection string          `json:"projection"`
	}
	search := func(target string) []state {
		t.Helper()
		var page []state
		json.Unmarshal(mustServe(t, h, "GET", target, "", 200).Body.Bytes(), &page)
		return page
	}
	page := search("/entities?prefix=orders")
	got := ""
	for _, s := range page {
		got += fmt.Sprintf("%s=%s(%s) ", s.Entity, s.State, s.Projection)
		w := mustServe(t, h, "GET", "/entities?entity="+s.Entity, "", 200)
		var one state
		json.Unmarshal(w.Body.Bytes(), &one)
		if string(one.State) != string(s.State) || w.Header().Get("Strata-Projection") != s.Projection {
			t.Errorf("%s: search %s by %q, GET %s by %q", s.Entity, s.State, s.Projection, one.State, w.Header().Get("Strata-Projection"))
		}
	}
	if want := `orders/1={"total":15}(orders) orders/3={"total":0}(orders) ordersx={"amount":1}() `; got != want {
		t.Errorf("search: %s; want %s", got, want)
	}
	for where, want := range map[string]string{
		`.total > 10`: "orders/1",
		`.amount`:     "ordersx",
		`.total == 0`: "orders/3",
	} {
		page := search("/entities?prefix=orders&where=" + url.QueryEscape(where))
		if len(page) != 1 || page[0].Entity != want {
			t.Errorf("where %s: %+v; want %s", where, page, want)
		}
	}
	// Paged one at a time, the same states.
	var paged []string
	for after := ""; ; {
		w := mustServe(t, h, "GET", "/entities?prefix=orders&limit=1&after="+url.QueryEscape(after), "", 200)
		var p []state
		json.Unmarshal(w.Body.Bytes(), &p)
		for _, s := range p {
			paged = append(paged, fmt.Sprintf("%s=%s(%s)", s.Entity, s.State, s.Projection))
		}
		if after = w.Header().Get("Strata-Next-After"); after == "" {
			break
		}
		after, _ = url.QueryUnescape(after)
	}
	if got := strings.Join(paged, " ") + " "; got != `orders/1={"total":15}(orders) orders/3={"total":0}(orders) ordersx={"amount":1}() ` {
		t.Errorf("paged: %s", got)
	}
	mustServe(t, h, "PUT", "/projections/orders", `{"kind":"state","entity":"orders/*","reduce":"error(\"no\")"}`, 200)
	w := mustServe(t, h, "GET", "/entities?prefix=orders", "", 409)
	if e := errorBody(t, w); e["code"] != "projection_failed" || e["projection"] != "orders" {
		t.Errorf("failed projection: %s", w.Body)
	}
	if page := search("/entities?prefix=ordersx"); len(page) != 1 || page[0].Projection != "" {
		t.Errorf("merge entity beside a failed projection: %+v", page)
	}
	mustServe(t, h, "POST", "/projections/orders/pause", "", 200)
	if page := search("/entities?prefix=orders/1"); len(page) != 1 || string(page[0].State) != `{"amount":5}` || page[0].Projection != "" {
		t.Errorf("paused projection: %+v", page)
	}
}
