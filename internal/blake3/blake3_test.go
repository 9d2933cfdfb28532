package blake3

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	zeebo "github.com/zeebo/blake3"
)

// pattern returns the official BLAKE3 test-vector input: byte i is i % 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkAgainstZeebo compares Sum256 and a single-Write Hasher with zeebo.
func checkAgainstZeebo(t *testing.T, b []byte) {
	t.Helper()
	want := zeebo.Sum256(b)
	if got := Sum256(b); got != want {
		t.Fatalf("len %d: Sum256 = %x, zeebo = %x", len(b), got, want)
	}
	h := New()
	h.Write(b)
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("len %d: Hasher = %x, zeebo = %x", len(b), got, want)
	}
}

func TestEmpty(t *testing.T) {
	const want = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	got := Sum256(nil)
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("Sum256(\"\") = %x, want %s", got, want)
	}
	if got := hex.EncodeToString(New().Sum(nil)); got != want {
		t.Errorf("New().Sum = %s, want %s", got, want)
	}
}

func TestOfficialVectorLengths(t *testing.T) {
	lengths := []int{0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097,
		5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744, 102400}
	for _, n := range lengths {
		checkAgainstZeebo(t, pattern(n))
	}
}

// TestAllSmallLengths covers every length through a few chunks, so every
// block and chunk boundary (and the lengths around them) is hit.
func TestAllSmallLengths(t *testing.T) {
	b := pattern(5*chunkLen + 1)
	for n := 0; n <= len(b); n++ {
		checkAgainstZeebo(t, b[:n])
	}
}

func TestRandomLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const max = 3 << 20
	buf := randomBytes(r, max)
	iters := 60
	if testing.Short() {
		iters = 10
	}
	for i := 0; i < iters; i++ {
		n := r.IntN(max + 1)
		if i%3 == 0 {
			n = r.IntN(20 * chunkLen) // more weight on small trees
		}
		start := r.IntN(max - n + 1)
		checkAgainstZeebo(t, buf[start:start+n])
	}
	checkAgainstZeebo(t, buf)
}

func TestStreamingPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := randomBytes(r, 1<<20+12345)
	for iter := 0; iter < 40; iter++ {
		n := r.IntN(len(buf) + 1)
		if iter%2 == 0 {
			n = r.IntN(10 * chunkLen)
		}
		data := buf[:n]
		want := Sum256(data)
		h := New()
		maxPiece := []int{1, 7, 64, 65, 1024, 1500, 70000}[iter%7]
		for p := data; len(p) > 0; {
			k := 1 + r.IntN(maxPiece)
			if k > len(p) {
				k = len(p)
			}
			if iter%5 == 0 && r.IntN(4) == 0 {
				h.Write(nil) // empty writes are no-ops
			}
			m, err := h.Write(p[:k])
			if m != k || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", m, err, k)
			}
			p = p[k:]
		}
		if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Fatalf("len %d pieces ≤ %d: streaming %x, Sum256 %x", n, maxPiece, got, want)
		}
	}
}

func TestSumDoesNotChangeState(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	data := randomBytes(r, 40000)
	for _, cut := range []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3000, 4096, 17000} {
		h := New()
		h.Write(data[:cut])
		prefix := h.Sum([]byte("prefix"))
		if string(prefix[:6]) != "prefix" || len(prefix) != 6+Size {
			t.Fatalf("Sum did not append: %q", prefix)
		}
		if want := Sum256(data[:cut]); !bytes.Equal(prefix[6:], want[:]) {
			t.Fatalf("cut %d: mid Sum %x, want %x", cut, prefix[6:], want)
		}
		if again := h.Sum(nil); !bytes.Equal(again, prefix[6:]) {
			t.Fatalf("cut %d: second Sum differs", cut)
		}
		h.Write(data[cut:])
		if got, want := h.Sum(nil), zeebo.Sum256(data); !bytes.Equal(got, want[:]) {
			t.Fatalf("cut %d: Sum after more writes %x, want %x", cut, got, want)
		}
	}
}

func TestReset(t *testing.T) {
	data := pattern(5000)
	h := New()
	h.Write(data)
	h.Reset()
	if got, want := h.Sum(nil), Sum256(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("after Reset: %x, want empty digest %x", got, want)
	}
	h.Write(data[:1500])
	if got, want := h.Sum(nil), Sum256(data[:1500]); !bytes.Equal(got, want[:]) {
		t.Fatalf("after Reset and Write: %x, want %x", got, want)
	}
	if h.Size() != 32 || h.BlockSize() != 64 {
		t.Fatalf("Size, BlockSize = %d, %d", h.Size(), h.BlockSize())
	}
}

func TestB3sum(t *testing.T) {
	path, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not on PATH")
	}
	r := rand.New(rand.NewPCG(7, 8))
	data := randomBytes(r, 10<<20)
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "--no-names", file).Output()
	if err != nil {
		t.Fatalf("b3sum: %v", err)
	}
	got := Sum256(data)
	if want := strings.TrimSpace(string(out)); hex.EncodeToString(got[:]) != want {
		t.Fatalf("Sum256 = %x, b3sum = %s", got, want)
	}
}

func TestSum256DoesNotAllocate(t *testing.T) {
	data := pattern(300)
	if n := testing.AllocsPerRun(100, func() { Sum256(data) }); n != 0 {
		t.Errorf("Sum256(300 bytes) allocates %v times", n)
	}
	big := pattern(100000)
	if n := testing.AllocsPerRun(10, func() { Sum256(big) }); n != 0 {
		t.Errorf("Sum256(100000 bytes) allocates %v times", n)
	}
	h := New()
	out := make([]byte, 0, Size)
	if n := testing.AllocsPerRun(100, func() {
		h.Reset()
		h.Write(big)
		out = h.Sum(out[:0])
	}); n != 0 {
		t.Errorf("Hasher Reset/Write/Sum allocates %v times", n)
	}
}

func FuzzSum256(f *testing.F) {
	for _, n := range []int{0, 1, 64, 65, 1024, 1025, 2049, 4097} {
		f.Add(pattern(n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgainstZeebo(t, b)
	})
}

var sink [32]byte

func benchSizes() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{{"64", 64}, {"300", 300}, {"1024", 1024}, {"8192", 8192}, {"1MB", 1 << 20}}
}

func BenchmarkSum256(b *testing.B) {
	for _, s := range benchSizes() {
		data := pattern(s.n)
		b.Run(s.name+"/strata", func(b *testing.B) {
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				sink = Sum256(data)
			}
		})
		b.Run(s.name+"/zeebo", func(b *testing.B) {
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				sink = zeebo.Sum256(data)
			}
		})
	}
}
