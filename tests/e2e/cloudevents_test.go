package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// cloudEvent is a CloudEvent as strata serves it.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	StrataID        string          `json:"strataid"`
	StrataSeq       uint64          `json:"strataseq"`
	StrataPrev      string          `json:"strataprev"`
	StrataVersion   uint64          `json:"strataversion"`
	StrataTime      string          `json:"stratatime"`
	StrataKey       string          `json:"stratakey"`
	By              string          `json:"by"`
	Traceparent     string          `json:"traceparent"`
	Data            json.RawMessage `json:"data"`
}

// TestCloudEvents: the real binary, standalone and through CGI, takes
// CloudEvents in structured, batch and binary mode (a chunked non-JSON
// body a blob), knows a resend, and serves them back as CloudEvents.
func TestCloudEvents(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"standalone", "cgi"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			data := t.TempDir()
			var base string
			if mode == "cgi" {
				base = cgiServer(t, data).URL + "/api"
			} else {
				base = startServer(t, data).url
			}
			one := `{"specversion":"1.0","id":"o-1","source":"https://shop.example/orders","type":"com.example.order.placed",
				"subject":"orders/1","time":"2026-11-19T08:00:00Z","traceparent":"00-ab","data":{"sku":"A-1","n":12345678901234567890}}`
			r := do(t, "POST", base+"/events", one, "Content-Type", "application/cloudevents+json").want(t, 201)
			first := decode[receipt](t, r.body)
			r = do(t, "POST", base+"/events", one, "Content-Type", "application/cloudevents+json").want(t, 200)
			if rc := decode[receipt](t, r.body); !rc.Repeated || rc.ID != first.ID {
				t.Fatalf("resend: %s", r.body)
			}
			batch := `[{"specversion":"1.0","id":"o-2","source":"/pos","type":"com.example.order.paid","subject":"orders/1"},
				{"specversion":"1.0","id":"o-3","source":"/pos","type":"com.example.order.shipped","subject":"orders/1","data":null}]`
			r = do(t, "PUT", base+"/events", batch, "Content-Type", "application/cloudevents-batch+json").want(t, 201)
			if rs := decode[[]receipt](t, r.body); len(rs) != 2 || rs[1].Seq != 3 || rs[1].Version != 3 {
				t.Fatalf("batch: %s", r.body)
			}
			// binary mode, a chunked body of a non-JSON type: a blob
			pdf := content(3, 100000)
			do(t, "POST", base+"/events", strings.NewReader(string(pdf)), "Content-Type", "application/pdf",
				"ce-specversion", "1.0", "ce-id", "inv-1", "ce-source", "/billing", "ce-type", "com.example.invoice.issued", "ce-subject", "invoices/%C3%A91").want(t, 201)
			// binary mode, JSON
			do(t, "POST", base+"/events", `{"total": 3}`, "Content-Type", "application/json",
				"ce-specversion", "1.0", "ce-id", "inv-2", "ce-source", "/billing", "ce-type", "com.example.invoice.paid", "ce-subject", "invoices/é1").want(t, 201)
			do(t, "POST", base+"/events", `{}`, "ce-specversion", "1.0", "ce-id", "x", "ce-source", "/s", "ce-type", "Bad").wantError(t, 400, "invalid_cloudevent")

			evs := readAll(t, base)
			if len(evs) != 5 || evs[3].Entity != "invoices/é1" || evs[4].Entity != "invoices/é1" || string(evs[4].Data) != `{"total":3}` {
				t.Fatalf("stored: %+v", evs)
			}
			var ref struct {
				Blob        string `json:"blob"`
				ContentType string `json:"content_type"`
				Size        int    `json:"size"`
			}
			json.Unmarshal(evs[3].Data, &ref)
			if ref.Blob != b3hex(pdf) || ref.ContentType != "application/pdf" || ref.Size != len(pdf) {
				t.Fatalf("blob reference %s", evs[3].Data)
			}
			r = do(t, "GET", base+"/storage/"+ref.Blob, nil).want(t, 200)
			if string(r.body) != string(pdf) || r.header.Get("Content-Type") != "application/pdf" {
				t.Fatal("the blob read back differs")
			}

			// Served back as CloudEvents.
			r = do(t, "GET", base+"/events?limit=4&format=cloudevents", nil).want(t, 200)
			if r.header.Get("Content-Type") != "application/cloudevents-batch+json" || r.header.Get("Strata-Next-After") != "4" {
				t.Fatalf("batch headers: %v", r.header)
			}
			ces := decode[[]cloudEvent](t, r.body)
			if c := ces[0]; c.ID != "o-1" || c.Source != "https://shop.example/orders" || c.Time != "2026-11-19T08:00:00Z" || c.Traceparent != "00-ab" ||
				c.StrataID != first.ID || c.StrataSeq != 1 || c.StrataPrev != strings.Repeat("0", 64) || c.StrataVersion != 1 || c.Subject != "orders/1" ||
				string(c.Data) != `{"sku":"A-1","n":12345678901234567890}` || c.By != "anonymous" {
				t.Fatalf("first CloudEvent: %+v", c)
			}
			if c := ces[2]; c.ID != "o-3" || c.Source != "/pos" || c.StrataPrev != ces[1].StrataID || c.StrataVersion != 3 || c.Time != c.StrataTime {
				t.Fatalf("third CloudEvent: %+v", c)
			}
			r = do(t, "GET", base+"/events/"+evs[3].ID, nil, "Accept", "application/cloudevents+json").want(t, 200)
			if c := decode[cloudEvent](t, r.body); r.header.Get("Content-Type") != "application/cloudevents+json" || c.ID != "inv-1" || c.Subject != "invoices/é1" ||
				c.DataContentType != "application/json" || string(c.Data) != string(evs[3].Data) {
				t.Fatalf("GET /events/<id> as a CloudEvent: %s", r.body)
			}
			mustVerify(t, data, 5)
		})
	}
}
