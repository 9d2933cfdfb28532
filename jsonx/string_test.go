package jsonx

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"order.placed", `"order.placed"`},
		{`a"b\c/d`, `"a\"b\\c/d"`},
		{"\n\r\t\b\f\x00\x1f\x7f", `"\n\r\t\u0008\u000c\u0000\u001f` + "\x7f\""},
		{"é😀<>&", `"é😀<>&"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // an encoded surrogate is not UTF-8
	}
	for _, tt := range tests {
		if got := AppendString([]byte("x"), tt.in); string(got) != "x"+tt.want {
			t.Errorf("AppendString(%q) = %s, want x%s", tt.in, got, tt.want)
		}
	}
}

// AppendString output must read back, through encoding/json, as the input.
func TestAppendStringRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune{'a', 'Z', ' ', '"', '\\', '/', '\n', '\x00', '\x1f', '\x7f', 'é', '€', '😀', '\u2028', '\u2029', '\ufffd', '\uffff'}
	for range 2000 {
		rs := make([]rune, r.IntN(20))
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := string(rs)
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil || back != s {
			t.Fatalf("AppendString(%q) = %s, reads back as %q, %v", s, enc, back, err)
		}
		if c, err := Compact(nil, enc); err != nil || string(c) != string(enc) {
			t.Fatalf("Compact(AppendString(%q)) = %s, %v", s, c, err)
		}
	}
}

// special must point at the first byte that is not plain, for any word.
func TestSpecial(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	interesting := []byte{0, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 0x7f, 0x80, 0xa0, 0xa2, 0xdc, 0xff, 'a'}
	var b [8]byte
	for n := range 200000 {
		for i := range b {
			if n%2 == 0 {
				b[i] = interesting[r.IntN(len(interesting))]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		want := 8
		for i, c := range b {
			if !plain[c] {
				want = i
				break
			}
		}
		m := special(binary.LittleEndian.Uint64(b[:]))
		got := bits.TrailingZeros64(m) >> 3
		if got != want {
			t.Fatalf("special(% x): first byte %d, want %d", b, got, want)
		}
	}
}

func TestUnescapeSurrogates(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		bad  int
	}{
		{`\ud83d\ude00`, "😀", -1},
		{`a\uD83D\uDE00b`, "a😀b", -1},
		{`\u00e9\u20ac`, "é€", -1},
		{`\ud800`, "", 0},
		{`x\ud800y`, "x", 1},
		{`\ud800\u0041`, "", 0},
		{`\ud800\ud800`, "", 0},
		{`\ude00\ud83d`, "", 0},
		{`\ud83d\n`, "", 0},
		{`\"\\\/\b\f\n\r\t`, "\"\\/\b\f\n\r\t", -1},
	}
	for _, tt := range tests {
		got, bad := unescape(nil, []byte(tt.raw))
		if bad != tt.bad || (bad < 0 && string(got) != tt.want) {
			t.Errorf("unescape(%s) = %q, %d; want %q, %d", tt.raw, got, bad, tt.want, tt.bad)
		}
		if bad < 0 && !utf8.Valid(got) {
			t.Errorf("unescape(%s) gave invalid UTF-8", tt.raw)
		}
	}
}
