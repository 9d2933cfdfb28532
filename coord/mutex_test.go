package coord

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestMutexLockUnlock(t *testing.T) {
	m := Mutexes{Dir: t.TempDir()}
	g1, err := m.Lock("job", time.Minute, t0)
	if err != nil || g1.Token != 1 || !g1.Expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("first lock: %+v %v", g1, err)
	}
	var held *HeldError
	if _, err := m.Lock("job", time.Minute, t0.Add(time.Second)); !errors.As(err, &held) || !held.Expires.Equal(g1.Expires) {
		t.Fatalf("second lock while held: %v, want HeldError until %v", err, g1.Expires)
	}
	if err := m.Unlock("job", g1.Token+1, t0); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("unlock with a wrong token: %v", err)
	}
	if err := m.Unlock("job", g1.Token, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock("job", g1.Token, t0.Add(time.Second)); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("second unlock: %v", err)
	}
	g2, err := m.Lock("job", time.Second, t0.Add(2*time.Second))
	if err != nil || g2.Token <= g1.Token {
		t.Fatalf("lock after release: %+v %v", g2, err)
	}
	// Expiry frees it; the expired holder can no longer unlock.
	g3, err := m.Lock("job", time.Second, t0.Add(3*time.Second))
	if err != nil || g3.Token <= g2.Token {
		t.Fatalf("lock after expiry: %+v %v", g3, err)
	}
	if err := m.Unlock("job", g2.Token, t0.Add(3*time.Second)); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("unlock by the expired holder: %v", err)
	}
	// Renewal keeps the token and moves the expiry; not after expiry.
	g4, err := m.Renew("job", g3.Token, time.Minute, t0.Add(3500*time.Millisecond))
	if err != nil || g4.Token != g3.Token || !g4.Expires.Equal(t0.Add(3500*time.Millisecond+time.Minute)) {
		t.Fatalf("renew: %+v %v", g4, err)
	}
	if _, err := m.Lock("job", time.Second, t0.Add(5*time.Second)); !errors.Is(err, ErrHeld) {
		t.Fatalf("lock after a renewal: %v", err)
	}
	if _, err := m.Renew("job", g3.Token, time.Minute, t0.Add(2*time.Hour)); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("renew after expiry: %v", err)
	}
	if _, err := m.Renew("job", g2.Token, time.Minute, t0.Add(4*time.Second)); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("renew with a stale token: %v", err)
	}
	if _, err := m.Lock("../x", time.Second, t0); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("bad key: %v", err)
	}
}

// Tokens grow across keys that share a page, and across slot reuse: a key
// whose slot another key took gets a token above every earlier one.
func TestMutexTokensNeverRepeat(t *testing.T) {
	m := Mutexes{Dir: t.TempDir()}
	// Keys of one page, more than it has slots.
	var keys []string
	for i := 0; len(keys) < slotsPerPage+4; i++ {
		k := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		if fnv64(k)%mutexPages == fnv64("ka")%mutexPages {
			keys = append(keys, k)
		}
	}
	now := t0
	var last uint64
	seen := map[uint64]bool{}
	for round := range 4 {
		// 16 keys a round, 4 of them new: slots pass from key to key.
		for i := range slotsPerPage {
			k := keys[(round*4+i)%len(keys)]
			g, err := m.Lock(k, time.Second, now)
			if err != nil {
				t.Fatalf("round %d lock %s: %v", round, k, err)
			}
			if g.Token <= last || seen[g.Token] {
				t.Fatalf("token %d after %d", g.Token, last)
			}
			last, seen[g.Token] = g.Token, true
		}
		// The page is full of held locks.
		var full *TableFullError
		if _, err := m.Lock(keys[(round*4+slotsPerPage)%len(keys)], time.Second, now); !errors.As(err, &full) || full.RetryAfter != time.Second {
			t.Fatalf("lock in a full page: %v", err)
		}
		now = now.Add(2 * time.Second) // every lock expired
	}
}

// A lock or unlock whose write or sync fails answers the error and
// changes nothing: the lock is as it was.
func TestMutexFaults(t *testing.T) {
	for _, tc := range []struct {
		op  fileutil.Op
		err error
	}{
		{fileutil.OpSync, syscall.EIO},
		{fileutil.OpWrite, syscall.EIO},
		{fileutil.OpWrite, syscall.ENOSPC},
	} {
		m := Mutexes{Dir: t.TempDir()}
		g, err := m.Lock("a", time.Minute, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Unlock("a", g.Token, t0); err != nil {
			t.Fatal(err)
		}
		undo := fileutil.Inject(func(op fileutil.Op, path string) error {
			if op == tc.op && filepath.Base(path) == mutexFile {
				return tc.err
			}
			return nil
		})
		_, err = m.Lock("a", time.Minute, t0)
		undo()
		if !errors.Is(err, tc.err) || (tc.err == syscall.ENOSPC) != errors.Is(err, ErrNoSpace) {
			t.Fatalf("%s %v: lock answered %v", tc.op, tc.err, err)
		}
		// Not held: the next lock succeeds, with the next token.
		g2, err := m.Lock("a", time.Minute, t0)
		if err != nil || g2.Token != g.Token+1 {
			t.Fatalf("%s %v: lock after the failure: %+v %v, want token %d", tc.op, tc.err, g2, err, g.Token+1)
		}
		undo = fileutil.Inject(func(op fileutil.Op, path string) error {
			if op == fileutil.OpWrite {
				return tc.err
			}
			return nil
		})
		err = m.Unlock("a", g2.Token, t0)
		undo()
		if err == nil {
			t.Fatalf("unlock with writes failing: nil error")
		}
		var held *HeldError
		if _, err := m.Lock("a", time.Minute, t0); !errors.As(err, &held) {
			t.Fatalf("after a failed unlock the lock is still held; got %v", err)
		}
	}
	// A full disk when the table is made: nothing is left that a later
	// lock would trip on.
	m := Mutexes{Dir: t.TempDir()}
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpPreallocate {
			return syscall.ENOSPC
		}
		return nil
	})
	_, err := m.Lock("a", time.Minute, t0)
	undo()
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("lock on a full disk: %v", err)
	}
	if g, err := m.Lock("a", time.Minute, t0); err != nil || g.Token != 1 {
		t.Fatalf("lock after the disk had room: %+v %v", g, err)
	}
}

// A damaged header is an error, not a fresh table (which would restart the
// tokens).
func TestMutexDamagedHeader(t *testing.T) {
	dir := t.TempDir()
	m := Mutexes{Dir: dir}
	if _, err := m.Lock("a", time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, mutexFile), os.O_RDWR, 0)
	f.WriteAt([]byte("X"), 0)
	f.Close()
	if _, err := m.Lock("b", time.Minute, t0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lock with a damaged header: %v", err)
	}
}

// Goroutines (each its own open file, as processes are) contending for one
// key: never two holders, tokens strictly increasing.
func TestMutexContention(t *testing.T) {
	m := Mutexes{Dir: t.TempDir(), NoSync: true}
	var mu sync.Mutex
	holder := false
	var tokens []uint64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got := 0; got < 20; {
				g, err := m.Lock("k", time.Minute, time.Now())
				if errors.Is(err, ErrHeld) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if holder {
					t.Error("two holders")
				}
				holder = true
				tokens = append(tokens, g.Token)
				mu.Unlock()
				mu.Lock()
				holder = false
				mu.Unlock()
				if err := m.Unlock("k", g.Token, time.Now()); err != nil {
					t.Error(err)
					return
				}
				got++
			}
		}()
	}
	wg.Wait()
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d after %d", tokens[i], tokens[i-1])
		}
	}
}

// BenchmarkLockUnlock is one grant (fdatasync'd) and its release, as a
// CGI request pair does it: the table opened and closed each time.
func BenchmarkLockUnlock(b *testing.B) {
	m := Mutexes{Dir: b.TempDir()}
	now := time.Now()
	for range b.N {
		g, err := m.Lock("k", time.Minute, now)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock("k", g.Token, now); err != nil {
			b.Fatal(err)
		}
	}
}
