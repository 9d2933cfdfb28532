package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"strata/quota"
	"strata/tenants"
)

// writeState runs a write of the entity API and checks its answer: the
// status, the state answer's shape (as GET's) and the head headers.
func writeState(t *testing.T, h *Handler, method, target, body string, status int, headers ...string) stateAnswer {
	t.Helper()
	var w *httptest.ResponseRecorder
	if body == "" {
		w = serve(h, method, target, nil, headers...)
	} else {
		w = serve(h, method, target, strings.NewReader(body), headers...)
	}
	if w.Code != status {
		t.Fatalf("%s %s %s: %d %s, want %d", method, target, body, w.Code, w.Body, status)
	}
	var s stateAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("%s %s: %v %s", method, target, err, w.Body)
	}
	if !strings.HasPrefix(w.Body.String(), `{"entity":`) || !strings.Contains(w.Body.String(), `,"version":`+fmt.Sprint(s.Version)+`,"seq":`+fmt.Sprint(s.Seq)+`,"id":"`+s.ID+`","time":"`+s.Time+`","state":`) {
		t.Errorf("%s %s: fields out of order: %s", method, target, w.Body)
	}
	if w.Header().Get("Strata-Head") != s.ID || w.Header().Get("Strata-Head-Seq") != fmt.Sprint(s.Seq) || w.Header().Get("ETag") != `"`+s.ID+`"` {
		t.Errorf("%s %s: Strata-Head %q Strata-Head-Seq %q ETag %q, body seq %d id %s", method, target,
			w.Header().Get("Strata-Head"), w.Header().Get("Strata-Head-Seq"), w.Header().Get("ETag"), s.Seq, s.ID)
	}
	if w.Header().Get("Location") != "" {
		t.Errorf("%s %s: Location %q", method, target, w.Header().Get("Location"))
	}
	return s
}

// writtenEvent is an event as GET /events shows it.
type writtenEvent struct {
	Type    string            `json:"type"`
	Entity  string            `json:"entity"`
	Version uint64            `json:"version"`
	Data    json.RawMessage   `json:"data"`
	Meta    map[string]string `json:"meta"`
}

func allEvents(t *testing.T, h *Handler) []writtenEvent {
	t.Helper()
	w := serve(h, "GET", "/events", nil)
	var evs []writtenEvent
	if err := json.Unmarshal(w.Body.Bytes(), &evs); err != nil {
		t.Fatalf("GET /events: %v %s", err, w.Body)
	}
	return evs
}

// TestEntityWrite: each verb writes one event of its default type with its
// marker and meta.by, answers the new state, and GET agrees.
func TestEntityWrite(t *testing.T) {
	h := newHandler(t, Config{})
	const e = "/entities/orders/1"
	steps := []struct {
		method, target, body string
		status               int
		state                string
		typ                  string
		meta                 map[string]string
		data                 string
	}{
		{"PUT", e, `{"a":1, "b":{"c":2}}`, 201, `{"a":1,"b":{"c":2}}`, "entity.put", map[string]string{"strata": "put", "by": "anonymous"}, `{"a":1,"b":{"c":2}}`},
		{"PATCH", e, `{"b":{"c":null,"d":3},"e":true}`, 200, `{"a":1,"b":{"d":3},"e":true}`, "entity.patched", map[string]string{"by": "anonymous"}, `{"b":{"c":null,"d":3},"e":true}`},
		{"PUT", e, `[1,2]`, 200, `[1,2]`, "entity.put", map[string]string{"strata": "put", "by": "anonymous"}, `[1,2]`},
		{"POST", e + "/revert", `{"version":2}`, 200, `{"a":1,"b":{"d":3},"e":true}`, "entity.reverted", map[string]string{"strata": "put", "by": "anonymous"}, `{"a":1,"b":{"d":3},"e":true}`},
		{"PUT", "/entities?entity=orders/1&type=order.replaced", `{"x":"y"}`, 200, `{"x":"y"}`, "order.replaced", map[string]string{"strata": "put", "by": "anonymous"}, `{"x":"y"}`},
		{"DELETE", e, "", 200, `null`, "entity.deleted", map[string]string{"strata": "delete", "by": "anonymous"}, `null`},
	}
	for i, st := range steps {
		s := writeState(t, h, st.method, st.target, st.body, st.status)
		if s.Entity != "orders/1" || s.Version != uint64(i+1) || s.Seq != uint64(i+1) || string(s.State) != st.state {
			t.Errorf("step %d %s: answered %+v, want version %d state %s", i, st.method, s, i+1, st.state)
		}
		evs := allEvents(t, h)
		if len(evs) != i+1 {
			t.Fatalf("step %d: %d events stored, want %d", i, len(evs), i+1)
		}
		ev := evs[i]
		if ev.Type != st.typ || ev.Entity != "orders/1" || fmt.Sprint(ev.Meta) != fmt.Sprint(st.meta) || !sameJSON(ev.Data, []byte(st.data)) {
			t.Errorf("step %d: stored %+v (data %s), want type %s meta %v data %s", i, ev, ev.Data, st.typ, st.meta, st.data)
		}
		if st.method != "DELETE" {
			if g := getState(t, h, e); fmt.Sprint(g) != fmt.Sprint(s) {
				t.Errorf("step %d: GET %+v, the write answered %+v", i, g, s)
			}
		}
	}
	// The deleted entity: GET answers 410; PATCH and DELETE too, storing
	// nothing; a revert restores a version; a PUT recreates.
	if w := serve(h, "GET", e, nil); w.Code != 410 {
		t.Errorf("GET after DELETE: %d %s", w.Code, w.Body)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		w := serve(h, m, e, strings.NewReader(`{"a":1}`))
		if w.Code != 410 || errorBody(t, w)["code"] != "gone" || errorBody(t, w)["version"] != 6.0 {
			t.Errorf("%s after DELETE: %d %s", m, w.Code, w.Body)
		}
	}
	if n := len(allEvents(t, h)); n != 6 {
		t.Fatalf("refused writes stored events: %d", n)
	}
	s := writeState(t, h, "POST", e+"/revert", `{"version":1}`, 200)
	if s.Version != 7 || string(s.State) != `{"a":1,"b":{"c":2}}` {
		t.Errorf("revert of a deleted entity: %+v", s)
	}
	writeState(t, h, "DELETE", e, "", 200)
	s = writeState(t, h, "PUT", e, `"back"`, 200)
	if s.Version != 9 || string(s.State) != `"back"` {
		t.Errorf("PUT after DELETE: %+v", s)
	}
	// A PATCH creates an entity with no events (201), as an appended
	// merge patch would.
	s = writeState(t, h, "PATCH", "/entities/new", `{"a":{"b":null,"c":1}}`, 201)
	if s.Version != 1 || string(s.State) != `{"a":{"c":1}}` {
		t.Errorf("PATCH of a new entity: %+v", s)
	}
}

// TestEntityRevert: by version and by event id; versions and ids that are
// not the entity's are refused and store nothing.
func TestEntityRevert(t *testing.T) {
	h := newHandler(t, Config{})
	v1 := writeState(t, h, "PUT", "/entities/a", `{"n":1}`, 201)
	writeState(t, h, "PATCH", "/entities/a", `{"n":2}`, 200)
	other := writeState(t, h, "PUT", "/entities/b", `{"n":9}`, 201)
	writeState(t, h, "DELETE", "/entities/a", "", 200)
	s := writeState(t, h, "POST", "/entities/a/revert", `{"id":"`+v1.ID+`"}`, 200)
	if s.Version != 4 || string(s.State) != `{"n":1}` {
		t.Errorf("revert by id: %+v", s)
	}
	s = writeState(t, h, "POST", "/entities/revert?entity=a&type=a.undone", `{"version":2}`, 200)
	if s.Version != 5 || string(s.State) != `{"n":2}` {
		t.Errorf("revert by version (?entity= form): %+v", s)
	}
	if evs := allEvents(t, h); evs[5].Type != "a.undone" {
		t.Errorf("revert ?type=: %+v", evs[5])
	}
	for _, c := range []struct {
		target, body string
		status       int
		code, field  string
	}{
		{"/entities/a/revert", `{"version":99}`, 404, "not_found", ""},
		{"/entities/nosuch/revert", `{"version":1}`, 404, "not_found", ""},
		{"/entities/a/revert", `{"id":"` + strings.Repeat("0", 64) + `"}`, 404, "not_found", ""},
		{"/entities/a/revert", `{"id":"` + other.ID + `"}`, 400, "invalid_body", "id"},
		{"/entities/a/revert", `{"id":"xyz"}`, 400, "invalid_body", "id"},
		{"/entities/a/revert", `{"version":3}`, 400, "invalid_body", "version"}, // the tombstone
		{"/entities/a/revert", `{"version":0}`, 400, "invalid_body", "version"},
		{"/entities/a/revert", `{"version":"1"}`, 400, "invalid_body", "version"},
		{"/entities/a/revert", `{}`, 400, "invalid_body", "version"},
		{"/entities/a/revert", `{"version":1,"id":"` + v1.ID + `"}`, 400, "invalid_body", "version"},
		{"/entities/a/revert", `{"version":1,"extra":2}`, 400, "invalid_body", "body"},
		{"/entities/a", `{"version":1}`, 404, "no_route", ""},
	} {
		w := serve(h, "POST", c.target, strings.NewReader(c.body))
		if w.Code != c.status {
			t.Errorf("POST %s %s: %d %s, want %d", c.target, c.body, w.Code, w.Body, c.status)
			continue
		}
		e := errorBody(t, w)
		if e["code"] != c.code || (c.field != "" && e["field"] != c.field) {
			t.Errorf("POST %s %s: %s, want code %s field %q", c.target, c.body, w.Body, c.code, c.field)
		}
	}
	if n := len(allEvents(t, h)); n != 6 {
		t.Errorf("refused reverts stored events: %d, want 6", n)
	}
}

// TestEntityWritePreconditions: expected_version and If-Match are checked
// with the write; a refused write stores nothing.
func TestEntityWritePreconditions(t *testing.T) {
	h := newHandler(t, Config{})
	s := writeState(t, h, "PUT", "/entities/x?expected_version=0", `{"n":1}`, 201)
	conflict := func(method, target, body string, code string, headers ...string) map[string]any {
		t.Helper()
		w := serve(h, method, target, strings.NewReader(body), headers...)
		if w.Code != 409 {
			t.Fatalf("%s %s: %d %s, want 409", method, target, w.Code, w.Body)
		}
		e := errorBody(t, w)
		if e["code"] != code {
			t.Errorf("%s %s: %s, want %s", method, target, w.Body, code)
		}
		return e
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE", "POST"} {
		target, body := "/entities/x?expected_version=0", `{"n":2}`
		if m == "POST" {
			target, body = "/entities/x/revert?expected_version=0", `{"version":1}`
		}
		if e := conflict(m, target, body, "version_conflict"); e["current_version"] != 1.0 || e["expected_version"] != 0.0 {
			t.Errorf("%s: %v", m, e)
		}
		conflict(m, strings.Replace(target, "?expected_version=0", "", 1), body, "head_conflict", "If-Match", `"`+strings.Repeat("0", 64)+`"`)
	}
	if n := len(allEvents(t, h)); n != 1 {
		t.Fatalf("refused writes stored %d events", n)
	}
	s = writeState(t, h, "PATCH", "/entities/x?expected_version=1", `{"n":2}`, 200, "If-Match", `"`+s.ID+`"`)
	s = writeState(t, h, "DELETE", "/entities/x?expected_version=2", "", 200, "If-Match", `"`+s.ID+`"`)
	// A deleted entity: PATCH with a stale expected_version is a conflict;
	// with the current one it is gone.
	conflict("PATCH", "/entities/x?expected_version=2", `{}`, "version_conflict")
	if w := serve(h, "PATCH", "/entities/x?expected_version=3", strings.NewReader(`{}`)); w.Code != 410 {
		t.Errorf("PATCH of a deleted entity: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "DELETE", "/entities/nosuch", nil); w.Code != 404 || errorBody(t, w)["code"] != "not_found" {
		t.Errorf("DELETE of an entity with no events: %d %s", w.Code, w.Body)
	}
	if n := len(allEvents(t, h)); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}

// TestEntityWriteRefusals: bad requests answer 400 naming what is wrong,
// and store nothing.
func TestEntityWriteRefusals(t *testing.T) {
	h := newHandler(t, Config{MaxEvent: 100})
	for _, c := range []struct {
		method, target, body string
		status               int
		code, name           string
	}{
		{"PUT", "/entities/x", `{"a":`, 400, "invalid_body", "field=body"},
		{"PATCH", "/entities/x", `{"a":1} {}`, 400, "invalid_body", "field=body"},
		{"PUT", "/entities/x?type=Bad%20Type", `{}`, 400, "invalid_parameter", "parameter=type"},
		{"PUT", "/entities/x?expected_version=-1", `{}`, 400, "invalid_parameter", "parameter=expected_version"},
		{"PUT", "/entities/x?meta=1", `{}`, 400, "invalid_parameter", "parameter=meta"},
		{"PUT", "/entities", `{}`, 400, "invalid_parameter", "parameter=entity"},
		{"PUT", "/entities/x?entity=y", `{}`, 400, "invalid_parameter", "parameter=entity"},
		{"PUT", "/entities/a%01b", `{}`, 400, "invalid_parameter", "parameter=entity"},
		{"PUT", "/entities/x", `{"big":"` + strings.Repeat("x", 200) + `"}`, 413, "event_too_large", ""},
		{"PUT", "/entities/x", ``, 400, "empty_body", "Content-Length"},
		{"PUT", "/entities/x", `{}`, 400, "invalid_if_match", "If-Match"},
		{"PUT", "/entities/x", `{}`, 415, "unsupported_media_type", "Content-Type"},
	} {
		var headers []string
		switch c.name {
		case "If-Match":
			headers = []string{"If-Match", `"nothex"`}
		case "Content-Length":
			headers = []string{"Content-Length", "0"}
		case "Content-Type":
			headers = []string{"Content-Type", "application/x-ndjson"}
		}
		w := serve(h, c.method, c.target, strings.NewReader(c.body), headers...)
		if w.Code != c.status {
			t.Errorf("%s %s %.40s: %d %s, want %d", c.method, c.target, c.body, w.Code, w.Body, c.status)
			continue
		}
		e := errorBody(t, w)
		if e["code"] != c.code {
			t.Errorf("%s %s: %s, want %s", c.method, c.target, w.Body, c.code)
		}
		if k, v, ok := strings.Cut(c.name, "="); ok && e[k] != v {
			t.Errorf("%s %s: %s, want %s %q", c.method, c.target, w.Body, k, v)
		}
	}
	if n := len(allEvents(t, h)); n != 0 {
		t.Errorf("refused writes stored %d events", n)
	}
}

// TestEntityWriteMetaBy: with accounts, meta.by is the writer, and a
// reader may not write.
func TestEntityWriteMetaBy(t *testing.T) {
	f := newAuthHandler(t, Config{})
	if w := f.do("PUT", "/entities/x", `{"a":1}`, tok(f.tokens["own/writer"])...); w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := f.do("PATCH", "/entities/x", `{"a":2}`, tok(f.tokens["own/reader"])...); w.Code != 403 {
		t.Errorf("a reader patched: %d %s", w.Code, w.Body)
	}
	w := f.do("GET", "/events", "", tok(f.tokens["own/reader"])...)
	var evs []writtenEvent
	json.Unmarshal(w.Body.Bytes(), &evs)
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Meta["by"], "token:") || evs[0].Meta["strata"] != "put" {
		t.Errorf("events %s", w.Body)
	}
}

// TestEntityPatchConcurrent: PATCHes without expected_version from two
// writers at once all land (a PATCH that lost the race to the other reads
// again), and the state has every member.
func TestEntityPatchConcurrent(t *testing.T) {
	// With fsync on, as in production: an append's version check sees a
	// group being synced before readers do, which a retry must wait out.
	h := New(Config{DataDir: t.TempDir(), NoAuth: true})
	t.Cleanup(func() { h.Close() })
	const per = 10
	done := make(chan string, 2*per)
	for g := range 2 {
		go func() {
			for i := range per {
				w := serve(h, "PATCH", "/entities/c", strings.NewReader(fmt.Sprintf(`{"m%d_%d":1}`, g, i)))
				if w.Code != 200 && w.Code != 201 {
					done <- fmt.Sprintf("%d %s", w.Code, w.Body)
					continue
				}
				done <- ""
			}
		}()
	}
	for range 2 * per {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
	s := getState(t, h, "/entities/c")
	var m map[string]int
	if err := json.Unmarshal(s.State, &m); err != nil || len(m) != 2*per || s.Version != 2*per {
		t.Errorf("state %s version %d, want %d members and versions", s.State, s.Version, 2*per)
	}
}

// TestEntityWriteQuotaAudit: the entity API's events count against the
// tier's events per day, checked with the write (a refused write stores
// nothing), and are audited like appends when the server is told to.
func TestEntityWriteQuotaAudit(t *testing.T) {
	f := newAuthHandler(t, Config{AuditAppends: true})
	if _, err := f.svc.UpdateTenant("own", "quota.update", nil, func(c *tenants.Config) error {
		c.Tier = "unlimited"
		two := int64(2)
		c.Quota = quota.Overrides{EventsPerDay: &two}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.h.forget("own")
	writer := tok(f.tokens["own/writer"])
	if w := f.do("PUT", "/entities/x", `{"a":1}`, writer...); w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := f.do("PATCH", "/entities/x", `{"b":2}`, writer...); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		w := f.do(m, "/entities/x", `{"c":3}`, writer...)
		if w.Code != 429 || !strings.Contains(w.Body.String(), `"quota":"events_per_day"`) {
			t.Errorf("%s over events_per_day: %d %s", m, w.Code, w.Body)
		}
	}
	w := f.do("GET", "/entities/x", "", writer...)
	if !strings.Contains(w.Body.String(), `"version":2,`) {
		t.Errorf("after refused writes: %s", w.Body)
	}
	w = f.do("GET", "/audit?tenant=own", "", tok(f.tokens["own/admin"])...)
	for _, a := range []string{"entities.put", "entities.patch"} {
		if strings.Count(w.Body.String(), `"type":"`+a+`"`) != 1 {
			t.Errorf("no one %s audit record: %s", a, w.Body)
		}
	}
}
