package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// rfc7386Examples is RFC 7386 Appendix A, verbatim (whitespace and all):
// original, patch, result.
var rfc7386Examples = [][3]string{
	{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
	{`{"a":"b"}`, `{"a":null}`, `{}`},
	{`{"a":"b",
    "b":"c"}`, `{"a":null}`, `{"b":"c"}`},
	{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
	{`{"a": {
      "b": "c"}
    }`, `{"a": {
      "b": "d",
      "c": null}
    }`, `{"a": {
      "b": "d"
    }
    }`},
	{`{"a": [
      {"b":"c"}
     ]
    }`, `{"a": [1]}`, `{"a": [1]}`},
	{`["a","b"]`, `["c","d"]`, `["c","d"]`},
	{`{"a":"b"}`, `["c"]`, `["c"]`},
	{`{"a":"foo"}`, `null`, `null`},
	{`{"a":"foo"}`, `"bar"`, `"bar"`},
	{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
	{`[1,2]`, `{"a":"b",
     "c":null}`, `{"a":"b"}`},
	{`{}`, `{"a":
     {"bb":
      {"ccc":
       null}}}`, `{"a":
     {"bb":
      {}}}`},
}

func mustCompact(t testing.TB, s string) []byte {
	t.Helper()
	c, err := Compact(nil, []byte(s))
	if err != nil {
		t.Fatalf("Compact(%q): %v", s, err)
	}
	return c
}

func TestMergePatchRFC7386(t *testing.T) {
	for _, ex := range rfc7386Examples {
		target, patch, want := mustCompact(t, ex[0]), mustCompact(t, ex[1]), mustCompact(t, ex[2])
		got, err := MergePatch([]byte("x"), target, patch)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", target, patch, got, err, want)
		}
		// The diff back from the result reproduces it, except for the
		// example whose original keeps a null member.
		d, exact, err := MergeDiff(nil, target, want)
		if err != nil {
			t.Errorf("MergeDiff(%s, %s): %v", target, want, err)
			continue
		}
		back, err := MergePatch(nil, target, d)
		if err != nil || !exact || string(back) != string(want) {
			t.Errorf("MergeDiff(%s, %s) = %s, exact %v; applied: %s, %v", target, want, d, exact, back, err)
		}
	}
}

func TestMergePatch(t *testing.T) {
	for _, c := range []struct{ target, patch, want string }{
		// Untouched members keep their bytes: number and string spelling,
		// duplicates and order inside objects the patch does not reach.
		{`{"n":1.0,"big":12345678901234567890,"s":"\u00e9\/","o":{"z":1,"a":2,"z":3},"x":0}`, `{"x":1}`,
			`{"n":1.0,"big":12345678901234567890,"s":"\u00e9\/","o":{"z":1,"a":2,"z":3},"x":1}`},
		// A replaced member keeps its place; added ones follow in the
		// patch's order; the patch's spelling of new values is kept.
		{`{"c":1,"b":2,"a":3}`, `{"z":1E+2,"b":"\u00E9","y":-0.0}`, `{"c":1,"b":"\u00E9","a":3,"z":1E+2,"y":-0.0}`},
		// Deletion, nested merge, a nested member added.
		{`{"a":{"b":1,"c":{"d":[1,{"e":null}]}},"f":true}`, `{"f":null,"a":{"c":{"x":{}},"b":null}}`, `{"a":{"c":{"d":[1,{"e":null}],"x":{}}}}`},
		// Names are compared decoded; the target's spelling stays.
		{`{"\u0061":1,"b":2}`, `{"a":5}`, `{"\u0061":5,"b":2}`},
		{`{"\u0061":1,"b":2}`, `{"\u0061":null,"\u0062":3}`, `{"b":3}`},
		{`{"é":1}`, `{"\u00e9":{"x":null,"y":1}}`, `{"é":{"y":1}}`},
		// Duplicates in the target: a name the patch touches comes out
		// once, at its first place, merged from its last value; others
		// stay as they are.
		{`{"a":1,"b":2,"a":{"x":1},"b":3}`, `{"a":{"y":2}}`, `{"a":{"x":1,"y":2},"b":2,"b":3}`},
		{`{"a":1,"a":2}`, `{"a":null}`, `{}`},
		// Duplicates in the patch: the last one counts, at the first's place.
		{`{}`, `{"a":1,"b":2,"a":null}`, `{"b":2}`},
		{`{"k":0}`, `{"a":1,"b":2,"a":3}`, `{"k":0,"a":3,"b":2}`},
		{`{"k":0}`, `{"a":{"x":null,"y":{"z":null}}}`, `{"k":0,"a":{"y":{}}}`},
		// A non-object target, or none, counts as null.
		{``, `{"a":1,"b":null}`, `{"a":1}`},
		{`null`, `{"a":1}`, `{"a":1}`},
		{`"s"`, `{}`, `{}`},
		{``, `[1,null]`, `[1,null]`},
		{``, `null`, `null`},
		{`{"a":1}`, `{}`, `{"a":1}`},
		{`{"a":1}`, `12345678901234567890`, `12345678901234567890`},
	} {
		got, err := MergePatch(nil, []byte(c.target), []byte(c.patch))
		if err != nil || string(got) != c.want {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", c.target, c.patch, got, err, c.want)
		}
	}
}

// TestMergePatchManyMembers crosses linearMax, where lookups use a hash
// table.
func TestMergePatchManyMembers(t *testing.T) {
	var target, patch, want strings.Builder
	target.WriteString("{")
	patch.WriteString("{")
	want.WriteString("{")
	for i := range 100 {
		if i > 0 {
			target.WriteString(",")
			patch.WriteString(",")
		}
		k := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		target.WriteString(`"` + k + `":` + string(rune('0'+i%10)))
		switch {
		case i%3 == 0:
			patch.WriteString(`"` + k + `":null`)
		case i%3 == 1:
			patch.WriteString(`"` + k + `":"p"`)
		default:
			patch.WriteString(`"new` + k + `":1`)
		}
	}
	for i := range 100 {
		k := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		switch i % 3 {
		case 1:
			want.WriteString(`"` + k + `":"p",`)
		case 2:
			want.WriteString(`"` + k + `":` + string(rune('0'+i%10)) + `,`)
		}
	}
	for i := 2; i < 100; i += 3 {
		k := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		want.WriteString(`"new` + k + `":1,`)
	}
	target.WriteString("}")
	patch.WriteString(`,"a":{"b":1},"a":7}`) // a duplicate in a large patch
	w := strings.TrimSuffix(want.String(), ",") + "}"
	w = strings.Replace(w, `{"b":"p"`, `{"a":7,"b":"p"`, 1) // a was deleted, then set again by the patch's last "a"
	got, err := MergePatch(nil, []byte(target.String()), []byte(patch.String()))
	if err != nil {
		t.Fatal(err)
	}
	checkSameJSON(t, got, []byte(w))
	if d, exact, err := MergeDiff(nil, []byte(target.String()), got); err != nil || !exact {
		t.Fatalf("MergeDiff: %s, %v, %v", d, exact, err)
	} else if back, err := MergePatch(nil, []byte(target.String()), d); err != nil || string(back) != string(got) {
		t.Fatalf("MergeDiff applied gives %s, %v; want %s", back, err, got)
	}
}

func TestMergePatchErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	tooDeep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	for _, c := range []struct{ target, patch, where string }{
		{`{}`, ``, "patch"},
		{`{}`, `{"a":1} `, "patch"},
		{`{}`, `{"a": 1}`, "patch"},
		{`{}`, `{"a":[1, 2]}`, "patch"},
		{`{}`, `{"a":1,}`, "patch"},
		{`{}`, `{"a"}`, "patch"},
		{`{}`, `{"\ud800":1}`, "patch"},
		{`{}`, `[1,]`, "patch"},
		{`{}`, `{"a":1}{}`, "patch"},
		{`{}`, tooDeep, "patch"},
		{`{"a":}`, `{}`, "target"},
		{`{"a":1`, `{"b":1}`, "target"},
		{`{"a":1} `, `{}`, "target"},
		{`{"a":{"b": 1}}`, `{}`, "target"},
		{`[1,`, `{}`, "target"},
		{`[1,`, `5`, "target"},
		{`{"x":1,}`, `5`, "target"},
		{tooDeep, `{"b":1}`, "target"},
		{`{"a":` + tooDeep + `}`, `{"b":1}`, "target"},
	} {
		got, err := MergePatch([]byte("dst"), []byte(c.target), []byte(c.patch))
		var se *SyntaxError
		if !errors.As(err, &se) || string(got) != "dst" || !strings.HasPrefix(se.Msg, c.where+": ") {
			t.Errorf("MergePatch(%.40s, %.40s) = %s, %v; want dst unchanged and a %s error", c.target, c.patch, got, err, c.where)
		}
	}
	// The deepest accepted values merge, and the result is no deeper.
	for _, c := range [][2]string{{deep, deep}, {`{}`, deep}, {deep, `{"a":{"b":1}}`}} {
		got, err := MergePatch(nil, []byte(c[0]), []byte(c[1]))
		if err != nil {
			t.Fatalf("MergePatch at MaxDepth: %v", err)
		}
		if _, err := Compact(nil, got); err != nil {
			t.Fatalf("MergePatch at MaxDepth gives %s: %v", got, err)
		}
	}
}

func TestMergeDiff(t *testing.T) {
	for _, c := range []struct {
		from, to, want string
		exact          bool
	}{
		{`{"a":1,"b":2}`, `{"a":1,"b":2}`, `{}`, true},
		{`{"a":1,"b":2,"c":3}`, `{"b":2.0,"d":[null],"a":1}`, `{"b":2.0,"d":[null],"c":null}`, true},
		{`{"a":{"x":1,"y":{"z":2}},"b":{"k":1}}`, `{"a":{"x":1,"y":{"z":3}},"b":{"k":1}}`, `{"a":{"y":{"z":3}}}`, true},
		{`{"a":{"x":1,"y":2}}`, `{"a":{"y":2,"x":1}}`, `{}`, true}, // reordered only
		{`{"a":"\u00e9"}`, `{"a":"é"}`, `{"a":"é"}`, true},
		{`{"\u0061":1}`, `{"a":1}`, `{}`, true},
		{`{"a":1}`, `{"b":{"c":{}}}`, `{"b":{"c":{}},"a":null}`, true},
		{`{"a":1}`, `{"a":{"c":1}}`, `{"a":{"c":1}}`, true},
		// Duplicates count as a reader sees them: the last one.
		{`{"a":1,"a":2}`, `{"a":2}`, `{}`, true},
		{`{"a":1}`, `{"a":2,"b":0,"a":1}`, `{"b":0}`, true},
		// Either side not an object: the patch is to.
		{`[1]`, `{"a":1}`, `{"a":1}`, true},
		{``, `{"a":1}`, `{"a":1}`, true},
		{`{"a":1}`, `[null]`, `[null]`, true},
		{`{"a":1}`, `null`, `null`, true},
		{`1.0`, `1`, `1`, true},
		// Nulls RFC 7386 cannot carry.
		{`{"a":1}`, `{"a":null}`, `{"a":null}`, false},
		{`{}`, `{"a":null}`, `{"a":null}`, false},
		{`{"a":null}`, `{"a":null}`, `{}`, true},
		{`{"a":{"b":1}}`, `{"a":{"b":null}}`, `{"a":{"b":null}}`, false},
		{`{"a":1}`, `{"a":{"b":{"c":null}}}`, `{"a":{"b":{"c":null}}}`, false},
		{`{"a":1}`, `{"a":{"b":[{"c":null}]}}`, `{"a":{"b":[{"c":null}]}}`, true},
		{``, `{"a":{"b":null}}`, `{"a":{"b":null}}`, false},
		{``, `{"a":null,"a":1}`, `{"a":null,"a":1}`, true},
	} {
		got, exact, err := MergeDiff([]byte("x"), []byte(c.from), []byte(c.to))
		if err != nil || string(got) != "x"+c.want || exact != c.exact {
			t.Errorf("MergeDiff(%s, %s) = %s, %v, %v; want %s, %v", c.from, c.to, got, exact, err, c.want, c.exact)
		}
	}
	for _, c := range [][2]string{{`{}`, `{"a": 1}`}, {`{"a":1 }`, `{}`}, {`{}`, ``}, {`[`, `{}`}, {`{}`, `{"a":[}`}} {
		got, _, err := MergeDiff([]byte("x"), []byte(c[0]), []byte(c[1]))
		var se *SyntaxError
		if !errors.As(err, &se) || string(got) != "x" {
			t.Errorf("MergeDiff(%s, %s) = %s, %v; want an error and dst unchanged", c[0], c[1], got, err)
		}
	}
}

// decode reads JSON as a reader would, numbers as their text.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func checkSameJSON(t testing.TB, got, want []byte) {
	t.Helper()
	if !reflect.DeepEqual(decode(t, got), decode(t, want)) {
		t.Fatalf("got %s, want the same JSON as %s", got, want)
	}
}

// refMergePatch is RFC 7386's MergePatch pseudocode over decoded values.
func refMergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	out := map[string]any{}
	if t, ok := target.(map[string]any); ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = refMergePatch(out[k], v)
		}
	}
	return out
}

// checkMerge checks MergePatch(target, patch) against refMergePatch and
// MergeDiff(target, patch) by applying it; both inputs are compact.
func checkMerge(t testing.TB, target, patch []byte) {
	t.Helper()
	origT, origP := bytes.Clone(target), bytes.Clone(patch)
	got, err := MergePatch(nil, target, patch)
	if err != nil {
		t.Fatalf("MergePatch(%s, %s): %v", target, patch, err)
	}
	if !bytes.Equal(target, origT) || !bytes.Equal(patch, origP) {
		t.Fatal("MergePatch modified its input")
	}
	if c, err := Compact(nil, got); err != nil || !bytes.Equal(c, got) {
		t.Fatalf("MergePatch(%s, %s) = %s: not compact JSON: %v", target, patch, got, err)
	}
	var tv any
	if len(target) > 0 {
		tv = decode(t, target)
	}
	if want := refMergePatch(tv, decode(t, patch)); !reflect.DeepEqual(decode(t, got), want) {
		t.Fatalf("MergePatch(%s, %s) = %s; RFC 7386 gives %#v", target, patch, got, want)
	}
	// The diff from target to patch (read as a state), applied, gives
	// patch back exactly when MergeDiff says so.
	d, exact, err := MergeDiff(nil, target, patch)
	if err != nil {
		t.Fatalf("MergeDiff(%s, %s): %v", target, patch, err)
	}
	back, err := MergePatch(nil, target, d)
	if err != nil {
		t.Fatalf("MergePatch(%s, MergeDiff = %s): %v", target, d, err)
	}
	if same := reflect.DeepEqual(decode(t, back), decode(t, patch)); same != exact {
		t.Fatalf("MergeDiff(%s, %s) = %s, exact %v, but applied it gives %s", target, patch, d, exact, back)
	}
}

// randJSON writes a random compact value, with few distinct names (some
// spelled two ways) so that objects share, shadow and delete members.
func randJSON(r *rand.Rand, b []byte, depth int) []byte {
	names := []string{`"a"`, `"b"`, `"c"`, `"\u0061"`, `"d\"e"`, `"é"`, `"\u00e9"`, `""`}
	scalars := []string{`null`, `null`, `true`, `false`, `0`, `1`, `1.0`, `-0`, `12345678901234567890`, `2e3`, `""`, `"x"`, `"\u00e9"`, `"é"`}
	k := r.IntN(10)
	if depth >= 4 {
		k = 9
	}
	switch {
	case k < 5:
		b = append(b, '{')
		n := r.IntN(6)
		if r.IntN(8) == 0 {
			n += 10 // past linearMax
		}
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			if n > 8 && r.IntN(2) == 0 {
				b = append(b, `"k`...)
				b = append(b, byte('a'+r.IntN(26)))
				b = append(b, '"')
			} else {
				b = append(b, names[r.IntN(len(names))]...)
			}
			b = append(b, ':')
			b = randJSON(r, b, depth+1)
		}
		return append(b, '}')
	case k < 6:
		b = append(b, '[')
		for i := range r.IntN(3) {
			if i > 0 {
				b = append(b, ',')
			}
			b = randJSON(r, b, depth+1)
		}
		return append(b, ']')
	default:
		return append(b, scalars[r.IntN(len(scalars))]...)
	}
}

func TestMergePatchRandom(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	for range 20000 {
		a := randJSON(r, nil, 0)
		p := randJSON(r, nil, 0)
		if r.IntN(20) == 0 {
			a = nil
		}
		checkMerge(t, a, p)
	}
}

// FuzzMergePatch checks MergePatch and MergeDiff on any pair of valid
// values against RFC 7386's pseudocode run on encoding/json's reading.
func FuzzMergePatch(f *testing.F) {
	for _, ex := range rfc7386Examples {
		f.Add(mustCompact(f, ex[0]), mustCompact(f, ex[1]))
	}
	f.Add([]byte(`{"a":1,"a":{"b":null},"\u0061":2}`), []byte(`{"a":{"c":null},"a":{"d":1.0}}`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		target, err := Compact(nil, target)
		if err != nil {
			return
		}
		patch, err = Compact(nil, patch)
		if err != nil {
			return
		}
		checkMerge(t, target, patch)
	})
}

// benchState is an entity state of about 1 KB.
var benchState = []byte(`{"id":"order-123","status":"placed","customer":{"id":"cust-77","name":"Zoë Müller","email":"zoe77@example.com",` +
	`"address":{"street":"Hauptstraße 5","city":"Berlin","zip":"10115","country":"DE"}},` +
	`"lines":[{"sku":"A-1","qty":1,"price":9.5},{"sku":"B-22","qty":2,"price":5.245},{"sku":"C-333","qty":1,"price":120.0}],` +
	`"currency":"EUR","total":140.0,"tax":26.6,"shipping":{"method":"express","carrier":"DHL","tracking":null,"eta":"2026-12-04"},` +
	`"note":"ring twice \"please\"","gift":false,"tags":["priority","b2b","repeat"],"created":"2026-12-01T10:00:00Z",` +
	`"updated":"2026-12-01T10:05:00Z","payment":{"method":"card","last4":"4242","status":"authorized","amount":166.6},` +
	`"discounts":[],"channel":"web","locale":"de-DE","source":{"campaign":"winter","medium":"email"},"version":7,` +
	`"flags":{"fraud_checked":true,"vip":false},"history_count":7,"warehouse":"BER-1","priority":2}`)

func BenchmarkMergePatch(b *testing.B) {
	patch := []byte(`{"status":"shipped","shipping":{"tracking":"JD014600006543","eta":null},"updated":"2026-12-02T09:00:00Z"}`)
	dst := make([]byte, 0, 2*len(benchState))
	b.SetBytes(int64(len(benchState)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = MergePatch(dst[:0], benchState, patch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMergeDiff(b *testing.B) {
	to, err := MergePatch(nil, benchState, []byte(`{"status":"shipped","shipping":{"tracking":"JD014600006543","eta":null},"updated":"2026-12-02T09:00:00Z"}`))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, len(benchState))
	b.ReportAllocs()
	for b.Loop() {
		if dst, _, err = MergeDiff(dst[:0], benchState, to); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMergePatchWide merges 1,000 members into a state of 10,000,
// where names are looked up in hash tables: the cost per member should
// stay near the small case's.
func BenchmarkMergePatchWide(b *testing.B) {
	state, patch := []byte{'{'}, []byte{'{'}
	for i := range 10000 {
		if i > 0 {
			state = append(state, ',')
		}
		state = fmt.Appendf(state, `"member-%d":%d`, i, i)
	}
	for i := range 1000 {
		if i > 0 {
			patch = append(patch, ',')
		}
		patch = fmt.Appendf(patch, `"member-%d":"changed"`, i*17)
	}
	state, patch = append(state, '}'), append(patch, '}')
	dst := make([]byte, 0, 2*len(state))
	b.SetBytes(int64(len(state)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = MergePatch(dst[:0], state, patch); err != nil {
			b.Fatal(err)
		}
	}
}
