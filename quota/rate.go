package quota

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"strata/internal/blake3"
	"strata/internal/shm"
)

// The rate file's layout (see the package doc).
const (
	rateMagic      = "STRRATE\x00"
	rateVersion    = 1
	rateSlots      = 8192 // a power of two: the slot is a mask of the hash
	rateHeaderSize = 64   // a multiple of 8, so every slot is 8-byte aligned
	rateFileSize   = rateHeaderSize + 8*rateSlots
)

// wildSlack is how far past now+window a tat may run before it is taken
// for garbage and reset. Callers pass the time they read a moment ago, so
// a slot legitimately runs ahead of a slow caller's now by that moment;
// resetting then would hand out budget. One second covers any scheduling
// delay, and bounds the wait after the clock steps back to burst/rate + 1s.
const wildSlack = int64(time.Second)

// maxWindow bounds interval×burst, so that no credential can be made to
// wait more than a day and the arithmetic never overflows.
const maxWindow = int64(24 * time.Hour)

// Rate limits requests per credential with GCRA over a memory-mapped file
// that every process on the machine shares (internal/shm). It is safe for
// concurrent use.
type Rate struct {
	f *shm.File
}

// OpenRate opens the rate file at path, creating it (0600) and sizing it if
// it is missing or short. Processes racing to create it are safe: each
// creates with O_CREAT and grows the file only while it is smaller, which
// never disturbs what another process already wrote.
func OpenRate(path string) (*Rate, error) {
	f, err := shm.Open(path, rateFileSize, header)
	if err != nil {
		return nil, fmt.Errorf("open rate file: %w", err)
	}
	return &Rate{f: f}, nil
}

// header is the header every rate file of this version starts with. The
// slots are left alone when it is written over a new, damaged or foreign
// one: the file is a cache, and Allow copes with any value in them.
var header = func() []byte {
	h := make([]byte, rateHeaderSize)
	copy(h, rateMagic)
	binary.LittleEndian.PutUint32(h[8:], rateVersion)
	binary.LittleEndian.PutUint32(h[12:], rateSlots)
	return h
}()

// slotOf is the slot a credential uses.
func slotOf(cred string) int {
	sum := blake3.Sum256([]byte(cred))
	return int(binary.LittleEndian.Uint64(sum[:8]) & (rateSlots - 1))
}

// gcra returns the emission interval of rps (rounded up: stricter) and the
// window burst×interval, the tolerance: how far ahead of now a slot's tat
// may run. Both are in nanoseconds and at most maxWindow.
func gcra(rps float64, burst int) (interval, window int64) {
	iv := math.Ceil(1e9 / rps)
	if !(iv < float64(maxWindow)) {
		iv = float64(maxWindow)
	}
	interval = max(int64(iv), 1)
	// No overflow: the burst is at most 2^24 and interval at most 2^47.
	window = min(interval*int64(effectiveBurst(rps, burst)), maxWindow)
	return interval, window
}

// Allow reports whether the credential cred may make a request at now,
// allowing burst requests at once (0: max(1, ⌈2×rps⌉)) and rps per second
// after that; rps 0 means unlimited. If not, retryAfter says when the same
// request would be allowed, never more than burst/rps. An allowed request
// is counted; a refused one is not.
//
// If the file cannot be used (it was truncated and cannot be mapped again,
// the disk is full, or the Rate is closed), Allow fails open: a broken
// cache must not lock every client out.
func (r *Rate) Allow(cred string, rps float64, burst int, now time.Time) (ok bool, retryAfter time.Duration) {
	if !(rps > 0) {
		return true, 0
	}
	interval, window := gcra(rps, burst)
	slot := slotOf(cred)
	t := now.UnixNano()
	ok, wait := true, time.Duration(0)
	if !r.f.Do(func(mem []byte) { ok, wait = allow(mem, slot, t, interval, window) }) {
		return true, 0
	}
	return ok, wait
}

// allow runs GCRA on one slot of the mapped file: a request is allowed if,
// counted, the slot's theoretical arrival time would run at most window
// ahead of now.
func allow(mem []byte, slot int, now, interval, window int64) (ok bool, wait time.Duration) {
	p := shm.Word(mem, rateHeaderSize+8*slot)
	for {
		old := atomic.LoadUint64(p)
		tat := int64(old)
		if tat-now > window+wildSlack {
			// Garbage, or the clock stepped back: no caller could have
			// written this. Start over as if the burst were just spent.
			atomic.CompareAndSwapUint64(p, old, uint64(now+window))
			continue
		}
		tat = max(tat, now) // an idle slot is a fresh one
		next := tat + interval
		if next-now > window {
			return false, time.Duration(min(next-now-window, window))
		}
		if atomic.CompareAndSwapUint64(p, old, uint64(next)) {
			return true, 0
		}
	}
}

// Check is Allow for a tenant's Limits, returning an *ExceededError for
// requests_per_second when the request is refused.
func (r *Rate) Check(cred string, l Limits, now time.Time) error {
	ok, wait := r.Allow(cred, l.RequestsPerSecond, l.Burst, now)
	if ok {
		return nil
	}
	return &ExceededError{Quota: QuotaRequestsPerSecond, Limit: l.RequestsPerSecond, RetryAfter: wait}
}

// Close unmaps the file. Allow after Close allows everything; no call may
// be in progress during Close.
func (r *Rate) Close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close rate file: %w", err)
	}
	return nil
}
