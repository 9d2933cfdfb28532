package jsonx

// SetMember returns the JSON object obj (compact, as Compact or
// ParseEvents leave it; nil for none) with its member key set to value (a
// JSON value): every member of that name is removed, wherever it was and
// however its name was escaped, and "key":value is added last. Other
// members keep their bytes and order. It is how the server stamps a field
// that clients must not set themselves, such as meta.by.
func SetMember(dst, obj []byte, key string, value []byte) ([]byte, error) {
	if len(obj) == 0 {
		dst = append(dst, '{')
	} else {
		s := scanner{src: obj}
		if obj[0] != '{' {
			return dst, s.errUnexpected(0, "looking for an object")
		}
		s.i = 1
		start := len(dst)
		dst = append(dst, '{')
		var name []byte
		for s.i < len(obj) && obj[s.i] != '}' {
			begin := s.i
			if obj[s.i] != '"' {
				return dst[:start], s.errUnexpected(s.i, "looking for beginning of object key string")
			}
			if _, err := s.str(); err != nil {
				return dst[:start], err
			}
			var bad int
			name, bad = unescape(name[:0], obj[begin+1:s.i-1])
			if bad >= 0 {
				return dst[:start], s.errAt(begin+1+bad, "invalid escape in object key")
			}
			if s.i >= len(obj) || obj[s.i] != ':' {
				return dst[:start], s.errUnexpected(s.i, "after object key")
			}
			s.i++
			if err := s.value(1); err != nil {
				return dst[:start], err
			}
			if string(name) != key {
				if len(dst) > start+1 {
					dst = append(dst, ',')
				}
				dst = append(dst, obj[begin:s.i]...)
			}
			if s.i < len(obj) && obj[s.i] == ',' {
				s.i++
			}
		}
		if s.i != len(obj)-1 {
			return dst[:start], s.errAt(s.i, "an object must be compact and alone")
		}
	}
	if len(dst) > 0 && dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = AppendString(dst, key)
	dst = append(dst, ':')
	dst = append(dst, value...)
	return append(dst, '}'), nil
}
