package jq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzRun compiles and runs any program on any input with tight limits:
// nothing may panic or hang, every error is one of the package's, and a
// value that comes out encodes, decodes and encodes again to the same bytes.
func FuzzRun(f *testing.F) {
	for _, s := range []struct{ src, in string }{
		{`$state + $event.data.amount`, `{"data":{"amount":1}}`},
		{`.a[1:] | map(. * 2) | add`, `{"a":[1,2,3]}`},
		{`to_entries | map(select(.value > 1)) | from_entries`, `{"a":1,"b":2}`},
		{`[paths] | length`, `{"a":[{"b":null}]}`},
		{`def f: [f]; f`, `null`},
		{`[range(1e9)]`, `null`},
		{`"x" * 1e9`, `null`},
		{`.[] |= tostring | tojson | fromjson`, `[1.5, 2, "x", null]`},
		{`test("a+"; "g")`, `"aaa"`},
		{`@base64d`, `"YWJj"`},
		{`123456789012345678901234567890 + 1`, `0`},
	} {
		f.Add(s.src, []byte(s.in))
	}
	lim := Limits{Time: 10 * time.Millisecond, Memory: 32 << 20, Depth: 200}
	f.Fuzz(func(t *testing.T, src string, in []byte) {
		hang := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("hang: %q on %q", src, in)) })
		defer hang.Stop()
		input, derr := Decode(in)
		var se *SyntaxError
		deep := errors.As(derr, &se) && strings.HasPrefix(se.Msg, "nested deeper")
		if (derr == nil) != json.Valid(in) && !deep {
			t.Fatalf("Decode(%q) error %v, but json.Valid says %v", in, derr, json.Valid(in))
		}
		if derr == nil {
			roundTrip(t, input)
			// DecodeMembers keeps what Decode does of the members asked.
			if m, ok := input.(map[string]any); ok {
				names := []string{src, "a"}
				part, err := DecodeMembers(in, names)
				if err != nil {
					t.Fatalf("DecodeMembers(%q): %v, Decode did not fail", in, err)
				}
				want := map[string]any{}
				for _, n := range names {
					if v, ok := m[n]; ok {
						want[n] = v
					}
				}
				a, _ := Encode(part)
				b, _ := Encode(want)
				if !bytes.Equal(a, b) {
					t.Fatalf("DecodeMembers(%q, %q) = %s; want %s", in, names, a, b)
				}
			}
		} else if _, err := DecodeMembers(in, []string{"a"}); err == nil {
			t.Fatalf("DecodeMembers(%q) succeeds where Decode fails: %v", in, derr)
		}
		p, err := Compile(src, "state", "event")
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q): %T %v", src, err, err)
			}
			return
		}
		v, err := p.WithLimits(lim).Run(context.Background(), input, input, input)
		if err != nil {
			var le *LimitError
			var re *RuntimeError
			if !errors.As(err, &le) && !errors.As(err, &re) && err != ErrNoValue {
				t.Fatalf("Run(%q): %T %v", src, err, err)
			}
			return
		}
		roundTrip(t, v)
	})
}

// roundTrip checks that v encodes and that its encoding, decoded and
// encoded again, comes to a fixed point (the first round may turn invalid
// UTF-8 into U+FFFD escapes).
func roundTrip(t *testing.T, v any) {
	b, err := Encode(v)
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			return
		}
		t.Fatalf("Encode(%v): %v", v, err)
	}
	w, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode) of %s: %v", b, err)
	}
	c, err := Encode(w)
	if err != nil {
		t.Fatalf("Encode(Decode(%s)): %v", b, err)
	}
	x, err := Decode(c)
	if err != nil {
		t.Fatalf("Decode(%s): %v", c, err)
	}
	if d, err := Encode(x); err != nil || !bytes.Equal(c, d) {
		t.Fatalf("%s encodes again as %s, %v", c, d, err)
	}
}
