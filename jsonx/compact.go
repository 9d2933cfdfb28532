package jsonx

import (
	"math"
	"strconv"
)

// MaxDepth is the deepest nesting of arrays and objects accepted in a
// value (data, meta). Every common parser must read the pages that hold it
// with its defaults, envelopes included (a page adds 2 levels): .NET's
// System.Text.Json stops at 64, Ruby's JSON at 100, serde_json at 128,
// jq 1.6 at 256, Python near 1,000. 32 (as DynamoDB's limit) leaves room
// for the envelopes of read models. It also bounds the recursion a request
// can cause.
const MaxDepth = 32

// SyntaxError describes invalid JSON: what was wrong and at which byte
// offset of the input.
type SyntaxError struct {
	Offset int    // byte offset in the input where the problem was found
	Msg    string // what was wrong, e.g. "invalid character 'x' in number"
}

// Error returns the message with its offset.
func (e *SyntaxError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Compact appends src to dst with insignificant whitespace removed, after
// checking that src holds exactly one JSON value (RFC 8259; leading and
// trailing whitespace allowed). Number text, string text (escapes are kept as
// written) and object member order are preserved byte for byte. Invalid UTF-8
// inside strings is an error, and so is nesting deeper than MaxDepth. On
// error the returned slice is dst unchanged (its spare capacity may have been
// written) and the error is a *SyntaxError.
func Compact(dst, src []byte) ([]byte, error) {
	s := scanner{src: src, dst: dst}
	s.skipSpace()
	s.mark = s.i
	if err := s.value(0); err != nil {
		return dst, err
	}
	s.flush()
	s.skipSpace()
	if s.i < len(src) {
		return dst, s.errAt(s.i, "invalid character "+quoteByte(src[s.i])+" after top-level value")
	}
	return s.dst, nil
}

// scanner walks src once. Inside value it compacts: src[mark:i] is the part
// already checked but not yet copied to dst; whitespace is dropped by
// flushing before it and moving mark past it, so input that is already
// compact costs a single copy.
type scanner struct {
	src  []byte
	i    int // next byte to read
	mark int // start of checked bytes not yet appended to dst
	dst  []byte
	base int // offset of src within the caller's input, for error offsets
}

// isSpace marks the four RFC 8259 whitespace bytes.
var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// skipSpace moves past whitespace without copying; used outside values.
func (s *scanner) skipSpace() {
	for s.i < len(s.src) && isSpace[s.src[s.i]] {
		s.i++
	}
}

// space drops whitespace inside a value being compacted. The common case,
// no whitespace at all, returns after one table lookup.
func (s *scanner) space() {
	i := s.i
	if i >= len(s.src) || !isSpace[s.src[i]] {
		return
	}
	s.dst = append(s.dst, s.src[s.mark:i]...)
	for i++; i < len(s.src) && isSpace[s.src[i]]; i++ {
	}
	s.i, s.mark = i, i
}

// flush appends the pending checked bytes to dst.
func (s *scanner) flush() {
	s.dst = append(s.dst, s.src[s.mark:s.i]...)
	s.mark = s.i
}

func (s *scanner) errAt(i int, msg string) *SyntaxError {
	return &SyntaxError{Offset: s.base + i, Msg: msg}
}

// errUnexpected reports the byte at i, or the end of input, as unexpected
// while looking for what.
func (s *scanner) errUnexpected(i int, what string) *SyntaxError {
	if i >= len(s.src) {
		return s.errAt(i, "unexpected end of JSON input")
	}
	return s.errAt(i, "invalid character "+quoteByte(s.src[i])+" "+what)
}

// quoteByte names a byte for an error message: 'x' when printable ASCII,
// else its hex value, so that a message never carries raw binary.
func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	const hex = "0123456789abcdef"
	return "byte 0x" + string([]byte{hex[c>>4], hex[c&15]})
}

// value checks (and compacts) one JSON value starting at s.i; depth is the
// number of arrays and objects around it.
func (s *scanner) value(depth int) error {
	if s.i >= len(s.src) {
		return s.errAt(s.i, "unexpected end of JSON input")
	}
	switch c := s.src[s.i]; c {
	case '{':
		return s.object(depth + 1)
	case '[':
		return s.array(depth + 1)
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || c-'0' < 10 {
			return s.number()
		}
		return s.errUnexpected(s.i, "looking for beginning of value")
	}
}

func (s *scanner) literal(lit string) error {
	end := s.i + len(lit)
	if end <= len(s.src) && string(s.src[s.i:end]) == lit {
		s.i = end
		return nil
	}
	// Point at the first byte that differs, as a reader would.
	i := s.i
	for j := 0; j < len(lit) && i < len(s.src) && s.src[i] == lit[j]; j++ {
		i++
	}
	return s.errUnexpected(i, "in literal "+lit)
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? . What
// follows (a delimiter or not) is the caller's business.
func (s *scanner) number() error {
	src, i := s.src, s.i
	if src[i] == '-' {
		i++
	}
	start, intDigits := i, 0
	switch {
	case i >= len(src):
		return s.errUnexpected(i, "")
	case src[i] == '0':
		i++
	case src[i]-'1' < 9:
		for i++; i < len(src) && src[i]-'0' < 10; i++ {
		}
		intDigits = i - start
	default:
		return s.errUnexpected(i, "in numeric literal")
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) || src[i]-'0' >= 10 {
			return s.errUnexpected(i, "after decimal point in numeric literal")
		}
		for i++; i < len(src) && src[i]-'0' < 10; i++ {
		}
	}
	exp := 0 // the exponent's value, capped well past any float64's
	if i < len(src) && src[i]|0x20 == 'e' {
		i++
		neg := false
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			neg = src[i] == '-'
			i++
		}
		if i >= len(src) || src[i]-'0' >= 10 {
			return s.errUnexpected(i, "in exponent of numeric literal")
		}
		for ; i < len(src) && src[i]-'0' < 10; i++ {
			if exp < 1e6 {
				exp = exp*10 + int(src[i]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	if i-s.i > MaxNumberLen {
		return s.errAt(s.i, msgNumberTooLong)
	}
	// Most numbers are well inside float64's range; only one whose integer
	// digits plus exponent could pass 10^308 is parsed to be sure.
	if intDigits+exp > 308 {
		if f, err := strconv.ParseFloat(string(src[s.i:i]), 64); err != nil && math.IsInf(f, 0) {
			return s.errAt(s.i, msgNumberRange)
		}
	}
	s.i = i
	return nil
}

// MaxNumberLen bounds the text of one JSON number, in bytes. Far beyond
// float64 (17 significant digits) or decimal128 (34), and below Python's
// default limit of 4,300 digits for reading an integer, which would make
// every page holding a longer one unreadable there.
const MaxNumberLen = 1000

const (
	msgNumberTooLong = "number longer than 1000 characters (many JSON parsers cannot read it)"
	msgNumberRange   = "number out of the range of a 64-bit float (JSON parsers read it as infinity or fail)"
)

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.errAt(s.i, "exceeded max depth")
	}
	s.i++
	s.space()
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.src) {
			return s.errAt(s.i, "unexpected end of JSON input")
		}
		switch s.src[s.i] {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			return nil
		default:
			return s.errUnexpected(s.i, "after array element")
		}
	}
}

func (s *scanner) object(depth int) error {
	if depth > MaxDepth {
		return s.errAt(s.i, "exceeded max depth")
	}
	s.i++
	s.space()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		if s.i >= len(s.src) || s.src[s.i] != '"' {
			return s.errUnexpected(s.i, "looking for beginning of object key string")
		}
		if _, err := s.str(); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.src) || s.src[s.i] != ':' {
			return s.errUnexpected(s.i, "after object key")
		}
		s.i++
		s.space()
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.src) {
			return s.errAt(s.i, "unexpected end of JSON input")
		}
		switch s.src[s.i] {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			return nil
		default:
			return s.errUnexpected(s.i, "after object key:value pair")
		}
	}
}
