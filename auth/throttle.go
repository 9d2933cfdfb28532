package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
)

// Throttle holds back password guessing: failed logins are counted per key,
// and a key with too many failures in a row is blocked for a while. The
// counts live in a file, because in CGI every request is a new process.
//
// Policy. Keys are "user:<name>" and "addr:<ip>" for passwords (and setup
// keys), and "bearer:<ip>" for other credentials refused — junk tokens,
// expired sessions — which the caller counts apart, so that one client
// behind a NAT sending stale tokens cannot lock everyone out of password
// logins. The first failures of a key are free — 5 for a user, 20 for an
// address, since many people may share one address behind a NAT — and from the last free one on, each
// failure blocks the key for 2^(n-free) seconds (1 s, 2 s, 4 s, …) capped at
// 15 minutes, n being the failures in a row. A key starts over after 15
// quiet minutes counted from the end of its block — not from its last
// failure, or an attacker blocked for the full 15 minutes would start over
// the moment the block ended — and at once on Succeed. The caller refuses a
// blocked key's requests without checking the password (429, Retry-After)
// and without calling Fail.
//
// File. A header of 64 bytes — magic "STRATATH", version (uint32 = 1),
// slot count (uint32 = 4096), a random 32-byte salt, zeros — then 4096
// slots of 16 bytes: a tag (uint64), failures (uint32) and the Unix second
// of the last failure (uint32), all little-endian. A key hashes, salted,
// to one bucket of 8 slots and to a 64-bit tag (never 0, which marks a free
// slot); each operation reads and writes only that bucket, with pread and
// pwrite under an exclusive flock on the file. The file is 64 KiB
// (throttleSize) whatever the traffic; one that is damaged or of another
// version is started afresh, as its counts are worth little.
//
// Collisions. Two keys sharing a tag (1 in 2^64) share a count: stricter
// for both. A bucket whose 8 slots are all live takes a new key in place of
// its entry with the fewest failures — which loosens throttling for the
// evicted key. The salt keeps an attacker from aiming keys at the bucket of
// a user under attack, and filling all 512 buckets takes thousands of
// failures within minutes, which the address keys hold back.
//
// Reservation. A password check takes ~50 ms, so checking Blocked before
// it and calling Fail after it lets a burst of simultaneous guesses all
// through before the first failure is counted. Reserve closes that gap: in
// one step under the lock it refuses a blocked key or counts the attempt as
// a failure, before the password is checked; a correct password then takes
// the failure back (Succeed for the user, Release for the address). So at
// most the free failures of a key run at once, however many arrive.
//
// Failing closed. Reserve and Release report a lock wait that timed out
// (about a second) and any I/O error, and the caller refuses the login
// (503): a throttle that cannot count must not let guesses through
// uncounted. The file's blocks are allocated when it is made and when it
// is opened, so a full disk cannot fail its writes later. Blocked, Fail
// and Succeed, which only decide what to record or clear, are best effort:
// after such an error they do nothing and Blocked and Fail return 0. A
// Throttle is safe for concurrent use.
type Throttle struct {
	mu sync.Mutex // serialises the goroutines of this process; flock the processes
	f  *os.File
}

const (
	throttleMagic    = "STRATATH"
	throttleVersion  = 1
	throttleHeader   = 64
	throttleSlots    = 4096
	throttleSlotSize = 16
	throttleWays     = 8
	throttleBuckets  = throttleSlots / throttleWays
	throttleBucket   = throttleWays * throttleSlotSize
	throttleSize     = throttleHeader + throttleSlots*throttleSlotSize

	userAllowance = 5
	addrAllowance = 20
	maxBlock      = 15 * time.Minute
	quietReset    = 15 * time.Minute
)

// throttleLockWait bounds the wait for the throttle file's lock; a variable
// so that a test can shorten it.
var throttleLockWait = time.Second

// OpenThrottle opens the throttle file at path, creating it (mode 0600) if
// it is missing; its header is written by the first operation.
func OpenThrottle(path string) (*Throttle, error) {
	f, err := fileutil.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// A file made sparse (by an older strata) gets its blocks now, so
	// that a full disk is an error here rather than on a later write.
	if err := fileutil.Preallocate(f, 0, throttleSize); err != nil {
		f.Close()
		return nil, err
	}
	return &Throttle{f: f}, nil
}

// Close closes the file.
func (t *Throttle) Close() error { return t.f.Close() }

// ErrThrottle: the failed-login counters cannot be read or written (a lock
// held too long, an I/O error), so a login is refused rather than let
// through uncounted.
var ErrThrottle = errors.New("the failed-login counters are unavailable")

// Blocked returns how long the most blocked of keys remains blocked, or 0.
func (t *Throttle) Blocked(now time.Time, keys ...string) time.Duration {
	var wait time.Duration
	t.update(now, keys, blocked(now, &wait))
	return wait
}

// blocked is the update that finds the longest block of the keys.
func blocked(now time.Time, wait *time.Duration) func(string, *slot, bool) bool {
	return func(key string, s *slot, found bool) bool {
		if found && s.live(key, now) {
			*wait = max(*wait, s.remaining(key, now))
		}
		return false
	}
}

// Fail records a failed login for each key and returns the longest block
// now in force for them, or 0.
func (t *Throttle) Fail(now time.Time, keys ...string) time.Duration {
	var wait time.Duration
	t.update(now, keys, fail(now, &wait))
	return wait
}

// fail is the update that counts a failure of each key.
func fail(now time.Time, wait *time.Duration) func(string, *slot, bool) bool {
	return func(key string, s *slot, found bool) bool {
		if !found || !s.live(key, now) {
			s.fails = 0
		}
		if s.fails < 1<<31 {
			s.fails++
		}
		s.last = ceilUnix(now)
		*wait = max(*wait, s.remaining(key, now))
		return true
	}
}

// Reserve is called before a password is checked. If any of keys is
// blocked it returns how long, counting nothing; otherwise it counts the
// attempt as a failure of every key and returns 0 — the caller then checks
// the password, and takes the failure back if it was right (Succeed,
// Release). An error (wrapping ErrThrottle) means nothing could be
// counted, and the login must be refused.
func (t *Throttle) Reserve(now time.Time, keys ...string) (time.Duration, error) {
	var wait time.Duration
	err := t.locked(func(salt [32]byte) error {
		if err := t.each(salt, now, keys, blocked(now, &wait)); err != nil || wait > 0 {
			return err
		}
		var after time.Duration
		return t.each(salt, now, keys, fail(now, &after))
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrThrottle, err)
	}
	return wait, nil
}

// Release takes back one failure that Reserve counted for each key, after
// the password turned out right: for a key shared by many (an address),
// where Succeed would forgive its other failures too.
func (t *Throttle) Release(now time.Time, keys ...string) error {
	err := t.locked(func(salt [32]byte) error {
		return t.each(salt, now, keys, func(key string, s *slot, found bool) bool {
			if !found || !s.live(key, now) || s.fails == 0 {
				return false
			}
			if s.fails--; s.fails == 0 {
				*s = slot{}
			}
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrThrottle, err)
	}
	return nil
}

// Succeed clears the failures of keys.
func (t *Throttle) Succeed(now time.Time, keys ...string) {
	t.update(now, keys, func(key string, s *slot, found bool) bool {
		if !found {
			return false
		}
		*s = slot{}
		return true
	})
}

// slot is a key's entry. tag 0 marks a free slot.
type slot struct {
	tag   uint64
	fails uint32
	last  uint32 // Unix second of the last failure
}

// allowance returns how many failures in a row key has free.
func allowance(key string) uint32 {
	if strings.HasPrefix(key, "addr:") || strings.HasPrefix(key, "bearer:") {
		return addrAllowance
	}
	return userAllowance
}

// blockFor returns the block after fails failures in a row.
func blockFor(fails, free uint32) time.Duration {
	if fails < free {
		return 0
	}
	if e := fails - free; e < 10 { // 2^10 s is past the cap
		return min(time.Duration(1<<e)*time.Second, maxBlock)
	}
	return maxBlock
}

// until returns when the slot's block ends.
func (s *slot) until(key string) time.Time {
	return time.Unix(int64(s.last), 0).Add(blockFor(s.fails, allowance(key)))
}

// live reports whether the slot still counts at now: in use and not past
// the quiet time after its block.
func (s *slot) live(key string, now time.Time) bool {
	return s.tag != 0 && now.Before(s.until(key).Add(quietReset))
}

// remaining returns how long the slot's key stays blocked after now.
func (s *slot) remaining(key string, now time.Time) time.Duration {
	if blockFor(s.fails, allowance(key)) == 0 {
		return 0 // last is rounded up: a free failure must not block
	}
	return max(s.until(key).Sub(now), 0)
}

// ceilUnix returns now in Unix seconds, rounded up so that a block lasts
// at least its length, kept within uint32.
func ceilUnix(now time.Time) uint32 {
	sec := now.Unix()
	if now.Nanosecond() != 0 {
		sec++
	}
	return uint32(min(max(sec, 0), 1<<32-1))
}

// update runs fn on each key's slot (each), under the lock. It does
// nothing if the lock is not had in time or on an I/O error: its callers
// are best effort.
func (t *Throttle) update(now time.Time, keys []string, fn func(key string, s *slot, found bool) bool) {
	t.locked(func(salt [32]byte) error { return t.each(salt, now, keys, fn) })
}

// locked runs fn with the file locked and its salt read.
func (t *Throttle) locked(fn func(salt [32]byte) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := flock(t.f, throttleLockWait); err != nil {
		return err
	}
	defer fileutil.Unlock(t.f)
	salt, err := t.salt()
	if err != nil {
		return err
	}
	return fn(salt)
}

// each runs fn on each key's slot — the slot holding its tag, found, or
// else a slot it may take — and writes the bucket back when fn reports a
// change. The lock must be held.
func (t *Throttle) each(salt [32]byte, now time.Time, keys []string, fn func(key string, s *slot, found bool) bool) error {
	var buf [throttleBucket]byte
	for _, key := range keys {
		h := blake3.Sum256(append(salt[:], key...))
		off := int64(throttleHeader) + int64(binary.LittleEndian.Uint32(h[0:4])%throttleBuckets)*throttleBucket
		tag := binary.LittleEndian.Uint64(h[8:16]) | 1
		if _, err := t.f.ReadAt(buf[:], off); err != nil {
			return err
		}
		i, found := pick(&buf, key, tag, now)
		s := getSlot(&buf, i)
		if fn(key, &s, found) {
			if s.fails != 0 {
				s.tag = tag
			}
			putSlot(&buf, i, s)
			if _, err := fileutil.WriteAt(t.f, buf[:], off); err != nil {
				return err
			}
		}
	}
	return nil
}

// pick returns the slot of bucket holding tag, or else the one a new key
// takes: a free one, else one past its quiet time, else the one with the
// fewest failures.
func pick(bucket *[throttleBucket]byte, key string, tag uint64, now time.Time) (int, bool) {
	victim, fewest := 0, uint32(1<<32-1)
	for i := range throttleWays {
		s := getSlot(bucket, i)
		switch {
		case s.tag == tag:
			return i, true
		case fewest == 0:
		case s.tag == 0 || !s.live(key, now):
			// A dead slot's allowance is judged by the new key's kind:
			// at worst it is freed a little early or late.
			victim, fewest = i, 0
		case s.fails < fewest:
			victim, fewest = i, s.fails
		}
	}
	return victim, false
}

func getSlot(b *[throttleBucket]byte, i int) slot {
	p := b[i*throttleSlotSize:]
	return slot{tag: binary.LittleEndian.Uint64(p), fails: binary.LittleEndian.Uint32(p[8:]), last: binary.LittleEndian.Uint32(p[12:])}
}

func putSlot(b *[throttleBucket]byte, i int, s slot) {
	p := b[i*throttleSlotSize:]
	binary.LittleEndian.PutUint64(p, s.tag)
	binary.LittleEndian.PutUint32(p[8:], s.fails)
	binary.LittleEndian.PutUint32(p[12:], s.last)
}

// salt returns the file's salt, first writing a new header (and zeroing the
// slots) if the file is new, damaged or of another version. The lock must
// be held.
func (t *Throttle) salt() (salt [32]byte, err error) {
	var h [throttleHeader]byte
	fi, err := t.f.Stat()
	if err != nil {
		return salt, err
	}
	if fi.Size() == throttleSize {
		if _, err := t.f.ReadAt(h[:], 0); err == nil && bytes.HasPrefix(h[:], []byte(throttleMagic)) &&
			binary.LittleEndian.Uint32(h[8:]) == throttleVersion && binary.LittleEndian.Uint32(h[12:]) == throttleSlots {
			copy(salt[:], h[16:48])
			return salt, nil
		}
	}
	clear(h[:])
	copy(h[:], throttleMagic)
	binary.LittleEndian.PutUint32(h[8:], throttleVersion)
	binary.LittleEndian.PutUint32(h[12:], throttleSlots)
	if _, err := rand.Read(h[16:48]); err != nil {
		return salt, err
	}
	// Truncating to 0 first zeroes every slot.
	if err := fileutil.Truncate(t.f, 0); err != nil {
		return salt, err
	}
	// Allocate the blocks now, so that a full disk cannot fail a write
	// into a hole later.
	if err := fileutil.Allocate(t.f, throttleSize); err != nil {
		return salt, err
	}
	if _, err := fileutil.WriteAt(t.f, h[:], 0); err != nil {
		return salt, err
	}
	copy(salt[:], h[16:48])
	return salt, nil
}

// Tally counts one occurrence of key in fixed windows of length window,
// across processes: the file format of a Throttle serves as a table of
// counts, each slot holding a key's count and the second its window
// began. Use a file of its own, apart from the failed-login counters, so
// that many keys tallied cannot push login counters out of their buckets.
//
// first reports whether this is the first occurrence of key in its
// current window — the one worth recording — and then prev is how many
// more occurrences the key's previous window had, which were not
// recorded one by one, and prevStart when that window began. A count
// lost to a full bucket or a damaged file only loosens the tally.
func (t *Throttle) Tally(now time.Time, key string, window time.Duration) (first bool, prev uint32, prevStart time.Time, err error) {
	sec := uint32(min(max(now.Unix(), 0), 1<<32-1))
	w := uint32(max(window/time.Second, 1))
	err = t.locked(func(salt [32]byte) error {
		return t.each(salt, now, []string{"tally:" + key}, func(_ string, s *slot, found bool) bool {
			if found && s.fails > 0 && sec >= s.last && sec-s.last < w {
				if s.fails < 1<<31 {
					s.fails++
				}
				return true
			}
			if found && s.fails > 1 {
				prev, prevStart = s.fails-1, time.Unix(int64(s.last), 0)
			}
			first = true
			s.fails, s.last = 1, sec
			return true
		})
	})
	if err != nil {
		return true, 0, time.Time{}, fmt.Errorf("%w: %v", ErrThrottle, err)
	}
	return first, prev, prevStart, nil
}
