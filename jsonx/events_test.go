package jsonx

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func in(typ, entity, key, data, meta string, ev int64) Input {
	i := Input{Type: typ, Entity: entity, Key: key, Data: []byte(data), ExpectedVersion: ev}
	if meta != "" {
		i.Meta = []byte(meta)
	}
	return i
}

func TestParseEventsValid(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		ndjson bool
		want   []Input
	}{
		{"minimal", `{"type":"a","entity":"b"}`, false,
			[]Input{in("a", "b", "", "null", "", -1)}},
		{"all fields, whitespace", " {\n \"type\" : \"order.placed\" ,\"entity\":\"order-1\", \"key\":\"k1\",\n\"data\": { \"sku\" : \"A-1\", \"qty\" : 3, \"n\": 12345678901234567890123, \"f\": 1.0, \"e\": 1e3 },\"meta\":{ \"source\" : \"shop\" },\"expected_version\":0 } \n", false,
			[]Input{in("order.placed", "order-1", "k1", `{"sku":"A-1","qty":3,"n":12345678901234567890123,"f":1.0,"e":1e3}`, `{"source":"shop"}`, 0)}},
		{"member order free", `{"data":[1, 2],"expected_version":9007199254740992,"entity":"e","type":"t"}`, false,
			[]Input{in("t", "e", "", `[1,2]`, "", 1<<53)}},
		{"nulls", `{"type":"t","entity":"e","data":null,"meta":null,"expected_version":null}`, false,
			[]Input{in("t", "e", "", "null", "", -1)}},
		{"empty meta object", `{"type":"t","entity":"e","meta":{}}`, false,
			[]Input{in("t", "e", "", "null", "{}", -1)}},
		{"data scalar string kept escaped", `{"type":"t","entity":"e","data":"a\u00e9\n"}`, false,
			[]Input{in("t", "e", "", `"a\u00e9\n"`, "", -1)}},
		{"data surrogate pair escape kept", `{"type":"t","entity":"e","data":"\ud83d\ude00"}`, false,
			[]Input{in("t", "e", "", `"\ud83d\ude00"`, "", -1)}},
		{"unescaped strings", `{"type":"t\u002ex","entity":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/","key":"é"}`, false,
			[]Input{in("t.x", "café 😀 \"q\" \\ /", "é", "null", "", -1)}},
		{"escaped member name", `{"typ\u0065":"t","\u0065ntity":"e"}`, false,
			[]Input{in("t", "e", "", "null", "", -1)}},
		{"array", ` [ {"type":"a","entity":"1","data":1} , {"type":"b","entity":"2","expected_version":5} ] `, false,
			[]Input{in("a", "1", "", "1", "", -1), in("b", "2", "", "null", "", 5)}},
		{"ndjson", "{\"type\":\"a\",\"entity\":\"1\"}\r\n\r\n  \n{\"type\":\"b\",\"entity\":\"2\",\"data\":[ ]}\n", true,
			[]Input{in("a", "1", "", "null", "", -1), in("b", "2", "", "[]", "", -1)}},
		{"ndjson no final newline", "{\"type\":\"a\",\"entity\":\"1\"}\n{\"type\":\"b\",\"entity\":\"2\"}", true,
			[]Input{in("a", "1", "", "null", "", -1), in("b", "2", "", "null", "", -1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents([]byte(tt.body), tt.ndjson)
			if err != nil {
				t.Fatalf("ParseEvents: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseEvents =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseEventsErrors(t *testing.T) {
	const ok = `{"type":"t","entity":"e"}`
	tests := []struct {
		name   string
		body   string
		ndjson bool
		index  int
		field  string
		msg    string // substring of Msg
	}{
		{"empty body", ``, false, -1, "", "no events"},
		{"blank body", " \n\t", false, -1, "", "no events"},
		{"empty array", ` [ ] `, false, -1, "", "no events"},
		{"empty ndjson", "\n\r\n \n", true, -1, "", "no events"},
		{"scalar body", `42`, false, -1, "", "must be a JSON object or an array"},
		{"broken scalar body", `x4`, false, -1, "", "invalid character"},
		{"bom", "\xef\xbb\xbf" + ok, false, -1, "", "invalid character"},
		{"trailing garbage", ok + ` x`, false, -1, "", "after top-level value"},
		{"two objects without ndjson", ok + ok, false, -1, "", "after top-level value"},
		{"array trailing garbage", `[` + ok + `]]`, false, -1, "", "after top-level value"},
		{"missing type", `{"entity":"e"}`, false, 0, "type", "is required"},
		{"empty object", `{}`, false, 0, "type", "is required"},
		{"missing entity", `{"type":"t"}`, false, 0, "entity", "is required"},
		{"type number", `{"type":1,"entity":"e"}`, false, 0, "type", "must be a string"},
		{"type null", `{"type":null,"entity":"e"}`, false, 0, "type", "must be a string"},
		{"entity object", `{"type":"t","entity":{}}`, false, 0, "entity", "must be a string"},
		{"key number", `{"type":"t","entity":"e","key":7}`, false, 0, "key", "must be a string"},
		{"meta array", `{"type":"t","entity":"e","meta":[]}`, false, 0, "meta", "must be an object or null"},
		{"meta string", `{"type":"t","entity":"e","meta":"x"}`, false, 0, "meta", "must be an object or null"},
		{"ev string", `{"type":"t","entity":"e","expected_version":"1"}`, false, 0, "expected_version", "must be an integer or null"},
		{"ev negative", `{"type":"t","entity":"e","expected_version":-1}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev minus zero", `{"type":"t","entity":"e","expected_version":-0}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev fraction", `{"type":"t","entity":"e","expected_version":1.0}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev exponent", `{"type":"t","entity":"e","expected_version":1e2}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev too big", `{"type":"t","entity":"e","expected_version":9007199254740993}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev huge", `{"type":"t","entity":"e","expected_version":123456789012345678901234567890}`, false, 0, "expected_version", "from 0 to 2^53"},
		{"ev leading zero", `{"type":"t","entity":"e","expected_version":01}`, false, 0, "", "invalid JSON"},
		{"ev bare minus", `{"type":"t","entity":"e","expected_version":-}`, false, 0, "expected_version", "invalid JSON"},
		{"unknown field", `{"type":"t","entity":"e","id":"x"}`, false, 0, "id", "unknown field"},
		{"unknown escaped field", `{"type":"t","entity":"e","\u0069d":"x"}`, false, 0, "id", "unknown field"},
		{"field names are case sensitive", `{"Type":"t","entity":"e"}`, false, 0, "Type", "unknown field"},
		{"duplicate field", `{"type":"t","entity":"e","type":"u"}`, false, 0, "type", "duplicate field"},
		{"duplicate via escape", `{"type":"t","entity":"e","\u0074ype":"u"}`, false, 0, "type", "duplicate field"},
		{"duplicate null meta", `{"type":"t","entity":"e","meta":null,"meta":{}}`, false, 0, "meta", "duplicate field"},
		{"lone surrogate", `{"type":"t","entity":"\ud800"}`, false, 0, "entity", "lone surrogate"},
		{"lone surrogate in data", `{"type":"t","entity":"e","data":["\ud800"]}`, false, 0, "data", "lone surrogate"},
		{"lone surrogate in meta", `{"type":"t","entity":"e","meta":{"a":"\udfff"}}`, false, 0, "meta", "lone surrogate"},
		{"data number out of range", `{"type":"t","entity":"e","data":1e999999}`, false, 0, "data", "out of the range"},
		{"data number too long", `{"type":"t","entity":"e","data":` + strings.Repeat("7", 100000) + `}`, false, 0, "data", "longer than"},
		{"reversed surrogates", `{"type":"\udc00\ud800","entity":"e"}`, false, 0, "type", "lone surrogate"},
		{"invalid utf8", "{\"type\":\"t\",\"entity\":\"\xff\"}", false, 0, "entity", "invalid UTF-8"},
		{"invalid utf8 in data", "{\"type\":\"t\",\"entity\":\"e\",\"data\":\"\xc3\"}", false, 0, "data", "invalid UTF-8"},
		{"bad data", `{"type":"t","entity":"e","data":[1,]}`, false, 0, "data", "invalid JSON"},
		{"bad data number", `{"type":"t","entity":"e","data":.5}`, false, 0, "data", "invalid JSON"},
		{"deep data", `{"type":"t","entity":"e","data":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, false, 0, "data", "max depth"},
		{"control char", "{\"type\":\"t\",\"entity\":\"a\tb\"}", false, 0, "entity", "invalid JSON"},
		{"trailing comma", `{"type":"t","entity":"e",}`, false, 0, "", "invalid JSON"},
		{"missing colon", `{"type" "t","entity":"e"}`, false, 0, "", "invalid JSON"},
		{"unterminated", `{"type":"t","entity":"e"`, false, 0, "", "invalid JSON"},
		{"unterminated value", `{"type":`, false, 0, "type", "unexpected end"},
		{"second event wrong", `[` + ok + `,{"type":"t"}]`, false, 1, "entity", "is required"},
		{"array element scalar", `[` + ok + `,3]`, false, 1, "", "must be a JSON object"},
		{"array element array", `[[` + ok + `]]`, false, 0, "", "must be a JSON object"},
		{"array trailing comma", `[` + ok + `,]`, false, 1, "", "invalid JSON"},
		{"array missing comma", `[` + ok + ok + `]`, false, 0, "", "invalid JSON"},
		{"array unterminated", `[` + ok + `,`, false, 1, "", "unexpected end"},
		{"ndjson second line bad", ok + "\n\n{\"type\":\"t\",\"entity\":5}\n", true, 1, "entity", "must be a string"},
		{"ndjson object across lines", "{\"type\":\"t\",\n\"entity\":\"e\"}\n", true, 0, "", "invalid JSON"},
		{"ndjson two per line", ok + " " + ok + "\n", true, 0, "", "one object per line"},
		{"ndjson array line", "[" + ok + "]\n", true, 0, "", "must be a JSON object"},
		{"ndjson garbage line", ok + "\nxyz\n", true, 1, "", "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents([]byte(tt.body), tt.ndjson)
			if err == nil {
				t.Fatalf("ParseEvents(%q) = %+v, want error", trunc(tt.body), got)
			}
			if got != nil {
				t.Errorf("ParseEvents returned events with an error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v, want *FieldError", err, err)
			}
			if fe.Index != tt.index || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("error %+v (%v), want index %d field %q msg containing %q", *fe, err, tt.index, tt.field, tt.msg)
			}
		})
	}
}

func TestFieldErrorString(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{3, "type", "must be a string"}, `event 3: field "type": must be a string`},
		{FieldError{0, "", "must be a JSON object"}, `event 0: must be a JSON object`},
		{FieldError{-1, "", "no events"}, `request body: no events`},
		{FieldError{1, "a\"b", "unknown field"}, `event 1: field "a\"b": unknown field`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %s, want %s", got, tt.want)
		}
	}
}

// The results must not alias the body, and one event's Data must not be
// overwritten by appending to another's.
func TestParseEventsOwnership(t *testing.T) {
	body := []byte(`[{"type":"a","entity":"x","data":{"v":1},"meta":{"m":1}},{"type":"b","entity":"y","data":[2]}]`)
	evs, err := ParseEvents(body, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = '#'
	}
	evs[0].Data = append(evs[0].Data, "XXXX"...)
	evs[1].Meta = append(evs[1].Meta, "YYYY"...)
	if evs[0].Type != "a" || evs[0].Entity != "x" || string(evs[0].Meta) != `{"m":1}` ||
		evs[1].Type != "b" || string(evs[1].Data) != `[2]` {
		t.Fatalf("results changed with the body or each other: %+v", evs)
	}
}

func TestParseEventsAllocs(t *testing.T) {
	body := benchBody(100, false)
	n := testing.AllocsPerRun(20, func() {
		if _, err := ParseEvents(body, false); err != nil {
			t.Fatal(err)
		}
	})
	// Buffers per request, not per event.
	if n > 10 {
		t.Errorf("ParseEvents of 100 events: %v allocations, want a handful", n)
	}
}

func TestParseEventsMax(t *testing.T) {
	const ok = `{"type":"t","entity":"e"}`
	tests := []struct {
		name   string
		body   string
		ndjson bool
		n      int  // events returned
		many   bool // *TooManyEventsError
	}{
		{"one object", ok, false, 1, false},
		{"array at the limit", `[` + ok + `,` + ok + `]`, false, 2, false},
		{"array past the limit", `[` + ok + `,` + ok + `,` + ok + `]`, false, 0, true},
		{"array past the limit, rest broken", `[` + ok + `,` + ok + `,{"type":`, false, 0, true},
		{"array, a bad event within the limit", `[` + ok + `,{"type":1},` + ok + `]`, false, 0, false},
		{"ndjson at the limit", ok + "\n\n" + ok + "\n\n", true, 2, false},
		{"ndjson past the limit", ok + "\n" + ok + "\n" + ok + "\n", true, 0, true},
		{"ndjson past the limit, rest garbage", ok + "\n" + ok + "\nxyz", true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEventsMax([]byte(tt.body), tt.ndjson, 2)
			var tm *TooManyEventsError
			if errors.As(err, &tm) != tt.many || (tt.many && tm.Max != 2) {
				t.Fatalf("ParseEventsMax = %d events, %v; want too many: %v", len(got), err, tt.many)
			}
			if len(got) != tt.n {
				t.Fatalf("ParseEventsMax = %d events, %v; want %d", len(got), err, tt.n)
			}
		})
	}
	// No limit: as many as sent.
	body := strings.Repeat(ok+"\n", 5000)
	if got, err := ParseEventsMax([]byte(body), true, 0); err != nil || len(got) != 5000 {
		t.Fatalf("no limit: %d events, %v", len(got), err)
	}
}
