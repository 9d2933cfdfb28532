package blobs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strata/internal/fileutil"
)

// mustUsage checks that the counter says want, and that a recount agrees.
func mustUsage(tb testing.TB, s *Store, want Usage) {
	tb.Helper()
	u, err := s.Usage()
	if err != nil {
		tb.Fatal(err)
	}
	if u != want {
		tb.Errorf("Usage() = %+v, want %+v", u, want)
	}
	r, err := s.Recount()
	if err != nil {
		tb.Fatal(err)
	}
	if r != want {
		tb.Errorf("Recount() = %+v, want %+v", r, want)
	}
}

// assertNoBlobs fails if the store holds any blob, sidecar or temp file.
func assertNoBlobs(tb testing.TB, s *Store) {
	tb.Helper()
	assertNoTemp(tb, s)
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range shards {
		if !d.IsDir() || !isShard(d.Name()) {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(s.dir, d.Name()))
		for _, e := range entries {
			tb.Errorf("unexpected file %s/%s", d.Name(), e.Name())
		}
	}
}

func TestUsageCounts(t *testing.T) {
	s := MustOpen(t, Options{NoSync: true})
	a, b := []byte("ten bytes!"), bytes.Repeat([]byte("b"), 20)
	for _, tc := range []struct {
		name    string
		op      func() error
		created bool
		want    Usage
	}{
		{"nothing yet", func() error { return nil }, false, Usage{}},
		{"put a", put(s, a, true), true, Usage{10, 1}},
		{"put b", put(s, b, true), true, Usage{30, 2}},
		{"put a again", put(s, a, false), false, Usage{30, 2}},
		{"put empty", put(s, nil, true), true, Usage{30, 3}},
		{"delete a", func() error { return s.Delete(hashOf(a)) }, false, Usage{20, 2}},
		{"delete a again", func() error {
			if err := s.Delete(hashOf(a)); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("second Delete: %v", err)
			}
			return nil
		}, false, Usage{20, 2}},
		{"put a back", put(s, a, true), true, Usage{30, 3}},
		{"delete all", func() error {
			for _, h := range []string{hashOf(a), hashOf(b), emptyHash} {
				if err := s.Delete(h); err != nil {
					return err
				}
			}
			return nil
		}, false, Usage{}},
	} {
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mustUsage(t, s, tc.want)
	}
}

// put returns an op that stores b and checks created.
func put(s *Store, b []byte, wantCreated bool) func() error {
	return func() error {
		_, created, err := s.Put(bytes.NewReader(b), "", "")
		if err == nil && created != wantCreated {
			err = fmt.Errorf("created = %v, want %v", created, wantCreated)
		}
		return err
	}
}

var errQuota = errors.New("over quota")

func TestAdmit(t *testing.T) {
	s := MustOpen(t, Options{})
	mustPut(t, s, []byte("already here"), "")
	base := Usage{12, 1}

	// Refused: nothing stored, counter unchanged, the error as is.
	data := []byte("refused content")
	var gotSize int64
	var gotUsage Usage
	_, _, err := s.PutWith(bytes.NewReader(data), PutOptions{ContentType: "text/plain", Admit: func(size int64, u Usage) error {
		gotSize, gotUsage = size, u
		return errQuota
	}})
	if !errors.Is(err, errQuota) {
		t.Fatalf("refused Put: %v, want the Admit error", err)
	}
	if gotSize != int64(len(data)) || gotUsage != base {
		t.Errorf("Admit saw size %d, usage %+v; want %d, %+v", gotSize, gotUsage, len(data), base)
	}
	if _, err := s.Stat(hashOf(data)); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused blob: Stat = %v", err)
	}
	if _, err := os.Stat(s.typePath(hashOf(data))); !os.IsNotExist(err) {
		t.Errorf("refused blob left its sidecar: %v", err)
	}
	assertNoTemp(t, s)
	mustUsage(t, s, base)

	// Admitted: stored and counted.
	if _, created, err := s.PutWith(bytes.NewReader(data), PutOptions{Admit: func(int64, Usage) error { return nil }}); err != nil || !created {
		t.Fatalf("admitted Put: %v, %v", created, err)
	}
	mustUsage(t, s, Usage{base.Bytes + int64(len(data)), 2})

	// A repeat costs nothing: Admit is not asked.
	if _, created, err := s.PutWith(bytes.NewReader(data), PutOptions{Admit: func(int64, Usage) error {
		t.Error("Admit called for content already stored")
		return errQuota
	}}); err != nil || created {
		t.Errorf("repeat Put: %v, %v", created, err)
	}
}

func TestAdmitRefusalOnEmptyStore(t *testing.T) {
	s := MustOpen(t, Options{})
	_, _, err := s.PutWith(strings.NewReader("x"), PutOptions{Admit: func(int64, Usage) error { return errQuota }})
	if !errors.Is(err, errQuota) {
		t.Fatal(err)
	}
	assertNoBlobs(t, s)
	mustUsage(t, s, Usage{})
}

func TestPutWithMaxSize(t *testing.T) {
	for _, tc := range []struct {
		store, call, size int64
		limit             int64 // the limit the error names; 0 = stored
	}{
		{0, 0, 5000, 0},
		{1000, 0, 1000, 0},
		{1000, 0, 1001, 1000},
		{0, 500, 501, 500},
		{0, 500, 500, 0},
		{1000, 500, 700, 500}, // the call's is smaller
		{500, 1000, 700, 500}, // the store's is smaller
		{1000, 1000, 1001, 1000},
	} {
		s := MustOpen(t, Options{MaxSize: tc.store, NoSync: true})
		r := &countingReader{n: tc.size}
		_, _, err := s.PutWith(r, PutOptions{MaxSize: tc.call})
		if tc.limit == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tc, err)
			}
			continue
		}
		var te *TooLargeError
		if !errors.As(err, &te) || te.Limit != tc.limit || !errors.Is(err, ErrTooLarge) {
			t.Errorf("%+v: %v; want a TooLargeError at %d", tc, err, tc.limit)
			continue
		}
		if !strings.Contains(err.Error(), strconv.FormatInt(tc.limit, 10)) {
			t.Errorf("%+v: %q does not name the limit", tc, err)
		}
		if r.read > tc.limit+1 {
			t.Errorf("%+v: read %d bytes past a limit of %d", tc, r.read, tc.limit)
		}
		assertNoBlobs(t, s)
	}
	s := MustOpen(t, Options{})
	if _, _, err := s.PutWith(failReader{t}, PutOptions{MaxSize: -1}); err == nil {
		t.Error("PutWith accepted a negative MaxSize")
	}
}

func TestUsageRecountsBadCounter(t *testing.T) {
	valid := encodeUsage(Usage{1 << 40, 99}, false)
	flipped := bytes.Clone(valid)
	flipped[20] ^= 1
	badVersion := bytes.Clone(valid)
	badVersion[8] = 2
	for _, tc := range []struct {
		name string
		data []byte // nil: no file
	}{
		{"missing", nil},
		{"empty", []byte{}},
		{"short", valid[:usageSize-1]},
		{"bit flipped", flipped},
		{"other version", badVersion},
		{"text", []byte("1000 bytes in 3 blobs, honest\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := MustOpen(t, Options{NoSync: true})
			mustPut(t, s, []byte("one"), "")
			mustPut(t, s, []byte("two!"), "")
			path := filepath.Join(s.dir, usageName)
			os.Remove(path)
			if tc.data != nil {
				if err := os.WriteFile(path, tc.data, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			u, err := s.Usage()
			if err != nil || u != (Usage{7, 2}) {
				t.Fatalf("Usage() = %+v, %v; want a recount {7 2}", u, err)
			}
			b, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(b[:usageSize], encodeUsage(u, false)) {
				t.Errorf("counter not rewritten: % x, %v", b, err)
			}
			// A Put or Delete on a bad counter recounts before counting.
			os.WriteFile(path, []byte("junk"), 0o666)
			mustPut(t, s, []byte("three"), "")
			mustUsage(t, s, Usage{12, 3})
			os.Remove(path)
			if err := s.Delete(hashOf([]byte("one"))); err != nil {
				t.Fatal(err)
			}
			mustUsage(t, s, Usage{9, 2})
		})
	}
}

func TestUsageFileFormat(t *testing.T) {
	s := MustOpen(t, Options{NoSync: true})
	mustPut(t, s, []byte("0123456789"), "")
	b, err := os.ReadFile(filepath.Join(s.dir, usageName))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("BLOBUSG\x00\x01\x00\x00\x00\x00\x00\x00\x00" +
		"\x0a\x00\x00\x00\x00\x00\x00\x00" + "\x01\x00\x00\x00\x00\x00\x00\x00")
	if len(b) != usageSize || !bytes.Equal(b[:32], want) {
		t.Errorf("usage file = % x\nwant         % x + crc", b, want)
	}
}

func TestUsageLockTimeout(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 100 * time.Millisecond
	s := MustOpen(t, Options{NoSync: true})
	holder, err := os.OpenFile(filepath.Join(s.dir, usageLockName), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := fileutil.TryLock(holder); !ok || err != nil {
		t.Fatal(ok, err)
	}
	_, _, err = s.Put(strings.NewReader("blocked"), "", "")
	if !errors.Is(err, ErrLockTimeout) {
		t.Errorf("Put under a held lock: %v, want ErrLockTimeout", err)
	}
	assertNoBlobs(t, s)
	if _, err := s.Recount(); !errors.Is(err, ErrLockTimeout) {
		t.Errorf("Recount under a held lock: %v", err)
	}
	holder.Close()
	if _, _, err := s.Put(strings.NewReader("free again"), "", ""); err != nil {
		t.Error(err)
	}
}

// admitUpTo returns an Admit that keeps the store within limit bytes. It
// dawdles, as a slow quota check might, to widen the window in which
// unlocked writers would overtake each other.
func admitUpTo(limit int64) func(int64, Usage) error {
	return func(size int64, u Usage) error {
		time.Sleep(100 * time.Microsecond)
		if u.Bytes+size > limit {
			return errQuota
		}
		return nil
	}
}

// randomBlob returns n random bytes.
func randomBlob(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Many goroutines on two Stores (two processes' worth of handles, sharing
// only the directory) race to fill a quota: it holds exactly.
func TestConcurrentAdmitHoldsLimit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	stores := []*Store{}
	for range 2 {
		s, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const limit = 100_000
	var stored, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			s := stores[g%2]
			for range 20 {
				b := randomBlob(rng, 1000+rng.IntN(4000))
				_, created, err := s.PutWith(bytes.NewReader(b), PutOptions{Admit: admitUpTo(limit)})
				switch {
				case errors.Is(err, errQuota):
					refused.Add(1)
				case err != nil:
					t.Error(err)
				case created:
					stored.Add(int64(len(b)))
				}
			}
		})
	}
	wg.Wait()
	u, err := stores[0].Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stored %d bytes, %d refused; usage %+v", stored.Load(), refused.Load(), u)
	if u.Bytes > limit || stored.Load() != u.Bytes {
		t.Errorf("usage %+v, stored %d bytes; limit %d", u, stored.Load(), limit)
	}
	if refused.Load() == 0 {
		t.Error("the test never reached the limit")
	}
	mustUsage(t, stores[1], u)
}

// Puts and Deletes racing from separate Stores keep the counter equal to
// what a walk finds.
func TestConcurrentPutDeleteCounter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	contents := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			s, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 100 {
				c := contents[(g+i)%len(contents)]
				if g%2 == 0 {
					if _, _, err := s.Put(bytes.NewReader(c), "", ""); err != nil {
						t.Error(err)
					}
				} else if err := s.Delete(hashOf(c)); err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	mustUsage(t, s, u) // the counter equals the recount
}

// helperEnv makes the test binary a helper process that fills a store
// (see TestProcessesHoldLimit).
const helperEnv = "STRATA_BLOBS_HELPER"

// TestProcessesHoldLimit runs real processes, as CGI does, each racing to
// fill one store up to a limit through Admit.
func TestProcessesHoldLimit(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("already a helper")
	}
	dir := filepath.Join(t.TempDir(), "blobs")
	const limit, procs = 60_000, 4
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFill$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%d", helperEnv, dir, limit, p))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper %d: %v\n%s", p, err, out)
			}
		})
	}
	wg.Wait()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage after %d processes: %+v", procs, u)
	if u.Bytes > limit || u.Bytes < limit-5000 {
		t.Errorf("usage %+v; want at most %d, and full to within one blob", u, limit)
	}
	mustUsage(t, s, u)
}

// TestHelperFill is the helper process of TestProcessesHoldLimit.
func TestHelperFill(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("run by TestProcessesHoldLimit")
	}
	var dir string
	var limit, seed int64
	parts := strings.Split(arg, ",")
	dir = parts[0]
	limit, _ = strconv.ParseInt(parts[1], 10, 64)
	seed, _ = strconv.ParseInt(parts[2], 10, 64)
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	for range 40 {
		b := randomBlob(rng, 1000+rng.IntN(4000))
		if _, _, err := s.PutWith(bytes.NewReader(b), PutOptions{Admit: admitUpTo(limit)}); err != nil && !errors.Is(err, errQuota) {
			t.Fatal(err)
		}
	}
}

func BenchmarkUsage(b *testing.B) {
	s := MustOpen(b, Options{NoSync: true})
	mustPut(b, s, []byte("x"), "")
	for b.Loop() {
		if _, err := s.Usage(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutSmall(b *testing.B) {
	s := MustOpen(b, Options{NoSync: true})
	rng := rand.New(rand.NewPCG(1, 1))
	blobs := make([][]byte, 256)
	for i := range blobs {
		blobs[i] = randomBlob(rng, 1024)
	}
	i := 0
	for b.Loop() {
		if _, _, err := s.PutWith(bytes.NewReader(blobs[i%len(blobs)]), PutOptions{Admit: func(int64, Usage) error { return nil }}); err != nil {
			b.Fatal(err)
		}
		if i%len(blobs) == len(blobs)-1 {
			b.StopTimer()
			for _, bl := range blobs {
				s.Delete(hashOf(bl))
			}
			b.StartTimer()
		}
		i++
	}
}
