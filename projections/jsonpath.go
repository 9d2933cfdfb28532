package projections

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// A data path names a member inside an event's data: ".amount",
// ".order.total" — member names after dots. Names are letters, digits, '_',
// '-' and '$'; a path does not index arrays.
func parsePath(p string) ([][]byte, error) {
	bad := errors.New(`must be a data path such as ".amount" or ".order.total"`)
	if !strings.HasPrefix(p, ".") {
		return nil, bad
	}
	var segs [][]byte
	for _, s := range strings.Split(p[1:], ".") {
		if s == "" {
			return nil, bad
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$') {
				return nil, bad
			}
		}
		segs = append(segs, []byte(s))
	}
	return segs, nil
}

// lookup returns the value at path in data (compact JSON, as stored), and
// false if a step is not an object or has no such member. When a name
// appears twice in an object the last one counts, as in jq and JSON merge
// patch. It allocates nothing.
func lookup(data []byte, path [][]byte) ([]byte, bool) {
	v := data
	for _, name := range path {
		if len(v) == 0 || v[0] != '{' {
			return nil, false
		}
		var found []byte
		i := 1
		for i < len(v) && v[i] != '}' {
			// v[i] is the opening quote of a member name.
			end := skipString(v, i)
			if end < 0 || end >= len(v) || v[end] != ':' {
				return nil, false
			}
			key := v[i+1 : end-1]
			vs := end + 1
			ve := skipValue(v, vs)
			if ve < 0 {
				return nil, false
			}
			if bytes.Equal(key, name) || (bytes.IndexByte(key, '\\') >= 0 && unescapedEqual(key, name)) {
				found = v[vs:ve]
			}
			i = ve
			if i < len(v) && v[i] == ',' {
				i++
			}
		}
		if found == nil {
			return nil, false
		}
		v = found
	}
	return v, true
}

// unescapedEqual compares a member name written with escapes to name.
func unescapedEqual(raw, name []byte) bool {
	s, err := strconv.Unquote(`"` + string(raw) + `"`)
	return err == nil && s == string(name)
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
	}
}

// skipValue returns the index just past the compact JSON value at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	return j
}

// number parses v as a JSON number; false if it is another value.
func number(v []byte) (float64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(unsafe.String(&v[0], len(v)), 64)
	return f, err == nil
}

// appendNumber appends f as a JSON number, as encoding/json writes it
// (shortest form that reads back as f); null for a sum past float64's
// range, which JSON cannot write.
func appendNumber(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	abs := f
	if abs < 0 {
		abs = -abs
	}
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// 1e-07 → 1e-7, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}
