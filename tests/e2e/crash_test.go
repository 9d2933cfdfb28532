package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashRounds is how many times TestCrashKill9 kills the server.
func crashRounds() int {
	if os.Getenv("STRATA_SOAK") == "1" {
		return 200
	}
	return 15
}

// ledger records what the server acknowledged, by idempotency key.
type ledger struct {
	mu    sync.Mutex
	byKey map[string]string // key → acknowledged id
	errs  []string
}

func newLedger() *ledger { return &ledger{byKey: map[string]string{}} }

func (l *ledger) ack(key, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.byKey[key]; ok && old != id {
		l.errs = append(l.errs, fmt.Sprintf("key %s acknowledged as %s and later as %s", key, old, id))
	}
	l.byKey[key] = id
}

func (l *ledger) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// writer appends singles and small batches, each event with its own key;
// a request not acknowledged is sent again, unchanged, by the next round.
type writer struct {
	id      int
	n       int
	pending string   // the body not yet acknowledged, or ""
	keys    []string // its keys, in order
}

func (w *writer) next(rng *rand.Rand) {
	if w.pending != "" {
		return
	}
	k := 1
	if rng.IntN(3) == 0 {
		k = 2 + rng.IntN(3)
	}
	w.keys = w.keys[:0]
	var evs []string
	for i := 0; i < k; i++ {
		w.n++
		key := fmt.Sprintf("w%d-%d", w.id, w.n)
		w.keys = append(w.keys, key)
		evs = append(evs, fmt.Sprintf(`{"type":"crash.test","entity":"w%d/%d","key":%q,"data":{"n":%d,"pad":%q}}`,
			w.id, w.n%7, key, w.n, strings.Repeat("x", rng.IntN(200))))
	}
	if k == 1 {
		w.pending = evs[0]
	} else {
		w.pending = "[" + strings.Join(evs, ",") + "]"
	}
}

// run appends until the server stops answering (or stop closes); it
// returns at the first transport error.
func (w *writer) run(base string, rng *rand.Rand, led *ledger, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.next(rng)
		r, err := try("PUT", base+"/events", w.pending, "Content-Type", "application/json")
		if err != nil {
			return // the server is gone; retry next round
		}
		switch r.status {
		case 200, 201:
		case 503:
			continue
		default:
			led.fail("writer %d: %s", w.id, r)
			return
		}
		rs, err := receipts(r.body)
		if err != nil || len(rs) != len(w.keys) {
			led.fail("writer %d: answer %s for %d events (%v)", w.id, r, len(w.keys), err)
			return
		}
		for i, rc := range rs {
			led.ack(w.keys[i], rc.ID)
		}
		w.pending = ""
	}
}

// checkLedger checks the log in data against everything acknowledged:
// each acknowledged id readable and holding its key, each key stored once,
// seqs gapless, the chain intact, and strata verify content.
func checkLedger(t *testing.T, base, data string, led *ledger) {
	t.Helper()
	led.mu.Lock()
	defer led.mu.Unlock()
	for _, e := range led.errs {
		t.Error(e)
	}
	evs := readAll(t, base)
	checkChain(t, evs)
	seen := map[string]string{}
	for _, e := range evs {
		if e.Key == "" {
			t.Fatalf("seq %d has no key", e.Seq)
		}
		if old, ok := seen[e.Key]; ok {
			t.Errorf("key %s stored twice: %s and %s", e.Key, old, e.ID)
		}
		seen[e.Key] = e.ID
	}
	for key, id := range led.byKey {
		if seen[key] != id {
			t.Errorf("acknowledged %s (key %s) is not in the log (the log has %q for the key)", id, key, seen[key])
			continue
		}
		r := do(t, "GET", base+"/events/"+id, nil)
		if r.status != 200 {
			t.Errorf("GET /events/%s: %s", id, r)
			continue
		}
		if e := decode[event](t, r.body); e.Key != key {
			t.Errorf("event %s has key %q, want %q", id, e.Key, key)
		}
	}
	if len(evs) < len(led.byKey) {
		t.Errorf("%d events in the log, %d acknowledged", len(evs), len(led.byKey))
	}
	mustVerify(t, data, len(evs))
	t.Logf("%d events acknowledged, %d in the log", len(led.byKey), len(evs))
}

// TestCrashKill9 kills the server with SIGKILL while clients append, over
// and over on the same data directory: nothing acknowledged may be lost,
// duplicated or broken.
func TestCrashKill9(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	data := t.TempDir()
	led := newLedger()
	const writers = 4
	ws := make([]*writer, writers)
	for i := range ws {
		ws[i] = &writer{id: i}
	}
	acked := uint64(0)
	rounds := crashRounds()
	for round := 0; round < rounds; round++ {
		s := startServer(t, data)
		// Everything acknowledged before the last kill is still there.
		if h := mustHead(t, s.url); h.Seq < acked {
			t.Fatalf("round %d: head seq %d after restart, but %d events were acknowledged", round, h.Seq, acked)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, w := range ws {
			wr := rand.New(rand.NewPCG(rng.Uint64(), uint64(w.id)))
			wg.Go(func() { w.run(s.url, wr, led, stop) })
		}
		time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
		s.kill()
		close(stop)
		wg.Wait()
		if len(led.errs) > 0 {
			break
		}
		acked = uint64(led.len()) // so at least this many events are stored
	}
	s := startServer(t, data)
	// Settle what was in flight at the last kill, then check everything.
	for _, w := range ws {
		if w.pending != "" {
			w.run(s.url, rng, led, closedChan())
		}
	}
	if led.len() < rounds {
		t.Errorf("only %d events acknowledged in %d rounds: the clients hardly ran", led.len(), rounds)
	}
	checkLedger(t, s.url, data, led)
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// TestSIGTERMDrains: SIGTERM while appends are in flight; the server
// finishes them, exits 0, and everything it acknowledged is on disk.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	data := t.TempDir()
	led := newLedger()
	s := startServer(t, data)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		w := &writer{id: i}
		wr := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Go(func() { w.run(s.url, wr, led, nil) })
	}
	// SIGTERM once appends are flowing (not after a guessed sleep, which a
	// loaded machine may spend starting the writers); the writers go on, so
	// some are in flight when it arrives.
	for end := time.Now().Add(30 * time.Second); led.len() < 20 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	before := led.len()
	if code := s.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, s.log())
	}
	wg.Wait()
	if strings.Contains(s.log(), "panic") {
		t.Errorf("server stderr:\n%s", s.log())
	}
	if before == 0 {
		t.Fatal("no append was acknowledged before SIGTERM")
	}
	// Stopped cleanly: verify sees no torn tail.
	out, code := verify(t, data)
	if code != 0 || strings.Contains(out, "torn") {
		t.Errorf("strata verify after a clean stop: exit %d\n%s", code, out)
	}
	checkLedger(t, startServer(t, data).url, data, led)
}

// TestIndexIsACache: the index directory can be deleted (or rebuilt with
// strata reindex) between runs without losing anything: ids, keys, entity
// versions and filters come back from the log.
func TestIndexIsACache(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	var rcs []receipt
	for i := 0; i < 30; i++ {
		rcs = append(rcs, mustAppend(t, s.url, fmt.Sprintf(`{"type":"t","entity":"books/%d","key":"k%d","data":%d}`, i%4, i, i)))
	}
	before := readAll(t, s.url)
	s.kill()
	for _, step := range []string{"remove", "reindex", "kill9+remove"} {
		switch step {
		case "remove", "kill9+remove":
			if err := os.RemoveAll(filepath.Join(data, "tenants", "default", "index")); err != nil {
				t.Fatal(err)
			}
		case "reindex":
			cmd := exec.Command(bin, "reindex", "--data", data)
			cmd.Env = cleanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("strata reindex: %v\n%s", err, out)
			}
		}
		s = startServer(t, data)
		after := readAll(t, s.url)
		if len(after) != len(before) || after[len(after)-1].ID != before[len(before)-1].ID {
			t.Fatalf("%s: %d events after, %d before", step, len(after), len(before))
		}
		for _, rc := range rcs[:5] {
			do(t, "GET", s.url+"/events/"+rc.ID, nil).want(t, 200)
		}
		// The key index: a repeat is recognised.
		r := do(t, "PUT", s.url+"/events", `{"type":"t","entity":"books/3","key":"k3","data":3}`).want(t, 200)
		if rc := decode[receipt](t, r.body); rc.ID != rcs[3].ID || !rc.Repeated {
			t.Fatalf("%s: repeat of k3 = %s, want %s", step, r.body, rcs[3].ID)
		}
		// The entity index: versions go on.
		e := do(t, "PUT", s.url+"/events", `{"type":"t","entity":"books/1","expected_version":0}`).wantError(t, 409, "version_conflict")
		if e["current_version"] != 8.0 {
			t.Fatalf("%s: books/1 current_version %v, want 8", step, e["current_version"])
		}
		r = do(t, "GET", s.url+"/events?entity=books/2", nil).want(t, 200)
		if n := len(decode[[]event](t, r.body)); n != 7 {
			t.Fatalf("%s: %d events of books/2, want 7", step, n)
		}
		r = do(t, "GET", s.url+"/events?from="+rcs[27].ID, nil).want(t, 200)
		if n := len(decode[[]event](t, r.body)); n != 2 {
			t.Fatalf("%s: %d events after the 28th, want 2", step, n)
		}
		if step == "kill9+remove" {
			s.kill()
		} else if code := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	mustVerify(t, data, 30)
}

// TestIndexReplacedUnderServer: the index directory is deleted while a
// server runs, another process rebuilds it and appends; within a second or
// two the running server serves from the new index, the new event included.
func TestIndexReplacedUnderServer(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	first := mustAppend(t, s.url, `{"type":"t","entity":"e","data":1}`)
	if err := os.RemoveAll(filepath.Join(data, "tenants", "default", "index")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "reindex", "--data", data)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strata reindex: %v\n%s", err, out)
	}
	other := startServer(t, data) // another process on the same data
	second := mustAppend(t, other.url, `{"type":"t","entity":"e","data":2}`)
	if second.Seq != first.Seq+1 {
		t.Fatalf("the other process appended seq %d after %d", second.Seq, first.Seq)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h := mustHead(t, s.url)
		if h.ID == second.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first server still says head seq %d, not the other's seq %d", h.Seq, second.Seq)
		}
		time.Sleep(100 * time.Millisecond)
	}
	do(t, "GET", s.url+"/events/"+second.ID, nil).want(t, 200)
}
