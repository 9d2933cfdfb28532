package jq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/itchyny/gojq"
)

// MaxDepth bounds the nesting of a document Decode reads, as jq's parser
// does (10,000): gojq's encoder and comparisons recurse on it, and a
// reducer's saved state must load back.
const MaxDepth = 10000

// Decode parses one JSON document (RFC 8259; whitespace around it allowed)
// into the values gojq works on: nil, bool, int, *big.Int (an integer past
// int's range), float64 (a number with a fraction or an exponent),
// string, []any and map[string]any (a repeated member: the last wins, as
// in jq). Invalid UTF-8 in a string becomes U+FFFD.
//
// The strings of one document are slices of one copy of it (one
// allocation per document, not two per string): a value kept from it
// keeps the whole document's bytes.
func Decode(b []byte) (any, error) {
	d := decoder{b: b}
	if len(b) > 0 {
		d.s = string(b)
	}
	d.space()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, d.errf("unexpected %q after the value", d.b[d.i])
	}
	return v, nil
}

// Encode writes v, a value as Decode or a program returns them, as
// compact JSON the way jq does (see the package doc).
func Encode(v any) (b []byte, err error) {
	defer func() {
		if x := recover(); x != nil {
			b, err = nil, fmt.Errorf("jq: cannot encode: %v", x)
		}
	}()
	b, err = gojq.Marshal(v)
	if err != nil {
		return nil, panicError(err)
	}
	return b, nil
}

type decoder struct {
	b []byte
	s string // b, copied once: strings are slices of it ("": each its own)
	i int
}

// SyntaxError is JSON that Decode cannot read.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

func (d *decoder) errf(format string, args ...any) error {
	return &SyntaxError{d.i, fmt.Sprintf(format, args...)}
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if d.i >= len(d.b) {
		return nil, d.errf("unexpected end")
	}
	switch c := d.b[d.i]; c {
	case '{':
		if depth >= MaxDepth {
			return nil, d.errf("nested deeper than %d", MaxDepth)
		}
		return d.object(depth + 1)
	case '[':
		if depth >= MaxDepth {
			return nil, d.errf("nested deeper than %d", MaxDepth)
		}
		return d.array(depth + 1)
	case '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return d.number()
		}
		return nil, d.errf("unexpected %q", c)
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.errf("invalid literal")
	}
	d.i += len(lit)
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	d.i++ // {
	m := make(map[string]any)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.errf("expected a member name")
		}
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errf("expected ':'")
		}
		d.i++
		d.space()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errf("unexpected end")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, nil
		default:
			return nil, d.errf("expected ',' or '}'")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		d.space()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errf("unexpected end")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, nil
		default:
			return nil, d.errf("expected ',' or ']'")
		}
	}
}

// str reads a string; the fast path (no escape, valid UTF-8) copies once,
// or not at all when d.s holds the document.
func (d *decoder) str() (string, error) {
	return d.string(true)
}

// string reads a string; unless keep, it only checks it (no allocation
// but for a string with escapes).
func (d *decoder) string(keep bool) (string, error) {
	start := d.i
	d.i++ // "
	escaped := false
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			raw := d.b[start+1 : d.i-1]
			if !escaped && utf8.Valid(raw) {
				switch {
				case !keep:
					return "", nil
				case d.s == "":
					return string(raw), nil
				}
				return d.s[start+1 : d.i-1], nil
			}
			// Rare: escapes or invalid UTF-8 (replaced by U+FFFD).
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				d.i = start
				return "", d.errf("invalid string")
			}
			return s, nil
		case c == '\\':
			escaped = true
			d.i++ // skip the escaped byte; json.Unmarshal checks it
		case c < 0x20:
			return "", d.errf("control character in a string")
		}
	}
	d.i = start
	return "", d.errf("unterminated string")
}

// number reads a number: an integer as int (exact), or *big.Int past
// int's range; any other as float64.
func (d *decoder) number() (any, error) {
	start, digits, integer, err := d.scanNumber()
	if err != nil {
		return nil, err
	}
	text := d.b[start:d.i]
	if integer {
		if d.i-digits <= 18 { // fits: no overflow possible
			n := 0
			for _, c := range d.b[digits:d.i] {
				n = n*10 + int(c-'0')
			}
			if start != digits {
				n = -n
			}
			return n, nil
		}
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return int(n), nil
		}
		n, _ := new(big.Int).SetString(string(text), 10)
		return n, nil
	}
	// Past float64's range this is ±Inf, which jq writes as ±1.797…e308.
	f, _ := strconv.ParseFloat(string(text), 64)
	return f, nil
}

// DecodeMembers is Decode for a document whose value will only be read
// through members names (a program that reads only .a and .b of it): if
// it is an object, only those members are decoded (the others are
// checked and skipped, not built); any other value is decoded whole. What
// a program reads of the result is what it would read of Decode's.
func DecodeMembers(b []byte, names []string) (any, error) {
	d := decoder{b: b} // no copy of the document: most of it is skipped
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return Decode(b)
	}
	v, err := d.members(names)
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, d.errf("unexpected %q after the value", d.b[d.i])
	}
	return v, nil
}

// members reads an object keeping the members named.
func (d *decoder) members(names []string) (any, error) {
	d.i++ // {
	m := make(map[string]any, len(names))
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.errf("expected a member name")
		}
		// The name, without a copy: a member kept is named by names' string.
		at := d.i
		if _, err := d.string(false); err != nil {
			return nil, err
		}
		name := -1
		raw := d.b[at+1 : d.i-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			name = slices.IndexFunc(names, func(n string) bool { return n == string(raw) })
		} else {
			d.i = at
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			name = slices.Index(names, key)
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errf("expected ':'")
		}
		d.i++
		d.space()
		if name >= 0 {
			v, err := d.value(1)
			if err != nil {
				return nil, err
			}
			m[names[name]] = v
		} else if err := d.skip(1); err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) {
			return nil, d.errf("unexpected end")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, nil
		default:
			return nil, d.errf("expected ',' or '}'")
		}
	}
}

// scanNumber reads past a number: where it starts, where its digits
// start, and whether it is an integer (no fraction, no exponent).
func (d *decoder) scanNumber() (start, digits int, integer bool, err error) {
	start = d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits = d.i
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else {
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	}
	if d.i == digits {
		return 0, 0, false, d.errf("invalid number")
	}
	integer = true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		integer = false
		d.i++
		n := d.i
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return 0, 0, false, d.errf("invalid number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		integer = false
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		n := d.i
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return 0, 0, false, d.errf("invalid number")
		}
	}
	return start, digits, integer, nil
}

// skip reads past one value without building it.
func (d *decoder) skip(depth int) error {
	if d.i >= len(d.b) {
		return d.errf("unexpected end")
	}
	switch c := d.b[d.i]; c {
	case '{', '[':
		if depth >= MaxDepth {
			return d.errf("nested deeper than %d", MaxDepth)
		}
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		d.i++
		d.space()
		if d.i < len(d.b) && d.b[d.i] == end {
			d.i++
			return nil
		}
		for {
			d.space()
			if c == '{' {
				if d.i >= len(d.b) || d.b[d.i] != '"' {
					return d.errf("expected a member name")
				}
				if _, err := d.string(false); err != nil {
					return err
				}
				d.space()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					return d.errf("expected ':'")
				}
				d.i++
				d.space()
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.space()
			if d.i >= len(d.b) {
				return d.errf("unexpected end")
			}
			switch d.b[d.i] {
			case ',':
				d.i++
			case end:
				d.i++
				return nil
			default:
				return d.errf("expected ',' or '%c'", end)
			}
		}
	case '"':
		_, err := d.string(false)
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			_, _, _, err := d.scanNumber()
			return err
		}
		return d.errf("unexpected %q", c)
	}
}
