package zstdx

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTrip(t *testing.T) {
	for _, src := range [][]byte{nil, []byte("x"), []byte(strings.Repeat(`{"a":1,"b":"two"}`, 5000))} {
		z, err := Encode([]byte("keep"), src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(z, []byte("keep")) {
			t.Fatalf("Encode dropped dst's bytes")
		}
		got, err := Decode([]byte("pre"), z[4:], len(src))
		if err != nil {
			t.Fatalf("Decode of %d bytes: %v", len(src), err)
		}
		if want := append([]byte("pre"), src...); !bytes.Equal(got, want) {
			t.Fatalf("round trip of %d bytes: got %d bytes", len(src), len(got))
		}
	}
}

// TestLimit: a frame declaring or expanding past the limit is refused,
// one exactly at it is not.
func TestLimit(t *testing.T) {
	src := bytes.Repeat([]byte("a"), 100000)
	z, _ := Encode(nil, src)
	if _, err := Decode(nil, z, 99999); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared size past the limit: %v, want ErrTooLarge", err)
	}
	if _, err := Decode(nil, z, 100000); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	// A streamed frame has no declared size: the limit holds while it
	// expands.
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	w.Write(bytes.Repeat([]byte("b"), 3<<20))
	w.Close()
	var h zstd.Header
	if h.Decode(buf.Bytes()); h.HasFCS {
		t.Fatal("test frame declares its size; want a streamed frame")
	}
	if _, err := Decode(nil, buf.Bytes(), 2<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("streamed frame past the limit: %v, want ErrTooLarge", err)
	}
	out, err := Decode(nil, buf.Bytes(), 4<<20)
	if err != nil || len(out) != 3<<20 {
		t.Fatalf("streamed frame within the limit: %d bytes, %v", len(out), err)
	}
}

// TestCorrupt: every cut and a flipped byte are ErrCorrupt, never a panic
// or wrong bytes.
func TestCorrupt(t *testing.T) {
	src := []byte(strings.Repeat(`{"state":"ok","n":12345}`, 200))
	z, _ := Encode(nil, src)
	for i := 0; i < len(z); i++ {
		if _, err := Decode(nil, z[:i], 0); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d of %d: %v, want ErrCorrupt", i, len(z), err)
		}
	}
	for i := 0; i < len(z); i++ {
		bad := bytes.Clone(z)
		bad[i] ^= 0x40
		out, err := Decode(nil, bad, len(src))
		if err == nil && !bytes.Equal(out, src) {
			t.Fatalf("byte %d flipped: decoded wrong bytes without an error", i)
		}
		pout, perr := DecodeParallel(nil, bad, len(src))
		if (perr == nil) != (err == nil) || !bytes.Equal(pout, out) {
			t.Fatalf("byte %d flipped: DecodeParallel says %v where Decode says %v", i, perr, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			src := bytes.Repeat([]byte{byte(g)}, 1000*(g+1))
			for i := 0; i < 50; i++ {
				z, err := Encode(nil, src)
				if err != nil {
					t.Error(err)
					return
				}
				for _, decode := range []func(dst, src []byte, limit int) ([]byte, error){Decode, DecodeParallel} {
					out, err := decode(nil, z, 0)
					if err != nil || !bytes.Equal(out, src) {
						t.Errorf("goroutine %d: %v", g, err)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkDecode4K(b *testing.B) {
	src := []byte(strings.Repeat(`{"n":1,"k1":"v","status":"s2"},`, 128))
	z, _ := Encode(nil, src)
	buf := make([]byte, 0, len(src))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf[:0], z, 0); err != nil {
			b.Fatal(err)
		}
	}
}
