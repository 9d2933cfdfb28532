package api

import (
	"strings"
	"testing"
)

// TestReservedRefused: no client write — POST or PUT /events in every
// body form, the entity API with or without ?type= — stores an event of a
// strata.* type or on a strata/ entity; each is a 400 naming the field,
// and nothing is stored.
func TestReservedRefused(t *testing.T) {
	h := newHandler(t, Config{})
	for _, c := range []struct {
		method, target, ctype, body string
		code, field                 string
	}{
		{"POST", "/events", "", `{"type":"strata.projection.defined","entity":"x","data":{}}`, "reserved_type", "type"},
		{"PUT", "/events", "", `{"type":"strata.x","entity":"x","data":{}}`, "reserved_type", "type"},
		{"POST", "/events", "", `[{"type":"a","entity":"x"},{"type":"strata.projection.deleted","entity":"x"}]`, "reserved_type", "type"},
		{"POST", "/events", "application/x-ndjson", "{\"type\":\"a\",\"entity\":\"x\"}\n{\"type\":\"strata.a\",\"entity\":\"x\"}\n", "reserved_type", "type"},
		{"POST", "/events", "", `{"type":"a","entity":"strata/projections/p","data":{}}`, "reserved_entity", "entity"},
		{"POST", "/events", "application/x-ndjson", "{\"type\":\"a\",\"entity\":\"strata/x\"}\n", "reserved_entity", "entity"},
		{"PUT", "/entities/x?type=strata.projection.defined", "", `{}`, "reserved_type", "type"},
		{"PATCH", "/entities/x?type=strata.x", "", `{}`, "reserved_type", "type"},
		{"DELETE", "/entities/x?type=strata.x", "", ``, "reserved_type", "type"},
		{"PUT", "/entities/strata/projections/p", "", `{}`, "reserved_entity", "entity"},
		{"PUT", "/entities?entity=strata/projections/p", "", `{}`, "reserved_entity", "entity"},
		{"PATCH", "/entities/strata/projections/p", "", `{}`, "reserved_entity", "entity"},
		{"POST", "/entities/strata/projections/p/revert", "", `{"version":1}`, "reserved_entity", "entity"},
	} {
		var headers []string
		if c.ctype != "" {
			headers = []string{"Content-Type", c.ctype}
		}
		var w = serve(h, c.method, c.target, nil, headers...)
		if c.body != "" {
			w = serve(h, c.method, c.target, strings.NewReader(c.body), headers...)
		}
		if w.Code != 400 {
			t.Errorf("%s %s %.60s: %d %s, want 400", c.method, c.target, c.body, w.Code, w.Body)
			continue
		}
		e := errorBody(t, w)
		if e["code"] != c.code || e["field"] != c.field {
			t.Errorf("%s %s %.60s: %s, want code %s field %s", c.method, c.target, c.body, w.Body, c.code, c.field)
		}
	}
	if n := len(allEvents(t, h)); n != 0 {
		t.Errorf("refused writes stored %d events", n)
	}
	// Types and entities that merely contain the word are the client's.
	for _, body := range []string{`{"type":"stratax","entity":"x"}`, `{"type":"a.strata.b","entity":"strata"}`, `{"type":"a","entity":"x/strata/y"}`} {
		if w := serve(h, "POST", "/events", strings.NewReader(body)); w.Code != 201 {
			t.Errorf("POST %s: %d %s", body, w.Code, w.Body)
		}
	}
}
