package log

import (
	"strings"
	"testing"
)

func TestValidateEntity(t *testing.T) {
	tests := []struct {
		entity string
		ok     bool
	}{
		{"order-123", true},
		{"books/42", true},
		{"café 東京 😀", true},
		{"a b\u00a0c\u3000d", true},              // spaces are printable
		{"👨\u200d👩\u200d👧", true},                // ZWJ emoji sequence
		{"\u0645\u06cc\u200c\u062e\u0648", true}, // ZWNJ in Persian
		{"", false},
		{strings.Repeat("x", MaxEntityLen+1), false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"a\u0085b", false},         // C1 control
		{"a\u2028b", false},         // line separator
		{"alice\u202eecila", false}, // right-to-left override
		{"a\u2066b", false},         // left-to-right isolate
		{"a\u200bb", false},         // zero width space
		{"\ufeffa", false},          // byte order mark
		{"a\ue000", false},          // private use
		{"a\U000F0000", false},      // supplementary private use
		{"a\u0378", false},          // unassigned
		{"a\xffb", false},           // invalid UTF-8
	}
	for _, tt := range tests {
		err := ValidateEntity(tt.entity)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateEntity(%+q) = %v, want ok %v", tt.entity, err, tt.ok)
		}
		if err := ValidateKey(tt.entity); (err == nil) != tt.ok && len(tt.entity) <= MaxKeyLen {
			t.Errorf("ValidateKey(%+q) = %v, want ok %v", tt.entity, err, tt.ok)
		}
	}
	// What verify accepts of events stored before the rule tightened.
	if err := validStoredEntity("alice\u202eecila"); err != nil {
		t.Errorf("a stored entity with U+202E no longer verifies: %v", err)
	}
}
