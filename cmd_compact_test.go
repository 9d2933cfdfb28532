package main

import (
	"strings"
	"testing"
	"time"

	"strata/log"
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

// TestCompactProgress: strata compact's progress counts bytes — plain
// lines where standard error is not a terminal, a bar with the rate and
// ETA where it is — and its summary says segments, sizes, ratio and time.
func TestCompactProgress(t *testing.T) {
	var buf strings.Builder
	p := newProgress(&buf, "compact tenant shop")
	p.bytes = true
	eta := 2.0
	p.update(5_000_000, 10_000_000, 2_500_000, &eta)
	if want := "compact tenant shop: 5.0 MB of 10.0 MB (50%), 2.5 MB/s, 2s left\n"; buf.String() != want {
		t.Errorf("plain progress line %q, want %q", buf.String(), want)
	}
	buf.Reset()
	p.tty, p.last = true, time.Time{}
	p.update(5_000_000, 10_000_000, 2_500_000, &eta)
	p.done()
	if got := buf.String(); !strings.HasPrefix(got, "\rcompact tenant shop [===============>              ]  50% 5.0 MB/10.0 MB  2.5 MB/s  ETA 2s") {
		t.Errorf("progress bar %q", got)
	}
	sum := compactSummary(log.CompactResult{Segments: 3, BytesBefore: 201_326_592, BytesAfter: 31_457_280, Duration: 2 * time.Second})
	if want := "3 segments, 201.3 MB → 31.5 MB (6.40× smaller) in 2.00s (100.7 MB/s)"; sum != want {
		t.Errorf("summary %q, want %q", sum, want)
	}
	if sum := compactSummary(log.CompactResult{}); !strings.Contains(sum, "nothing to compress") {
		t.Errorf("summary of a run with nothing to do: %q", sum)
	}
}
