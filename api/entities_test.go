package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// entityLog is the fixed log of ../testdata/entities.ndjson, one event
// per append (so that times differ where the clock moves): books/42
// through five versions of every kind of data, an entity named like a
// sub-resource, and one deleted.
func entityLog(t *testing.T) []string {
	b, err := os.ReadFile("../testdata/entities.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// books42 is the state of books/42 after each version (RFC 7386).
var books42 = []string{
	`{"title":"Dune","year":1965,"tags":["sf"]}`,
	`{"title":"Dune","tags":["sf"],"author":{"name":"Herbert"}}`,
	`[1,2]`,
	`null`,
	`{"a":{"b":1}}`,
}

type stateAnswer struct {
	Entity  string          `json:"entity"`
	Version uint64          `json:"version"`
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Time    string          `json:"time"`
	State   json.RawMessage `json:"state"`
}

type storedEvent struct {
	ID      string `json:"id"`
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Entity  string `json:"entity"`
	Version uint64 `json:"version"`
}

// newEntityLog is a handler over entityLog and its events as stored.
func newEntityLog(t *testing.T) (*Handler, []storedEvent) {
	t.Helper()
	h := newHandler(t, Config{})
	lines := entityLog(t)
	for _, ev := range lines {
		if w := serve(h, "PUT", "/events", strings.NewReader(ev)); w.Code != 201 && w.Code != 200 {
			t.Fatalf("append %s: %d %s", ev, w.Code, w.Body)
		}
	}
	w := serve(h, "GET", "/events", nil)
	var evs []storedEvent
	if err := json.Unmarshal(w.Body.Bytes(), &evs); err != nil || len(evs) != len(lines) {
		t.Fatalf("read back: %v %s", err, w.Body)
	}
	return h, evs
}

// sameJSON reports whether a and b are the same JSON value, key order aside.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func getState(t *testing.T, h *Handler, target string) stateAnswer {
	t.Helper()
	w := serve(h, "GET", target, nil)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	var s stateAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("GET %s: %v %s", target, err, w.Body)
	}
	if !strings.HasPrefix(w.Body.String(), `{"entity":`) || !strings.Contains(w.Body.String(), `,"version":`+fmt.Sprint(s.Version)+`,"seq":`+fmt.Sprint(s.Seq)+`,"id":"`+s.ID+`","time":"`+s.Time+`","state":`) {
		t.Errorf("GET %s: fields out of order: %s", target, w.Body)
	}
	if w.Header().Get("Strata-Head") != s.ID || w.Header().Get("Strata-Head-Seq") != fmt.Sprint(s.Seq) {
		t.Errorf("GET %s: Strata-Head %q Strata-Head-Seq %q, body seq %d id %s", target, w.Header().Get("Strata-Head"), w.Header().Get("Strata-Head-Seq"), s.Seq, s.ID)
	}
	return s
}

func TestEntityState(t *testing.T) {
	h, evs := newEntityLog(t)
	var b42 []storedEvent // books/42's events, by version
	for _, e := range evs {
		if e.Entity == "books/42" {
			b42 = append(b42, e)
		}
	}
	check := func(target string, version int) {
		t.Helper()
		s := getState(t, h, target)
		want := b42[version-1]
		if s.Entity != "books/42" || s.Version != uint64(version) || s.Seq != want.Seq || s.ID != want.ID || s.Time != want.Time || !sameJSON(s.State, []byte(books42[version-1])) {
			t.Errorf("GET %s = %+v (state %s), want version %d %+v state %s", target, s, s.State, version, want, books42[version-1])
		}
	}
	check("/entities/books/42", 5)
	check("/entities?entity=books/42", 5)
	check("/entities?entity="+url.QueryEscape("books/42"), 5)
	for v := 1; v <= 5; v++ {
		check(fmt.Sprintf("/entities/books/42?version=%d", v), v)
		check("/entities/books/42?seq="+fmt.Sprint(b42[v-1].Seq), v)
		check("/entities/books/42?at="+b42[v-1].ID, v)
	}
	// A seq or an event of another entity between two versions: the
	// version before it.
	check("/entities/books/42?seq=2", 1)
	check("/entities/books/42?at="+evs[1].ID, 1)
	check("/entities/books/42?seq=9", 5)
	check("/entities/books/42?seq=99999", 5)
	// as_of: the last version at or before the time.
	for _, e := range evs {
		ts, _ := time.Parse(time.RFC3339Nano, e.Time)
		for _, at := range []time.Time{ts, ts.Add(-time.Nanosecond)} {
			want := 0
			for v, b := range b42 {
				if bt, _ := time.Parse(time.RFC3339Nano, b.Time); !bt.After(at) {
					want = v + 1
				}
			}
			target := "/entities/books/42?as_of=" + url.QueryEscape(at.Format(time.RFC3339Nano))
			if want == 0 {
				w := serve(h, "GET", target, nil)
				if e := errorBody(t, w); w.Code != 404 || e["code"] != "not_found" {
					t.Errorf("GET %s: %d %s, want 404 not_found", target, w.Code, w.Body)
				}
				continue
			}
			check(target, want)
		}
	}
	// An entity named like a sub-resource, by ?entity=; the path form
	// is the history of "x".
	if s := getState(t, h, "/entities?entity=x/history"); s.Entity != "x/history" || string(s.State) != `{"h":1}` {
		t.Errorf("x/history: %+v", s)
	}
	if w := serve(h, "GET", "/entities/x/history", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"plain":true`) {
		t.Errorf("GET /entities/x/history: %d %s, want the history of x", w.Code, w.Body)
	}
	// A deleted entity: 410 with its last version.
	w := serve(h, "GET", "/entities/gone/1", nil)
	e := errorBody(t, w)
	if w.Code != 410 || e["code"] != "gone" || e["version"] != 2.0 || e["id"] != evs[9].ID || e["seq"] != 10.0 || w.Header().Get("Strata-Head") != evs[9].ID {
		t.Errorf("deleted entity: %d %s", w.Code, w.Body)
	}
	if s := getState(t, h, "/entities/gone/1?version=1"); string(s.State) != `{"a":1}` {
		t.Errorf("deleted entity before its deletion: %+v", s)
	}

	for _, c := range []struct {
		target string
		status int
		code   string
		param  string
	}{
		{"/entities/nosuch", 404, "not_found", ""},
		{"/entities/books/42?version=6", 404, "not_found", ""},
		{"/entities/nosuch?version=1", 404, "not_found", ""},
		{"/entities/books/42?seq=0", 404, "not_found", ""},
		{"/entities/books/42?seq=1&version=1", 400, "invalid_parameter", "seq"},
		{"/entities/books/42?as_of=2026-01-01T00:00:00Z&at=" + evs[0].ID, 400, "invalid_parameter", "as_of"},
		{"/entities/books/42?version=0", 400, "invalid_parameter", "version"},
		{"/entities/books/42?version=x", 400, "invalid_parameter", "version"},
		{"/entities/books/42?seq=-1", 400, "invalid_parameter", "seq"},
		{"/entities/books/42?at=abc", 400, "invalid_parameter", "at"},
		{"/entities/books/42?at=" + strings.Repeat("0", 64), 404, "not_on_chain", ""},
		{"/entities/books/42?as_of=yesterday", 400, "invalid_parameter", "as_of"},
		{"/entities/books/42?limit=1", 400, "invalid_parameter", "limit"},
		{"/entities?where=.a%20|", 400, "invalid_parameter", "where"},
		{"/entities?where=def%20f:%20f%3B%20f", 400, "invalid_parameter", "where"},
		{"/entities?limit=0", 400, "invalid_parameter", "limit"},
		{"/entities?version=1", 400, "invalid_parameter", "version"},
		{"/entities?entity=", 400, "invalid_parameter", "entity"},
		{"/entities/books/42?entity=books/42", 400, "invalid_parameter", "entity"},
		{"/entities/", 404, "no_route", ""},
		{"/entities/books/42/history?version=1", 400, "invalid_parameter", "version"},
		{"/entities/books/42/history?limit=0", 400, "invalid_parameter", "limit"},
		{"/entities/books/42/history?after=x", 400, "invalid_parameter", "after"},
		{"/entities/nosuch/history", 404, "not_found", ""},
	} {
		w := serve(h, "GET", c.target, nil)
		e := errorBody(t, w)
		if w.Code != c.status || e["code"] != c.code || (c.param != "" && e["parameter"] != c.param) {
			t.Errorf("GET %s: %d %s, want %d %s naming %q", c.target, w.Code, w.Body, c.status, c.code, c.param)
		}
	}
	_ = serve(h, "GET", "/entities?_=1&entity=e", nil)
}

func TestEntityHistory(t *testing.T) {
	h, evs := newEntityLog(t)
	type version struct {
		Version uint64          `json:"version"`
		Deleted bool            `json:"deleted"`
		State   json.RawMessage `json:"state"`
		Event   storedEvent     `json:"event"`
	}
	var got []version
	target := "/entities/books/42/history?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("history does not end")
		}
		w := serve(h, "GET", target, nil)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		var page []version
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatalf("GET %s: %v %s", target, err, w.Body)
		}
		if last := page[len(page)-1]; w.Header().Get("Strata-Head") != last.Event.ID {
			t.Errorf("GET %s: Strata-Head %q, last event %s", target, w.Header().Get("Strata-Head"), last.Event.ID)
		}
		got = append(got, page...)
		target = ""
		if link := w.Header().Get("Link"); link != "" {
			q := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			target = "/entities/books/42/history" + q
		}
	}
	if len(got) != 5 {
		t.Fatalf("history has %d versions, want 5", len(got))
	}
	i := 0
	for _, e := range evs {
		if e.Entity != "books/42" {
			continue
		}
		if v := got[i]; v.Version != uint64(i+1) || v.Event.ID != e.ID || !sameJSON(v.State, []byte(books42[i])) {
			t.Errorf("history version %d: %+v (state %s), want event %s state %s", i+1, v, v.State, e.ID, books42[i])
		}
		i++
	}
	// Past the last version: an empty page; a deletion is marked.
	if w := serve(h, "GET", "/entities/books/42/history?after=5", nil); w.Code != 200 || w.Body.String() != "[]\n" || w.Header().Get("Link") != "" {
		t.Errorf("history after the last version: %d %s", w.Code, w.Body)
	}
	w := serve(h, "GET", "/entities/history?entity=gone/1&after=1", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `[{"version":2,"deleted":true,"state":null,"event":{`) {
		t.Errorf("history of a deleted entity: %d %s", w.Code, w.Body)
	}
}

func TestEntityDiff(t *testing.T) {
	h, evs := newEntityLog(t)
	for _, c := range []struct {
		from, to string
		patch    string
		toV      int
	}{
		{"1", "2", `{"year":null,"author":{"name":"Herbert"}}`, 2},
		{"2", "3", `[1,2]`, 3},
		{"3", "4", `null`, 4},
		{"4", "5", `{"a":{"b":1}}`, 5},
		{"0", "1", books42[0], 1},
		{"5", "5", `{}`, 5},
		{"2", "", `{"a":{"b":1},"title":null,"tags":null,"author":null}`, 5},
	} {
		target := "/entities/books/42/diff?from=" + c.from
		if c.to != "" {
			target += "&to=" + c.to
		}
		w := serve(h, "GET", target, nil)
		var d struct {
			Entity   string `json:"entity"`
			From, To int
			Seq      uint64          `json:"seq"`
			ID       string          `json:"id"`
			Patch    json.RawMessage `json:"patch"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &d) != nil {
			t.Errorf("GET %s: %d %s", target, w.Code, w.Body)
			continue
		}
		var want storedEvent
		for _, e := range evs {
			if e.Entity == "books/42" && e.Version == uint64(c.toV) {
				want = e
			}
		}
		if d.Entity != "books/42" || d.To != c.toV || d.Seq != want.Seq || d.ID != want.ID || w.Header().Get("Strata-Head") != want.ID || !sameJSON(d.Patch, []byte(c.patch)) {
			t.Errorf("GET %s: %s, want patch %s to version %d", target, w.Body, c.patch, c.toV)
		}
	}
	for _, c := range []struct {
		target, code, param string
		status              int
	}{
		{"/entities/books/42/diff?from=3&to=2", "invalid_parameter", "from", 400},
		{"/entities/books/42/diff?to=2", "invalid_parameter", "from", 400},
		{"/entities/books/42/diff?from=x", "invalid_parameter", "from", 400},
		{"/entities/books/42/diff?from=1&to=0", "invalid_parameter", "to", 400},
		{"/entities/books/42/diff?from=1&to=9", "not_found", "", 404},
		{"/entities/books/42/diff?from=7", "not_found", "", 404},
		{"/entities/nosuch/diff?from=0", "not_found", "", 404},
	} {
		w := serve(h, "GET", c.target, nil)
		e := errorBody(t, w)
		if w.Code != c.status || e["code"] != c.code || (c.param != "" && e["parameter"] != c.param) {
			t.Errorf("GET %s: %d %s, want %d %s naming %q", c.target, w.Code, w.Body, c.status, c.code, c.param)
		}
	}
}
