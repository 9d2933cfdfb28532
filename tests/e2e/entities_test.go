package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEntityStateEverywhere: the fixed log of testdata/entities.ndjson,
// read back as entity states, time travel and history by the real binary,
// standalone and in CGI on the same data, which must answer alike.
func TestEntityStateEverywhere(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	raw, err := os.ReadFile("../../testdata/entities.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var rcs []receipt
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		rcs = append(rcs, mustAppend(t, s.url, line))
	}
	requestID := regexp.MustCompile(`"request_id":"[^"]*"`)
	// get asks both servers and checks that they answer alike.
	get := func(target string) *response {
		t.Helper()
		r1 := do(t, "GET", s.url+target, nil)
		r2 := do(t, "GET", c.URL+"/api"+target, nil)
		b1, b2 := requestID.ReplaceAll(r1.body, nil), requestID.ReplaceAll(r2.body, nil)
		if r1.status != r2.status || !bytes.Equal(b1, b2) || r1.header.Get("Strata-Head") != r2.header.Get("Strata-Head") || r1.header.Get("Link") != r2.header.Get("Link") {
			t.Errorf("GET %s: standalone %s, CGI %s", target, r1, r2)
		}
		return r1
	}
	books := []string{ // books/42 after each version; rcs index of each
		`{"title":"Dune","tags":["sf"],"year":1965}`,
		`{"author":{"name":"Herbert"},"tags":["sf"],"title":"Dune"}`,
		`[1,2]`,
		`null`,
		`{"a":{"b":1}}`,
	}
	at := []int{0, 2, 3, 4, 5}
	canon := func(b []byte) string {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return "invalid: " + string(b)
		}
		out, _ := json.Marshal(v)
		return string(out)
	}
	for v := 1; v <= 5; v++ {
		rc := rcs[at[v-1]]
		for _, target := range []string{
			fmt.Sprintf("/entities/books/42?version=%d", v),
			fmt.Sprintf("/entities?entity=books/42&seq=%d", rc.Seq),
			"/entities/books/42?at=" + rc.ID,
			"/entities/books/42?as_of=" + url.QueryEscape(rc.Time),
		} {
			r := get(target).want(t, 200)
			st := decode[entityState](t, r.body)
			if st.Entity != "books/42" || st.Version != uint64(v) || st.Seq != rc.Seq || st.ID != rc.ID || st.Time != rc.Time || canon(st.State) != canon([]byte(books[v-1])) || r.header.Get("Strata-Head") != rc.ID || r.header.Get("Strata-Head-Seq") != fmt.Sprint(rc.Seq) {
				t.Errorf("GET %s: %s (Strata-Head %s), want version %d state %s", target, r.body, r.header.Get("Strata-Head"), v, books[v-1])
			}
		}
	}
	if st := decode[entityState](t, get("/entities/books/42").want(t, 200).body); st.Version != 5 {
		t.Errorf("current state: %+v", st)
	}
	if st := decode[entityState](t, get("/entities/books/42?at="+rcs[1].ID).want(t, 200).body); st.Version != 1 {
		t.Errorf("as of another entity's event: %+v", st)
	}
	if st := decode[entityState](t, get("/entities?entity=x/history").want(t, 200).body); st.Entity != "x/history" || string(st.State) != `{"h":1}` {
		t.Errorf("x/history by ?entity=: %+v", st)
	}
	e := get("/entities/gone/1").wantError(t, 410, "gone")
	if e["version"] != 2.0 || e["id"] != rcs[9].ID {
		t.Errorf("deleted entity: %v", e)
	}
	get("/entities/nosuch").wantError(t, 404, "not_found")
	get("/entities/books/42?version=6").wantError(t, 404, "not_found")
	get("/entities/books/42?at="+strings.Repeat("ab", 32)).wantError(t, 404, "not_on_chain")
	if e := get("/entities/books/42?seq=1&as_of="+url.QueryEscape(rcs[0].Time)).wantError(t, 400, "invalid_parameter"); e["parameter"] != "as_of" {
		t.Errorf("two points: %v", e)
	}
	if e := get("/entities/books/42?version=x").wantError(t, 400, "invalid_parameter"); e["parameter"] != "version" {
		t.Errorf("bad version: %v", e)
	}
	// Diff, both forms.
	type diff struct {
		Entity   string `json:"entity"`
		From, To uint64
		Seq      uint64          `json:"seq"`
		ID       string          `json:"id"`
		Time     string          `json:"time"`
		Exact    bool            `json:"exact"`
		Patch    json.RawMessage `json:"patch"`
	}
	if d := decode[diff](t, get("/entities/diff?entity=books/42&from=4&to=5").want(t, 200).body); d.From != 4 || d.To != 5 || !d.Exact || d.ID != rcs[5].ID || canon(d.Patch) != canon([]byte(`{"a":{"b":1}}`)) {
		t.Errorf("diff 4→5: %+v", d)
	}
	if d := decode[diff](t, get("/entities/books/42/diff?from=1&to=2").want(t, 200).body); canon(d.Patch) != canon([]byte(`{"year":null,"author":{"name":"Herbert"}}`)) {
		t.Errorf("diff 1→2: %+v %s", d, d.Patch)
	}
	// History, two versions a page, following Link.
	type version struct {
		Version uint64          `json:"version"`
		Deleted bool            `json:"deleted"`
		State   json.RawMessage `json:"state"`
		Event   event           `json:"event"`
	}
	var hist []version
	next := "?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("history does not end")
		}
		r := get("/entities/books/42/history"+next).want(t, 200)
		hist = append(hist, decode[[]version](t, r.body)...)
		next = nextLink(t, r.header)
	}
	if len(hist) != 5 {
		t.Fatalf("history: %d versions", len(hist))
	}
	for i, v := range hist {
		if v.Version != uint64(i+1) || v.Event.ID != rcs[at[i]].ID || canon(v.State) != canon([]byte(books[i])) {
			t.Errorf("history version %d: %+v", i+1, v)
		}
	}
}
