package projections

import (
	"fmt"
	"testing"

	"strata/log"
)

// BenchmarkStateAt folds an entity of 10,000 events (merge patches of four
// members) from its first: the cost of a state read until the cache
// exists.
func BenchmarkStateAt(b *testing.B) {
	l, err := log.Open(b.TempDir(), log.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 10000
	var ps []log.Proposed
	for i := 0; i < n; i++ {
		ps = append(ps, ev("big", fmt.Sprintf(`{"n":%d,"k%d":"v","status":"s%d"}`, i, i%10, i%3), ""))
	}
	if _, err := l.Append(&log.Request{Events: ps}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := StateAt(l, "big", Point{})
		if err != nil || s.Version != n {
			b.Fatal(s, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}
