package jsonx

// Members calls fn with the name (decoded) and the value (its JSON text) of
// each member of obj, a compact JSON object as Compact or ParseEvents leave
// it, in order, until fn returns false. name is valid only during the call.
// It is how the server reads a stored object's members (an event's meta)
// without encoding/json; an obj that is not a compact object is an error.
func Members(obj []byte, fn func(name, value []byte) bool) error {
	s := scanner{src: obj}
	if len(obj) == 0 || obj[0] != '{' {
		return s.errUnexpected(0, "looking for an object")
	}
	s.i = 1
	var name []byte
	for s.i < len(obj) && obj[s.i] != '}' {
		begin := s.i
		if obj[s.i] != '"' {
			return s.errUnexpected(s.i, "looking for beginning of object key string")
		}
		esc, err := s.str()
		if err != nil {
			return err
		}
		name = obj[begin+1 : s.i-1]
		if esc {
			var bad int
			if name, bad = unescape(nil, name); bad >= 0 {
				return s.errAt(begin+1+bad, "invalid escape in object key")
			}
		}
		if s.i >= len(obj) || obj[s.i] != ':' {
			return s.errUnexpected(s.i, "after object key")
		}
		s.i++
		start := s.i
		if err := s.value(1); err != nil {
			return err
		}
		if !fn(name, obj[start:s.i]) {
			return nil
		}
		if s.i < len(obj) && obj[s.i] == ',' {
			s.i++
		}
	}
	if s.i != len(obj)-1 {
		return s.errAt(s.i, "an object must be compact and alone")
	}
	return nil
}

// Elements calls fn with the JSON text of each element of arr, a compact
// JSON array, in order, until fn returns false; an arr that is not a
// compact array is an error.
func Elements(arr []byte, fn func(value []byte) bool) error {
	s := scanner{src: arr}
	if len(arr) == 0 || arr[0] != '[' {
		return s.errUnexpected(0, "looking for an array")
	}
	s.i = 1
	for s.i < len(arr) && arr[s.i] != ']' {
		start := s.i
		if err := s.value(1); err != nil {
			return err
		}
		if !fn(arr[start:s.i]) {
			return nil
		}
		if s.i < len(arr) && arr[s.i] == ',' {
			s.i++
		}
	}
	if s.i != len(arr)-1 {
		return s.errAt(s.i, "an array must be compact and alone")
	}
	return nil
}

// Unquote appends the decoded text of lit, a JSON string literal (quotes
// included), to dst; ok is false when lit is not one.
func Unquote(dst, lit []byte) (_ []byte, ok bool) {
	if len(lit) < 2 || lit[0] != '"' {
		return dst, false
	}
	s := scanner{src: lit}
	esc, err := s.str()
	if err != nil || s.i != len(lit) {
		return dst, false
	}
	raw := lit[1 : len(lit)-1]
	if !esc {
		return append(dst, raw...), true
	}
	dst, bad := unescape(dst, raw)
	return dst, bad < 0
}
