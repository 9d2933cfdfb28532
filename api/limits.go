package api

import (
	"errors"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// What bounds the memory of appends (README, "Limits"):
//
//   - one request: at most Config.MaxBody bytes and Config.MaxEvents
//     events (413 past either, before the rest of the body is parsed);
//   - all requests of a process together: Config.MaxInflight bytes of
//     appends held in memory at once (503 with Retry-After past it).
//
// A request is charged three times its body before it reads it (as the
// bytes arrive, for a chunked one): the body, the parsed copy of data and
// meta, and the encoded records. Once parsed, eventCost per event is added
// without a check — at most MaxEvents × eventCost, and a request already
// admitted must not be refused half-way, or concurrent ones could refuse
// each other. The request that has held part of the budget the longest is
// never refused by it: alone, so a budget below one largest request still
// lets them through one at a time; and with others, so chunked bodies,
// charged as they arrive, cannot refuse one another half-way for ever —
// the oldest goes on, the newer ones are refused. The memory held is at
// most the budget plus one largest request.

// eventCost is what one event of a request holds besides its bytes: its
// parsed form, the log's proposed and stored event, and their hashes
// (measured: ~800 bytes), rounded up.
const eventCost = 1 << 10

// bodyFactor is what a request is charged per byte of its body.
const bodyFactor = 3

// budget is the bytes that append requests in flight may hold together.
// A nil budget is unbounded.
type budget struct {
	mu   sync.Mutex
	max  int64
	used int64
	// holders are the tickets of the requests holding part of the budget;
	// the smallest, the oldest, is never refused. next is the last given.
	holders map[uint64]struct{}
	next    uint64
	// release says to hand freed memory back to the system after a large
	// request (long-running processes; a CGI process exits instead).
	release bool
	pending atomic.Bool // a FreeOSMemory is scheduled
}

func newBudget(max int64, longRunning bool) *budget {
	if max <= 0 {
		return nil
	}
	return &budget{max: max, release: longRunning, holders: make(map[uint64]struct{})}
}

// take charges n bytes to h, or reports false if that would pass the
// budget while other requests hold part of it and h is not the one that
// has held it the longest.
func (b *budget) take(h *hold, n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used > 0 && b.used+n > b.max && !b.oldest(h.ticket) {
		return false
	}
	if h.ticket == 0 {
		b.next++
		h.ticket = b.next
		b.holders[h.ticket] = struct{}{}
	}
	b.used += n
	return true
}

// oldest reports whether ticket is the smallest held. b.mu must be held.
func (b *budget) oldest(ticket uint64) bool {
	if ticket == 0 {
		return false
	}
	for t := range b.holders {
		if t < ticket {
			return false
		}
	}
	return true
}

// force charges n bytes whatever the budget holds.
func (b *budget) force(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// freeAfter is the charge of a request large enough that its memory is
// handed back to the system once it ends: the Go runtime would otherwise
// keep the pages resident for minutes, and a burst of large batches would
// leave the process at its peak.
const freeAfter = 32 << 20

func (b *budget) give(h *hold) {
	if b == nil {
		return
	}
	n := h.n
	b.mu.Lock()
	b.used -= n
	delete(b.holders, h.ticket)
	b.mu.Unlock()
	if n == 0 {
		return
	}
	if b.release && n >= freeAfter && b.pending.CompareAndSwap(false, true) {
		// Once for all the large requests that end within freeDelay: it
		// runs a full collection.
		time.AfterFunc(freeDelay, func() {
			b.pending.Store(false)
			debug.FreeOSMemory()
		})
	}
}

const freeDelay = 500 * time.Millisecond

// hold is what one request has taken of the budget.
type hold struct {
	b      *budget
	n      int64
	ticket uint64 // in b.holders once it took something; 0 before
}

func (h *hold) take(n int64) error {
	if !h.b.take(h, n) {
		return errOverloaded
	}
	h.n += n
	return nil
}

func (h *hold) force(n int64) {
	h.b.force(n)
	h.n += n
}

// release gives back everything the request took.
func (h *hold) release() {
	h.b.give(h)
	h.n = 0
	h.ticket = 0
}

// errOverloaded refuses a request that would pass the in-flight budget.
var errOverloaded = errors.New("in-flight append budget exhausted")

// chargedBody charges a body of unknown length as it is read, a step at
// a time.
type chargedBody struct {
	io.Reader
	h     *hold
	read  int64
	taken int64
}

const chargeStep = 1 << 20

func (c *chargedBody) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.read += int64(n)
	if c.read > c.taken {
		if terr := c.h.take(bodyFactor * chargeStep); terr != nil {
			return n, terr
		}
		c.taken += chargeStep
	}
	return n, err
}
