package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"strata/jsonx"
	"strata/log"
)

// TestAppendCloudEvent checks the structured-mode CloudEvent an event is
// served as: a plain event, one ingested as a CloudEvent, and the edges of
// the meta members that become attributes.
func TestAppendCloudEvent(t *testing.T) {
	base := log.Event{Seq: 42, Time: 1_795_000_000_123_456_789, Type: "order.placed", Entity: "orders/7", Version: 3, Data: []byte(`{"sku":"A-1","n":12345678901234567890}`)}
	base.ID[0], base.Prev[0] = 0xab, 0xcd
	id, prev := base.IDString(), strings.Repeat("0", 64)
	prev = "cd" + prev[2:]
	strata := map[string]any{"strataid": id, "strataseq": 42.0, "strataprev": prev, "strataversion": 3.0, "stratatime": "2026-11-18T11:06:40.123456789Z"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{"specversion": "1.0", "type": "order.placed", "subject": "orders/7", "datacontenttype": "application/json",
			"data": map[string]any{"sku": "A-1", "n": 12345678901234567890.0}}
		for k, v := range strata {
			out[k] = v
		}
		for k, v := range m {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		edit func(e *log.Event)
		want map[string]any
	}{
		{"plain", func(e *log.Event) {}, with(map[string]any{"id": id, "source": "/strata", "time": "2026-11-18T11:06:40.123456789Z"})},
		{"plain with a key and meta", func(e *log.Event) {
			e.Key = "c-77-1"
			e.Meta = []byte(`{"source":"shop","by":"anonymous","correlation_id":"x","trace":{"a":1},"n":7,"f":1.5,"big":4294967296,"ok":true,"nul":null,"id":"no","strataseq":1,"by":"twice"}`)
		}, with(map[string]any{"id": id, "source": "shop", "time": "2026-11-18T11:06:40.123456789Z", "stratakey": "c-77-1", "by": "anonymous", "n": 7.0, "ok": true, "f": "1.5", "big": "4294967296"})},
		{"ingested as a CloudEvent", func(e *log.Event) {
			e.Key = "https://shop.example/orders 8c1f-2"
			e.Meta = []byte(`{"source":"https://shop.example/orders","occurred_at":"2026-11-19T08:00:00Z","datacontenttype":"application/vnd.shop+json","dataschema":"https://shop.example/s.json","traceparent":"00-ab","by":"alice"}`)
		}, with(map[string]any{"id": "8c1f-2", "source": "https://shop.example/orders", "time": "2026-11-19T08:00:00Z", "datacontenttype": "application/vnd.shop+json",
			"dataschema": "https://shop.example/s.json", "traceparent": "00-ab", "by": "alice"})},
		{"a key not made of the source", func(e *log.Event) {
			e.Key = "other 1"
			e.Meta = []byte(`{"source":"shop","occurred_at":"yesterday","datacontenttype":"text/plain"}`)
		}, with(map[string]any{"id": id, "source": "shop", "time": "2026-11-18T11:06:40.123456789Z", "stratakey": "other 1"})},
		{"a source that is not a string", func(e *log.Event) {
			e.Meta = []byte(`{"source":{"app":"shop"},"occurred_at":12}`)
		}, with(map[string]any{"id": id, "source": "/strata", "time": "2026-11-18T11:06:40.123456789Z"})},
		{"many extensions", func(e *log.Event) {
			e.Meta = []byte(`{"a1":"1","a2":"2","a3":"3","a4":"4","a5":"5","a6":"6","a7":"7","a8":"8","a9":"9","b1":"1","b2":"2","b3":"3","b4":"4","b5":"5","b6":"6","b7":"7","b8":"8","b9":"9","b8":"dup","a1":"dup"}`)
		}, with(map[string]any{"id": id, "source": "/strata", "time": "2026-11-18T11:06:40.123456789Z",
			"a1": "1", "a2": "2", "a3": "3", "a4": "4", "a5": "5", "a6": "6", "a7": "7", "a8": "8", "a9": "9", "b1": "1", "b2": "2", "b3": "3", "b4": "4", "b5": "5", "b6": "6", "b7": "7", "b8": "8", "b9": "9"})},
		{"erased", func(e *log.Event) {
			e.Erased = true
			e.Data = make([]byte, 32)
		}, with(map[string]any{"id": id, "source": "/strata", "time": "2026-11-18T11:06:40.123456789Z", "strataerased": true, "data": nil})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.edit(&e)
			b := appendCloudEvent([]byte("x"), &e)
			if b[0] != 'x' {
				t.Fatal("appendCloudEvent did not append")
			}
			var got map[string]any
			if err := json.Unmarshal(b[1:], &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, b[1:])
			}
			// No attribute twice (json.Unmarshal would hide it).
			seen := map[string]bool{}
			jsonx.Members(b[1:], func(name, _ []byte) bool {
				if seen[string(name)] {
					t.Errorf("attribute %s twice: %s", name, b[1:])
				}
				seen[string(name)] = true
				return true
			})
			if tc.name == "erased" {
				if _, ok := got["data"]; !ok || got["data"] != nil {
					t.Fatalf("erased data = %v, want null", got["data"])
				}
				delete(got, "data")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v\n%s", got, tc.want, b[1:])
			}
			// The data's bytes pass through untouched: a 20-digit integer
			// stays as sent.
			if !e.Erased && !strings.HasSuffix(string(b), `"data":`+string(e.Data)+"}") {
				t.Fatalf("data not last or not as stored: %s", b)
			}
		})
	}
}

// TestServeCloudEvents: GET /events/<id> and GET /events answer
// CloudEvents when asked, keep their paging headers, and refuse a bad
// format.
func TestServeCloudEvents(t *testing.T) {
	h := newHandler(t, Config{})
	for i := 0; i < 3; i++ {
		w := serve(h, "POST", "/events", strings.NewReader(`{"type":"a.b","entity":"e","data":{"i":`+itoa(i)+`}}`))
		if w.Code != 201 {
			t.Fatal(w.Code, w.Body)
		}
	}
	var plain []map[string]any
	json.Unmarshal(serve(h, "GET", "/events", nil).Body.Bytes(), &plain)
	id := plain[0]["id"].(string)
	for _, tc := range []struct {
		target, accept string
		ce             bool
	}{
		{"/events/" + id, "", false},
		{"/events/" + id, "application/cloudevents+json", true},
		{"/events/" + id, "application/json, application/cloudevents+json;q=0", false},
		{"/events/" + id, "application/cloudevents+json; q=0.5", true},
		{"/events/" + id + "?format=cloudevents", "", true},
	} {
		w := serve(h, "GET", tc.target, nil, "Accept", tc.accept)
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
			t.Fatalf("%s %q: %d %s", tc.target, tc.accept, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); (ct == ceMediaType) != tc.ce || (got["specversion"] == "1.0") != tc.ce {
			t.Fatalf("%s %q: Content-Type %s, body %s", tc.target, tc.accept, ct, w.Body)
		}
		if tc.ce && (got["id"] != id || got["strataseq"] != 1.0 || w.Header().Get("ETag") != `"`+id+`.ce"`) {
			t.Fatalf("%s: %s, ETag %s", tc.target, w.Body, w.Header().Get("ETag"))
		}
		if w.Header().Get("Vary") != "Accept" {
			t.Fatalf("%s: Vary %q", tc.target, w.Header().Get("Vary"))
		}
	}
	for _, tc := range []struct{ target, accept, ct string }{
		{"/events?limit=2", "application/cloudevents-batch+json", ceBatchMediaType},
		{"/events?limit=2&format=cloudevents", "", ceBatchMediaType},
		{"/events?limit=2&type=a.*&format=cloudevents", "", ceBatchMediaType},
		{"/events?limit=2&format=cloudevents", "application/x-ndjson", "application/x-ndjson"},
	} {
		w := serve(h, "GET", tc.target, nil, "Accept", tc.accept)
		if w.Code != 200 || w.Header().Get("Content-Type") != tc.ct || w.Header().Get("Strata-Next-After") != "2" || w.Header().Get("Link") == "" {
			t.Fatalf("%s %q: %d %v %s", tc.target, tc.accept, w.Code, w.Header(), w.Body)
		}
		var got []map[string]any
		if tc.ct == "application/x-ndjson" {
			for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
				var m map[string]any
				json.Unmarshal([]byte(line), &m)
				got = append(got, m)
			}
		} else if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err, w.Body)
		}
		if len(got) != 2 || got[1]["strataseq"] != 2.0 || got[1]["specversion"] != "1.0" || got[1]["data"].(map[string]any)["i"] != 1.0 {
			t.Fatalf("%s: %s", tc.target, w.Body)
		}
	}
	w := serve(h, "GET", "/events?format=xml", nil)
	if e := errorBody(t, w); w.Code != 400 || e["parameter"] != "format" {
		t.Fatalf("format=xml: %d %s", w.Code, w.Body)
	}
}

// BenchmarkAppendCloudEvent: the cost of serving one event as a
// CloudEvent (a page or a stream with format=cloudevents), beside
// AppendJSON's.
func BenchmarkAppendCloudEvent(b *testing.B) {
	e := log.Event{Seq: 42, Time: 1_795_000_000_123_456_789, Type: "com.example.order.placed", Entity: "orders/7", Version: 3,
		Key: "https://shop.example/orders 8c1f-2", Data: []byte(`{"sku":"A-1","qty":3}`),
		Meta: []byte(`{"source":"https://shop.example/orders","occurred_at":"2026-11-19T08:00:00Z","traceparent":"00-ab","by":"anonymous"}`)}
	buf := make([]byte, 0, 1024)
	b.Run("cloudevent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendCloudEvent(buf[:0], &e)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = e.AppendJSON(buf[:0])
		}
	})
}
