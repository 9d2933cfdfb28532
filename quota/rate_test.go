package quota

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MustOpenRate opens a rate file in a fresh temp directory and closes it
// when the test ends.
func MustOpenRate(tb testing.TB) *Rate {
	tb.Helper()
	return mustOpenRateAt(tb, filepath.Join(tb.TempDir(), "rate"))
}

func mustOpenRateAt(tb testing.TB, path string) *Rate {
	tb.Helper()
	r, err := OpenRate(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// t0 is an arbitrary fixed instant for an injected clock.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func TestGCRA(t *testing.T) {
	ms := time.Millisecond
	type step struct {
		at    time.Duration // since t0
		ok    bool
		retry time.Duration
	}
	for _, tc := range []struct {
		name  string
		rps   float64
		burst int
		steps []step
	}{
		{"burst then steady", 10, 3, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
			{0, false, 100 * ms}, {50 * ms, false, 50 * ms}, // refused: not counted
			{100 * ms, true, 0}, {100 * ms, false, 100 * ms}, // one per interval
			{200 * ms, true, 0}, {300 * ms, true, 0}, {400 * ms, true, 0},
			{400 * ms, false, 100 * ms},
		}},
		{"idle refills the burst, not more", 10, 3, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, 100 * ms},
			{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0},
			{time.Hour, false, 100 * ms},
		}},
		{"partial refill", 10, 3, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0},
			{250 * ms, true, 0}, {250 * ms, true, 0}, // 2.5 intervals: two back
			{250 * ms, false, 50 * ms},
		}},
		{"default burst is 2×rate", 5, 0, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
			{0, false, 200 * ms},
		}},
		{"default burst at least 1", 0.1, 0, []step{
			{0, true, 0}, {0, false, 10 * time.Second}, {10 * time.Second, true, 0},
		}},
		{"burst 1", 2, 1, []step{
			{0, true, 0}, {100 * ms, false, 400 * ms}, {500 * ms, true, 0},
			{999 * ms, false, time.Millisecond}, {time.Second, true, 0},
		}},
		{"unlimited", 0, 0, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := MustOpenRate(t)
			for i, s := range tc.steps {
				ok, retry := r.Allow("cred", tc.rps, tc.burst, t0.Add(s.at))
				if ok != s.ok || retry != s.retry {
					t.Errorf("step %d at +%v: Allow = %v, %v; want %v, %v", i, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

// Waiting exactly retryAfter is enough, and a nanosecond less is not.
func TestRetryAfterIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, rps := range []float64{0.5, 1, 3, 7.5, 100, 1e4} {
		r := MustOpenRate(t)
		now := t0
		for range 200 {
			now = now.Add(time.Duration(rng.Int64N(int64(2e9 / rps))))
			ok, retry := r.Allow("c", rps, 4, now)
			if ok {
				continue
			}
			if ok, _ := r.Allow("c", rps, 4, now.Add(retry-1)); ok {
				t.Fatalf("rps %v: allowed 1ns before retryAfter %v", rps, retry)
			}
			if ok, _ := r.Allow("c", rps, 4, now.Add(retry)); !ok {
				t.Fatalf("rps %v: refused after waiting retryAfter %v", rps, retry)
			}
			now = now.Add(retry)
		}
	}
}

func TestCredentialsAreSeparate(t *testing.T) {
	r := MustOpenRate(t)
	if ok, _ := r.Allow("alice", 1, 1, t0); !ok {
		t.Fatal("first request of alice refused")
	}
	if ok, _ := r.Allow("alice", 1, 1, t0); ok {
		t.Fatal("second request of alice allowed")
	}
	if slotOf("alice") != slotOf("bob") {
		if ok, _ := r.Allow("bob", 1, 1, t0); !ok {
			t.Error("bob refused for alice's requests")
		}
	}
}

// Credentials on one slot share one budget: stricter, never looser.
func TestCollidingCredentialsShare(t *testing.T) {
	seen := map[int]string{}
	var a, b string
	for i := 0; b == ""; i++ {
		c := fmt.Sprintf("cred-%d", i)
		if prev, ok := seen[slotOf(c)]; ok {
			a, b = prev, c
		}
		seen[slotOf(c)] = c
	}
	r := MustOpenRate(t)
	allowed := 0
	for i := range 10 {
		if ok, _ := r.Allow([]string{a, b}[i%2], 1, 3, t0); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("%s and %s on one slot: %d allowed at once, want one burst of 3", a, b, allowed)
	}
}

// Two handles on one file stand in for two processes.
func TestTwoHandlesShareTheBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rate")
	r1, r2 := mustOpenRateAt(t, path), mustOpenRateAt(t, path)
	for i := range 4 {
		r := []*Rate{r1, r2}[i%2]
		if ok, _ := r.Allow("c", 1, 4, t0); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	for _, r := range []*Rate{r1, r2} {
		if ok, _ := r.Allow("c", 1, 4, t0); ok {
			t.Error("a handle allowed more than the shared burst")
		}
	}
	// What one handle counted survives it.
	r1.Close()
	r3 := mustOpenRateAt(t, path)
	if ok, retry := r3.Allow("c", 1, 4, t0); ok || retry != time.Second {
		t.Errorf("a new handle: Allow = %v, %v; want refused for 1s", ok, retry)
	}
}

// With a frozen clock, however many goroutines and handles race, exactly
// the burst is allowed: compare-and-swap loses no update.
func TestConcurrentExactBurst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rate")
	handles := []*Rate{mustOpenRateAt(t, path), mustOpenRateAt(t, path), mustOpenRateAt(t, path)}
	const burst = 500
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Go(func() {
			r := handles[g%len(handles)]
			for range 200 {
				if ok, _ := r.Allow("hot", 10, burst, t0); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != burst {
		t.Errorf("allowed %d of 4800 at one instant, want exactly the burst %d", got, burst)
	}
}

// With the real clock: total allowed ≈ burst + rate×elapsed, never more.
func TestConcurrentRealClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rate")
	handles := []*Rate{mustOpenRateAt(t, path), mustOpenRateAt(t, path)}
	const (
		rps   = 2000
		burst = 50
		run   = 300 * time.Millisecond
	)
	var allowed, tried atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := handles[g%len(handles)]
			// At least burst tries in all, however slow the machine: the
			// full bucket must let that many through.
			for time.Since(start) < run || tried.Load() < burst {
				tried.Add(1)
				if ok, _ := r.Allow("c", rps, burst, time.Now()); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ceiling := burst + int64(rps*elapsed.Seconds()) + 1
	got := allowed.Load()
	t.Logf("allowed %d in %v; ceiling %d", got, elapsed, ceiling)
	if got > ceiling {
		t.Errorf("allowed %d in %v, over burst + rate×elapsed = %d", got, elapsed, ceiling)
	}
	if got < burst {
		t.Errorf("allowed %d, less than the burst %d", got, burst)
	}
}

// The file is a cache: whatever it holds, nothing crashes and nobody waits
// longer than burst/rate.
func TestGarbageFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// A valid header over slots all far in the future: as if the clock
	// had stepped back by a year.
	future := bytes.Clone(header)
	for range rateSlots {
		future = binary.NativeEndian.AppendUint64(future, uint64(t0.Add(365*24*time.Hour).UnixNano()))
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("not a rate file")},
		{"header only", header},
		{"random header", append(random(rateHeaderSize), make([]byte, 8*rateSlots)...)},
		{"random", random(rateFileSize)},
		{"all ones", bytes.Repeat([]byte{0xff}, rateFileSize)},
		{"tats a year ahead", future},
		{"longer", random(3 * rateFileSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rate")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			r := mustOpenRateAt(t, path)
			for i := range 50 {
				cred := fmt.Sprint("c", i)
				ok, retry := r.Allow(cred, 10, 5, t0)
				if !ok && (retry <= 0 || retry > 500*time.Millisecond) {
					t.Errorf("%s: refused for %v, want at most burst/rate = 500ms", cred, retry)
				}
				if ok, _ := r.Allow(cred, 10, 5, t0.Add(500*time.Millisecond)); !ok {
					t.Errorf("%s: refused after waiting burst/rate", cred)
				}
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Size() < rateFileSize {
				t.Errorf("file after open: %v, %v; want at least %d bytes", fi.Size(), err, rateFileSize)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b[:rateHeaderSize], header) {
				t.Errorf("header not repaired: % x", b[:16])
			}
		})
	}
}

// A file truncated under a live mapping makes the next access fault; Allow
// must survive it and map the file again.
func TestTruncatedWhileMapped(t *testing.T) {
	// A slot past the first page, so that any truncation leaves it
	// outside the file and touching it faults.
	cred := ""
	for i := 0; cred == ""; i++ {
		if c := fmt.Sprint("c", i); rateHeaderSize+8*slotOf(c) >= 8192 {
			cred = c
		}
	}
	for _, size := range []int64{0, rateHeaderSize, 100, 4096} {
		path := filepath.Join(t.TempDir(), "rate")
		r := mustOpenRateAt(t, path)
		if ok, _ := r.Allow(cred, 1, 1, t0); !ok {
			t.Fatal("first request refused")
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		// The count restarts from zero with the new file (a cache).
		if ok, _ := r.Allow(cred, 1, 1, t0); !ok {
			t.Errorf("truncated to %d: first request after refused", size)
		}
		if ok, _ := r.Allow(cred, 1, 1, t0); ok {
			t.Errorf("truncated to %d: the remapped file did not count", size)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != rateFileSize {
			t.Errorf("truncated to %d: file not restored: %v, %v", size, fi.Size(), err)
		}
	}
}

func TestOpenRateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenRate(dir); err == nil {
		t.Error("OpenRate on a directory succeeded")
	}
	if _, err := OpenRate(filepath.Join(dir, "missing", "rate")); err == nil {
		t.Error("OpenRate in a missing directory succeeded")
	}
}

func TestNewFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rate")
	mustOpenRateAt(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != rateFileSize {
		t.Errorf("new rate file: mode %v size %d; want 0600, %d", fi.Mode(), fi.Size(), rateFileSize)
	}
}

func TestClosedAllows(t *testing.T) {
	r, err := OpenRate(filepath.Join(t.TempDir(), "rate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for range 3 {
		if ok, _ := r.Allow("c", 1, 1, t0); !ok {
			t.Error("Allow after Close refused")
		}
	}
}

func TestCheck(t *testing.T) {
	r := MustOpenRate(t)
	l := Limits{RequestsPerSecond: 4, Burst: 1}
	if err := r.Check("c", l, t0); err != nil {
		t.Fatal(err)
	}
	err := r.Check("c", l, t0)
	e, ok := err.(*ExceededError)
	if !ok || e.Quota != QuotaRequestsPerSecond || e.Limit != 4 || e.RetryAfter != 250*time.Millisecond {
		t.Errorf("Check over the rate = %#v", err)
	}
	if err := r.Check("c", Limits{}, t0); err != nil {
		t.Errorf("unlimited: %v", err)
	}
}

func BenchmarkAllowWarm(b *testing.B) {
	r := MustOpenRate(b)
	now := time.Now()
	for b.Loop() {
		r.Allow("key_0123456789abcdef", 1e9, 1, now)
	}
}

func BenchmarkAllowWarmParallel(b *testing.B) {
	r := MustOpenRate(b)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		cred := fmt.Sprint("key_", n.Add(1))
		for pb.Next() {
			r.Allow(cred, 1e9, 1, time.Now())
		}
	})
}

// What a CGI process pays per request.
func BenchmarkOpenAllowClose(b *testing.B) {
	path := filepath.Join(b.TempDir(), "rate")
	mustOpenRateAt(b, path) // the file exists, as it does after the first request
	now := time.Now()
	for b.Loop() {
		r, err := OpenRate(path)
		if err != nil {
			b.Fatal(err)
		}
		r.Allow("key_0123456789abcdef", 1e9, 1, now)
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
