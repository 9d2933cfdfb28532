package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzCompact checks Compact against encoding/json on arbitrary input.
func FuzzCompact(f *testing.F) {
	for _, s := range compactSeeds {
		f.Add([]byte(s))
	}
	f.Add(benchBody(3, false))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkAgainstStdlib(t, src)
	})
}

// FuzzParseEvents checks that ParseEvents never panics, that it fails only
// with *FieldError, and that what it returns is consistent with a slow
// reading of the same body through encoding/json.
func FuzzParseEvents(f *testing.F) {
	seeds := []string{
		`{"type":"a","entity":"b"}`,
		`[{"type":"a","entity":"b","key":"k","data":{"x":[1,2.5,"s"]},"meta":{"m":null},"expected_version":3}]`,
		`{"type":"t\u00e9","entity":"\ud83d\ude00","data":"\ud800","expected_version":null,"meta":null}`,
		"{\"type\":\"a\",\"entity\":\"b\"}\r\n\r\n{\"type\":\"c\",\"entity\":\"d\"}\n",
		`{"type":"a","entity":"b","type":"c"}`,
		`{"type":"a","entity":"b","id":1}`,
		`{"type":"a","entity":"\ud800"}`,
		`{"type":"a","entity":"b","data":["\udc00",1e999999]}`,
		`{"type":"a","entity":"b","data":{"x":"\ud800\udc00","y":1e308,"z":-1e-400}}`,
		`[{"type":"a","entity":"b"},]`,
		`{"type":"a","entity":"b","expected_version":9007199254740993}`,
		`[]`, ``, `null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Add(benchBody(2, false), false)
	f.Add(benchBody(2, true), true)
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		orig := bytes.Clone(body)
		evs, err := ParseEvents(body, ndjson)
		if !bytes.Equal(body, orig) {
			t.Fatal("ParseEvents modified the body")
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || evs != nil {
				t.Fatalf("ParseEvents: %T %v with %d events", err, err, len(evs))
			}
			_ = err.Error()
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		if !ndjson {
			// Accepted bodies are valid JSON, hence valid UTF-8 as well.
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
		}
		for i, ev := range evs {
			if !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.Entity) || !utf8.ValidString(ev.Key) {
				t.Fatalf("event %d: invalid UTF-8 in a string: %+v", i, ev)
			}
			if c, err := Compact(nil, ev.Data); err != nil || !bytes.Equal(c, ev.Data) {
				t.Fatalf("event %d: data %q not compact JSON: %v", i, ev.Data, err)
			}
			if ev.Meta != nil {
				if c, err := Compact(nil, ev.Meta); err != nil || !bytes.Equal(c, ev.Meta) || ev.Meta[0] != '{' {
					t.Fatalf("event %d: meta %q not a compact object: %v", i, ev.Meta, err)
				}
			}
			if ev.ExpectedVersion < -1 || ev.ExpectedVersion > 1<<53 {
				t.Fatalf("event %d: expected_version %d", i, ev.ExpectedVersion)
			}
			// Strings must decode as encoding/json decodes them.
			for _, s := range []string{ev.Type, ev.Entity, ev.Key} {
				var back string
				if err := json.Unmarshal(AppendString(nil, s), &back); err != nil || back != s {
					t.Fatalf("event %d: string %q does not round-trip: %v", i, s, err)
				}
			}
		}
		if !ndjson {
			checkWithStdlib(t, body, evs)
		}
	})
}

// checkWithStdlib decodes body with encoding/json and compares the strings
// and the compacted data with what ParseEvents returned.
func checkWithStdlib(t *testing.T, body []byte, evs []Input) {
	type raw struct {
		Type, Entity, Key string
		Data, Meta        json.RawMessage
	}
	var list []raw
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if trimmed[0] == '{' {
		list = make([]raw, 1)
		if err := json.Unmarshal(body, &list[0]); err != nil {
			t.Fatalf("encoding/json refuses accepted body %q: %v", body, err)
		}
	} else if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("encoding/json refuses accepted body %q: %v", body, err)
	}
	if len(list) != len(evs) {
		t.Fatalf("%d events, encoding/json sees %d", len(evs), len(list))
	}
	for i, r := range list {
		ev := evs[i]
		if r.Type != ev.Type || r.Entity != ev.Entity || r.Key != ev.Key {
			t.Fatalf("event %d: strings %q %q %q, encoding/json gives %q %q %q", i, ev.Type, ev.Entity, ev.Key, r.Type, r.Entity, r.Key)
		}
		if r.Data != nil {
			var want bytes.Buffer
			_ = json.Compact(&want, r.Data)
			if !bytes.Equal(want.Bytes(), ev.Data) {
				t.Fatalf("event %d: data %q, encoding/json gives %q", i, ev.Data, want.Bytes())
			}
		}
	}
}
