package log

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Limits on client-supplied fields (README.md, "The event").
const (
	MaxTypeLen   = 128
	MaxEntityLen = 256
	MaxKeyLen    = 256
)

// ValidateType checks an event type: lowercase dot notation,
// ^[a-z0-9]+([._-][a-z0-9]+)*$, at most MaxTypeLen bytes.
func ValidateType(s string) error {
	if s == "" {
		return fmt.Errorf("is required")
	}
	if len(s) > MaxTypeLen {
		return fmt.Errorf("is longer than %d bytes", MaxTypeLen)
	}
	sep := true // a separator may not start the type
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			sep = false
		case c == '.' || c == '_' || c == '-':
			if sep {
				return fmt.Errorf("must match ^[a-z0-9]+([._-][a-z0-9]+)*$ (lowercase dot notation)")
			}
			sep = true
		default:
			return fmt.Errorf("must match ^[a-z0-9]+([._-][a-z0-9]+)*$ (lowercase dot notation)")
		}
	}
	if sep {
		return fmt.Errorf("must match ^[a-z0-9]+([._-][a-z0-9]+)*$ (lowercase dot notation)")
	}
	return nil
}

// ValidateEntity checks an entity id: 1–MaxEntityLen bytes of printable
// UTF-8. "/" is allowed (hierarchies). Printable is Unicode's graphic
// characters (letters, marks, numbers, punctuation, symbols and spaces):
// control, format (U+202E and the other bidirectional overrides, zero-width
// spaces, U+FEFF), private-use, surrogate and unassigned code points (as of
// the Unicode version strata is built with) are refused, because they make
// names that look alike but differ, or that reorder the text around them.
// ZERO WIDTH JOINER and NON-JOINER (U+200D, U+200C) stay allowed: emoji
// sequences and several scripts need them.
func ValidateEntity(s string) error { return validatePrintable(s, MaxEntityLen, true) }

// ValidateKey checks an idempotency key: like an entity, 1–MaxKeyLen bytes.
func ValidateKey(s string) error { return validatePrintable(s, MaxKeyLen, true) }

// validStoredEntity is the rule an entity was checked against before
// ValidateEntity refused format and unassigned characters: events stored
// then are still valid, so verify uses this one.
func validStoredEntity(s string) error { return validatePrintable(s, MaxEntityLen, false) }

func validatePrintable(s string, max int, graphic bool) error {
	if s == "" {
		return fmt.Errorf("is required")
	}
	if len(s) > max {
		return fmt.Errorf("is longer than %d bytes", max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return fmt.Errorf("is not valid UTF-8")
			}
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("contains a control character (U+%04X)", r)
		}
		if graphic && r >= 0x80 && !unicode.IsGraphic(r) && r != '\u200c' && r != '\u200d' {
			return fmt.Errorf("contains a character that is not printable (U+%04X: format, private-use or unassigned)", r)
		}
	}
	return nil
}
