package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
)

func numCPU() int { return runtime.NumCPU() }

// gen makes realistic ~400-byte events (as served: the NDJSON line with id,
// prev, seq, time, type, entity, version and data). The input is ~190
// bytes: a type such as "order.placed", an entity "order-12345", and data an
// object of a few fields.
type gen struct {
	r *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

var (
	evTypes   = []string{"order.placed", "order.paid", "order.shipped", "order.cancelled", "cart.item_added", "payment.captured"}
	channels  = []string{"web", "ios", "android", "pos", "partner-api"}
	currences = []string{"EUR", "USD", "GBP", "CHF"}
)

// entities: orders numbered 1..entityRange, so entities get several versions.
const entityRange = 250000

// appendEvent appends one input event as a JSON object.
func (g *gen) appendEvent(b []byte) []byte {
	r := g.r
	order := r.IntN(entityRange) + 1
	b = append(b, `{"type":"`...)
	b = append(b, evTypes[r.IntN(len(evTypes))]...)
	b = append(b, `","entity":"order-`...)
	b = strconv.AppendInt(b, int64(order), 10)
	b = fmt.Appendf(b, `","data":{"customer":"cust-%06d","sku":"SKU-%05d-%s","qty":%d,"unit_price":"%d.%02d","currency":"%s","channel":"%s","note":"%s"}}`,
		r.IntN(1000000), r.IntN(100000), []string{"BLK", "WHT", "RED", "BLU"}[r.IntN(4)], 1+r.IntN(9),
		1+r.IntN(500), r.IntN(100), currences[r.IntN(len(currences))], channels[r.IntN(len(channels))],
		notes[r.IntN(len(notes))])
	return b
}

var notes = []string{"", "gift wrap", "leave at the front door", "call before delivery", "express", "second attempt"}

// ndjsonBatch is n events, one per line.
func (g *gen) ndjsonBatch(n int) []byte {
	b := make([]byte, 0, n*200)
	for i := 0; i < n; i++ {
		b = g.appendEvent(b)
		b = append(b, '\n')
	}
	return b
}
