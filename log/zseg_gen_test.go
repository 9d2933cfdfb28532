package log

import (
	"fmt"
	"math/rand/v2"
)

// realisticEvents makes n events like tests/bench/gen.go's (an order
// type, an entity of 250,000 orders, ~190 bytes of data) with a meta of a
// source, a correlation id and an occurrence time, about 560 bytes of
// NDJSON each: what compression ratios are measured on.
func realisticEvents(r *rand.Rand, n int) []Proposed {
	types := []string{"order.placed", "order.paid", "order.shipped", "order.cancelled", "cart.item_added", "payment.captured"}
	channels := []string{"web", "ios", "android", "pos", "partner-api"}
	currencies := []string{"EUR", "USD", "GBP", "CHF"}
	colors := []string{"BLK", "WHT", "RED", "BLU"}
	notes := []string{"", "gift wrap", "leave at the front door", "call before delivery", "express", "second attempt"}
	evs := make([]Proposed, n)
	for i := range evs {
		evs[i] = Proposed{
			Type:   types[r.IntN(len(types))],
			Entity: fmt.Sprintf("order-%d", r.IntN(250000)+1),
			Data: fmt.Appendf(nil, `{"customer":"cust-%06d","sku":"SKU-%05d-%s","qty":%d,"unit_price":"%d.%02d","currency":"%s","channel":"%s","note":"%s"}`,
				r.IntN(1000000), r.IntN(100000), colors[r.IntN(4)], 1+r.IntN(9),
				1+r.IntN(500), r.IntN(100), currencies[r.IntN(len(currencies))], channels[r.IntN(len(channels))],
				notes[r.IntN(len(notes))]),
			Meta: fmt.Appendf(nil, `{"source":"shop-%s","correlation_id":"%016x","occurred_at":"2026-11-%02dT%02d:%02d:%02d.%03dZ"}`,
				channels[r.IntN(len(channels))], r.Uint64(), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000)),
			ExpectedVersion: -1,
		}
	}
	return evs
}
