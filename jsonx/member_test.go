package jsonx

import "testing"

func TestSetMember(t *testing.T) {
	for _, c := range []struct{ obj, want string }{
		{"", `{"by":"user:a"}`},
		{`{}`, `{"by":"user:a"}`},
		{`{"source":"shop"}`, `{"source":"shop","by":"user:a"}`},
		{`{"by":"forged"}`, `{"by":"user:a"}`},
		{`{"by":"forged","x":1}`, `{"x":1,"by":"user:a"}`},
		{`{"x":{"by":1},"by":[1,2],"y":"z"}`, `{"x":{"by":1},"y":"z","by":"user:a"}`},
		{`{"\u0062y":"escaped forgery","b\"y":2}`, `{"b\"y":2,"by":"user:a"}`},
		{`{"by":1,"by":2}`, `{"by":"user:a"}`},
	} {
		var obj []byte
		if c.obj != "" {
			obj = []byte(c.obj)
		}
		got, err := SetMember(nil, obj, "by", []byte(`"user:a"`))
		if err != nil || string(got) != c.want {
			t.Errorf("SetMember(%s) = %s, %v; want %s", c.obj, got, err, c.want)
		}
	}
	for _, bad := range []string{`[]`, `{"a":}`, `{"a":1} `, `{"a":1`, `{a:1}`, `{"\ud800":1}`} {
		if got, err := SetMember([]byte("x"), []byte(bad), "by", []byte(`1`)); err == nil || string(got) != "x" {
			t.Errorf("SetMember(%s) = %s, %v; want an error and dst unchanged", bad, got, err)
		}
	}
}

func FuzzSetMember(f *testing.F) {
	f.Add([]byte(`{"by":"x","a":[1,{"by":2}]}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		c, err := Compact(nil, obj)
		if err != nil || len(c) == 0 || c[0] != '{' {
			return
		}
		out, err := SetMember(nil, c, "by", []byte(`"p"`))
		if err != nil {
			return // e.g. a lone surrogate escape in a key
		}
		if _, err := Compact(nil, out); err != nil {
			t.Fatalf("SetMember(%s) = %s: invalid JSON: %v", c, out, err)
		}
	})
}
