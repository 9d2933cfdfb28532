package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
)

// The compact JWS form shared by external JWTs and strata's session tokens:
// base64url(header) "." base64url(payload) "." base64url(signature), no
// padding (RFC 7515). Written by hand on the standard library: the few
// lines needed are easier to audit than a JWT library's options, and they
// cost nothing at start-up.

// maxJWTLen bounds the tokens looked at; real ones are well under 2 KiB.
const maxJWTLen = 16 << 10

// b64 is the encoding of every JWS part. Strict: one spelling per value.
var b64 = base64.RawURLEncoding.Strict()

// LooksLikeJWT reports whether s has the shape of a compact JWS: three
// base64url parts separated by dots, the first two not empty. It decodes
// nothing; it routes a Bearer credential.
func LooksLikeJWT(s string) bool {
	if len(s) > maxJWTLen {
		return false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if i == 0 || (dots == 1 && s[i-1] == '.') {
				return false // an empty header or payload
			}
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// jwsHeader is the JOSE header, the fields strata reads.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// jws is a compact JWS taken apart, its signature not yet checked.
type jws struct {
	header  jwsHeader
	payload []byte
	signed  string // header "." payload, what the signature covers
	sig     []byte
}

// parseJWS takes a compact JWS apart. Errors wrap ErrMalformed.
func parseJWS(token string) (jws, error) {
	var j jws
	if !LooksLikeJWT(token) {
		return j, fmt.Errorf("%w: not three base64url parts", ErrMalformed)
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	hb, err := b64.DecodeString(h)
	if err != nil {
		return j, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	if err := json.Unmarshal(hb, &j.header); err != nil {
		return j, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if err := UniqueNames(hb); err != nil {
		return j, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if j.header.Crit != nil {
		// RFC 7515 §4.1.11: a critical extension not understood makes the
		// token invalid, and strata understands none.
		return j, fmt.Errorf("%w: critical header extensions are not supported", ErrMalformed)
	}
	if j.payload, err = b64.DecodeString(p); err != nil {
		return j, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	if err := UniqueNames(j.payload); err != nil {
		return j, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if j.sig, err = b64.DecodeString(s); err != nil {
		return j, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	j.signed = token[:len(h)+1+len(p)]
	return j, nil
}

// numericDate converts a JWT NumericDate (seconds since the epoch, maybe
// fractional) to a time. ok is false for a value that is not a number in
// a sane range.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// maxJSONDepth bounds the nesting UniqueNames follows.
const maxJSONDepth = 32

// UniqueNames reports an error if an object in the JSON text b has a
// member name twice, at any depth. Tokens are checked with it, and so are
// the admin API's bodies, which grant roles and tenants. encoding/json keeps the last of
// duplicates where other parsers keep the first, so a token with
// {"role":"reader","role":"admin"} could mean one thing to the identity
// provider that signed it and another here (RFC 7519 §4: such a token
// must be refused, or the last taken — refusing is the safe choice).
// Names are compared unescaped ("r\u006fle" is "role") and without regard
// to case, as encoding/json matches them to struct fields: "role" and
// "Role" (or "sub" and "\u017fub", a long s) are one field to it.
func UniqueNames(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := uniqueIn(d, 0); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("text after the JSON value")
	}
	return nil
}

func uniqueIn(d *json.Decoder, depth int) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return errors.New("nested too deep")
	}
	var seen map[string]bool
	if delim == '{' {
		seen = map[string]bool{}
	}
	for d.More() {
		if seen != nil {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			key := foldName(name)
			if seen[key] {
				return fmt.Errorf("duplicate member %q", clip(name))
			}
			seen[key] = true
		}
		if err := uniqueIn(d, depth+1); err != nil {
			return err
		}
	}
	_, err = d.Token() // the closing delimiter
	return err
}

// foldName maps a name to one spelling of all the names strings.EqualFold
// (and so encoding/json) takes for it: each rune to the smallest of its
// case-folding orbit.
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, name)
}
