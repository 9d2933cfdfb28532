package main

import (
	"strings"
	"testing"
	"time"
)

// TestCompactAge: --compact-age / STRATA_COMPACT_AGE take a duration, or
// off or 0 for no background compaction; the default is an hour; anything
// else is refused naming the setting.
func TestCompactAge(t *testing.T) {
	for _, c := range []struct {
		set  string // "" leaves the variable unset
		want time.Duration
		bad  bool
	}{{"", time.Hour, false}, {"30m", 30 * time.Minute, false}, {"500ms", 500 * time.Millisecond, false},
		{"off", 0, false}, {"0", 0, false}, {"soon", 0, true}, {"-1h", 0, true}, {"10", 0, true}} {
		s := settings{}
		if c.set != "" {
			s["STRATA_COMPACT_AGE"] = c.set
		}
		cfg, err := s.config().api()
		switch {
		case c.bad && (err == nil || !strings.Contains(err.Error(), "compact-age")):
			t.Errorf("STRATA_COMPACT_AGE=%q: %v, want it refused naming compact-age", c.set, err)
		case !c.bad && err != nil:
			t.Errorf("STRATA_COMPACT_AGE=%q: %v", c.set, err)
		case !c.bad && cfg.CompactAge != c.want:
			t.Errorf("STRATA_COMPACT_AGE=%q: %v, want %v", c.set, cfg.CompactAge, c.want)
		}
	}
}
