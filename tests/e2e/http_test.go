package e2e_test

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var zeros = strings.Repeat("0", 64)

func TestHeadEmptyAndAfterAppends(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	r := do(t, "GET", s.url+"/head", nil).want(t, 200)
	h := decode[head](t, r.body)
	if h.ID != zeros || h.Seq != 0 || h.Time != nil {
		t.Fatalf("empty log head = %s, want 64 zeros, seq 0, time null", r.body)
	}
	if got := r.header.Get("ETag"); got != `"`+zeros+`"` {
		t.Errorf("empty log ETag %q", got)
	}
	a := mustAppend(t, s.url, `{"type":"a","entity":"e"}`)
	b := mustAppend(t, s.url, `{"type":"a","entity":"e"}`)
	r = do(t, "GET", s.url+"/head", nil).want(t, 200)
	h = decode[head](t, r.body)
	if h.ID != b.ID || h.Seq != 2 || h.Time == nil || *h.Time != b.Time {
		t.Fatalf("head after 2 appends = %s, want id %s seq 2 time %s", r.body, b.ID, b.Time)
	}
	if r.header.Get("Strata-Head") != b.ID || r.header.Get("ETag") != `"`+b.ID+`"` {
		t.Errorf("head headers: Strata-Head %q ETag %q, want %s", r.header.Get("Strata-Head"), r.header.Get("ETag"), b.ID)
	}
	if a.ID == b.ID {
		t.Fatal("two events with the same id")
	}
}

func TestAppendSingle(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	for i, method := range []string{"PUT", "POST"} {
		r := do(t, method, s.url+"/events", `{"type":"order.placed","entity":"order-1","data":{"qty":3}}`,
			"Content-Type", "application/json").want(t, 201)
		rc := decode[receipt](t, r.body)
		if !hex64.MatchString(rc.ID) || rc.Seq != uint64(i+1) || !timeRE.MatchString(rc.Time) ||
			rc.Entity != "order-1" || rc.Version != uint64(i+1) || rc.Repeated {
			t.Fatalf("%s receipt %s: want a 64-hex id, seq %d, a 9-digit UTC time, entity order-1, version %d", method, r.body, i+1, i+1)
		}
		if got := r.header.Get("Strata-Head"); got != rc.ID {
			t.Errorf("Strata-Head %q, want %s", got, rc.ID)
		}
		if got := r.header.Get("ETag"); got != `"`+rc.ID+`"` {
			t.Errorf("ETag %q, want %q", got, `"`+rc.ID+`"`)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
		// The event is there by its id, with what was sent.
		r = do(t, "GET", s.url+"/events/"+rc.ID, nil).want(t, 200)
		e := decode[event](t, r.body)
		if e.ID != rc.ID || e.Seq != rc.Seq || e.Time != rc.Time || e.Type != "order.placed" ||
			e.Entity != "order-1" || e.Version != rc.Version || string(e.Data) != `{"qty":3}` {
			t.Fatalf("GET /events/%s = %s, does not match receipt %+v", rc.ID, r.body, rc)
		}
		if got := r.header.Get("ETag"); got != `"`+rc.ID+`"` {
			t.Errorf("GET event ETag %q", got)
		}
	}
	checkChain(t, readAll(t, s.url))
}

func TestGetEventByID(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	rc := mustAppend(t, s.url, `{"type":"a","entity":"e","key":"k","data":[1],"meta":{"source":"test"}}`)
	r := do(t, "GET", s.url+"/events/"+rc.ID, nil).want(t, 200)
	want := fmt.Sprintf(`{"id":"%s","prev":"%s","seq":1,"time":"%s","type":"a","entity":"e","version":1,"key":"k","data":[1],"meta":{"source":"test","by":"anonymous"}}`,
		rc.ID, zeros, rc.Time)
	if strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("GET /events/<id>:\n got %s\nwant %s", r.body, want)
	}
	unknown := b3hex([]byte("no such event"))
	do(t, "GET", s.url+"/events/"+unknown, nil).wantError(t, 404, "not_found")
	for _, bad := range []string{"xyz", strings.ToUpper(rc.ID), rc.ID[:63], rc.ID + "0"} {
		do(t, "GET", s.url+"/events/"+bad, nil).wantError(t, 400, "invalid_id")
	}
	do(t, "GET", s.url+"/events/"+rc.ID+"/x", nil).wantError(t, 404, "no_route")
}

// TestDataByteForByte: data and meta come back exactly as sent, minus
// insignificant whitespace: no number reformatting, no key reordering, no
// re-escaping.
func TestDataByteForByte(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	data := `{"z":12345678901234567890,"a":1.0,"n":-0.0,"e":1E+2,"big":123456789012345678901234567890.5e-3,` +
		`"u":"é☃😀","esc":"\u00e9\n\"\\\/","b":{"y":null,"x":true,"w":false},"arr":[[],{},""]}`
	spaced := strings.NewReplacer(`{"`, "{ \n\t\"", `,"`, " ,\r\n \"", `":`, `" : `, `]`, " ] ").Replace(data)
	sent := `{"source":"shop","zz":1,"aa":2}`
	body := `{"type":"t","entity":"é/😀","data":` + spaced + `,"meta":` + sent + `}`
	// The server adds who appended, after the client's members.
	meta := `{"source":"shop","zz":1,"aa":2,"by":"anonymous"}`
	rc := mustAppend(t, s.url, body)
	// A bare number and a bare string as data too.
	mustAppend(t, s.url, `{"type":"t","entity":"x","data": 12345678901234567890123}`)
	mustAppend(t, s.url, `{"type":"t","entity":"x","data":"\ud83d\ude00"}`)

	evs := readAll(t, s.url)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	if string(evs[0].Data) != data {
		t.Errorf("data changed:\n got %s\nwant %s", evs[0].Data, data)
	}
	if string(evs[0].Meta) != meta {
		t.Errorf("meta changed:\n got %s\nwant %s", evs[0].Meta, meta)
	}
	if evs[0].Entity != "é/😀" || rc.Entity != "é/😀" {
		t.Errorf("entity %q, receipt entity %q", evs[0].Entity, rc.Entity)
	}
	if string(evs[1].Data) != `12345678901234567890123` || string(evs[2].Data) != `"\ud83d\ude00"` {
		t.Errorf("scalar data changed: %s, %s", evs[1].Data, evs[2].Data)
	}
	// The JSON array form and GET /events/<id> serve the same bytes.
	arr := do(t, "GET", s.url+"/events", nil).want(t, 200)
	if !strings.Contains(string(arr.body), `"data":`+data+`,"meta":`+meta+`}`) {
		t.Errorf("GET /events JSON array does not hold the data as sent:\n%s", arr.body)
	}
	one := do(t, "GET", s.url+"/events/"+rc.ID, nil).want(t, 200)
	if !strings.Contains(string(one.body), `"data":`+data+`,"meta":`+meta+`}`) {
		t.Errorf("GET /events/<id> does not hold the data as sent:\n%s", one.body)
	}
	checkChain(t, evs)
}

func TestAppendBatches(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	rs := mustAppendBatch(t, s.url, `[{"type":"a","entity":"x"},{"type":"a","entity":"x"},{"type":"b","entity":"y"}]`)
	if len(rs) != 3 {
		t.Fatalf("%d receipts, want 3", len(rs))
	}
	for i, rc := range rs {
		if rc.Seq != uint64(i+1) || !hex64.MatchString(rc.ID) || !timeRE.MatchString(rc.Time) {
			t.Errorf("receipt %d: %+v", i, rc)
		}
	}
	if rs[1].Version != 2 || rs[2].Version != 1 || rs[2].Entity != "y" {
		t.Errorf("versions in a batch: %+v", rs)
	}
	// NDJSON, with CRLF and a blank line.
	r := do(t, "PUT", s.url+"/events", "{\"type\":\"c\",\"entity\":\"x\"}\r\n\n{\"type\":\"c\",\"entity\":\"z\"}\n",
		"Content-Type", "application/x-ndjson").want(t, 201)
	nd := decode[[]receipt](t, r.body)
	if len(nd) != 2 || nd[0].Seq != 4 || nd[1].Seq != 5 || nd[0].Version != 3 {
		t.Fatalf("NDJSON receipts: %s", r.body)
	}
	if got := r.header.Get("Strata-Head"); got != nd[1].ID {
		t.Errorf("Strata-Head %q after a batch, want the last id %s", got, nd[1].ID)
	}
	// A one-element array still answers an array; one NDJSON line too.
	if one := mustAppendBatch(t, s.url, `[{"type":"d","entity":"x"}]`); len(one) != 1 || one[0].Seq != 6 {
		t.Fatalf("one-element array: %+v", one)
	}
	r = do(t, "PUT", s.url+"/events", "{\"type\":\"d\",\"entity\":\"x\"}\n", "Content-Type", "application/x-ndjson").want(t, 201)
	if one := decode[[]receipt](t, r.body); len(one) != 1 || one[0].Seq != 7 {
		t.Fatalf("one NDJSON line: %s", r.body)
	}
	evs := readAll(t, s.url)
	checkChain(t, evs)
	for i, rc := range append(rs, nd...) {
		if evs[rc.Seq-1].ID != rc.ID {
			t.Errorf("receipt %d id %s, log has %s at seq %d", i, rc.ID, evs[rc.Seq-1].ID, rc.Seq)
		}
	}
}

// TestAppendContentTypes: the types an append of strata events takes
// (application/cloudevents+json is a CloudEvent: cloudevents_test.go).
func TestAppendContentTypes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	ev := `{"type":"a","entity":"e"}`
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/json; charset=utf-8", "application/vnd.api+json", ""} {
		do(t, "PUT", s.url+"/events", ev, "Content-Type", ct).want(t, 201)
	}
	// application/cloudevents+json is a CloudEvent now, which a strata
	// event body is not: refused, naming what is missing.
	do(t, "PUT", s.url+"/events", ev, "Content-Type", "application/cloudevents+json").wantError(t, 400, "invalid_cloudevent")
	for _, ct := range []string{"application/xml", "text/html", "multipart/form-data; boundary=x", "garbage;;;"} {
		do(t, "PUT", s.url+"/events", ev, "Content-Type", ct).wantError(t, 415, "unsupported_media_type")
	}
	if h := mustHead(t, s.url); h.Seq != 4 {
		t.Fatalf("head seq %d, want 4", h.Seq)
	}
}

// TestLengthRequired: a PUT with neither Content-Length nor chunked
// encoding has no way to say how long its body is.
func TestLengthRequired(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	host := strings.TrimPrefix(s.url, "http://")
	r := raw(t, s.url, "PUT /events HTTP/1.1\r\nHost: "+host+"\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
	r.wantError(t, 411, "length_required")
	if h := mustHead(t, s.url); h.Seq != 0 {
		t.Fatalf("head seq %d, want 0", h.Seq)
	}
	// An explicit empty body is a bad request, not a missing length.
	do(t, "PUT", s.url+"/events", "", "Content-Type", "application/json").wantError(t, 400, "empty_body")
}

func TestChunkedAppend(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	r := do(t, "PUT", s.url+"/events", strings.NewReader(`[{"type":"a","entity":"e"},{"type":"a","entity":"e"}]`),
		"Content-Type", "application/json").want(t, 201)
	if rs := decode[[]receipt](t, r.body); len(rs) != 2 {
		t.Fatalf("receipts %s", r.body)
	}
	// And over a raw connection, chunks split mid-token.
	host := strings.TrimPrefix(s.url, "http://")
	body := `{"type":"b","entity":"e","data":"chunked"}`
	req := "PUT /events HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 10, body[:10], len(body)-10, body[10:])
	raw(t, s.url, req).want(t, 201)
	evs := readAll(t, s.url)
	if len(evs) != 3 || string(evs[2].Data) != `"chunked"` {
		t.Fatalf("after chunked appends: %+v", evs)
	}
}

// TestMaxEvents: --max-events (standalone) and STRATA_MAX_EVENTS (CGI)
// refuse a request with more events whole, with 413 too_many_events.
func TestMaxEvents(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, "--max-events", "3", "--max-inflight", "1M")
	c := cgiServer(t, data, "STRATA_MAX_EVENTS=3")
	batch := func(n int) string {
		return strings.Repeat(`{"type":"a","entity":"e"}`+"\n", n)
	}
	for _, base := range []string{s.url, c.URL + "/api"} {
		do(t, "POST", base+"/events", batch(4), "Content-Type", "application/x-ndjson").wantError(t, 413, "too_many_events")
		do(t, "POST", base+"/events", batch(3), "Content-Type", "application/x-ndjson").want(t, 201)
	}
	if h := mustHead(t, s.url); h.Seq != 6 {
		t.Fatalf("head seq %d, want 6", h.Seq)
	}
}

func TestMaxBody(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-body", "1K")
	ev := func(n int) string {
		return `{"type":"a","entity":"e","data":"` + strings.Repeat("x", n) + `"}`
	}
	small := ev(900)
	if len(small) > 1024 {
		t.Fatal("test bug: small body over 1K")
	}
	mustAppend(t, s.url, small)
	do(t, "PUT", s.url+"/events", ev(1100), "Content-Type", "application/json").wantError(t, 413, "body_too_large")
	do(t, "PUT", s.url+"/events", strings.NewReader(ev(1100)), "Content-Type", "application/json").wantError(t, 413, "body_too_large")
	do(t, "PUT", s.url+"/events", ev(1<<20), "Content-Type", "application/json").wantError(t, 413, "body_too_large")
	if h := mustHead(t, s.url); h.Seq != 1 {
		t.Fatalf("head seq %d after refused bodies, want 1", h.Seq)
	}
}

// TestBadEvents: 400 naming the event's index and field; nothing of the
// request is stored.
func TestBadEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	seed := mustAppend(t, s.url, `{"type":"a","entity":"e"}`)
	ok := `{"type":"a","entity":"e"}`
	for _, tc := range []struct {
		name, body string
		ndjson     bool
		index      int // -1: the whole body
		field      string
	}{
		{"bad type", `[` + ok + `,` + ok + `,{"type":"Bad Type","entity":"e"}]`, false, 2, "type"},
		{"type not a string", `{"type":5,"entity":"e"}`, false, 0, "type"},
		{"missing type", `[` + ok + `,{"entity":"e"}]`, false, 1, "type"},
		{"empty entity", `[` + ok + `,{"type":"a","entity":""}]`, false, 1, "entity"},
		{"control char in entity", `{"type":"a","entity":"a\u0001b"}`, false, 0, "entity"},
		{"long entity", `{"type":"a","entity":"` + strings.Repeat("e", 257) + `"}`, false, 0, "entity"},
		{"unknown field", `[` + ok + `,{"type":"a","entity":"e","colour":"red"}]`, false, 1, "colour"},
		{"bad expected_version", `[` + ok + `,` + ok + `,{"type":"a","entity":"e","expected_version":"one"}]`, false, 2, "expected_version"},
		{"negative expected_version", `{"type":"a","entity":"e","expected_version":-1}`, false, 0, "expected_version"},
		{"meta not an object", `{"type":"a","entity":"e","meta":[1]}`, false, 0, "meta"},
		{"lone surrogate in data", `[` + ok + `,{"type":"a","entity":"e","data":{"s":"x\ud800"}}]`, false, 1, "data"},
		{"lone surrogate in meta", `{"type":"a","entity":"e","meta":{"s":"\udc00"}}`, false, 0, "meta"},
		{"lone surrogate in entity", `{"type":"a","entity":"\ud800"}`, false, 0, "entity"},
		{"number out of range", `{"type":"a","entity":"e","data":[1e999999]}`, false, 0, "data"},
		{"100k-digit number", `{"type":"a","entity":"e","data":` + strings.Repeat("9", 100000) + `}`, false, 0, "data"},
		{"data nested 33 deep", `{"type":"a","entity":"e","data":` + nested(33) + `}`, false, 0, "data"},
		{"meta nested 33 deep", `{"type":"a","entity":"e","meta":{"m":` + nested(32) + `}}`, false, 0, "meta"},
		{"bidi override in entity", `{"type":"a","entity":"alice\u202eecila"}`, false, 0, "entity"},
		{"private use in key", `{"type":"a","entity":"e","key":"k\ue000"}`, false, 0, "key"},
		{"bad ndjson line", ok + "\n" + ok + "\n" + `{"type":"a","entity":` + "\n", true, 2, ""},
		{"bad JSON", `{"type":"a",`, false, -2, ""},
		{"trailing garbage", ok + ` x`, false, -2, ""},
		{"empty array", `[]`, false, -2, ""},
		{"not an object", `[1]`, false, -2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			if tc.ndjson {
				ct = "application/x-ndjson"
			}
			e := do(t, "PUT", s.url+"/events", tc.body, "Content-Type", ct).wantError(t, 400, "invalid_event")
			if tc.index != -2 {
				if idx, _ := e["index"].(float64); e["index"] == nil || int(idx) != tc.index {
					t.Errorf("error index %v, want %d: %v", e["index"], tc.index, e)
				}
			}
			if tc.field != "" && e["field"] != tc.field {
				t.Errorf("error field %v, want %q: %v", e["field"], tc.field, e)
			}
			if h := mustHead(t, s.url); h.Seq != 1 || h.ID != seed.ID {
				t.Fatalf("head moved to seq %d after a refused request", h.Seq)
			}
		})
	}
	mustVerify(t, s.data, 1)
}

// nested is a JSON value n arrays deep.
func nested(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

// jsonDepth is the deepest nesting of arrays and objects in the JSON b.
func jsonDepth(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// TestDeepDataReadable: data and meta as deep as accepted (32) come back
// in pages that the strictest common parser reads with its defaults:
// .NET's System.Text.Json stops at 64 (Ruby's JSON at 100, serde_json at
// 128, jq 1.6 at 256, Python's json near 1,000). Data 1,000 deep used to
// be stored, and then no page holding it could be read by jq or Python.
func TestDeepDataReadable(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	rc := mustAppend(t, s.url, `{"type":"a","entity":"deep","data":`+nested(32)+`,"meta":{"m":`+nested(31)+`}}`)
	for _, page := range []*response{
		do(t, "GET", s.url+"/events", nil).want(t, 200),
		do(t, "GET", s.url+"/events", nil, "Accept", "application/x-ndjson").want(t, 200),
		do(t, "GET", s.url+"/events/"+rc.ID, nil).want(t, 200),
	} {
		if !strings.Contains(string(page.body), nested(32)) {
			t.Fatalf("the deep data is not in the page: %s", page.body)
		}
		if d := jsonDepth(page.body); d > 64 {
			t.Errorf("a page %d deep: .NET's default reader refuses past 64", d)
		}
	}
}

// TestExpectedVersion: the per-event precondition, and a batch is atomic.
func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	mustAppend(t, s.url, `{"type":"a","entity":"acct","expected_version":0}`)
	mustAppend(t, s.url, `{"type":"a","entity":"acct","expected_version":1}`)
	e := do(t, "PUT", s.url+"/events", `{"type":"a","entity":"acct","expected_version":1}`).wantError(t, 409, "version_conflict")
	if e["current_version"] != 2.0 || e["expected_version"] != 1.0 || e["entity"] != "acct" {
		t.Errorf("conflict members: %v, want current_version 2, expected_version 1, entity acct", e)
	}
	e = do(t, "PUT", s.url+"/events", `{"type":"a","entity":"acct","expected_version":0}`).wantError(t, 409, "version_conflict")
	if e["current_version"] != 2.0 {
		t.Errorf("current_version %v, want 2", e["current_version"])
	}
	e = do(t, "PUT", s.url+"/events", `{"type":"a","entity":"nobody","expected_version":3}`).wantError(t, 409, "version_conflict")
	if e["current_version"] != 0.0 {
		t.Errorf("current_version of a new entity %v, want 0", e["current_version"])
	}
	// The third event's precondition fails: nothing of the batch is stored.
	e = do(t, "POST", s.url+"/events", `[{"type":"a","entity":"acct","expected_version":2},{"type":"a","entity":"other"},`+
		`{"type":"a","entity":"acct","expected_version":2}]`).wantError(t, 409, "version_conflict")
	if e["index"] != 2.0 {
		t.Errorf("conflict index %v, want 2", e["index"])
	}
	if e["current_version"] != 3.0 {
		t.Errorf("in-batch current_version %v, want 3 (after the batch's own first event)", e["current_version"])
	}
	if h := mustHead(t, s.url); h.Seq != 2 {
		t.Fatalf("head seq %d after a refused batch, want 2", h.Seq)
	}
	do(t, "GET", s.url+"/events?entity=other", nil).want(t, 200)
	if evs := readAll(t, s.url); len(evs) != 2 {
		t.Fatalf("%d events after refused batch, want 2", len(evs))
	}
	rc := mustAppend(t, s.url, `{"type":"a","entity":"acct","expected_version":2}`)
	if rc.Version != 3 {
		t.Fatalf("version %d, want 3", rc.Version)
	}
	rs := mustAppendBatch(t, s.url, `[{"type":"a","entity":"acct","expected_version":3},{"type":"a","entity":"acct","expected_version":4}]`)
	if rs[1].Version != 5 {
		t.Fatalf("chained expected_version in a batch: %+v", rs)
	}
	mustVerify(t, s.data, 5)
}

func TestIfMatch(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	ev := `{"type":"a","entity":"e"}`
	first := mustAppend(t, s.url, ev, "If-Match", `"`+zeros+`"`)
	e := do(t, "PUT", s.url+"/events", ev, "If-Match", `"`+zeros+`"`).wantError(t, 409, "head_conflict")
	cur, _ := e["current_head"].(map[string]any)
	if cur["id"] != first.ID || cur["seq"] != 1.0 || cur["time"] != first.Time {
		t.Errorf("current_head %v, want id %s seq 1 time %s", e["current_head"], first.ID, first.Time)
	}
	// The head from the last answer's ETag is the right one.
	r := do(t, "GET", s.url+"/head", nil).want(t, 200)
	second := mustAppend(t, s.url, ev, "If-Match", r.header.Get("ETag"))
	if second.Seq != 2 {
		t.Fatalf("seq %d", second.Seq)
	}
	// Weak and unquoted forms of the right head, and a batch.
	r = do(t, "POST", s.url+"/events", `[`+ev+`,`+ev+`]`, "If-Match", second.ID).want(t, 201)
	rs := decode[[]receipt](t, r.body)
	do(t, "PUT", s.url+"/events", ev, "If-Match", `W/"`+rs[1].ID+`"`).want(t, 201)
	// A stale head stores nothing, a batch neither.
	do(t, "POST", s.url+"/events", `[`+ev+`,`+ev+`]`, "If-Match", `"`+first.ID+`"`).wantError(t, 409, "head_conflict")
	do(t, "PUT", s.url+"/events", ev, "If-Match", `"nonsense"`).wantError(t, 400, "invalid_if_match")
	if h := mustHead(t, s.url); h.Seq != 5 {
		t.Fatalf("head seq %d, want 5", h.Seq)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	ev := `{"type":"pay","entity":"order-9","key":"c-77-1","data":{"amount":10}}`
	first := mustAppend(t, s.url, ev)
	r := do(t, "PUT", s.url+"/events", ev, "Content-Type", "application/json").want(t, 200)
	again := decode[receipt](t, r.body)
	if !again.Repeated || again.ID != first.ID || again.Seq != first.Seq || again.Version != first.Version {
		t.Fatalf("repeat: %s, want repeated:true and the first receipt %+v", r.body, first)
	}
	if !strings.Contains(string(r.body), `"repeated":true`) {
		t.Errorf("repeat answer lacks \"repeated\":true: %s", r.body)
	}
	// Insignificant whitespace is the same content.
	do(t, "PUT", s.url+"/events", `{ "type":"pay", "entity":"order-9", "key":"c-77-1", "data":{ "amount": 10 } }`).want(t, 200)
	e := do(t, "PUT", s.url+"/events", `{"type":"pay","entity":"order-9","key":"c-77-1","data":{"amount":11}}`).wantError(t, 409, "key_conflict")
	if e["existing_id"] != first.ID || e["key"] != "c-77-1" {
		t.Errorf("key_conflict members %v, want existing_id %s", e, first.ID)
	}
	do(t, "PUT", s.url+"/events", `{"type":"pay","entity":"order-10","key":"c-77-1","data":{"amount":10}}`).wantError(t, 409, "key_conflict")
	if h := mustHead(t, s.url); h.Seq != 1 {
		t.Fatalf("head seq %d after repeats, want 1", h.Seq)
	}
	// A batch mixing a repeat and a new event stores only the new one.
	r = do(t, "POST", s.url+"/events", `[`+ev+`,{"type":"pay","entity":"order-9","key":"c-77-2"}]`).want(t, 201)
	rs := decode[[]receipt](t, r.body)
	if len(rs) != 2 || !rs[0].Repeated || rs[0].ID != first.ID || rs[1].Repeated || rs[1].Seq != 2 || rs[1].Version != 2 {
		t.Fatalf("mixed batch receipts: %s", r.body)
	}
	// The same key twice in one batch with different content.
	do(t, "POST", s.url+"/events", `[{"type":"a","entity":"x","key":"k3"},{"type":"b","entity":"x","key":"k3"}]`).wantError(t, 409, "key_conflict")
	evs := readAll(t, s.url)
	if len(evs) != 2 || evs[0].Key != "c-77-1" || evs[1].Key != "c-77-2" {
		t.Fatalf("log: %+v", evs)
	}
	checkChain(t, evs)
}

// TestReadQueries: GET /events with every parameter.
func TestReadQueries(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	type spec struct{ typ, entity string }
	var specs []spec
	for i := 1; i <= 12; i++ {
		typ := "book.added"
		if i%3 == 0 {
			typ = "book.sold"
		}
		ent := "books/" + strconv.Itoa(i%4)
		if i%5 == 0 {
			ent = "shelves/" + strconv.Itoa(i)
		}
		if i == 7 {
			ent = "books/1/pages"
		}
		specs = append(specs, spec{typ, ent})
	}
	var rcs []receipt
	for _, sp := range specs {
		rcs = append(rcs, mustAppend(t, s.url, fmt.Sprintf(`{"type":%q,"entity":%q}`, sp.typ, sp.entity)))
	}
	for i := 1; i < len(rcs); i++ {
		if rcs[i].Time <= rcs[i-1].Time {
			t.Fatalf("times not increasing: %s then %s", rcs[i-1].Time, rcs[i].Time)
		}
	}
	id := func(seq int) string { return rcs[seq-1].ID }
	tm := func(seq int) string { return rcs[seq-1].Time }
	seqs := func(evs []event) []int {
		var out []int
		for _, e := range evs {
			out = append(out, int(e.Seq))
		}
		return out
	}
	where := func(f func(i int, sp spec) bool) []int {
		var out []int
		for i, sp := range specs {
			if f(i+1, sp) {
				out = append(out, i+1)
			}
		}
		return out
	}
	all := where(func(int, spec) bool { return true })
	for _, tc := range []struct {
		query string
		want  []int
	}{
		{"", all},
		{"from=" + id(3), all[3:]},
		{"from=" + id(12), nil},
		{"to=" + id(5), all[:5]},
		{"from=" + id(3) + "&to=" + id(5), []int{4, 5}},
		{"after=10", []int{11, 12}},
		{"after=12", nil},
		{"after=99", nil},
		{"limit=2", []int{1, 2}},
		{"type=book.sold", where(func(_ int, sp spec) bool { return sp.typ == "book.sold" })},
		{"type=book.*", all},
		{"entity=books/1", where(func(_ int, sp spec) bool { return sp.entity == "books/1" })},
		{"entity=books/*", where(func(_ int, sp spec) bool {
			return strings.Count(sp.entity, "/") == 1 && strings.HasPrefix(sp.entity, "books/")
		})},
		{"entity=books/1/*", []int{7}},
		{"entity=shelves/1?", []int{10}},
		{"entity=nobody", nil},
		{"entity=books/2&type=book.sold", where(func(_ int, sp spec) bool { return sp.entity == "books/2" && sp.typ == "book.sold" })},
		{"entity=books/3&from=" + id(3), where(func(i int, sp spec) bool { return i > 3 && sp.entity == "books/3" })},
		{"since=" + url.QueryEscape(tm(5)), all[4:]},
		{"until=" + url.QueryEscape(tm(5)), all[:4]},
		{"since=" + url.QueryEscape(tm(3)) + "&until=" + url.QueryEscape(tm(6)), []int{3, 4, 5}},
		{"since=2000-01-01T00:00:00Z", all},
		{"until=2000-01-01T00:00:00Z", nil},
		{"_=12345", all},
	} {
		r := do(t, "GET", s.url+"/events?"+tc.query, nil).want(t, 200)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("?%s: Content-Type %q", tc.query, ct)
		}
		evs := decode[[]event](t, r.body)
		if got := seqs(evs); !slices.Equal(got, tc.want) {
			t.Errorf("GET /events?%s = seqs %v, want %v", tc.query, got, tc.want)
		}
		// The same as NDJSON.
		r = do(t, "GET", s.url+"/events?"+tc.query, nil, "Accept", "application/x-ndjson").want(t, 200)
		if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("?%s NDJSON: Content-Type %q", tc.query, ct)
		}
		if got := seqs(parseNDJSON(t, r.body)); !slices.Equal(got, tc.want) {
			t.Errorf("GET /events?%s as NDJSON = seqs %v, want %v", tc.query, got, tc.want)
		}
	}
	evs := readAll(t, s.url)
	checkChain(t, evs)
	for i, e := range evs {
		if e.ID != rcs[i].ID {
			t.Fatalf("seq %d id %s, receipt said %s", i+1, e.ID, rcs[i].ID)
		}
	}
}

// TestPaging follows Link rel="next" until there is none.
func TestPaging(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var body []string
	for i := 0; i < 23; i++ {
		ent := "a"
		if i%3 == 0 {
			ent = "b"
		}
		body = append(body, fmt.Sprintf(`{"type":"t","entity":%q,"data":%d}`, ent, i))
	}
	mustAppendBatch(t, s.url, "["+strings.Join(body, ",")+"]")
	for _, tc := range []struct {
		query string
		want  int // events in all pages
	}{
		{"limit=5", 23},
		{"limit=1", 23},
		{"limit=23", 23},
		{"limit=4&entity=b", 8},
		{"limit=3&entity=?", 23},
		{"limit=2&type=t&from=", 0}, // replaced below
	} {
		q := tc.query
		want := tc.want
		if strings.HasSuffix(q, "from=") {
			all := readAll(t, s.url)
			q += all[9].ID
			want = 13
		}
		var got []event
		u := s.url + "/events?" + q
		pages := 0
		for {
			r := do(t, "GET", u, nil).want(t, 200)
			page := decode[[]event](t, r.body)
			got = append(got, page...)
			pages++
			next := nextLink(t, r.header)
			if next == "" {
				break
			}
			if !strings.HasPrefix(next, "?after=") {
				t.Errorf("?%s: Link <%s> does not start with ?after=", q, next)
			}
			if len(page) == 0 {
				t.Fatalf("?%s: an empty page with a next link", q)
			}
			if pages > 30 {
				t.Fatalf("?%s: more than 30 pages", q)
			}
			u = s.url + "/events" + next
		}
		if len(got) != want {
			t.Fatalf("?%s: %d events in %d pages, want %d", q, len(got), pages, want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Fatalf("?%s: seq %d after %d", q, got[i].Seq, got[i-1].Seq)
			}
		}
	}
	// A page that ends exactly at the end: no Link.
	r := do(t, "GET", s.url+"/events?after=20&limit=3", nil).want(t, 200)
	if l := r.header.Get("Link"); l != "" {
		t.Errorf("last full page has Link %q", l)
	}
}

// TestPagingLargePage: a page too big to buffer still says where the next
// one starts. The default page (no limit) is 1000 events; a client that
// gets no Link must be able to trust that it has read everything.
func TestPagingLargePage(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	ev := `{"type":"t","entity":"e","data":"` + strings.Repeat("x", 100) + `"}`
	mustAppendSummary(t, s.url, "["+strings.Repeat(ev+",", 1000)+ev+"]", 1001)
	for _, q := range []string{"", "?limit=1000", "?limit=600", "?entity=e", "?type=t&limit=1000"} {
		for _, accept := range []string{"application/json", "application/x-ndjson"} {
			r := do(t, "GET", s.url+"/events"+q, nil, "Accept", accept).want(t, 200)
			n := strings.Count(string(r.body), `"seq":`)
			if n == 1001 {
				continue
			}
			next := nextLink(t, r.header)
			if next == "" {
				t.Errorf("GET /events%s (%s, %d bytes): %d of 1001 events and no Link rel=\"next\" (Strata-Next-After %q): the client cannot know it has not read everything",
					q, accept, len(r.body), n, r.header.Get("Strata-Next-After"))
				continue
			}
			if want := fmt.Sprintf("?after=%d", n); !strings.HasPrefix(next, want) {
				t.Errorf("GET /events%s: Link <%s>, want %s…", q, next, want)
			}
		}
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	rc := mustAppend(t, s.url, `{"type":"a","entity":"e"}`)
	unknown := b3hex([]byte("elsewhere"))
	do(t, "GET", s.url+"/events?from="+unknown, nil).wantError(t, 404, "not_on_chain")
	do(t, "GET", s.url+"/events?to="+unknown, nil).wantError(t, 404, "not_on_chain")
	do(t, "GET", s.url+"/events?from="+unknown, nil, "Accept", "application/x-ndjson").wantError(t, 404, "not_on_chain")
	for _, q := range []string{"colour=red", "from=xyz", "from=" + strings.ToUpper(rc.ID), "to=1", "after=-1", "after=x",
		"limit=0", "limit=-3", "limit=x", "since=yesterday", "until=2026-13-01T00:00:00Z", "entity=[", "type=", "Limit=3"} {
		e := do(t, "GET", s.url+"/events?"+q, nil).wantError(t, 400, "invalid_parameter")
		name, _, _ := strings.Cut(q, "=")
		if e["parameter"] != name {
			t.Errorf("?%s: error parameter %v, want %q", q, e["parameter"], name)
		}
	}
}

func TestMethodsAndRoutes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	hash := b3hex(nil)
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/events", "GET, HEAD, PUT, POST, OPTIONS"},
		{"PATCH", "/events", "GET, HEAD, PUT, POST, OPTIONS"},
		{"PUT", "/events/" + zeros, "GET, HEAD, OPTIONS"},
		{"DELETE", "/head", "GET, HEAD, OPTIONS"},
		{"POST", "/head", "GET, HEAD, OPTIONS"},
		{"GET", "/storage/", "PUT, POST, OPTIONS"},
		{"DELETE", "/storage", "PUT, POST, OPTIONS"},
		{"POST", "/storage/" + hash, "GET, HEAD, PUT, DELETE, OPTIONS"},
		{"POST", "/health", "GET, HEAD, OPTIONS"},
	} {
		r := do(t, tc.method, s.url+tc.path, nil)
		r.wantError(t, 405, "method_not_allowed")
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	for _, p := range []string{"/", "/nope", "/api/events", "/events2", "/Events", "/head/x", "/storagex"} {
		do(t, "GET", s.url+p, nil).wantError(t, 404, "no_route")
	}
	do(t, "GET", s.url+"/health", nil).want(t, 200)
	// HEAD of a collection answers headers only.
	r := do(t, "HEAD", s.url+"/head", nil).want(t, 200)
	if len(r.body) != 0 {
		t.Errorf("HEAD /head has a body: %q", r.body)
	}
}

// TestConcurrentAppends: many clients at once against one server; group
// commit must keep the log gapless with every receipt in it.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	const clients, each = 8, 25
	ids := make(chan string, clients*each*2)
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		go func() {
			for i := 0; i < each; i++ {
				body := fmt.Sprintf(`{"type":"t","entity":"c%d","data":%d}`, c, i)
				if i%5 == 0 {
					body = "[" + body + "," + body + "]"
				}
				r, err := try("PUT", s.url+"/events", body)
				if err != nil || r.status != 201 {
					errs <- fmt.Errorf("client %d append %d: %v %v", c, i, err, r)
					return
				}
				rs, err := receipts(r.body)
				if err != nil {
					errs <- err
					return
				}
				for _, rc := range rs {
					ids <- rc.ID
				}
			}
			errs <- nil
		}()
	}
	for c := 0; c < clients; c++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(ids)
	evs := readAll(t, s.url)
	checkChain(t, evs)
	have := map[string]bool{}
	for _, e := range evs {
		have[e.ID] = true
	}
	n := 0
	for id := range ids {
		n++
		if !have[id] {
			t.Errorf("acknowledged id %s not in the log", id)
		}
	}
	if n != len(evs) {
		t.Fatalf("%d acknowledged, %d in the log", n, len(evs))
	}
	mustVerify(t, s.data, n)
}
