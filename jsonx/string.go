package jsonx

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// plain marks string bytes that need no attention: printable ASCII other
// than '"' and '\'. Everything else stops the fast loops below.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special returns a word whose high bit is set in the lowest byte of x that
// is a control character, '"', '\' or non-ASCII, or 0 when all 8 bytes are
// plain. Bits above the lowest may be set spuriously by borrows, never bits
// below it, so the trailing zero count finds the first byte to look at.
// Reading 8 bytes at a time is what makes long strings cheap.
func special(x uint64) uint64 {
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((x-ones*0x20)&^x | (q-ones)&^q | (b-ones)&^b | x) & highs
}

// str checks the string starting at s.i (which holds '"'), leaving s.i after
// the closing quote. It reports whether the string holds any escape, so
// callers that need the decoded text can take the raw bytes when it does not.
func (s *scanner) str() (escaped bool, err error) {
	src := s.src
	i := s.i + 1
	for {
		var c byte
		if i+8 <= len(src) {
			x := binary.LittleEndian.Uint64(src[i:])
			m := special(x)
			if m == 0 {
				i += 8
				continue
			}
			// Take the byte from the word already loaded rather than
			// loading it again.
			tz := bits.TrailingZeros64(m)
			i += tz >> 3
			c = byte(x >> (tz &^ 7))
		} else {
			for i < len(src) && plain[src[i]] {
				i++
			}
			if i >= len(src) {
				return false, s.errAt(i, "unexpected end of JSON input")
			}
			c = src[i]
		}
		switch {
		case c == '"':
			s.i = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(src) {
				return false, s.errAt(i+1, "unexpected end of JSON input")
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if err := s.hexEscape(i); err != nil {
					return false, err
				}
				// A surrogate escape must be a high one followed at once by
				// a low one: strict parsers (jq, Python's with strict
				// UTF-8 output, Rust's serde_json) refuse any other, and a
				// log is append-only, so one stored would break every
				// page that holds it for ever.
				switch r := hex4(src[i+2:]); {
				case r >= 0xd800 && r < 0xdc00:
					if i+7 >= len(src) || src[i+6] != '\\' || src[i+7] != 'u' {
						return false, s.errAt(i, msgLoneSurrogate)
					}
					if err := s.hexEscape(i + 6); err != nil {
						return false, err
					}
					if lo := hex4(src[i+8:]); lo < 0xdc00 || lo >= 0xe000 {
						return false, s.errAt(i, msgLoneSurrogate)
					}
					i += 12
				case r >= 0xdc00 && r < 0xe000:
					return false, s.errAt(i, msgLoneSurrogate)
				default:
					i += 6
				}
			default:
				return false, s.errUnexpected(i+1, "in string escape code")
			}
		case c < 0x20:
			return false, s.errUnexpected(i, "in string literal")
		default:
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n == 1 {
				return false, s.errAt(i, "invalid UTF-8 in string")
			}
			i += n
		}
	}
}

// msgLoneSurrogate is the message for an escaped UTF-16 surrogate that is
// not part of a pair, such as "\ud800".
const msgLoneSurrogate = "lone surrogate escape (not a Unicode character; strict JSON parsers refuse it)"

// hexEscape checks the four hex digits of the \u escape at i.
func (s *scanner) hexEscape(i int) error {
	for j := i + 2; j < i+6; j++ {
		if j >= len(s.src) {
			return s.errAt(j, "unexpected end of JSON input")
		}
		if unhex[s.src[j]] < 0 {
			return s.errUnexpected(j, "in \\u hexadecimal character escape")
		}
	}
	return nil
}

// unhex maps a hex digit to its value and anything else to -1.
var unhex = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

// hex4 decodes the four hex digits at p, which str has already checked.
func hex4(p []byte) rune {
	return rune(unhex[p[0]])<<12 | rune(unhex[p[1]])<<8 | rune(unhex[p[2]])<<4 | rune(unhex[p[3]])
}

// unescape appends the decoded text of raw, the inside of a string that str
// has already checked, to dst. Escapes that do not form a Unicode scalar
// value (a lone or reversed surrogate) are an error: a Go string holding
// them could not be served back as valid UTF-8. It returns the offset in raw
// of the bad escape, or -1.
func unescape(dst, raw []byte) ([]byte, int) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			switch {
			case r >= 0xd800 && r < 0xdc00:
				// A high surrogate must be followed by an escaped low one.
				if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
					return dst, i
				}
				lo := hex4(raw[i+8:])
				if lo < 0xdc00 || lo >= 0xe000 {
					return dst, i
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				i += 6
			case r >= 0xdc00 && r < 0xe000:
				return dst, i
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst, -1
}

// AppendString appends s as a JSON string literal, quotes included. It
// escapes '"', '\', control characters (as \n, \r, \t or \u00XX) and
// U+2028/U+2029, which JavaScript parsers have treated as line ends; other
// valid UTF-8 passes through unescaped. Each byte of invalid UTF-8 becomes
// \ufffd, so the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
