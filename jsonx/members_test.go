package jsonx

import (
	"strings"
	"testing"
)

func TestMembers(t *testing.T) {
	var got []string
	err := Members([]byte(`{"a":1,"b\u0063":{"x":[1,2]},"s":"t\"u"}`), func(name, value []byte) bool {
		got = append(got, string(name)+"="+string(value))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := `a=1|bc={"x":[1,2]}|s="t\"u"`; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
	n := 0
	Members([]byte(`{"a":1,"b":2}`), func(_, _ []byte) bool { n++; return false })
	if n != 1 {
		t.Fatalf("fn returning false: %d calls, want 1", n)
	}
	if err := Members([]byte(`{}`), func(_, _ []byte) bool { t.Fatal("called on {}"); return true }); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{``, `[]`, `{"a":1} `, `{"a" :1}`, `{"a":}`, `{a:1}`} {
		if err := Members([]byte(bad), func(_, _ []byte) bool { return true }); err == nil {
			t.Errorf("Members(%q): no error", bad)
		}
	}
}

func TestElements(t *testing.T) {
	var got []string
	if err := Elements([]byte(`[1,{"a":[2]},"x",[]]`), func(v []byte) bool { got = append(got, string(v)); return true }); err != nil {
		t.Fatal(err)
	}
	if want := `1|{"a":[2]}|"x"|[]`; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
	for _, bad := range []string{``, `{}`, `[1] `, `[1,]x`, `[`} {
		if err := Elements([]byte(bad), func(_ []byte) bool { return true }); err == nil {
			t.Errorf("Elements(%q): no error", bad)
		}
	}
}

func TestUnquote(t *testing.T) {
	for lit, want := range map[string]string{`""`: "", `"ab"`: "ab", `"a\nb\u00e9"`: "a\nbé", `"\ud83d\ude00"`: "😀"} {
		got, ok := Unquote(nil, []byte(lit))
		if !ok || string(got) != want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", lit, got, ok, want)
		}
	}
	for _, bad := range []string{``, `"`, `1`, `"a"b`, `"\ud800"`, `"a`} {
		if _, ok := Unquote(nil, []byte(bad)); ok {
			t.Errorf("Unquote(%s): ok", bad)
		}
	}
}
