package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zsegOf compresses the segment at path in memory.
func zsegOf(tb testing.TB, path string) (seg, z []byte) {
	tb.Helper()
	seg, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	n, _, err := compressSegment(&out, bytes.NewReader(seg), int64(len(seg)), nil)
	if err != nil || n != int64(out.Len()) {
		tb.Fatalf("compress: %v (%d of %d bytes)", err, n, out.Len())
	}
	return seg, out.Bytes()
}

// TestZsegFrames: frames hold whole records, the first also the header, a
// record bigger than a frame has one of its own, and the whole decodes
// (through the reader at any offset, and as a zstd stream) to the segment.
func TestZsegFrames(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{NoSync: true})
	fillLog(t, l, 1, 100)
	big := ev("big.one", "big", fmt.Sprintf(`{"blob":"%s"}`, strings.Repeat("ab", zsegFrameSize)))
	mustAppend(t, l, big)
	fillLog(t, l, 2, 100)
	seg, zb := zsegOf(t, filepath.Join(dir, logDirName, segmentName(1)))

	z, err := newZsegReader(bytes.NewReader(zb), int64(len(zb)), "test.zseg")
	if err != nil {
		t.Fatal(err)
	}
	starts := map[int64]bool{} // record starts
	sc := newScanner(bytes.NewReader(seg), segmentHeaderLen)
	for {
		body, off, err := sc.next()
		if err != nil {
			break
		}
		starts[off] = true
		if len(body) > zsegFrameSize {
			fr := z.frames[z.frameAt(off)]
			if fr.doff != off || int(fr.dsize) != len(body)+recordHeaderLen {
				t.Fatalf("the big record at %d shares its frame %+v", off, fr)
			}
		}
	}
	for i, fr := range z.frames {
		if i > 0 && !starts[fr.doff] {
			t.Fatalf("frame %d starts at %d, inside a record", i, fr.doff)
		}
		if i == 0 && (fr.doff != 0 || !starts[segmentHeaderLen]) {
			t.Fatalf("frame 0: %+v", fr)
		}
	}
	if z.size != int64(len(seg)) || len(z.frames) < 3 {
		t.Fatalf("%d bytes in %d frames, segment %d", z.size, len(z.frames), len(seg))
	}
	// Reads at every kind of offset and length.
	for _, r := range [][2]int64{{0, 1}, {0, 64}, {63, 10}, {0, int64(len(seg))}, {int64(len(seg)) - 5, 5}, {1000, 70000}, {int64(len(seg)) / 2, 1}} {
		got := make([]byte, r[1])
		n, err := z.ReadAt(got, r[0])
		if err != nil || n != len(got) || !bytes.Equal(got, seg[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt(%d, %d): %d, %v", r[0], r[1], n, err)
		}
	}
	if n, err := z.ReadAt(make([]byte, 10), int64(len(seg))-4); n != 4 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v", n, err)
	}
	d, _ := zstd.NewReader(bytes.NewReader(zb))
	defer d.Close()
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("stream decode: %v", err)
	}
}

// frameAt returns the index of the frame holding original offset off.
func (z *zsegReader) frameAt(off int64) int {
	for i, fr := range z.frames {
		if off < fr.doff+int64(fr.dsize) {
			return i
		}
	}
	return -1
}

// TestZsegRefusesDamage: a segment that does not end in a whole record is
// not compressed.
func TestZsegRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{NoSync: true})
	fillLog(t, l, 1, 50)
	seg, _ := os.ReadFile(filepath.Join(dir, logDirName, segmentName(1)))
	for _, b := range [][]byte{seg[:len(seg)-3], append(bytes.Clone(seg), 0, 0, 0, 0, 0, 0, 0, 0, 0)} {
		_, _, err := compressSegment(io.Discard, bytes.NewReader(b), int64(len(b)), nil)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("want ErrCorrupt, got %v", err)
		}
	}
	b := bytes.Clone(seg)
	b[len(b)/2] ^= 1
	if _, _, err := compressSegment(io.Discard, bytes.NewReader(b), int64(len(b)), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: want ErrCorrupt, got %v", err)
	}
}

// FuzzZsegReader feeds the .zseg reader any bytes: it must refuse them
// with ErrCorrupt or read them, never panic or allocate past its bounds;
// what it reads whole is what a zstd stream decoder reads.
func FuzzZsegReader(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	fillLog(f, l, 1, 60)
	l.Close()
	_, zb := zsegOf(f, filepath.Join(dir, logDirName, segmentName(1)))
	f.Add(zb)
	f.Add(zb[len(zb)-40:])
	f.Add(append(bytes.Clone(zb[:len(zb)/2]), zb[len(zb)-17:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := newZsegReader(bytes.NewReader(b), int64(len(b)), "fuzz.zseg")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("not ErrCorrupt: %v", err)
			}
			return
		}
		defer z.Close()
		if z.size > 4<<20 {
			// Declared big: read a little of each end only.
			for _, off := range []int64{0, z.size - 100} {
				if _, err := z.ReadAt(make([]byte, 100), off); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read at %d: %v", off, err)
				}
			}
			return
		}
		got := make([]byte, z.size)
		_, err = z.ReadAt(got, 0)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: not ErrCorrupt: %v", err)
			}
			return
		}
		// Random access agrees with the whole.
		for off := int64(0); off < z.size; off += 997 {
			p := make([]byte, min(300, z.size-off))
			if _, err := z.ReadAt(p, off); err != nil || !bytes.Equal(p, got[off:off+int64(len(p))]) {
				t.Fatalf("read at %d: %v", off, err)
			}
		}
		d, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderMaxMemory(8<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if want, err := io.ReadAll(d); err == nil && !bytes.Equal(got, want) {
			t.Fatalf("the reader reads %d bytes, a stream decoder %d", len(got), len(want))
		}
	})
}

// TestFrameCacheBudget: the cache keeps at most its budget, drops the
// least recently used first, and forgets a closed reader's frames.
func TestFrameCacheBudget(t *testing.T) {
	var c lruFrames
	frame := make([]byte, frameCacheBytes/8)
	for i := 0; i < 8; i++ {
		c.put(1, i, frame)
	}
	c.get(1, 0) // now the most recent
	c.put(2, 0, frame)
	if c.bytes > frameCacheBytes || c.get(1, 1) != nil || c.get(1, 0) == nil || c.get(2, 0) == nil {
		t.Fatalf("after one frame past the budget: %d bytes, frame 1 kept %v", c.bytes, c.get(1, 1) != nil)
	}
	c.put(3, 0, make([]byte, frameCacheBytes/8+1)) // too big to keep
	if c.get(3, 0) != nil {
		t.Fatal("kept a frame bigger than an eighth of the budget")
	}
	c.drop(1)
	if c.get(1, 0) != nil || c.get(2, 0) == nil || c.bytes != len(frame) {
		t.Fatalf("after drop: %d bytes", c.bytes)
	}
}
