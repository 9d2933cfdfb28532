package projections

import (
	"encoding/json"
	"strings"
	"testing"

	"strata/jsonx"
)

func TestLookup(t *testing.T) {
	for _, c := range []struct {
		data, path string
		want       string // "" for not found
	}{
		{`{"amount":12.5}`, ".amount", `12.5`},
		{`{"a":{"b":{"c":-1e3}}}`, ".a.b.c", `-1e3`},
		{`{"a":{"b":1}}`, ".a.c", ``},
		{`{"a":[1,2]}`, ".a.b", ``},
		{`{"x":"}\"{","a":{"q":"\\","b":[{"b":1}],"c":2},"b":3}`, ".a.c", `2`},
		{`{"x":"}\"{","a":{"q":"\\","b":[{"b":1}],"c":2},"b":3}`, ".b", `3`},
		{`{"a":1,"a":2}`, ".a", `2`},
		{`{"\u0061":7}`, ".a", `7`},
		{`{"a\\":7}`, ".a", ``},
		{`[{"a":1}]`, ".a", ``},
		{`null`, ".a", ``},
		{``, ".a", ``},
		{`{}`, ".a", ``},
		{`{"a":null}`, ".a", `null`},
		{`{"a":true,"b":false}`, ".b", `false`},
	} {
		segs, err := parsePath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := lookup([]byte(c.data), segs)
		if (c.want == "") == ok || string(v) != c.want {
			t.Errorf("lookup(%s, %s) = %s %v; want %q", c.data, c.path, v, ok, c.want)
		}
	}
	for _, bad := range []string{"", "a", ".", "..a", ".a.", ".a b", ".a[0]", `.a"`} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("parsePath(%q) accepted", bad)
		}
	}
}

// FuzzLookup: on any compact JSON, lookup finds what encoding/json finds
// (the last member of a name), and number reads the numbers it finds.
func FuzzLookup(f *testing.F) {
	for _, s := range []string{`{"amount":12.5}`, `{"a":{"b":[1,{"c":"\""}],"c":{"d":2}}}`, `{"a":1,"a":{"b":2}}`, `{"\u0062":{"b":-0.5e-3}}`} {
		f.Add(s, ".a.b")
	}
	f.Fuzz(func(t *testing.T, data, path string) {
		segs, err := parsePath(path)
		if err != nil {
			return
		}
		compact, err := jsonx.Compact(nil, []byte(data))
		if err != nil {
			return
		}
		got, ok := lookup(compact, segs)
		var v any = nil
		if json.Unmarshal(compact, &v) != nil {
			return
		}
		found := true
		for _, s := range strings.Split(path[1:], ".") {
			m, isObj := v.(map[string]any)
			if !isObj {
				found = false
				break
			}
			if v, found = m[s]; !found {
				break
			}
		}
		if ok != found {
			t.Fatalf("lookup(%s, %s) found %v (%s); encoding/json %v", compact, path, ok, got, found)
		}
		if !ok {
			return
		}
		var g any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("lookup(%s, %s) = %s: not a value: %v", compact, path, got, err)
		}
		gj, _ := json.Marshal(g)
		vj, _ := json.Marshal(v)
		if string(gj) != string(vj) {
			t.Fatalf("lookup(%s, %s) = %s; encoding/json %s", compact, path, gj, vj)
		}
		if x, isNum := number(got); isNum {
			if fv, _ := v.(float64); fv != x {
				t.Fatalf("number(%s) = %v; encoding/json %v", got, x, v)
			}
		} else if _, isNum := v.(float64); isNum {
			t.Fatalf("number(%s) refused a number", got)
		}
	})
}
