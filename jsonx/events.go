package jsonx

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Input is one event as a client proposes it; the server sets the other
// fields later.
//
// Data and Meta are slices of one buffer allocated per ParseEvents call and
// never alias the request body. Each is capped at its own length, so
// appending to one cannot overwrite the next. Type, Entity and Key are
// substrings of one string per call: a caller keeping one of them long after
// the request (say as a map key) should strings.Clone it so that it does not
// pin the whole batch's strings.
type Input struct {
	Type            string // required
	Entity          string // required
	Key             string // "" when absent
	Data            []byte // compacted JSON value; the 4 bytes `null` when absent
	Meta            []byte // compacted JSON object; nil when absent or null
	ExpectedVersion int64  // -1 when absent or null; else 0 ≤ n ≤ 2^53
}

// FieldError says which event of a request, and which field of it, is wrong.
type FieldError struct {
	Index int    // 0-based position of the event in the request; -1 when the body as a whole is wrong
	Field string // member name; "" when the problem is the whole event or body
	Msg   string // what is wrong
}

// Error returns e.g. `event 3: field "type": must be a string`.
func (e *FieldError) Error() string {
	var b []byte
	if e.Index < 0 {
		b = append(b, "request body: "...)
	} else {
		b = append(b, "event "...)
		b = strconv.AppendInt(b, int64(e.Index), 10)
		b = append(b, ": "...)
	}
	if e.Field != "" {
		b = append(b, "field "...)
		b = AppendString(b, e.Field)
		b = append(b, ": "...)
	}
	return string(append(b, e.Msg...))
}

// maxSafeInt is 2^53, the largest integer every JSON implementation (and
// JavaScript in particular) reads exactly.
const maxSafeInt = 1 << 53

// Bits for the members of an event, to catch duplicates and missing ones.
const (
	hasType = 1 << iota
	hasEntity
	hasKey
	hasData
	hasMeta
	hasExpected
)

// ParseEvents parses a request body that is a single JSON object, a JSON
// array of objects, or (ndjson true) NDJSON: one object per line, blank
// lines ignored, "\r\n" accepted.
//
// Members allowed in an event: "type" (string, required), "entity" (string,
// required), "key" (string, optional), "data" (any JSON value, optional),
// "meta" (object or null, optional) and "expected_version" (integer from 0
// to 2^53, or null; optional). Unknown and duplicate members are errors, as
// are members of the wrong JSON type, an empty body and an empty array.
// Strings are unescaped into Go strings; an escaped lone surrogate is an
// error. Content rules (the type pattern, entity length) are not checked.
//
// Every error is a *FieldError. See Input for what the results alias.
func ParseEvents(body []byte, ndjson bool) ([]Input, error) {
	return ParseEventsMax(body, ndjson, 0)
}

// TooManyEventsError says a body holds more events than ParseEventsMax
// was allowed to return.
type TooManyEventsError struct {
	Max int
}

func (e *TooManyEventsError) Error() string {
	return "more than " + strconv.Itoa(e.Max) + " events in one request"
}

// ParseEventsMax is ParseEvents returning at most max events (no limit
// when max ≤ 0): a body with more fails with *TooManyEventsError as soon
// as event max+1 begins, before the rest is parsed, so a huge batch costs
// no more memory than an allowed one. Errors in the first max events are
// reported as ParseEvents reports them.
func ParseEventsMax(body []byte, ndjson bool, max int) ([]Input, error) {
	p := parser{s: scanner{src: body}, max: max}
	// Compacted data and meta never outgrow the body that held them, and
	// neither do unescaped strings, so these sizes avoid regrowth; strings
	// are a small part of an event, hence the quarter.
	p.s.dst = make([]byte, 0, len(body))
	p.strs.Grow(len(body)/4 + 16)
	if ndjson {
		return p.ndjson(body)
	}
	s := &p.s
	s.skipSpace()
	if s.i >= len(body) {
		return nil, &FieldError{Index: -1, Msg: "no events"}
	}
	var out []Input
	switch body[s.i] {
	case '{':
		in, err := p.event(0)
		if err != nil {
			return nil, err
		}
		out = []Input{in}
	case '[':
		var err error
		if out, err = p.array(); err != nil {
			return nil, err
		}
	default:
		if err := s.value(0); err != nil {
			return nil, &FieldError{Index: -1, Msg: err.Error()}
		}
		return nil, &FieldError{Index: -1, Msg: "must be a JSON object or an array of objects"}
	}
	s.skipSpace()
	if s.i < len(body) {
		return nil, &FieldError{Index: -1, Msg: s.errUnexpected(s.i, "after top-level value").Error()}
	}
	return out, nil
}

// parser holds the state of one ParseEvents call.
type parser struct {
	s       scanner         // over the body (or one NDJSON line); s.dst collects data and meta
	strs    strings.Builder // every event's decoded strings, back to back
	scratch []byte          // for unescaping
	max     int             // most events allowed; 0 for no limit
}

// full reports an error if n events are all that may be parsed.
func (p *parser) full(n int) error {
	if p.max > 0 && n >= p.max {
		return &TooManyEventsError{Max: p.max}
	}
	return nil
}

// capacity is the slice capacity for the events of a body of n bytes.
func (p *parser) capacity(n int) int {
	c := n/512 + 1
	if p.max > 0 && c > p.max {
		c = p.max
	}
	return c
}

// array parses `[` event, event, ... `]` starting at s.i.
func (p *parser) array() ([]Input, error) {
	s := &p.s
	out := make([]Input, 0, p.capacity(len(s.src)))
	s.i++
	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		return nil, &FieldError{Index: -1, Msg: "no events"}
	}
	for {
		idx := len(out)
		if s.i >= len(s.src) {
			return nil, syntaxErr(idx, "", s.errAt(s.i, "unexpected end of JSON input"))
		}
		if err := p.full(idx); err != nil {
			return nil, err
		}
		if s.src[s.i] != '{' {
			// Tell a wrong type from broken JSON (a trailing comma, say).
			s.mark = s.i
			if err := s.value(0); err != nil {
				return nil, syntaxErr(idx, "", err)
			}
			return nil, &FieldError{Index: idx, Msg: "must be a JSON object"}
		}
		in, err := p.event(idx)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		s.skipSpace()
		if s.i >= len(s.src) {
			return nil, syntaxErr(idx, "", s.errAt(s.i, "unexpected end of JSON input"))
		}
		switch s.src[s.i] {
		case ',':
			s.i++
			s.skipSpace()
		case ']':
			s.i++
			return out, nil
		default:
			return nil, syntaxErr(idx, "", s.errUnexpected(s.i, "after array element"))
		}
	}
}

// ndjson parses one object per line.
func (p *parser) ndjson(body []byte) ([]Input, error) {
	s := &p.s
	var out []Input
	for pos := 0; pos < len(body); {
		end := len(body)
		if n := bytes.IndexByte(body[pos:], '\n'); n >= 0 {
			end = pos + n
		}
		// The line as its own input keeps an object from running on to the
		// next line; offsets in errors stay relative to the body.
		s.src, s.i, s.base = body[pos:end], 0, pos
		pos = end + 1
		s.skipSpace() // also eats the \r of \r\n on a blank line
		if s.i == len(s.src) {
			continue
		}
		idx := len(out)
		if err := p.full(idx); err != nil {
			return nil, err
		}
		if s.src[s.i] != '{' {
			s.mark = s.i
			if err := s.value(0); err != nil {
				return nil, syntaxErr(idx, "", err)
			}
			return nil, &FieldError{Index: idx, Msg: "must be a JSON object"}
		}
		in, err := p.event(idx)
		if err != nil {
			return nil, err
		}
		s.skipSpace()
		if s.i < len(s.src) {
			return nil, syntaxErr(idx, "", s.errUnexpected(s.i, "after object (NDJSON allows one object per line)"))
		}
		if out == nil {
			out = make([]Input, 0, p.capacity(len(body)))
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		return nil, &FieldError{Index: -1, Msg: "no events"}
	}
	return out, nil
}

func syntaxErr(idx int, field string, err error) *FieldError {
	return &FieldError{Index: idx, Field: field, Msg: "invalid JSON: " + err.Error()}
}

// event parses one event object starting at s.i, which holds '{'.
func (p *parser) event(idx int) (Input, error) {
	s := &p.s
	in := Input{ExpectedVersion: -1}
	var seen uint
	s.i++
	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		return in, &FieldError{Index: idx, Field: "type", Msg: "is required"}
	}
	for {
		if s.i >= len(s.src) || s.src[s.i] != '"' {
			return in, syntaxErr(idx, "", s.errUnexpected(s.i, "looking for beginning of object key string"))
		}
		start := s.i
		esc, err := s.str()
		if err != nil {
			return in, syntaxErr(idx, "", err)
		}
		key := s.src[start+1 : s.i-1]
		if esc {
			// An escaped name is still that name: "typ\u0065" is "type".
			var bad int
			p.scratch, bad = unescape(p.scratch[:0], key)
			if bad >= 0 {
				return in, syntaxErr(idx, "", s.errAt(start+1+bad, "invalid Unicode escape (lone surrogate) in object key"))
			}
			key = p.scratch
		}
		var bit uint
		switch string(key) {
		case "type":
			bit = hasType
		case "entity":
			bit = hasEntity
		case "key":
			bit = hasKey
		case "data":
			bit = hasData
		case "meta":
			bit = hasMeta
		case "expected_version":
			bit = hasExpected
		default:
			return in, &FieldError{Index: idx, Field: truncate(string(key)), Msg: "unknown field"}
		}
		if seen&bit != 0 {
			return in, &FieldError{Index: idx, Field: string(key), Msg: "duplicate field"}
		}
		seen |= bit
		s.skipSpace()
		if s.i >= len(s.src) || s.src[s.i] != ':' {
			return in, syntaxErr(idx, "", s.errUnexpected(s.i, "after object key"))
		}
		s.i++
		s.skipSpace()
		if err := p.member(&in, bit); err != nil {
			if fe, ok := err.(*FieldError); ok {
				fe.Index = idx
				return in, fe
			}
			return in, syntaxErr(idx, fieldName(bit), err)
		}
		s.skipSpace()
		if s.i >= len(s.src) {
			return in, syntaxErr(idx, "", s.errAt(s.i, "unexpected end of JSON input"))
		}
		switch s.src[s.i] {
		case ',':
			s.i++
			s.skipSpace()
			continue
		case '}':
			s.i++
		default:
			return in, syntaxErr(idx, "", s.errUnexpected(s.i, "after object key:value pair"))
		}
		break
	}
	switch {
	case seen&hasType == 0:
		return in, &FieldError{Index: idx, Field: "type", Msg: "is required"}
	case seen&hasEntity == 0:
		return in, &FieldError{Index: idx, Field: "entity", Msg: "is required"}
	case seen&hasData == 0:
		// Appended, not a shared constant, so no two events share bytes a
		// caller might write to.
		n := len(s.dst)
		s.dst = append(s.dst, "null"...)
		in.Data = s.dst[n:len(s.dst):len(s.dst)]
	}
	return in, nil
}

func fieldName(bit uint) string {
	switch bit {
	case hasType:
		return "type"
	case hasEntity:
		return "entity"
	case hasKey:
		return "key"
	case hasData:
		return "data"
	case hasMeta:
		return "meta"
	}
	return "expected_version"
}

// truncate keeps an unknown member's name short enough for an error message.
func truncate(name string) string {
	if len(name) <= 64 {
		return name
	}
	n := 64
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n] + "…"
}

// member parses the value of the member bit into in. It returns a
// *FieldError (Index left for the caller) for a wrong JSON type and a
// *SyntaxError for broken JSON.
func (p *parser) member(in *Input, bit uint) error {
	s := &p.s
	if s.i >= len(s.src) {
		return s.errAt(s.i, "unexpected end of JSON input")
	}
	c := s.src[s.i]
	switch bit {
	case hasType, hasEntity, hasKey:
		if c != '"' {
			return &FieldError{Field: fieldName(bit), Msg: "must be a string"}
		}
		v, err := p.str()
		if err != nil {
			return err
		}
		switch bit {
		case hasType:
			in.Type = v
		case hasEntity:
			in.Entity = v
		default:
			in.Key = v
		}
	case hasData:
		v, err := p.compact()
		if err != nil {
			return err
		}
		in.Data = v
	case hasMeta:
		switch c {
		case 'n':
			return s.literal("null")
		case '{':
			v, err := p.compact()
			if err != nil {
				return err
			}
			in.Meta = v
		default:
			return &FieldError{Field: "meta", Msg: "must be an object or null"}
		}
	case hasExpected:
		if c == 'n' {
			return s.literal("null")
		}
		if c != '-' && c-'0' >= 10 {
			return &FieldError{Field: "expected_version", Msg: "must be an integer or null"}
		}
		start := s.i
		if err := s.number(); err != nil {
			return err
		}
		v, ok := safeUint(s.src[start:s.i])
		if !ok {
			return &FieldError{Field: "expected_version", Msg: "must be an integer from 0 to 2^53"}
		}
		in.ExpectedVersion = v
	}
	return nil
}

// safeUint reads number text that is a plain decimal integer no larger than
// 2^53; fractions, exponents and signs (even "-0" or "1.0") are refused, so
// that a version is never the result of a rounding.
func safeUint(text []byte) (int64, bool) {
	if len(text) > 16 { // 2^53 has 16 digits; the grammar forbids leading zeros
		return 0, false
	}
	var v int64
	for _, c := range text {
		if c-'0' >= 10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= maxSafeInt
}

// compact compacts the value at s.i onto s.dst and returns it, capped.
func (p *parser) compact() ([]byte, error) {
	s := &p.s
	n := len(s.dst)
	s.mark = s.i
	if err := s.value(0); err != nil {
		s.dst = s.dst[:n]
		return nil, err
	}
	s.flush()
	return s.dst[n:len(s.dst):len(s.dst)], nil
}

// str decodes the string at s.i into the shared string and returns its part.
func (p *parser) str() (string, error) {
	s := &p.s
	start := s.i
	esc, err := s.str()
	if err != nil {
		return "", err
	}
	raw := s.src[start+1 : s.i-1]
	if esc {
		var bad int
		p.scratch, bad = unescape(p.scratch[:0], raw)
		if bad >= 0 {
			return "", s.errAt(start+1+bad, "invalid Unicode escape (lone surrogate)")
		}
		raw = p.scratch
	}
	// strings.Builder never changes bytes once written and String does not
	// copy, so a substring taken now stays valid even if the builder later
	// grows into a new array.
	n := p.strs.Len()
	p.strs.Write(raw)
	return p.strs.String()[n:], nil
}
