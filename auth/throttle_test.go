package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"strata/internal/blake3"
	"strata/internal/fileutil"
)

func mustOpenThrottle(tb testing.TB, path string) *Throttle {
	tb.Helper()
	th, err := OpenThrottle(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { th.Close() })
	return th
}

func TestThrottleBackoff(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	// Failures 1–4 are free; the 5th blocks 1 s, then 2 s, 4 s, … up to
	// 15 minutes. Each failure comes as soon as the block allows.
	want := []time.Duration{0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900}
	for i, w := range want {
		if b := th.Blocked(now, "user:alice"); b != 0 {
			t.Fatalf("before failure %d: blocked %v, want 0", i+1, b)
		}
		got := th.Fail(now, "user:alice")
		if got != w*time.Second {
			t.Fatalf("failure %d: block %v, want %v", i+1, got, w*time.Second)
		}
		if b := th.Blocked(now, "user:alice"); b != got {
			t.Fatalf("after failure %d: Blocked %v, Fail said %v", i+1, b, got)
		}
		if got > 0 {
			if b := th.Blocked(now.Add(got-time.Millisecond), "user:alice"); b != time.Millisecond {
				t.Fatalf("failure %d: Blocked just before the end = %v", i+1, b)
			}
		}
		now = now.Add(got)
	}
	// Other keys are untouched.
	if b := th.Blocked(now.Add(-time.Second), "user:bob", "addr:192.0.2.1"); b != 0 {
		t.Errorf("other keys blocked %v", b)
	}
}

func TestThrottleAddressAllowance(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	for i := 1; i <= 21; i++ {
		got := th.Fail(now, "addr:192.0.2.1")
		want := time.Duration(0)
		switch i {
		case 20:
			want = time.Second
		case 21:
			want = 2 * time.Second
		}
		if got != want {
			t.Fatalf("address failure %d: block %v, want %v", i, got, want)
		}
		now = now.Add(got)
	}
}

func TestThrottleMostBlockedKeyCounts(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	for range 6 {
		th.Fail(now, "user:alice", "addr:192.0.2.1")
	}
	// alice: 6 failures (2 s); the address: 6 of 20 free.
	if got := th.Blocked(now, "user:alice", "addr:192.0.2.1"); got != 2*time.Second {
		t.Errorf("Blocked = %v, want 2s", got)
	}
	if got := th.Blocked(now, "user:bob", "addr:192.0.2.1"); got != 0 {
		t.Errorf("another user from the address: blocked %v", got)
	}
}

func TestThrottleSucceedClears(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	for range 7 {
		th.Fail(now, "user:alice", "addr:192.0.2.1")
	}
	th.Succeed(now, "user:alice")
	if got := th.Blocked(now, "user:alice"); got != 0 {
		t.Errorf("blocked %v after Succeed", got)
	}
	if got := th.Fail(now, "user:alice"); got != 0 {
		t.Errorf("first failure after Succeed blocks %v", got)
	}
	// The address was not cleared: 7 failures, and 12 more make 19.
	for range 12 {
		th.Fail(now, "addr:192.0.2.1")
	}
	if got := th.Fail(now, "addr:192.0.2.1"); got != time.Second {
		t.Errorf("20th address failure blocks %v, want 1s", got)
	}
}

func TestThrottleQuietReset(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	start := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		quiet time.Duration // after the end of the block
		want  time.Duration // block after one more failure
	}{
		{quietReset - time.Second, 16 * time.Second}, // 9th failure in a row
		{quietReset, 0}, // starts over
	} {
		th.Succeed(start, "user:alice")
		now := start
		var b time.Duration
		for range 8 {
			b = th.Fail(now, "user:alice")
		}
		if b != 8*time.Second {
			t.Fatalf("8 failures: block %v", b)
		}
		later := now.Add(b + tc.quiet)
		if got := th.Fail(later, "user:alice"); got != tc.want {
			t.Errorf("failure %v after the block: block %v, want %v", tc.quiet, got, tc.want)
		}
	}
	// A key at the 15-minute cap stays there while it keeps failing as soon
	// as it may, rather than starting over when its block ends.
	th.Succeed(start, "user:bob")
	now := start
	for range 30 {
		now = now.Add(th.Fail(now, "user:bob"))
	}
	if got := th.Fail(now, "user:bob"); got != maxBlock {
		t.Errorf("at the cap: block %v, want %v", got, maxBlock)
	}
}

// TestThrottleSharedFile opens the file twice, as two processes would: each
// sees the other's failures.
func TestThrottleSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "throttle")
	a := mustOpenThrottle(t, path)
	b := mustOpenThrottle(t, path)
	now := time.Unix(1_800_000_000, 0)
	for i := range 6 {
		h := a
		if i%2 == 1 {
			h = b
		}
		h.Fail(now, "user:alice")
	}
	if got := a.Blocked(now, "user:alice"); got != 2*time.Second {
		t.Errorf("handle a: blocked %v, want 2s", got)
	}
	if got := b.Blocked(now, "user:alice"); got != 2*time.Second {
		t.Errorf("handle b: blocked %v, want 2s", got)
	}
	b.Succeed(now, "user:alice")
	if got := a.Blocked(now, "user:alice"); got != 0 {
		t.Errorf("handle a after b's Succeed: blocked %v", got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != throttleSize || fi.Mode().Perm() != 0o600 {
		t.Errorf("file: %v, %v; want %d bytes, mode 0600", fi, err, throttleSize)
	}
}

// TestThrottleDamagedFile: a file of the wrong size or magic starts afresh.
func TestThrottleDamagedFile(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, damage := range []func(path string){
		func(path string) { os.Truncate(path, 100) },
		func(path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXX"), 0)
			f.Close()
		},
		func(path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt([]byte{2}, 8) // version 2
			f.Close()
		},
	} {
		path := filepath.Join(t.TempDir(), "throttle")
		th := mustOpenThrottle(t, path)
		for range 10 {
			th.Fail(now, "user:alice")
		}
		damage(path)
		if got := th.Blocked(now, "user:alice"); got != 0 {
			t.Errorf("damaged file: blocked %v, want a fresh start", got)
		}
		if got := th.Fail(now, "user:alice"); got != 0 {
			t.Errorf("damaged file: first failure blocks %v", got)
		}
		if fi, _ := os.Stat(path); fi.Size() != throttleSize {
			t.Errorf("rewritten file has %d bytes", fi.Size())
		}
	}
}

// TestThrottleLockTimeout: while another process holds the lock, the
// throttle gives up after throttleLockWait instead of hanging.
func TestThrottleLockTimeout(t *testing.T) {
	defer func(w time.Duration) { throttleLockWait = w }(throttleLockWait)
	throttleLockWait = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "throttle")
	th := mustOpenThrottle(t, path)
	now := time.Unix(1_800_000_000, 0)
	for range 10 {
		th.Fail(now, "user:alice")
	}
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// The holder lets go only after Blocked returns: a Blocked that waited
	// for the lock would never return, so returning at all is the check,
	// with no clock in it.
	if got := th.Blocked(now, "user:alice"); got != 0 {
		t.Errorf("Blocked under a held lock = %v, want 0 (no throttling)", got)
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if got := th.Blocked(now, "user:alice"); got != 32*time.Second {
		t.Errorf("Blocked after the lock is free = %v, want 32s", got)
	}
}

// sameBucket returns n keys that fall in the bucket of key.
func sameBucket(t *testing.T, path, key string, n int) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h [throttleHeader]byte
	f.ReadAt(h[:], 0)
	bucket := func(k string) uint32 {
		d := blake3.Sum256(append(h[16:48:48], k...))
		return binary.LittleEndian.Uint32(d[:4]) % throttleBuckets
	}
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("user:u%d", i)
		if bucket(k) == bucket(key) {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestThrottleFullBucket: a new key takes the place of the live entry with
// the fewest failures; blocked keys keep theirs.
func TestThrottleFullBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "throttle")
	th := mustOpenThrottle(t, path)
	now := time.Unix(1_800_000_000, 0)
	th.Fail(now, "user:alice")
	th.Succeed(now, "user:alice") // writes the header
	others := sameBucket(t, path, "user:alice", throttleWays)
	for range 6 {
		th.Fail(now, "user:alice")
	}
	// Fill the other 7 slots: u0 with 1 failure, the rest with 6.
	for i, k := range others[:throttleWays-1] {
		n := 6
		if i == 0 {
			n = 1
		}
		for range n {
			th.Fail(now, k)
		}
	}
	// One more key: it evicts u0, the entry with the fewest failures.
	th.Fail(now, others[throttleWays-1])
	if got := th.Blocked(now, "user:alice"); got != 2*time.Second {
		t.Errorf("alice after the bucket filled: blocked %v, want 2s", got)
	}
	for _, k := range others[1 : throttleWays-1] {
		if got := th.Blocked(now, k); got != 2*time.Second {
			t.Errorf("%s: blocked %v, want 2s", k, got)
		}
	}
	if got := th.Fail(now, others[0]); got != 0 {
		t.Errorf("the evicted key starts over, but its failure blocks %v", got)
	}

	// A slot past its quiet time is taken before any live one: make u1 stale
	// (failures long ago) and u0 live with one failure, then add a key.
	for _, k := range others {
		th.Succeed(now, k)
	}
	long := now.Add(-time.Hour)
	for range 6 {
		th.Fail(long, others[1])
	}
	th.Fail(now, others[0])
	for _, k := range others[2 : throttleWays-1] {
		th.Fail(now, k)
	}
	th.Fail(now, others[throttleWays-1])
	if got := th.Fail(now, others[0]); got != 0 || th.Fail(now, others[0]) != 0 || th.Fail(now, others[0]) != 0 {
		t.Fatal("u0 blocked early")
	}
	// u0 has 4 failures now if its entry was kept: the 5th blocks.
	if got := th.Fail(now, others[0]); got != time.Second {
		t.Errorf("u0 lost its entry to the new key instead of the stale one: block %v, want 1s", got)
	}
}

// TestThrottleSubSecondClock: counts are kept to the second, rounded so
// that free failures never block and a block lasts at least its length.
func TestThrottleSubSecondClock(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 300_000_000)
	for i := 1; i <= 4; i++ {
		if got := th.Fail(now, "user:alice"); got != 0 {
			t.Fatalf("free failure %d blocks %v", i, got)
		}
		if got := th.Blocked(now, "user:alice"); got != 0 {
			t.Fatalf("after free failure %d: blocked %v", i, got)
		}
	}
	got := th.Fail(now, "user:alice")
	if got < time.Second || got >= 2*time.Second {
		t.Errorf("5th failure blocks %v, want at least 1s and under 2s", got)
	}
}

// TestThrottleReserveConcurrent: however many guesses arrive at once, only
// a key's free failures get past Reserve; the rest are held back before
// any password is checked.
func TestThrottleReserveConcurrent(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	const guesses = 300
	var wg sync.WaitGroup
	var passed atomic.Int32
	start := make(chan struct{})
	for range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			wait, err := th.Reserve(now, "user:alice", "addr:192.0.2.1")
			if err != nil {
				t.Error(err)
			}
			if wait == 0 {
				passed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := passed.Load(); n != userAllowance {
		t.Fatalf("%d of %d simultaneous guesses got past Reserve; want %d", n, guesses, userAllowance)
	}
}

// TestThrottleRelease: a right password takes back its reservation — all
// of it for the user (Succeed), one failure for the address (Release),
// whose other failures stay.
func TestThrottleRelease(t *testing.T) {
	th := mustOpenThrottle(t, filepath.Join(t.TempDir(), "throttle"))
	now := time.Unix(1_800_000_000, 0)
	for range addrAllowance - 1 {
		th.Fail(now, "addr:192.0.2.1")
	}
	if wait, err := th.Reserve(now, "user:alice", "addr:192.0.2.1"); wait != 0 || err != nil {
		t.Fatalf("Reserve = %v, %v", wait, err)
	}
	if got := th.Blocked(now, "addr:192.0.2.1"); got != time.Second {
		t.Fatalf("the reservation is not counted: blocked %v", got)
	}
	th.Succeed(now, "user:alice")
	if err := th.Release(now, "addr:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if got := th.Blocked(now, "addr:192.0.2.1", "user:alice"); got != 0 {
		t.Fatalf("blocked %v after a right password", got)
	}
	if got := th.Fail(now, "addr:192.0.2.1"); got != time.Second {
		t.Fatalf("the address's earlier failures were forgiven: the next blocks %v", got)
	}
}

// TestThrottleFailsClosed: when the counters cannot be written (a full
// disk, an I/O error) or locked in time, Reserve reports it, so that the
// login is refused rather than let through uncounted.
func TestThrottleFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "throttle")
	th := mustOpenThrottle(t, path)
	now := time.Unix(1_800_000_000, 0)
	th.Fail(now, "user:alice") // writes the header
	// The disk fills: every write of the file fails.
	undo := fileutil.Inject(func(op fileutil.Op, p string) error {
		if op == fileutil.OpWrite && p == path {
			return unix.ENOSPC
		}
		return nil
	})
	if _, err := th.Reserve(now, "user:alice"); !errors.Is(err, ErrThrottle) {
		t.Errorf("Reserve with writes failing: %v, want ErrThrottle", err)
	}
	if err := th.Release(now, "user:alice"); !errors.Is(err, ErrThrottle) {
		t.Errorf("Release with writes failing: %v, want ErrThrottle", err)
	}
	if got := th.Blocked(now, "user:alice"); got != 0 {
		t.Errorf("Blocked with writes failing: %v", got)
	}
	undo()
	// A file that cannot be allocated when it is made.
	undo = fileutil.Inject(func(op fileutil.Op, p string) error {
		if op == fileutil.OpPreallocate && p == path+"2" {
			return unix.ENOSPC
		}
		return nil
	})
	if th2, err := OpenThrottle(path + "2"); err == nil {
		t.Error("OpenThrottle succeeded with the file not allocated")
		th2.Close()
	}
	undo()
	// A full device.
	full, err := OpenThrottle("/dev/full")
	if err == nil {
		if _, err := full.Reserve(now, "user:alice"); !errors.Is(err, ErrThrottle) {
			t.Errorf("Reserve on /dev/full: %v, want ErrThrottle", err)
		}
		full.Close()
	}
	// A lock held too long.
	defer func(w time.Duration) { throttleLockWait = w }(throttleLockWait)
	throttleLockWait = 50 * time.Millisecond
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := th.Reserve(now, "user:alice"); !errors.Is(err, ErrThrottle) {
		t.Errorf("Reserve under a held lock: %v, want ErrThrottle", err)
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if wait, err := th.Reserve(now, "user:alice"); wait != 0 || err != nil {
		t.Errorf("Reserve after the lock is free: %v, %v", wait, err)
	}
}

// TestThrottleAllocated: the file's blocks are allocated when it is made,
// so that a disk that fills later cannot fail a write into a hole.
func TestThrottleAllocated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "throttle")
	th := mustOpenThrottle(t, path)
	th.Fail(time.Unix(1_800_000_000, 0), "user:alice")
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < throttleSize {
		t.Skipf("%d bytes allocated of %d: the file system does not allocate ahead (tmpfs may not)", st.Blocks*512, throttleSize)
	}
}
