package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// projResult is a projection's result answer.
type projResult struct {
	Name    string          `json:"name"`
	Version uint64          `json:"version"`
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Behind  bool            `json:"behind"`
}

// projDef is a projection's definition answer (the members the tests look
// at).
type projDef struct {
	Name       string          `json:"name"`
	Version    uint64          `json:"version"`
	Definition json.RawMessage `json:"definition"`
	State      string          `json:"state"`
	Processed  uint64          `json:"processed"`
	LastSeq    uint64          `json:"last_seq"`
	Paused     bool            `json:"paused"`
	Narrowing  json.RawMessage `json:"narrowing"`
	Record     struct {
		Entity  string `json:"entity"`
		Version uint64 `json:"version"`
		Seq     uint64 `json:"seq"`
		ID      string `json:"id"`
	} `json:"record"`
}

// replayRec is a replay's record.
type replayRec struct {
	ID         string   `json:"id"`
	Projection string   `json:"projection"`
	State      string   `json:"state"`
	Done       uint64   `json:"done"`
	Total      uint64   `json:"total"`
	Rate       float64  `json:"rate"`
	ETA        *float64 `json:"eta"`
	Error      string   `json:"error"`
}

func jsonOf[T any](t testing.TB, r *response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v
}

// getResult reads a result and checks its stamp: the body's seq and id
// are the Strata-Head headers'.
func getResult(t testing.TB, base, path string) projResult {
	t.Helper()
	r := do(t, "GET", base+path, nil).want(t, 200)
	a := jsonOf[projResult](t, r)
	if r.header.Get("Strata-Head") != a.ID || r.header.Get("Strata-Head-Seq") != fmt.Sprint(a.Seq) {
		t.Errorf("GET %s: Strata-Head %q/%q, body seq %d id %s", path, r.header.Get("Strata-Head"), r.header.Get("Strata-Head-Seq"), a.Seq, a.ID)
	}
	if a.Behind != (r.header.Get("Strata-Behind") == "true") {
		t.Errorf("GET %s: behind %v, Strata-Behind %q", path, a.Behind, r.header.Get("Strata-Behind"))
	}
	return a
}

// projectionEvents is the tenant's data of TestProjectionsEndToEnd: users
// who sign up, verify and order; orders placed and paid.
const projectionEvents = `[
{"type":"user.created","entity":"users/1"},
{"type":"user.created","entity":"users/2"},
{"type":"user.verified","entity":"users/1"},
{"type":"order.placed","entity":"users/1"},
{"type":"order.placed","entity":"orders/1","data":{"customer":"c1"}}
]`

// projectionEvents2 follow projectionEvents, in a later request (a later
// time).
const projectionEvents2 = `[
{"type":"order.paid","entity":"orders/1","data":{"customer":"c1","amount":10.5}},
{"type":"order.placed","entity":"orders/2","data":{"customer":"c2"}},
{"type":"order.paid","entity":"orders/2","data":{"customer":"c2","amount":20}},
{"type":"order.paid","entity":"orders/3","data":{"customer":"c1","amount":100}}
]`

// TestProjectionsEndToEnd: every kind of the README's examples defined
// over HTTP on the real binary, read, changed, paused, resumed, read in
// the past and deleted — and the same answers from a CGI process on the
// same data.
func TestProjectionsEndToEnd(t *testing.T) {
	s := startServer(t, "")
	base := s.url
	recs := mustAppendBatch(t, base, projectionEvents)
	time.Sleep(2 * time.Millisecond)
	recs = append(recs, mustAppendBatch(t, base, projectionEvents2)...)
	day := recs[0].Time[:10] + "T00:00:00Z"
	defs := map[string]string{
		"per-type": `{"name":"per-type","kind":"counter","by":"type"}`,
		"revenue":  `{"name":"revenue","kind":"timeseries","path":".amount","op":"sum","bucket":"day","filter":{"types":["order.paid"]}}`,
		"signup":   `{"name":"signup","kind":"funnel","steps":["user.created","user.verified","order.placed"],"window":"7d"}`,
		"spend":    `{"name":"spend","kind":"custom","init":0,"reduce":"$state + $event.data.amount","key":"$event.data.customer","filter":{"types":["order.paid"],"entity":"orders/*"}}`,
	}
	want := map[string]string{
		"per-type": `{"order.paid":3,"order.placed":3,"user.created":2,"user.verified":1}`,
		"revenue":  `{"` + day + `":130.5}`,
		"spend":    `{"c1":110.5,"c2":20}`,
	}
	defined := []string{}
	for _, name := range []string{"per-type", "revenue", "signup", "spend"} {
		r := do(t, "POST", base+"/projections", defs[name])
		if name == "spend" && r.status == 400 {
			t.Logf("kind custom not available in this build: %s", r.body)
			continue
		}
		d := jsonOf[projDef](t, r.want(t, 201))
		if d.Name != name || d.Version != 1 || d.Record.Entity != "strata/projections/"+name || d.State != "created" && d.State != "running" {
			t.Errorf("POST /projections %s: %s", name, r.body)
		}
		defined = append(defined, name)
	}
	do(t, "POST", base+"/projections", defs["per-type"]).wantError(t, 409, "exists")
	head := mustHead(t, base)
	for _, name := range defined {
		a := getResult(t, base, "/projections/"+name+"/result")
		if a.Name != name || a.Version != 1 || a.Seq != head.Seq || a.ID != head.ID {
			t.Errorf("%s: stamped %d %s version %d, head %d %s", name, a.Seq, a.ID, a.Version, head.Seq, head.ID)
		}
		if w, ok := want[name]; ok && string(a.Result) != w {
			t.Errorf("%s: %s, want %s", name, a.Result, w)
		}
	}
	funnel := getResult(t, base, "/projections/signup/result")
	if !strings.Contains(string(funnel.Result), "user.verified") {
		t.Errorf("funnel: %s", funnel.Result)
	}
	// One key of a keyed result, and a page of keys.
	if slicesContains(defined, "spend") {
		if a := getResult(t, base, "/projections/spend/result/c1"); string(a.Result) != "110.5" {
			t.Errorf("spend/c1: %s", a.Result)
		}
		r := do(t, "GET", base+"/projections/spend/result?limit=1", nil).want(t, 200)
		if a := jsonOf[projResult](t, r); string(a.Result) != `{"c1":110.5}` || !strings.Contains(r.header.Get("Link"), "after=c1") {
			t.Errorf("a page of spend: %s %v", r.body, r.header)
		}
	}
	do(t, "GET", base+"/projections/per-type/result/nosuch", nil).wantError(t, 404, "not_found")

	// Time travel: by seq, by event id, by time.
	at5 := `{"order.placed":2,"user.created":2,"user.verified":1}`
	for _, q := range []string{"seq=5", "at=" + recs[4].ID, "as_of=" + url.QueryEscape(recs[4].Time)} {
		a := getResult(t, base, "/projections/per-type/result?"+q)
		if a.Seq != 5 || a.ID != recs[4].ID || string(a.Result) != at5 {
			t.Errorf("per-type?%s: %d %s %s, want seq 5 %s", q, a.Seq, a.ID, a.Result, at5)
		}
	}
	do(t, "GET", base+"/projections/per-type/result?seq=5&at="+recs[4].ID, nil).wantError(t, 400, "invalid_parameter")
	do(t, "GET", base+"/projections/per-type/result?at="+strings.Repeat("ab", 32), nil).wantError(t, 404, "not_on_chain")

	// Clients may not write the definitions' types or entities.
	do(t, "POST", base+"/events", `{"type":"strata.projection.deleted","entity":"strata/projections/per-type"}`).wantError(t, 400, "reserved_type")
	do(t, "PUT", base+"/entities/strata/projections/per-type", `{}`).wantError(t, 400, "reserved_entity")

	// A new version of the definition: its result is built anew.
	d := jsonOf[projDef](t, do(t, "PUT", base+"/projections/per-type", `{"kind":"counter","by":"entity","filter":{"entity":"orders/*"}}`).want(t, 200))
	if d.Version != 2 {
		t.Errorf("PUT: version %d", d.Version)
	}
	if a := getResult(t, base, "/projections/per-type/result"); a.Version != 2 || string(a.Result) != `{"orders/1":2,"orders/2":2,"orders/3":1}` {
		t.Errorf("version 2: %d %s", a.Version, a.Result)
	}
	if d := jsonOf[projDef](t, do(t, "GET", base+"/projections/per-type?version=1", nil).want(t, 200)); d.Version != 1 || !strings.Contains(string(d.Definition), `"by":"type"`) {
		t.Errorf("version 1: %+v", d)
	}

	// Paused, the result stays where it was; resumed, it catches up.
	if d := jsonOf[projDef](t, do(t, "POST", base+"/projections/per-type/pause", nil).want(t, 200)); d.State != "paused" {
		t.Errorf("paused: %+v", d)
	}
	mustAppend(t, base, `{"type":"order.placed","entity":"orders/4"}`)
	if a := getResult(t, base, "/projections/per-type/result"); strings.Contains(string(a.Result), "orders/4") {
		t.Errorf("paused result moved: %s", a.Result)
	}
	do(t, "POST", base+"/projections/per-type/resume", nil).want(t, 200)
	if a := getResult(t, base, "/projections/per-type/result"); !strings.Contains(string(a.Result), `"orders/4":1`) {
		t.Errorf("resumed result: %s", a.Result)
	}

	// The list, with status.
	list := jsonOf[[]projDef](t, do(t, "GET", base+"/projections", nil).want(t, 200))
	if len(list) != len(defined) {
		t.Errorf("GET /projections: %d of %d", len(list), len(defined))
	}

	// The same answers from a CGI process on the same data, at the same
	// points, and from the CLI.
	cgi := cgiServer(t, s.data)
	for _, name := range defined {
		for _, q := range []string{"", "?seq=5"} {
			x := getResult(t, base, "/projections/"+name+"/result"+q)
			y := getResult(t, cgi.URL+"/api", "/projections/"+name+"/result"+q)
			if x.Seq != y.Seq || x.ID != y.ID || string(x.Result) != string(y.Result) || x.Version != y.Version {
				t.Errorf("%s%s: standalone %d %s, CGI %d %s", name, q, x.Seq, x.Result, y.Seq, y.Result)
			}
		}
	}
	// Every cache deleted (results, checkpoints, the name catalog): the
	// same answers, folded again from the log.
	before := map[string]projResult{}
	for _, name := range defined {
		before[name] = getResult(t, cgi.URL+"/api", "/projections/"+name+"/result?seq=5")
	}
	if err := os.RemoveAll(filepath.Join(s.data, "tenants", "default", "cache")); err != nil {
		t.Fatal(err)
	}
	for _, name := range defined {
		if a := getResult(t, cgi.URL+"/api", "/projections/"+name+"/result?seq=5"); string(a.Result) != string(before[name].Result) || a.ID != before[name].ID {
			t.Errorf("%s without caches: %s, was %s", name, a.Result, before[name].Result)
		}
	}
	if list := jsonOf[[]projDef](t, do(t, "GET", cgi.URL+"/api/projections", nil).want(t, 200)); len(list) != len(defined) {
		t.Errorf("GET /projections without caches: %d of %d", len(list), len(defined))
	}
	out, errOut, code := cliRun(t, "", "projection", "list", "--data", s.data)
	if code != 0 || !strings.Contains(out, "per-type") || !strings.Contains(out, "counter") {
		t.Errorf("projection list: %d %s %s", code, out, errOut)
	}
	out, errOut, code = cliRun(t, "", "projection", "show", "per-type", "--version", "1", "--data", s.data)
	if code != 0 || !strings.Contains(out, `"by": "type"`) {
		t.Errorf("projection show --version 1: %d %s %s", code, out, errOut)
	}
	if _, errOut, code = cliRun(t, "", "projection", "show", "nosuch", "--data", s.data); code != 2 || !strings.Contains(errOut, "no projection") {
		t.Errorf("projection show nosuch: %d %s", code, errOut)
	}

	// Deleted: gone, and the definitions stay in the log.
	do(t, "DELETE", base+"/projections/per-type", nil).want(t, 200)
	do(t, "GET", base+"/projections/per-type/result", nil).wantError(t, 410, "gone")
	var types []string
	for _, e := range readAll(t, base) {
		if e.Entity == "strata/projections/per-type" {
			types = append(types, strings.TrimPrefix(e.Type, "strata.projection."))
		}
	}
	if strings.Join(types, ",") != "defined,defined,paused,resumed,deleted" {
		t.Errorf("per-type's events: %v", types)
	}
	mustVerify(t, s.data, len(readAll(t, base)))
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// appendMany appends n small events, 10,000 a request.
func appendMany(t testing.TB, base string, n int) {
	t.Helper()
	for done := 0; done < n; {
		var b strings.Builder
		k := min(10000, n-done)
		for i := range k {
			fmt.Fprintf(&b, `{"type":"t%d","entity":"e%d","data":{"n":%d}}`+"\n", (done+i)%5, (done+i)%101, i)
		}
		do(t, "POST", base+"/events", b.String(), "Content-Type", "application/x-ndjson").want(t, 201)
		done += k
	}
}

// waitReplay polls a replay until it is over; every GET moves it on in
// CGI.
func waitReplay(t testing.TB, base, id string) replayRec {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rp := jsonOf[replayRec](t, do(t, "GET", base+"/replays/"+id, nil).want(t, 200))
		if rp.State == "completed" || rp.State == "failed" || rp.State == "cancelled" {
			return rp
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s not over after 60s: %+v", id, rp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplayLifecycle: a rebuild is a replay that moves on in steps of at
// most the catch-up budget in CGI (each request that reads it) and in the
// background in a standalone server; it can be narrowed, cancelled and
// deleted; its result is the one a fresh fold gives.
func TestReplayLifecycle(t *testing.T) {
	s := startServer(t, "")
	appendMany(t, s.url, 60000)
	do(t, "POST", s.url+"/projections", `{"name":"c","kind":"counter","by":"type"}`).want(t, 201)
	full := getResult(t, s.url, "/projections/c/result")
	if string(full.Result) != `{"t0":12000,"t1":12000,"t2":12000,"t3":12000,"t4":12000}` {
		t.Fatalf("counter: %s", full.Result)
	}
	// CGI, with a budget of a millisecond: many steps.
	cgi := cgiServer(t, s.data, "STRATA_CATCHUP_BUDGET=1ms")
	api := cgi.URL + "/api"
	r := do(t, "POST", api+"/projections/c/rebuild", `{"types":["t1","t3"]}`).want(t, 202)
	rp := jsonOf[replayRec](t, r)
	if rp.Projection != "c" || rp.Total != 60002 || r.header.Get("Location") != "../../replays/"+rp.ID {
		t.Fatalf("rebuild: %s %v", r.body, r.header)
	}
	// The Location, resolved against the request, is the replay (with a
	// tenant prefix in the path too).
	for _, base := range []string{api + "/projections/c/rebuild", api + "/t/default/projections/c/rebuild"} {
		u, _ := url.Parse(base)
		loc, _ := url.Parse(r.header.Get("Location"))
		if got := jsonOf[replayRec](t, do(t, "GET", u.ResolveReference(loc).String(), nil).want(t, 200)); got.ID != rp.ID {
			t.Errorf("Location from %s: %+v", base, got)
		}
	}
	steps := 0
	for rp.State != "completed" {
		rp = jsonOf[replayRec](t, do(t, "GET", api+"/replays/"+rp.ID, nil).want(t, 200))
		if rp.State == "failed" || rp.State == "cancelled" || steps > 100000 {
			t.Fatalf("replay: %+v", rp)
		}
		steps++
	}
	t.Logf("CGI replay of 60,002 events in %d requests", steps+1)
	if a := getResult(t, api, "/projections/c/result"); string(a.Result) != `{"t1":12000,"t3":12000}` {
		t.Errorf("narrowed rebuild: %s", a.Result)
	}
	// Standalone: in the background.
	rp = jsonOf[replayRec](t, do(t, "POST", s.url+"/projections/c/rebuild", nil).want(t, 202))
	if rp = waitReplay(t, s.url, rp.ID); rp.State != "completed" || rp.Done != rp.Total {
		t.Fatalf("standalone replay: %+v", rp)
	}
	if a := getResult(t, s.url, "/projections/c/result"); string(a.Result) != string(full.Result) {
		t.Errorf("rebuilt: %s, want %s", a.Result, full.Result)
	}
	// Cancel one under way (in CGI, between steps), then delete it. (The
	// standalone server would move it on in the background.)
	s.kill()
	rp = jsonOf[replayRec](t, do(t, "POST", api+"/projections/c/rebuild", nil).want(t, 202))
	if rp.State != "completed" {
		rp = jsonOf[replayRec](t, do(t, "POST", api+"/replays/"+rp.ID+"/cancel", nil).want(t, 200))
		if rp.State != "cancelled" {
			t.Errorf("cancelled: %+v", rp)
		}
		do(t, "POST", api+"/replays/"+rp.ID+"/cancel", nil).wantError(t, 409, "replay_finished")
	}
	do(t, "DELETE", api+"/replays/"+rp.ID, nil).want(t, 204)
	do(t, "GET", api+"/replays/"+rp.ID, nil).wantError(t, 404, "not_found")
	if all := jsonOf[[]replayRec](t, do(t, "GET", api+"/replays", nil).want(t, 200)); len(all) != 2 {
		t.Errorf("replays: %+v", all)
	}
	// The result after a cancelled rebuild is caught up on read, a
	// budget at a time: behind until whole.
	a := getResult(t, api, "/projections/c/result")
	for n := 0; a.Behind && n < 100000; n++ {
		a = getResult(t, api, "/projections/c/result")
	}
	if string(a.Result) != string(full.Result) || a.Seq != full.Seq+3 { // + the 3 rebuilt records
		t.Errorf("after a cancelled rebuild: %d %s", a.Seq, a.Result)
	}
}

// TestRebuildKill9: strata rebuild killed at any moment loses nothing:
// the replay it left goes on in the next request, and the result is the
// one a fresh fold gives.
func TestRebuildKill9(t *testing.T) {
	s := startServer(t, "")
	appendMany(t, s.url, 200000)
	do(t, "POST", s.url+"/projections", `{"name":"c","kind":"counter","by":"entity"}`).want(t, 201)
	want := getResult(t, s.url, "/projections/c/result")
	s.kill()
	for i, delay := range []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond} {
		cmd := exec.Command(bin, "rebuild", "c", "--data", s.data)
		cmd.Env = cleanEnv()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The delay counts from the replay's record: on a loaded machine
		// the process may take longer than 20 ms to get that far, and a
		// kill before it would test nothing.
		replays := filepath.Join(s.data, "tenants", "default", "cache", "replays", "*.json")
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if recs, _ := filepath.Glob(replays); len(recs) > i {
				break
			}
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// What the killed process left, before any request moves it on.
		recs, _ := filepath.Glob(replays)
		for _, f := range recs {
			if b, err := os.ReadFile(f); err == nil {
				t.Logf("round %d: strata rebuild killed after %v left %s", i, delay, b)
			}
		}
		cgi := cgiServer(t, s.data)
		all := jsonOf[[]replayRec](t, do(t, "GET", cgi.URL+"/api/replays", nil).want(t, 200))
		if len(all) != i+1 {
			t.Fatalf("round %d: %d replays", i, len(all))
		}
		rp := waitReplay(t, cgi.URL+"/api", all[i].ID)
		if rp.State != "completed" {
			t.Errorf("round %d: replay %+v", i, rp)
		}
		// (Later, by the rebuilt records the rebuilds wrote.)
		if a := getResult(t, cgi.URL+"/api", "/projections/c/result"); string(a.Result) != string(want.Result) || a.Seq <= want.Seq {
			t.Errorf("round %d (killed after %v): %d %.200s, want %d %.200s", i, delay, a.Seq, a.Result, want.Seq, want.Result)
		}
	}
	// A standalone server killed in the middle of a background replay:
	// the next server goes on with it.
	s2 := startServer(t, s.data)
	rp := jsonOf[replayRec](t, do(t, "POST", s2.url+"/projections/c/rebuild", nil).want(t, 202))
	time.Sleep(30 * time.Millisecond)
	s2.kill()
	s3 := startServer(t, s.data)
	if rp = waitReplay(t, s3.url, rp.ID); rp.State != "completed" {
		t.Errorf("replay after the server's kill -9: %+v", rp)
	}
	if a := getResult(t, s3.url, "/projections/c/result"); string(a.Result) != string(want.Result) || a.Seq <= want.Seq {
		t.Errorf("after the server's kill -9: %d %.200s", a.Seq, a.Result)
	}
	// Every rebuild recorded its narrowing (none) in the log: those
	// strata rebuild wrote before it was killed, and the server's.
	h := mustHead(t, s3.url)
	if h.Seq < 200003 || h.Seq > 200005 {
		t.Errorf("head %d: want the events, the definition and 2 to 4 rebuilt records", h.Seq)
	}
	mustVerify(t, s.data, int(h.Seq))
}

// TestRebuildNarrowDurable: a narrowed rebuild is a record in the log, so
// that deleting the whole cache directory does not change the answer —
// in CGI, in a standalone server and after strata rebuild; a plain
// rebuild and a new definition version clear it.
func TestRebuildNarrowDurable(t *testing.T) {
	s := startServer(t, "")
	appendMany(t, s.url, 5000)
	do(t, "POST", s.url+"/projections", `{"name":"c","kind":"counter","by":"type"}`).want(t, 201)
	full := `{"t0":1000,"t1":1000,"t2":1000,"t3":1000,"t4":1000}`
	cache := filepath.Join(s.data, "tenants", "default", "cache")
	cgi := cgiServer(t, s.data, "STRATA_CATCHUP_BUDGET=1ms")
	api := cgi.URL + "/api"
	rebuild := func(base, body string) {
		t.Helper()
		rp := jsonOf[replayRec](t, do(t, "POST", base+"/projections/c/rebuild", body).want(t, 202))
		if rp = waitReplay(t, base, rp.ID); rp.State != "completed" {
			t.Fatalf("replay: %+v", rp)
		}
	}
	// want reads the whole result through both, with no cache left.
	want := func(step, result string) {
		t.Helper()
		for _, base := range []string{api, s.url} {
			os.RemoveAll(cache)
			a := getResult(t, base, "/projections/c/result")
			for n := 0; a.Behind && n < 100000; n++ {
				a = getResult(t, base, "/projections/c/result")
			}
			if string(a.Result) != result {
				t.Errorf("%s, through %s, the cache deleted: %s, want %s", step, base, a.Result, result)
			}
		}
	}
	rebuild(api, `{"types":["t1","t3"]}`)
	want("narrowed in CGI", `{"t1":1000,"t3":1000}`)
	if d := jsonOf[projDef](t, do(t, "GET", api+"/projections/c", nil).want(t, 200)); d.Version != 1 || string(d.Narrowing) != `{"types":["t1","t3"]}` {
		t.Errorf("definition after a narrowed rebuild: version %d narrowing %s", d.Version, d.Narrowing)
	}
	rebuild(s.url, ``)
	want("plain in the server", full)
	rebuild(s.url, `{"entity":"e1"}`)
	want("narrowed in the server", `{"t0":10,"t1":10,"t2":10,"t3":10,"t4":10}`)
	do(t, "PUT", s.url+"/projections/c", `{"kind":"counter","by":"type","filter":{"types":["t0","t1"]}}`).want(t, 200)
	want("a new version", `{"t0":1000,"t1":1000}`)
	s.kill()
	if _, errOut, code := cliRun(t, "", "rebuild", "c", "--types", "t1", "--data", s.data); code != 0 {
		t.Fatalf("strata rebuild --types: exit %d %s", code, errOut)
	}
	out, _, code := cliRun(t, "", "projection", "show", "c", "--data", s.data)
	if code != 0 || !strings.Contains(out, `"narrowing": {`) || !strings.Contains(out, `"t1"`) {
		t.Errorf("projection show: exit %d %s", code, out)
	}
	s = startServer(t, s.data)
	want("strata rebuild --types", `{"t1":1000}`)
	mustVerify(t, s.data, 5000+6) // the definitions, 4 rebuilt records
}

// TestProjectionsKeptCurrent: a standalone server keeps a projection's
// result current in the background: its status reaches the head with no
// read of the result.
func TestProjectionsKeptCurrent(t *testing.T) {
	s := startServer(t, "")
	do(t, "POST", s.url+"/projections", `{"name":"c","kind":"counter","by":"type"}`).want(t, 201)
	appendMany(t, s.url, 50000)
	h := mustHead(t, s.url)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := jsonOf[projDef](t, do(t, "GET", s.url+"/projections/c", nil).want(t, 200))
		if d.LastSeq == h.Seq && d.Processed == 50000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background worker did not catch up: %+v, head %d", d, h.Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := getResult(t, s.url, "/projections/c/result"); a.Seq != h.Seq || a.Behind {
		t.Errorf("result: %d behind %v, head %d", a.Seq, a.Behind, h.Seq)
	}
}

// TestRebuildProgress: strata rebuild draws a bar with the rate and the
// time left on a terminal, and writes plain lines (no carriage returns)
// otherwise.
func TestRebuildProgress(t *testing.T) {
	s := startServer(t, "")
	appendMany(t, s.url, 100000)
	do(t, "POST", s.url+"/projections", `{"name":"c","kind":"counter","by":"entity"}`).want(t, 201)
	s.kill()
	_, shown, wait := onTerminal(t, "rebuild", "c", "--data", s.data)
	if code := wait(); code != 0 || !strings.Contains(shown.String(), "\r") || !strings.Contains(shown.String(), "events/s") ||
		!strings.Contains(shown.String(), "ETA") || !strings.Contains(shown.String(), "rebuilt c version 1: 100002 events") {
		t.Errorf("on a terminal: exit %d; it shows:\n%q", code, shown.String())
	}
	out, errOut, code := cliRun(t, "", "rebuild", "c", "--data", s.data)
	if code != 0 || !strings.Contains(out, "rebuilt c version 1: 100003 events") || !strings.Contains(errOut, "rebuild c: ") || strings.Contains(errOut, "\r") {
		t.Errorf("not on a terminal: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := cliRun(t, "", "rebuild", "nosuch", "--data", s.data); code != 2 || !strings.Contains(errOut, "no projection") {
		t.Errorf("rebuild nosuch: exit %d %q", code, errOut)
	}
}

// TestProjectionFailed: a jq program that runs past its limits on one
// event fails its projection there — status failed with the event, reads
// 409 naming it — while the server and every other projection go on; a
// fixed definition starts it over.
func TestProjectionFailed(t *testing.T) {
	s := startServer(t, "")
	mustAppendBatch(t, s.url, `[{"type":"a","entity":"x"},{"type":"a","entity":"x"}]`)
	bad := mustAppend(t, s.url, `{"type":"boom","entity":"x"}`)
	mustAppend(t, s.url, `{"type":"a","entity":"x"}`)
	r := do(t, "POST", s.url+"/projections", `{"name":"bomb","kind":"custom","init":0,"reduce":"def f: 1 + f; if $event.type == \"boom\" then f else $state + 1 end"}`)
	if r.status == 400 {
		t.Skipf("kind custom not available: %s", r.body)
	}
	r.want(t, 201)
	do(t, "POST", s.url+"/projections", `{"name":"fine","kind":"counter","by":"type"}`).want(t, 201)
	e := do(t, "GET", s.url+"/projections/bomb/result", nil).wantError(t, 409, "projection_failed")
	if at, _ := e["failed_at"].(map[string]any); at == nil || at["seq"] != float64(bad.Seq) || at["id"] != bad.ID {
		t.Errorf("failed_at: %v, want seq %d id %s", e, bad.Seq, bad.ID)
	}
	d := jsonOf[map[string]any](t, do(t, "GET", s.url+"/projections/bomb", nil).want(t, 200))
	if d["state"] != "failed" || d["last_error"] == "" {
		t.Errorf("status of a failed projection: %v", d)
	}
	if a := getResult(t, s.url, "/projections/fine/result"); string(a.Result) != `{"a":3,"boom":1}` {
		t.Errorf("the other projection: %s", a.Result)
	}
	do(t, "PUT", s.url+"/projections/bomb", `{"kind":"custom","init":0,"reduce":"$state + 1"}`).want(t, 200)
	if a := getResult(t, s.url, "/projections/bomb/result"); string(a.Result) != `4` || a.Version != 2 {
		t.Errorf("fixed: %d %s", a.Version, a.Result)
	}
}
