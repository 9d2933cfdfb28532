package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cacheTargets are the reads whose answers must not depend on which
// caches exist: states, time travel, history and diffs through snapshots,
// and searches through the state index.
var cacheTargets = []string{
	"/entities/books/42",
	"/entities/books/42?version=2",
	"/entities/books/42?version=3",
	"/entities/long",
	"/entities/long?version=1",
	"/entities/long?version=127",
	"/entities/long?version=128",
	"/entities/long?version=129",
	"/entities/long?version=641",
	"/entities?entity=long&seq=300",
	"/entities/long/history?after=250&limit=5",
	"/entities/long/diff?from=100&to=650",
	"/entities/gone/1",
	"/entities?prefix=books/",
	"/entities?prefix=x",
	"/entities?limit=2",
	"/entities?limit=2&after=e",
	"/entities?prefix=&after=long",
}

// longEvents is NDJSON of n events of entity "long", each merging a few
// members, with an event of "noise" after every third.
func longEvents(n int) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, `{"type":"long.changed","entity":"long","data":{"n":%d,"k%d":%d,"s":"s%d"}}`+"\n", i, i%7, i, i%3)
		if i%3 == 0 {
			fmt.Fprintf(&sb, `{"type":"noise","entity":"noise/%d","data":{"x":%d}}`+"\n", i%5, i)
		}
	}
	return sb.String()
}

var requestIDField = regexp.MustCompile(`"request_id":"[^"]*"`)

// answers reads every cache target from base and returns what each
// answered: status, Strata-Head, Link and body (without request ids).
func answers(t *testing.T, base string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, target := range cacheTargets {
		r := do(t, "GET", base+target, nil)
		out[target] = fmt.Sprintf("%d %s %s %s", r.status, r.header.Get("Strata-Head"), r.header.Get("Link"), requestIDField.ReplaceAll(r.body, nil))
	}
	return out
}

func sameAnswers(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, target := range cacheTargets {
		if got[target] != want[target] {
			t.Errorf("%s: GET %s:\n got  %s\n want %s", what, target, got[target], want[target])
		}
	}
}

// TestSnapshotsAndIndexEverywhere: the golden log of
// testdata/entities.ndjson plus an entity of 700 versions answers the
// same states, time travel, history, diffs and searches from scratch, from
// snapshots, from warm caches, after every cache is deleted, after caches
// torn and a server killed (kill -9) while writing them, and in CGI and
// standalone on the same data; snapshots and searches answer their golden
// values.
func TestSnapshotsAndIndexEverywhere(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	env := "STRATA_SNAPSHOT_EVERY=2"
	s := startServer(t, data, "--snapshot-every", "2")
	c := cgiServer(t, data, env)
	cgi := c.URL + "/api"
	raw, err := os.ReadFile("../../testdata/entities.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var rcs []receipt
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		rcs = append(rcs, mustAppend(t, s.url, line))
	}
	do(t, "POST", s.url+"/events", longEvents(700), "Content-Type", "application/x-ndjson").want(t, 201)
	cache := filepath.Join(data, "tenants", "default", "cache")
	if _, err := os.Stat(cache); err == nil {
		t.Fatalf("appends made caches: %s exists", cache)
	}

	scratch := answers(t, s.url) // nothing cached yet: folded from the first events
	// Golden: the exact answers of a few.
	for target, want := range map[string]string{
		"/entities/books/42":         `{"entity":"books/42","version":5,"seq":` + fmt.Sprint(rcs[5].Seq) + `,"id":"` + rcs[5].ID + `","time":"` + rcs[5].Time + `","state":{"a":{"b":1}}}`,
		"/entities/long?version=129": `"state":{"n":129,"k1":127,"s":"s0","k2":128,"k3":129,"k4":123,"k5":124,"k6":125,"k0":126}}`,
		"/entities?prefix=x":         `[{"entity":"x","version":1,"seq":8,"id":"` + rcs[7].ID + `","time":"` + rcs[7].Time + `","state":{"plain":true}},{"entity":"x/history","version":1,"seq":7,"id":"` + rcs[6].ID + `","time":"` + rcs[6].Time + `","state":{"h":1}}]`,
	} {
		if !strings.Contains(scratch[target], want) {
			t.Errorf("GET %s: %s\nwant it to hold %s", target, scratch[target], want)
		}
	}
	var page []entityState
	json.Unmarshal([]byte(scratch["/entities?limit=2"][strings.Index(scratch["/entities?limit=2"], "["):]), &page)
	if len(page) != 2 || page[0].Entity != "books/42" || page[1].Entity != "e" || !strings.Contains(scratch["/entities?limit=2"], `<?after=e&limit=2>; rel="next"`) {
		t.Errorf("first page of every entity: %s", scratch["/entities?limit=2"])
	}
	if a := scratch["/entities?prefix=&after=long"]; !strings.Contains(a, `"entity":"noise/0"`) || strings.Contains(a, `"entity":"gone/1"`) || strings.Contains(a, `"entity":"long"`) {
		t.Errorf("entities after long: %s", a)
	}

	type snap struct {
		Entity  string          `json:"entity"`
		Version uint64          `json:"version"`
		Seq     uint64          `json:"seq"`
		ID      string          `json:"id"`
		Time    string          `json:"time"`
		Created string          `json:"created"`
		Kind    string          `json:"kind"`
		Reducer string          `json:"reducer"`
		Size    int             `json:"size"`
		Stored  int             `json:"stored"`
		Deleted bool            `json:"deleted"`
		State   json.RawMessage `json:"state"`
	}
	// The reads wrote automatic snapshots every 2 versions of books/42.
	list := decode[[]snap](t, do(t, "GET", s.url+"/snapshots?entity=books/42", nil).want(t, 200).body)
	if len(list) != 2 || list[0].Version != 2 || list[0].ID != rcs[2].ID || list[0].Kind != "auto" || list[1].Version != 4 || list[1].Time != rcs[4].Time || list[1].Size != 4 {
		t.Errorf("automatic snapshots of books/42: %+v", list)
	}

	sameAnswers(t, "warm standalone", answers(t, s.url), scratch)
	sameAnswers(t, "warm CGI", answers(t, cgi), scratch)

	// On demand: one entity, then every entity.
	m := decode[snap](t, do(t, "POST", cgi+"/snapshots", `{"entity":"books/42"}`, "Content-Type", "application/json").want(t, 201).body)
	if m.Version != 5 || m.Kind != "manual" || m.ID != rcs[5].ID {
		t.Errorf("manual snapshot: %+v", m)
	}
	l := decode[snap](t, do(t, "GET", s.url+"/snapshots/books/42/latest", nil).want(t, 200).body)
	if l.Version != 5 || l.Kind != "manual" || string(l.State) != `{"a":{"b":1}}` {
		t.Errorf("latest snapshot: %+v %s", l, l.State)
	}
	do(t, "GET", s.url+"/snapshots/nosuch/latest", nil).wantError(t, 404, "not_found")
	do(t, "GET", s.url+"/snapshots", nil).wantError(t, 400, "invalid_parameter")
	do(t, "POST", s.url+"/snapshots", `{"entity":"nosuch"}`, "Content-Type", "application/json").wantError(t, 404, "not_found")
	do(t, "POST", s.url+"/snapshots", `{"entity":"x","all":true}`, "Content-Type", "application/json").wantError(t, 400, "invalid_body")
	do(t, "POST", s.url+"/snapshots", `[1]`, "Content-Type", "application/json").wantError(t, 400, "invalid_body")
	type all struct {
		Snapshots []snap `json:"snapshots"`
		Next      string `json:"next"`
	}
	got := decode[all](t, do(t, "POST", cgi+"/snapshots", `{}`, "Content-Type", "application/json").want(t, 200).body)
	var names []string
	for _, x := range got.Snapshots {
		names = append(names, x.Entity)
	}
	if fmt.Sprint(names) != "[books/42 e long noise/0 noise/1 noise/2 noise/3 noise/4 x x/history]" || got.Next != "" {
		t.Errorf("snapshot of every entity: %v next %q", names, got.Next)
	}
	sameAnswers(t, "after manual snapshots", answers(t, s.url), scratch)

	// From snapshots alone: the latest-state caches and the index gone.
	filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (fi.Name() == "latest.snap" || fi.Name() == "index") {
			os.Remove(p)
		}
		return nil
	})
	sameAnswers(t, "from snapshots, CGI", answers(t, cgi), scratch)

	// Every cache deleted.
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, "no caches, CGI", answers(t, cgi), scratch)
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, "no caches, standalone", answers(t, s.url), scratch)

	// Torn caches, as a crash in the middle of a write can leave them when
	// the rename reached the disk and the data did not: each file cut to
	// half, or empty.
	for _, cut := range []func(int64) int64{func(n int64) int64 { return n / 2 }, func(int64) int64 { return 0 }} {
		filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				os.Truncate(p, cut(fi.Size()))
			}
			return nil
		})
		sameAnswers(t, "torn caches, CGI", answers(t, cgi), scratch)
		sameAnswers(t, "torn caches, standalone", answers(t, s.url), scratch)
	}

	// kill -9 while the caches are being written: a server reading
	// everything from scratch, killed at a few points of its work.
	s.kill()
	for _, delay := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		os.RemoveAll(cache)
		k := startServer(t, data, "--snapshot-every", "2")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, target := range cacheTargets {
				if _, err := try("GET", k.url+target, nil); err != nil {
					return // killed
				}
			}
		}()
		time.Sleep(delay)
		k.kill()
		<-done
	}
	s = startServer(t, data, "--snapshot-every", "2")
	sameAnswers(t, "after kill -9, standalone", answers(t, s.url), scratch)
	sameAnswers(t, "after kill -9, CGI", answers(t, cgi), scratch)
	sameAnswers(t, "after kill -9, warm", answers(t, s.url), scratch)

	// A server with snapshots off answers alike, from whatever is there.
	off := cgiServer(t, data, "STRATA_SNAPSHOT_EVERY=0")
	sameAnswers(t, "snapshots off, CGI", answers(t, off.URL+"/api"), scratch)
}

// TestEntitySearchWhere: where= keeps the states a jq condition holds
// for, standalone and in CGI alike; a program that does not compile is a
// 400 with jq's message, one that fails on a state leaves it out, one that
// loops is stopped and named.
func TestEntitySearchWhere(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	var sb strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&sb, `{"type":"order.placed","entity":"orders/%02d","data":{"total":%d,"status":%q}}`+"\n", i, i*10, []string{"open", "paid"}[i%2])
	}
	sb.WriteString(`{"type":"t","entity":"orders/text","data":"a string state"}` + "\n")
	sb.WriteString(`{"type":"t","entity":"other","data":{"total":1000,"status":"paid"}}` + "\n")
	do(t, "POST", s.url+"/events", sb.String(), "Content-Type", "application/x-ndjson").want(t, 201)
	for _, base := range []string{s.url, c.URL + "/api"} {
		var got []string
		next := "?prefix=orders/&limit=4&where=" + url.QueryEscape(`.status == "paid" and .total >= 300`)
		for pages := 0; next != ""; pages++ {
			if pages > 20 {
				t.Fatal("no end to the pages")
			}
			r := do(t, "GET", base+"/entities"+next, nil).want(t, 200)
			for _, st := range decode[[]entityState](t, r.body) {
				got = append(got, st.Entity)
			}
			next = nextLink(t, r.header)
		}
		want := "[orders/31 orders/33 orders/35 orders/37 orders/39 orders/41 orders/43 orders/45 orders/47 orders/49]"
		if fmt.Sprint(got) != want {
			t.Errorf("%s: where: %v, want %s", base, got, want)
		}
		e := do(t, "GET", base+"/entities?where="+url.QueryEscape(".total >="), nil).wantError(t, 400, "invalid_parameter")
		if e["parameter"] != "where" || !strings.Contains(fmt.Sprint(e["message"]), "unexpected") {
			t.Errorf("%s: where that does not compile: %v", base, e)
		}
		e = do(t, "GET", base+"/entities?where="+url.QueryEscape("def f: f; f"), nil).wantError(t, 400, "invalid_parameter")
		if !strings.Contains(fmt.Sprint(e["message"]), "limit") {
			t.Errorf("%s: where that never ends: %v", base, e)
		}
	}
	do(t, "GET", s.url+"/entities?limit=x", nil).wantError(t, 400, "invalid_parameter")
}
