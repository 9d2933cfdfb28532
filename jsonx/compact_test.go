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
		{`"\ud800"`, `"\ud800"`}, // grammatical; ParseEvents refuses it in strings it decodes
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
// differ on purpose in two ways: Compact refuses invalid UTF-8 in strings
// (encoding/json passes it through) and nesting deeper than MaxDepth
// (encoding/json allows 10000).
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
		if !utf8.Valid(src) || strings.Contains(se.Msg, "max depth") {
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
	`true`, `false`, `null`, `nul`, `""`, `"a"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\x"`,
	"\"\x01\"", "\"\xff\"", "\xef\xbb\xbf1", "\"é\"", "\"\u2028\"",
	`[]`, `[1, 2 ,3]`, `[1,]`, `{}`, `{"a":1}`, `{ "a" : [ {"b" : null} ] }`, `{"a":1,}`, `{"a" 1}`,
	" \t\r\n[ \"x y\" ,\n {\"k\":\t-0.5e10 } ] \n", `{} {}`, `[[[[[]]]]]`, `[[[[[]]]]`,
	`{"type":"order.placed","entity":"order-1","data":{"sku":"A-1","qty":3}}`,
}
