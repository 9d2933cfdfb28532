package blobs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/zeebo/blake3"
)

// emptyHash is BLAKE3-256 of no bytes (`b3sum /dev/null`).
const emptyHash = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

// MustOpen opens a store in a fresh temp directory.
func MustOpen(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "blobs"), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func hashOf(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func mustPut(tb testing.TB, s *Store, b []byte, typ string) Info {
	tb.Helper()
	info, _, err := s.Put(bytes.NewReader(b), "", typ)
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

// assertNoTemp fails if an upload left anything in tmp/.
func assertNoTemp(tb testing.TB, s *Store) {
	tb.Helper()
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		tb.Errorf("leftover temp file %s", e.Name())
	}
}

// assertEmpty fails if the store holds anything but an empty tmp/.
func assertEmpty(tb testing.TB, s *Store) {
	tb.Helper()
	assertNoTemp(tb, s)
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != tmpDirName {
			tb.Errorf("unexpected entry %s in store", e.Name())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	s := MustOpen(t, Options{})
	data := []byte("hello, strata\n")
	want := hashOf(data)

	info, created, err := s.Put(bytes.NewReader(data), "", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	if !created || info.Hash != want || info.Size != int64(len(data)) || info.Type != "text/plain" || info.ModTime.IsZero() {
		t.Fatalf("Put = %+v, created=%v; want hash %s size %d", info, created, want, len(data))
	}

	st, err := s.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if st != info {
		t.Errorf("Stat = %+v, Put said %+v", st, info)
	}

	f, oi, err := s.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) || oi != info {
		t.Errorf("Open = %q %+v", got, oi)
	}

	// The documented layout.
	if b, err := os.ReadFile(filepath.Join(s.dir, want[:2], want)); err != nil || !bytes.Equal(b, data) {
		t.Errorf("blob file: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.dir, want[:2], want+".type")); err != nil || string(b) != "text/plain" {
		t.Errorf("type sidecar: %q, %v", b, err)
	}
	assertNoTemp(t, s)
}

func TestEmptyBlobAndDefaultType(t *testing.T) {
	s := MustOpen(t, Options{})
	info, created, err := s.Put(strings.NewReader(""), emptyHash, "")
	if err != nil {
		t.Fatal(err)
	}
	if !created || info.Hash != emptyHash || info.Size != 0 || info.Type != DefaultType {
		t.Fatalf("Put(empty) = %+v, %v", info, created)
	}
}

func TestDedupe(t *testing.T) {
	s := MustOpen(t, Options{})
	data := bytes.Repeat([]byte("abc"), 100_000)
	first, created, err := s.Put(bytes.NewReader(data), "", "image/png")
	if err != nil || !created {
		t.Fatalf("first Put: created=%v err=%v", created, err)
	}
	again, created, err := s.Put(bytes.NewReader(data), first.Hash, "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second Put of the same content: created=true")
	}
	if again != first {
		t.Errorf("second Put = %+v, want the first %+v (first type kept)", again, first)
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, first.Hash[:2]))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("shard holds %d files, want blob + sidecar", len(entries))
	}
	assertNoTemp(t, s)
}

func TestWantMismatchStoresNothing(t *testing.T) {
	s := MustOpen(t, Options{})
	data := []byte("the real content")
	other := hashOf([]byte("something else"))

	_, _, err := s.Put(bytes.NewReader(data), other, "text/plain")
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Put with wrong hash: %v, want ErrHashMismatch", err)
	}
	for _, h := range []string{other, hashOf(data)} {
		if _, err := s.Stat(h); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%s) after mismatch: %v, want ErrNotFound", h, err)
		}
	}
	assertEmpty(t, s)

	// The right hash is accepted.
	if _, _, err := s.Put(bytes.NewReader(data), hashOf(data), ""); err != nil {
		t.Fatal(err)
	}
}

// failReader fails the test if anything reads it.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("body read although the request was invalid")
	return 0, io.EOF
}

func TestInvalidHash(t *testing.T) {
	s := MustOpen(t, Options{})
	valid := hashOf([]byte("x"))
	mustPut(t, s, []byte("x"), "")
	bad := []string{
		"",
		"../../etc/passwd",
		"../" + valid[3:],
		strings.ToUpper(valid),
		valid[:63],
		valid + "0",
		valid[:62] + "/a",
		valid[:63] + "g",
		valid[:63] + "\x00",
		valid[:63] + " ",
		"tmp",
		strings.Repeat(".", 64),
	}
	for _, h := range bad {
		if ValidHash(h) {
			t.Errorf("ValidHash(%q) = true", h)
		}
		if _, err := s.Stat(h); !errors.Is(err, ErrInvalidHash) {
			t.Errorf("Stat(%q): %v", h, err)
		}
		if f, _, err := s.Open(h); !errors.Is(err, ErrInvalidHash) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q): %v", h, err)
		}
		if err := s.Delete(h); !errors.Is(err, ErrInvalidHash) {
			t.Errorf("Delete(%q): %v", h, err)
		}
		if h == "" {
			continue // "" means no expected hash
		}
		if _, _, err := s.Put(failReader{t}, h, ""); !errors.Is(err, ErrInvalidHash) {
			t.Errorf("Put(want=%q): %v", h, err)
		}
	}
	if !ValidHash(valid) || !ValidHash(emptyHash) {
		t.Error("ValidHash rejects a real hash")
	}
	if _, err := s.Stat(valid); err != nil {
		t.Errorf("the valid blob was disturbed: %v", err)
	}
	assertNoTemp(t, s)
}

// countingReader yields n bytes of 'x' (forever if n < 0), counting reads.
type countingReader struct {
	n, read int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.n >= 0 && r.read >= r.n {
		return 0, io.EOF
	}
	if r.n >= 0 && int64(len(p)) > r.n-r.read {
		p = p[:r.n-r.read]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.read += int64(len(p))
	return len(p), nil
}

func TestMaxSize(t *testing.T) {
	const max = 1000
	s := MustOpen(t, Options{MaxSize: max})
	for _, tc := range []struct {
		size    int64
		tooBig  bool
		maxRead int64
	}{
		{0, false, 0},
		{max - 1, false, max - 1},
		{max, false, max},
		{max + 1, true, max + 1},
		{10 * max, true, max + 1},
		{-1, true, max + 1}, // endless: stops reading at the limit
	} {
		r := &countingReader{n: tc.size}
		_, _, err := s.Put(r, "", "")
		if tc.tooBig != errors.Is(err, ErrTooLarge) || (!tc.tooBig && err != nil) {
			t.Errorf("size %d: err = %v, too big = %v", tc.size, err, tc.tooBig)
		}
		if r.read > tc.maxRead {
			t.Errorf("size %d: read %d bytes, want at most %d", tc.size, r.read, tc.maxRead)
		}
	}
	if _, err := s.Stat(hashOf(bytes.Repeat([]byte("x"), max+1))); !errors.Is(err, ErrNotFound) {
		t.Errorf("an oversized blob was stored: %v", err)
	}
	assertNoTemp(t, s)

	if _, err := Open(t.TempDir(), Options{MaxSize: -1}); err == nil {
		t.Error("Open accepted a negative MaxSize")
	}
}

// brokenReader yields some bytes, then fails.
type brokenReader struct{ sent bool }

var errBroken = errors.New("connection reset")

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errBroken
	}
	r.sent = true
	return copy(p, "partial upload"), nil
}

func TestInterruptedUploadLeavesNothing(t *testing.T) {
	s := MustOpen(t, Options{})
	_, _, err := s.Put(&brokenReader{}, "", "")
	if !errors.Is(err, errBroken) {
		t.Fatalf("Put: %v, want the reader's error", err)
	}
	assertEmpty(t, s)
}

func TestDelete(t *testing.T) {
	s := MustOpen(t, Options{})
	info := mustPut(t, s, []byte("doomed"), "text/plain")
	if err := s.Delete(info.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: %v", err)
	}
	if _, err := os.Stat(s.typePath(info.Hash)); !os.IsNotExist(err) {
		t.Errorf("sidecar survived Delete: %v", err)
	}
	if err := s.Delete(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if f, _, err := s.Open(info.Hash); !errors.Is(err, ErrNotFound) {
		if f != nil {
			f.Close()
		}
		t.Errorf("Open after Delete: %v", err)
	}
	// Stored again, it takes the new type.
	again, created, err := s.Put(strings.NewReader("doomed"), "", "text/x-new")
	if err != nil || !created || again.Type != "text/x-new" {
		t.Errorf("Put after Delete = %+v, %v, %v", again, created, err)
	}
}

func TestMissingSidecarDefaultsType(t *testing.T) {
	s := MustOpen(t, Options{})
	info := mustPut(t, s, []byte("orphan"), "text/plain")
	if err := os.Remove(s.typePath(info.Hash)); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(info.Hash)
	if err != nil || st.Type != DefaultType || st.Size != info.Size {
		t.Errorf("Stat without sidecar = %+v, %v", st, err)
	}
	f, oi, err := s.Open(info.Hash)
	if err != nil || oi.Type != DefaultType {
		t.Errorf("Open without sidecar = %+v, %v", oi, err)
	}
	if f != nil {
		f.Close()
	}
	if err := s.Delete(info.Hash); err != nil {
		t.Errorf("Delete without sidecar: %v", err)
	}
}

func TestOpenRemovesLeftoverTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	if err := os.MkdirAll(filepath.Join(dir, tmpDirName), 0o777); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"put-0123456789abcdef", "type-0123456789abcdef", "junk"} {
		if err := os.WriteFile(filepath.Join(dir, tmpDirName, name), []byte("half an upload"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
}

// An Open by another process (CGI: one per request) must not sweep away an
// upload still in progress.
func TestOpenSparesUploadInProgress(t *testing.T) {
	s := MustOpen(t, Options{})
	pr, pw := io.Pipe()
	type result struct {
		info Info
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, _, err := s.Put(pr, "", "")
		done <- result{info, err}
	}()
	if _, err := pw.Write([]byte("first half, ")); err != nil { // returns once Put has read it
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil || len(entries) != 1 {
		t.Fatalf("tmp holds %d entries, %v; want the upload", len(entries), err)
	}

	if _, err := Open(s.dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.tmp, entries[0].Name())); err != nil {
		t.Fatalf("Open removed an upload in progress: %v", err)
	}

	pw.Write([]byte("second half"))
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := hashOf([]byte("first half, second half")); r.info.Hash != want {
		t.Errorf("hash %s, want %s", r.info.Hash, want)
	}
	assertNoTemp(t, s)
}

// patternReader yields n bytes cycling through a fixed random block.
type patternReader struct {
	block  []byte
	n, off int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n-r.off {
		p = p[:r.n-r.off]
	}
	n := 0
	for n < len(p) {
		i := (r.off + int64(n)) % int64(len(r.block))
		n += copy(p[n:], r.block[i:])
	}
	r.off += int64(n)
	return n, nil
}

func TestLargeStreamConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	const size = 200 << 20
	block := make([]byte, 1<<20+13) // odd length: blocks do not align with reads
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	h := blake3.New()
	io.Copy(h, &patternReader{block: block, n: size})
	want := hex.EncodeToString(h.Sum(nil))

	s := MustOpen(t, Options{NoSync: true})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, created, err := s.Put(&patternReader{block: block, n: size}, want, "application/x-big")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !created || info.Size != size || info.Hash != want {
		t.Fatalf("Put = %+v, %v", info, created)
	}
	// One 256 KiB buffer plus small change; a buffered implementation
	// would allocate hundreds of MB.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d MB allocated %d bytes", size>>20, alloc)
	if alloc > 4<<20 {
		t.Errorf("Put of %d MB allocated %d bytes", size>>20, alloc)
	}
	if after.HeapInuse > before.HeapInuse+8<<20 {
		t.Errorf("heap in use grew from %d to %d", before.HeapInuse, after.HeapInuse)
	}
	if fi, err := os.Stat(s.blobPath(want)); err != nil || fi.Size() != size {
		t.Errorf("stored file: %v, %v", fi, err)
	}
}

func TestConcurrentPutSameContent(t *testing.T) {
	s := MustOpen(t, Options{})
	data := bytes.Repeat([]byte("same bytes "), 100_000)
	const n = 16
	infos := make([]Info, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			infos[i], created[i], err = s.Put(bytes.NewReader(data), "", fmt.Sprintf("type/%d", i))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	creator := -1
	for i := range n {
		if created[i] {
			if creator >= 0 {
				t.Errorf("Puts %d and %d both created the blob", creator, i)
			}
			creator = i
		}
	}
	if creator < 0 {
		t.Fatal("no Put created the blob")
	}
	for i := range n {
		if infos[i] != infos[creator] {
			t.Errorf("Put %d = %+v, creator said %+v", i, infos[i], infos[creator])
		}
	}
	st, err := s.Stat(hashOf(data))
	if err != nil || st.Type != fmt.Sprintf("type/%d", creator) {
		t.Errorf("Stat = %+v, %v; want the creator's type", st, err)
	}
	assertNoTemp(t, s)
}

// Several Stores on one directory stand in for several CGI processes: they
// share no mutex, only the file system.
func TestConcurrentStoresSameContent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	data := bytes.Repeat([]byte("from many processes "), 50_000)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	creators := 0
	for i := range n {
		wg.Go(func() {
			s, err := Open(dir, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			_, created, err := s.Put(bytes.NewReader(data), hashOf(data), fmt.Sprintf("type/%d", i))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if created {
				creators++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if creators != 1 {
		t.Errorf("%d Stores reported created=true, want exactly one", creators)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, info, err := s.Open(hashOf(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, data) || !strings.HasPrefix(info.Type, "type/") {
		t.Errorf("blob after concurrent Puts: %d bytes, type %q", len(got), info.Type)
	}
	assertNoTemp(t, s)
}

// Put and Delete racing on one content must never break Stat.
func TestConcurrentPutDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	data := []byte("come and go")
	hash := hashOf(data)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			s, err := Open(dir, Options{NoSync: true}) // separate Stores: no shared mutex
			if err != nil {
				t.Error(err)
				return
			}
			for range 100 {
				if i%2 == 0 {
					if _, _, err := s.Put(bytes.NewReader(data), hash, "text/plain"); err != nil {
						t.Error(err)
					}
				} else if err := s.Delete(hash); err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
				if info, err := s.Stat(hash); err == nil {
					if info.Type != "text/plain" && info.Type != DefaultType {
						t.Errorf("Stat type %q", info.Type)
					}
				} else if !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestNoSpaceIsWrapped(t *testing.T) {
	s := MustOpen(t, Options{})
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full")
	}
	defer full.Close()
	_, _, err = s.copy(full, strings.NewReader("does not fit"), 0)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write to a full disk: %v; want ErrNoSpace wrapping ENOSPC", err)
	}
}

// The hash is the one b3sum prints.
func TestMatchesB3sum(t *testing.T) {
	b3sum, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed")
	}
	s := MustOpen(t, Options{NoSync: true})
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 1<<16 + 1, bufSize - 1, bufSize, bufSize + 1, 3<<20 + 7} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		name := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(name, data, 0o666); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(b3sum, "--no-names", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		info := mustPut(t, s, data, "")
		if want := strings.TrimSpace(string(out)); info.Hash != want {
			t.Errorf("size %d: Put named it %s, b3sum says %s", size, info.Hash, want)
		}
	}
}
