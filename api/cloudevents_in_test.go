package api

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/jsonx"
	"strata/log"
)

const ceCT = "application/cloudevents+json"

// ce is a structured CloudEvent with the members given replacing (or, with
// a nil value, removing) those of a valid one.
func ce(edit map[string]any) string {
	m := map[string]any{"specversion": "1.0", "id": "e-1", "source": "https://shop.example/orders",
		"type": "com.example.order.placed", "subject": "orders/7", "data": map[string]any{"sku": "A-1"}}
	for k, v := range edit {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// readOne returns the event with seq n as GET /events serves it.
func readOne(t *testing.T, h *Handler, n int) map[string]any {
	t.Helper()
	w := serve(h, "GET", "/events?after="+itoa(n-1)+"&limit=1", nil)
	var evs []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &evs); err != nil || len(evs) != 1 {
		t.Fatalf("GET /events: %v %s", err, w.Body)
	}
	return evs[0]
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestCloudEventIngest checks the mapping of CloudEvents to strata events,
// in the three modes.
func TestCloudEventIngest(t *testing.T) {
	h := newHandler(t, Config{})
	check := func(n int, want map[string]string) {
		t.Helper()
		e := readOne(t, h, n)
		for k, v := range want {
			got, _ := json.Marshal(e[k])
			if string(got) != v {
				t.Errorf("event %d: %s = %s, want %s", n, k, got, v)
			}
		}
	}
	// structured
	body := ce(map[string]any{"time": "2026-11-19T08:00:00Z", "traceparent": "00-ab", "zz": 7, "ok": true, "datacontenttype": "application/json", "dataschema": "https://s/x.json"})
	w := serve(h, "POST", "/events", strings.NewReader(body), "Content-Type", ceCT)
	if w.Code != http.StatusCreated || !strings.HasPrefix(w.Body.String(), "{") {
		t.Fatalf("structured: %d %s", w.Code, w.Body)
	}
	check(1, map[string]string{"type": `"com.example.order.placed"`, "entity": `"orders/7"`, "key": `"https://shop.example/orders e-1"`, "data": `{"sku":"A-1"}`,
		"meta": `{"by":"anonymous","dataschema":"https://s/x.json","occurred_at":"2026-11-19T08:00:00Z","ok":"true","source":"https://shop.example/orders","traceparent":"00-ab","zz":"7"}`})
	// A resend is a repeat, not a duplicate.
	w = serve(h, "POST", "/events", strings.NewReader(body), "Content-Type", ceCT+"; charset=utf-8")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"repeated":true`) {
		t.Fatalf("resend: %d %s", w.Code, w.Body)
	}
	// The same id from another source is another event.
	w = serve(h, "PUT", "/events", strings.NewReader(ce(map[string]any{"source": "/other"})), "Content-Type", ceCT)
	if w.Code != http.StatusCreated {
		t.Fatalf("other source: %d %s", w.Code, w.Body)
	}
	// binary, JSON data; the same event as the structured one without its
	// extensions
	w = serve(h, "POST", "/events", strings.NewReader(`{"sku": "A-1"}`), "Content-Type", "application/json",
		"Ce-Specversion", "1.0", "Ce-Id", "e-2", "Ce-Source", "https://shop.example/orders", "Ce-Type", "com.example.order.placed",
		"Ce-Subject", "orders/%C3%A9t%C3%A9", "Ce-Traceparent", "00-cd")
	if w.Code != http.StatusCreated {
		t.Fatalf("binary: %d %s", w.Code, w.Body)
	}
	check(3, map[string]string{"entity": `"orders/été"`, "data": `{"sku":"A-1"}`, "key": `"https://shop.example/orders e-2"`,
		"meta": `{"by":"anonymous","source":"https://shop.example/orders","traceparent":"00-cd"}`})
	// binary, non-JSON data: a blob
	w = serve(h, "POST", "/events", strings.NewReader("<order/>"), "Content-Type", "application/xml",
		"Ce-Specversion", "1.0", "Ce-Id", "e-3", "Ce-Source", "/s", "Ce-Type", "order.xml", "Ce-Subject", "orders/8")
	if w.Code != http.StatusCreated {
		t.Fatalf("binary blob: %d %s", w.Code, w.Body)
	}
	e := readOne(t, h, 4)
	ref, _ := e["data"].(map[string]any)
	if ref["content_type"] != "application/xml" || ref["size"] != 8.0 {
		t.Fatalf("blob reference %v", e["data"])
	}
	if b := serve(h, "GET", "/storage/"+ref["blob"].(string), nil); b.Body.String() != "<order/>" || b.Header().Get("Content-Type") != "application/xml" {
		t.Fatalf("blob: %q %q", b.Body, b.Header().Get("Content-Type"))
	}
	// binary without data
	w = serve(h, "POST", "/events", strings.NewReader(""), "Ce-Specversion", "1.0", "Ce-Id", "e-4", "Ce-Source", "/s", "Ce-Type", "ping", "Ce-Subject", "p")
	if w.Code != http.StatusCreated {
		t.Fatalf("binary without data: %d %s", w.Code, w.Body)
	}
	check(5, map[string]string{"data": `null`})
	// structured: data_base64 and a non-JSON string are blobs
	w = serve(h, "POST", "/events", strings.NewReader(ce(map[string]any{"id": "e-5", "data": nil, "data_base64": "AAEC", "datacontenttype": "image/png"})), "Content-Type", ceCT)
	if w.Code != http.StatusCreated {
		t.Fatalf("data_base64: %d %s", w.Code, w.Body)
	}
	check(6, map[string]string{"meta": `{"by":"anonymous","datacontenttype":"image/png","source":"https://shop.example/orders"}`})
	if ref := readOne(t, h, 6)["data"].(map[string]any); ref["size"] != 3.0 || ref["content_type"] != "image/png" {
		t.Fatalf("data_base64 reference %v", ref)
	}
	w = serve(h, "POST", "/events", strings.NewReader(ce(map[string]any{"id": "e-6", "data": "hello", "datacontenttype": "text/plain"})), "Content-Type", ceCT)
	if w.Code != http.StatusCreated {
		t.Fatalf("text: %d %s", w.Code, w.Body)
	}
	if ref := readOne(t, h, 7)["data"].(map[string]any); ref["size"] != 5.0 {
		t.Fatalf("text reference %v", ref)
	}
	// batch: atomic, an array of receipts
	batch := "[" + ce(map[string]any{"id": "b-1"}) + "," + ce(map[string]any{"id": "b-2", "subject": "orders/9"}) + "]"
	w = serve(h, "POST", "/events", strings.NewReader(batch), "Content-Type", "application/cloudevents-batch+json")
	if w.Code != http.StatusCreated || !strings.HasPrefix(w.Body.String(), "[") {
		t.Fatalf("batch: %d %s", w.Code, w.Body)
	}
	check(9, map[string]string{"entity": `"orders/9"`})
	bad := "[" + ce(map[string]any{"id": "b-3"}) + "," + ce(map[string]any{"id": "b-4", "subject": nil}) + "]"
	w = serve(h, "POST", "/events", strings.NewReader(bad), "Content-Type", "application/cloudevents-batch+json")
	if w.Code != http.StatusBadRequest {
		t.Fatalf("bad batch: %d %s", w.Code, w.Body)
	}
	if head := serve(h, "GET", "/head", nil); !strings.Contains(head.Body.String(), `"seq":9`) {
		t.Fatalf("a refused batch stored something: %s", head.Body)
	}
}

// TestCloudEventRefused: every CloudEvent strata refuses, with the
// attribute named, and nothing stored.
func TestCloudEventRefused(t *testing.T) {
	h := newHandler(t, Config{MaxEvents: 3})
	bin := func(edit ...string) []string {
		hd := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Source": "/s", "Ce-Type": "a.b", "Ce-Subject": "e", "Content-Type": "application/json"}
		for i := 0; i+1 < len(edit); i += 2 {
			hd[edit[i]] = edit[i+1]
		}
		var out []string
		for k, v := range hd {
			if v != "-" {
				out = append(out, k, v)
			}
		}
		return out
	}
	structured := []string{"Content-Type", ceCT}
	batchCT := []string{"Content-Type", "application/cloudevents-batch+json"}
	long := strings.Repeat("x", 250)
	for _, tc := range []struct {
		name    string
		body    string
		headers []string
		code    string
		attr    string
	}{
		{"not JSON", `{"specversion":`, structured, "invalid_cloudevent", ""},
		{"not an object", `[1]`, structured, "invalid_cloudevent", ""},
		{"no specversion", ce(map[string]any{"specversion": nil}), structured, "invalid_cloudevent", "specversion"},
		{"specversion 0.3", ce(map[string]any{"specversion": "0.3"}), structured, "invalid_cloudevent", "specversion"},
		{"specversion a number", ce(map[string]any{"specversion": 1.0}), structured, "invalid_cloudevent", "specversion"},
		{"no id", ce(map[string]any{"id": nil}), structured, "invalid_cloudevent", "id"},
		{"empty id", ce(map[string]any{"id": ""}), structured, "invalid_cloudevent", "id"},
		{"id a number", ce(map[string]any{"id": 7}), structured, "invalid_cloudevent", "id"},
		{"id with a control character", ce(map[string]any{"id": "a\u0001"}), structured, "invalid_cloudevent", "id"},
		{"source and id too long", ce(map[string]any{"id": long, "source": "/" + long}), structured, "invalid_cloudevent", "id"},
		{"no source", ce(map[string]any{"source": nil}), structured, "invalid_cloudevent", "source"},
		{"empty source", ce(map[string]any{"source": ""}), structured, "invalid_cloudevent", "source"},
		{"source with a space", ce(map[string]any{"source": "my shop"}), structured, "invalid_cloudevent", "source"},
		{"source not a URI", ce(map[string]any{"source": "%zz"}), structured, "invalid_cloudevent", "source"},
		{"no type", ce(map[string]any{"type": nil}), structured, "invalid_cloudevent", "type"},
		{"type not strata's", ce(map[string]any{"type": "com.example.OrderPlaced"}), structured, "invalid_cloudevent", "type"},
		{"reserved type", ce(map[string]any{"type": "strata.projection.defined"}), structured, "reserved_type", ""},
		{"no subject", ce(map[string]any{"subject": nil}), structured, "invalid_cloudevent", "subject"},
		{"reserved subject", ce(map[string]any{"subject": ReservedEntity + "consumers/x"}), structured, "reserved_entity", ""},
		{"subject with a control character", ce(map[string]any{"subject": "a\u0007"}), structured, "invalid_cloudevent", "subject"},
		{"empty subject", ce(map[string]any{"subject": ""}), structured, "invalid_cloudevent", "subject"},
		{"bad time", ce(map[string]any{"time": "yesterday"}), structured, "invalid_cloudevent", "time"},
		{"bad datacontenttype", ce(map[string]any{"datacontenttype": "json"}), structured, "invalid_cloudevent", "datacontenttype"},
		{"empty dataschema", ce(map[string]any{"dataschema": ""}), structured, "invalid_cloudevent", "dataschema"},
		{"data and data_base64", ce(map[string]any{"data_base64": "AA=="}), structured, "invalid_cloudevent", "data_base64"},
		{"data_base64 not base64", ce(map[string]any{"data": nil, "data_base64": "!!"}), structured, "invalid_cloudevent", "data_base64"},
		{"data_base64 a number", ce(map[string]any{"data": nil, "data_base64": 1}), structured, "invalid_cloudevent", "data_base64"},
		{"non-JSON type, object data", ce(map[string]any{"datacontenttype": "text/plain"}), structured, "invalid_cloudevent", "data"},
		{"bad extension name", ce(map[string]any{"Trace_Parent": "x"}), structured, "invalid_cloudevent", "Trace_Parent"},
		{"extension an object", ce(map[string]any{"ext": map[string]any{}}), structured, "invalid_cloudevent", "ext"},
		{"attribute twice", `{"specversion":"1.0","id":"a","id":"b","source":"/s","type":"a","subject":"e"}`, structured, "invalid_cloudevent", "id"},
		{"batch not an array", ce(nil), batchCT, "invalid_cloudevent", ""},
		{"empty batch", `[]`, batchCT, "invalid_cloudevent", ""},
		{"batch of a number", `[1]`, batchCT, "invalid_cloudevent", ""},
		{"batch with a bad event", "[" + ce(nil) + "," + ce(map[string]any{"type": nil}) + "]", batchCT, "invalid_cloudevent", "type"},
		{"batch too large", "[" + strings.Repeat(ce(nil)+",", 3) + ce(nil) + "]", batchCT, "too_many_events", ""},
		{"binary: no specversion", `{}`, bin("Ce-Specversion", "-"), "invalid_cloudevent", "specversion"},
		{"binary: no subject", `{}`, bin("Ce-Subject", "-"), "invalid_cloudevent", "subject"},
		{"binary: bad type", `{}`, bin("Ce-Type", "Order"), "invalid_cloudevent", "type"},
		{"binary: bad percent-encoding", `{}`, bin("Ce-Subject", "a%zz"), "invalid_cloudevent", "subject"},
		{"binary: bad extension name", `{}`, bin("Ce-Trace-Parent", "x"), "invalid_cloudevent", "trace-parent"},
		{"binary: data in a header", `{}`, bin("Ce-Data", "x"), "invalid_cloudevent", "data"},
		{"binary: body not JSON", `{`, bin(), "invalid_cloudevent", "data"},
		{"binary: reserved type", `{}`, bin("Ce-Type", "strata.consumer.defined"), "reserved_type", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(h, "POST", "/events", strings.NewReader(tc.body), tc.headers...)
			if w.Code != http.StatusBadRequest && !(tc.code == "too_many_events" && w.Code == http.StatusRequestEntityTooLarge) {
				t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
			}
			e := errorBody(t, w)
			if e["code"] != tc.code {
				t.Fatalf("code %v, want %s: %s", e["code"], tc.code, w.Body)
			}
			if tc.attr != "" && e["attribute"] != tc.attr {
				t.Fatalf("attribute %v, want %s: %s", e["attribute"], tc.attr, w.Body)
			}
			if tc.attr != "" && !strings.Contains(e["message"].(string), tc.attr) {
				t.Fatalf("the message does not name %s: %s", tc.attr, e["message"])
			}
		})
	}
	// A header given twice.
	r := httptestRequest("POST", "/events", strings.NewReader(`{}`), bin()...)
	r.Header.Add("Ce-Id", "y")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if e := errorBody(t, w); w.Code != http.StatusBadRequest || e["attribute"] != "id" {
		t.Fatalf("ce-id twice: %d %s", w.Code, w.Body)
	}
	if head := serve(h, "GET", "/head", nil); !strings.Contains(head.Body.String(), `"seq":0`) {
		t.Fatalf("a refused CloudEvent stored something: %s", head.Body)
	}
}

// TestCloudEventFaults: a batch whose second blob cannot be stored, and a
// binary-mode event whose log write fails, store no event; the blobs
// stored before the failure stay (content-addressed, README says so).
func TestCloudEventFaults(t *testing.T) {
	h := newHandler(t, Config{})
	hashOf := func(s string) string { d := blake3.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	batch := "[" + ce(map[string]any{"id": "f-1", "data": "one", "datacontenttype": "text/plain"}) + "," +
		ce(map[string]any{"id": "f-2", "data": "two", "datacontenttype": "text/plain"}) + "]"
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpRename && strings.Contains(path, hashOf("two")) {
			return syscall.EIO
		}
		return nil
	})
	w := serve(h, "POST", "/events", strings.NewReader(batch), "Content-Type", "application/cloudevents-batch+json")
	undo()
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), h.cfg.DataDir) {
		t.Fatalf("a blob that cannot be stored: %d %s", w.Code, w.Body)
	}
	if head := serve(h, "GET", "/head", nil); !strings.Contains(head.Body.String(), `"seq":0`) {
		t.Fatalf("a failed batch stored an event: %s", head.Body)
	}
	if serve(h, "GET", "/storage/"+hashOf("one"), nil).Code != 200 || serve(h, "GET", "/storage/"+hashOf("two"), nil).Code != 404 {
		t.Fatal("the first blob should stay, the second not be there")
	}

	undo = fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpWrite && strings.HasSuffix(path, ".seg") {
			return syscall.EIO
		}
		return nil
	})
	w = serve(h, "POST", "/events", strings.NewReader("three"), "Content-Type", "text/plain", "Content-Length", "5",
		"Ce-Specversion", "1.0", "Ce-Id", "f-3", "Ce-Source", "/s", "Ce-Type", "t", "Ce-Subject", "e")
	undo()
	if w.Code < 500 || strings.Contains(w.Body.String(), h.cfg.DataDir) {
		t.Fatalf("a log write that fails: %d %s", w.Code, w.Body)
	}
	if head := serve(h, "GET", "/head", nil); !strings.Contains(head.Body.String(), `"seq":0`) {
		t.Fatalf("a failed append stored an event: %s", head.Body)
	}
	if serve(h, "GET", "/storage/"+hashOf("three"), nil).Code != 200 {
		t.Fatal("the blob stored before the failed append should stay")
	}
}

// FuzzParseCloudEvents: the structured-mode reader never panics, and what
// it accepts maps to a valid strata event: a type, entity and key the log
// takes, compact JSON data and a compact meta object with the source.
func FuzzParseCloudEvents(f *testing.F) {
	f.Add([]byte(ce(nil)), false)
	f.Add([]byte(ce(map[string]any{"time": "2026-11-19T08:00:00Z", "ext": 1, "b": true, "data": "x", "datacontenttype": "text/plain"})), false)
	f.Add([]byte(ce(map[string]any{"data": nil, "data_base64": "AAEC"})), false)
	f.Add([]byte("["+ce(nil)+","+ce(map[string]any{"id": "2"})+"]"), true)
	f.Add([]byte(`{"specversion":"1.0","id":"a\u0000","source":" ","type":"A","subject":""}`), false)
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		out, err := parseStructuredCE(body, batch, 100)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error %T %v, want an *apiError", err, err)
			}
			return
		}
		for _, m := range out {
			if log.ValidateType(m.in.Type) != nil || log.ValidateEntity(m.in.Entity) != nil || log.ValidateKey(m.in.Key) != nil {
				t.Fatalf("accepted an event the log refuses: %+v", m.in)
			}
			if m.hasBlob {
				continue
			}
			for _, v := range [][]byte{m.in.Data, m.in.Meta} {
				if c, err := jsonx.Compact(nil, v); err != nil || string(c) != string(v) {
					t.Fatalf("not compact JSON: %q (%v)", v, err)
				}
			}
			if err := jsonx.Members(m.in.Meta, func(name, _ []byte) bool { return true }); err != nil || !strings.HasPrefix(string(m.in.Meta), `{"source":`) {
				t.Fatalf("meta %q: %v", m.in.Meta, err)
			}
		}
	})
}

// BenchmarkCloudEventBatch: an append of 1,000 events as a CloudEvents
// batch, beside the same events as strata's own JSON (the log without
// fsync: what the envelope costs, not the disk).
func BenchmarkCloudEventBatch(b *testing.B) {
	var ceBody, plain strings.Builder
	ceBody.WriteString("[")
	plain.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			ceBody.WriteString(",")
			plain.WriteString(",")
		}
		fmt.Fprintf(&ceBody, `{"specversion":"1.0","id":"%d-%%d","source":"https://shop.example/orders","type":"com.example.order.placed","subject":"orders/%d","time":"2026-11-19T08:00:00Z","traceparent":"00-ab","data":{"sku":"A-1","qty":3}}`, i, i%100)
		fmt.Fprintf(&plain, `{"type":"com.example.order.placed","entity":"orders/%d","key":"https://shop.example/orders %d-%%d","data":{"sku":"A-1","qty":3},"meta":{"source":"https://shop.example/orders","occurred_at":"2026-11-19T08:00:00Z","traceparent":"00-ab"}}`, i%100, i)
	}
	ceBody.WriteString("]")
	plain.WriteString("]")
	for _, tc := range []struct{ name, body, ct string }{
		{"cloudevents", ceBody.String(), "application/cloudevents-batch+json"},
		{"json", plain.String(), "application/json"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHandler(b, Config{})
			n := 0
			for b.Loop() {
				n++
				body := strings.ReplaceAll(tc.body, "%d", itoa(n))
				w := serve(h, "POST", "/events", strings.NewReader(body), "Content-Type", tc.ct)
				if w.Code != http.StatusCreated {
					b.Fatal(w.Code, w.Body.String()[:200])
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
