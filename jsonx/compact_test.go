package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompactValid(t *testing.T) {
	tests := []struct{ in, want string }{
		{`0`, `0`},
		{`-0`, `-0`},
		{`-0.0e-0`, `-0.0e-0`},
		{`12345678901234567890123`, `12345678901234567890123`},
		{`1.0`, `1.0`},
		{`1e3`, `1e3`},
		{`1E+3`, `1E+3`},
		{`1.5e-300`, `1.5e-300`},
		{` true `, `true`},
		{"\t\r\nfalse\n", `false`},
		{`null`, `null`},
		{`""`, `""`},
		{`"a b\tc"`, `"a b\tc"`},
		{`"\u00e9\"\\\/\b\f\n\r\t"`, `"\u00e9\"\\\/\b\f\n\r\t"`},
		{`"\uD83D\uDE00"`, `"\uD83D\uDE00"`},
		{`"\uDBFF\uDFFF"`, `"\uDBFF\uDFFF"`}, // the last pair
		{`"\ud7ff\ue000"`, `"\ud7ff\ue000"`}, // around the surrogates
		{`1.7976931348623157e308`, `1.7976931348623157e308`},
		{`-1.7976931348623157E+308`, `-1.7976931348623157E+308`},
		{`1e-999999`, `1e-999999`}, // underflows to 0, which every parser reads
		{`0.0000000001e317`, `0.0000000001e317`},
		{strings.Repeat("9", 308), strings.Repeat("9", 308)},
		{"1." + strings.Repeat("1", MaxNumberLen-2), "1." + strings.Repeat("1", MaxNumberLen-2)}, // long but in range
		{"0." + strings.Repeat("0", MaxNumberLen-2), "0." + strings.Repeat("0", MaxNumberLen-2)},
		{`"é😀 ￿"`, `"é😀 ￿"`},
		{"\"\u2028\u2029\"", "\"\u2028\u2029\""},
		{"\"\x7f\"", "\"\x7f\""},
		{`[]`, `[]`},
		{`[ ]`, `[]`},
		{`{}`, `{}`},
		{`{ }`, `{}`},
		{` [ 1 , 2 , [ ] , { } ] `, `[1,2,[],{}]`},
		{`{ "b" : 1 , "a" : [ true , null ] , "b" : 2 }`, `{"b":1,"a":[true,null],"b":2}`},
		{`{"a b": " x "}`, `{"a b":" x "}`},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
		{strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth), strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)},
	}
	for _, tt := range tests {
		got, err := Compact([]byte("prefix:"), []byte(tt.in))
		if err != nil {
			t.Errorf("Compact(%q): %v", trunc(tt.in), err)
			continue
		}
		if string(got) != "prefix:"+tt.want {
			t.Errorf("Compact(%q) = %q, want %q", trunc(tt.in), got, "prefix:"+tt.want)
		}
	}
}

func TestCompactInvalid(t *testing.T) {
	tests := []string{
		``, ` `, "\n",
		`01`, `-01`, `00`, `-`, `--1`, `+1`, `1.`, `.5`, `1.e3`, `1e`, `1e+`, `1E-`, `0x10`, `1_000`,
		`NaN`, `Infinity`, `-Infinity`, `1 2`, `tru`, `truex`, `True`, `nul`, `nulll`, `f`,
		`"abc`, `"\"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, `"\'"`, `'a'`,
		"\"a\x00b\"", "\"a\x1fb\"", "\"a\nb\"", "\"a\tb\"", // raw control characters
		"\"\xff\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", // invalid UTF-8
		"\xef\xbb\xbf{}", // BOM
		"\x00", "{}\x00", "\v1", "\f1", "\u00a01",
		`[`, `]`, `[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`,
		`{,}`, `{a:1}`, `{1:1}`, `{"a":1 "b":2}`, `{"a":1]`, `[1}`,
		`{} {}`, `[] x`, `"a" "b"`, `1,`, `// c`, `/* c */ 1`,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1),
		strings.Repeat("[", 1<<20), // deep and unterminated: must not blow the stack
	}
	for _, in := range tests {
		got, err := Compact([]byte("keep"), []byte(in))
		if err == nil {
			t.Errorf("Compact(%q) = %q, want error", trunc(in), got)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Compact(%q) error %T, want *SyntaxError", trunc(in), err)
		}
		if string(got) != "keep" {
			t.Errorf("Compact(%q) returned %q on error, want dst unchanged", trunc(in), got)
		}
	}
}

// TestCompactPortable: grammatical JSON that strata refuses because some
// parsers cannot read it, and the log is append-only (jsonx/doc.go).
func TestCompactPortable(t *testing.T) {
	tests := []struct{ in, msg string }{
		{`"\ud800"`, "lone surrogate"},
		{`"\uDBFF"`, "lone surrogate"},
		{`"\udc00"`, "lone surrogate"},
		{`"\udc00\ud800"`, "lone surrogate"},
		{`"\ud800\ud800"`, "lone surrogate"},
		{`"\ud800x"`, "lone surrogate"},
		{`"\ud800\n"`, "lone surrogate"},
		{`"a\ud83d"`, "lone surrogate"},
		{`{"\ud800":1}`, "lone surrogate"},
		{`[1,{"a":["\udfff"]}]`, "lone surrogate"},
		{`1e999999`, "out of the range"},
		{`-1e999999`, "out of the range"},
		{`1.8e308`, "out of the range"},
		{`1` + strings.Repeat("0", 309), "out of the range"},
		{`{"x":[1e400]}`, "out of the range"},
		{strings.Repeat("1", MaxNumberLen+1), "longer than"},
		{"0." + strings.Repeat("0", MaxNumberLen-1), "longer than"},
		{strings.Repeat("1", 100000), "longer than"},
	}
	for _, tt := range tests {
		got, err := Compact([]byte("keep"), []byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Compact(%q) = %q, %v; want an error saying %q", trunc(tt.in), got, err, tt.msg)
		}
	}
	// A lone surrogate in data names the field.
	_, err := ParseEvents([]byte(`{"type":"t","entity":"e","data":{"s":"\ud800"}}`), false)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "data" || !strings.Contains(fe.Msg, "lone surrogate") {
		t.Errorf("ParseEvents with a lone surrogate in data: %v", err)
	}
	_, err = ParseEvents([]byte(`{"type":"t","entity":"e","meta":{"n":1e999999}}`), false)
	if !errors.As(err, &fe) || fe.Field != "meta" || !strings.Contains(fe.Msg, "range") {
		t.Errorf("ParseEvents with 1e999999 in meta: %v", err)
	}
}

// portable reports whether err is Compact refusing valid JSON that not
// every parser can read.
func portable(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se) && (se.Msg == msgLoneSurrogate || se.Msg == msgNumberRange || se.Msg == msgNumberTooLong)
}

func TestCompactErrorOffset(t *testing.T) {
	tests := []struct {
		in     string
		offset int
	}{
		{`[1,]`, 3},
		{`{"a":01}`, 6},
		{"\"ab\x01\"", 3},
		{"[\"\xff\"]", 2},
		{`"\q"`, 2},
		{`tRue`, 1},
		{`1 2`, 2},
	}
	for _, tt := range tests {
		_, err := Compact(nil, []byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset != tt.offset {
			t.Errorf("Compact(%q) = %v, want error at offset %d", tt.in, err, tt.offset)
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// checkAgainstStdlib compares Compact with encoding/json on src. The two
// differ on purpose in three ways: Compact refuses invalid UTF-8 in strings
// (encoding/json passes it through), nesting deeper than MaxDepth
// (encoding/json allows 10000), and what not every parser reads (lone
// surrogates, numbers too long or out of float64's range).
func checkAgainstStdlib(t *testing.T, src []byte) {
	got, err := Compact(nil, src)
	valid := json.Valid(src)
	switch {
	case err == nil && !valid:
		t.Fatalf("Compact accepted %q, encoding/json refuses it", src)
	case err != nil && valid:
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("Compact(%q): error %T, want *SyntaxError", src, err)
		}
		if !utf8.Valid(src) || strings.Contains(se.Msg, "max depth") || portable(err) {
			return
		}
		t.Fatalf("Compact refused %q (%v), encoding/json accepts it", src, err)
	case err != nil:
		return
	}
	var want bytes.Buffer
	if err := json.Compact(&want, src); err != nil {
		t.Fatalf("json.Compact(%q): %v after json.Valid", src, err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("Compact(%q) = %q, encoding/json gives %q", src, got, want.Bytes())
	}
	// Compacting is idempotent.
	again, err := Compact(nil, got)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("Compact(Compact(%q)) = %q, %v", src, again, err)
	}
}

func TestCompactDifferential(t *testing.T) {
	for _, s := range compactSeeds {
		checkAgainstStdlib(t, []byte(s))
	}
}

// compactSeeds feeds both the differential test and FuzzCompact.
var compactSeeds = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `.5`, `1e`, `1e+5`, `-1.25E-7`, `123456789012345678901234567890`,
	`true`, `false`, `null`, `nul`, `""`, `"a"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800"`, `"\ud800\u0041"`, `"\x"`,
	`1e999999`, `-1e309`, `1e-999999`, `1.7976931348623157e308`, `1.7976931348623159e308`,
	"\"\x01\"", "\"\xff\"", "\xef\xbb\xbf1", "\"é\"", "\"\u2028\"",
	`[]`, `[1, 2 ,3]`, `[1,]`, `{}`, `{"a":1}`, `{ "a" : [ {"b" : null} ] }`, `{"a":1,}`, `{"a" 1}`,
	" \t\r\n[ \"x y\" ,\n {\"k\":\t-0.5e10 } ] \n", `{} {}`, `[[[[[]]]]]`, `[[[[[]]]]`,
	`{"type":"order.placed","entity":"order-1","data":{"sku":"A-1","qty":3}}`,
}
