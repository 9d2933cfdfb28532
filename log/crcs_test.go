package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// TestCopyCRCs: CopyZeroingCRCs checks and zeroes every record's CRC of a
// segment, whole or from a record boundary, read in any pieces and with a
// record larger than its buffer; CopySettingCRCs gives the original bytes
// back. A flipped byte, a cut record, a part that does not start at a
// record and a CRC field left set are refused.
func TestCopyCRCs(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{NoSync: true})
	for i := 0; i < 50; i++ {
		data := []byte(`{"n":1}`)
		if i == 20 { // past the 1 MiB read chunk: the buffer grows
			data = []byte(`"` + strings.Repeat("x", 3<<20/2) + `"`)
		}
		mustAppend(t, l, Proposed{Type: "t", Entity: "e", Data: data, ExpectedVersion: -1})
	}
	l.Close()
	seg, err := os.ReadFile(filepath.Join(dir, "log", segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	// The record boundaries.
	var starts []int
	for off := segmentHeaderLen; off < len(seg); {
		starts = append(starts, off)
		_, n, err := frame(seg[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	for _, from := range []int{0, starts[1], starts[21], starts[49]} {
		var z bytes.Buffer
		n, err := CopyZeroingCRCs(&z, iotest.HalfReader(bytes.NewReader(seg[from:])), int64(from))
		if err != nil || n != int64(len(seg)-from) {
			t.Fatalf("from %d: zero: %d %v", from, n, err)
		}
		zb := z.Bytes()
		for _, s := range starts {
			if s >= from && binary.LittleEndian.Uint32(zb[s-from+4:]) != 0 {
				t.Fatalf("from %d: the CRC of the record at %d is kept", from, s)
			}
		}
		var back bytes.Buffer
		if n, err := CopySettingCRCs(&back, iotest.OneByteReader(bytes.NewReader(zb)), int64(from)); err != nil || n != int64(len(zb)) || !bytes.Equal(back.Bytes(), seg[from:]) {
			t.Fatalf("from %d: set: %d %v, same bytes %v", from, n, err, bytes.Equal(back.Bytes(), seg[from:]))
		}
		// Bytes whose CRCs were not zeroed are not taken for zeroed ones.
		if _, err := CopySettingCRCs(&back, bytes.NewReader(seg[from:]), int64(from)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("from %d: set on CRCs kept: %v", from, err)
		}
	}
	flipped := bytes.Clone(seg)
	flipped[starts[3]+recordHeaderLen+20] ^= 1
	if _, err := CopyZeroingCRCs(new(bytes.Buffer), bytes.NewReader(flipped), 0); !errors.Is(err, ErrCorrupt) || !errors.Is(err, errBadCRC) {
		t.Fatalf("a flipped byte: %v", err)
	} else if want := "offset " + strconv.Itoa(starts[3]); !strings.Contains(err.Error(), want) {
		t.Fatalf("a flipped byte: %v, does not name %q", err, want)
	}
	for name, c := range map[string]struct {
		b   []byte
		off int
	}{
		"cut":             {seg[:len(seg)-1], 0},
		"inside a record": {seg[starts[2]+5:], starts[2] + 5},
		"inside a header": {seg[10:], 10},
		"header only":     {seg[:40], 0},
	} {
		for _, zero := range []bool{true, false} {
			if _, err := copyRecords(new(bytes.Buffer), bytes.NewReader(c.b), int64(c.off), zero); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s (zero %v): %v", name, zero, err)
			}
		}
	}
}

// FuzzCopySettingCRCs: whatever bytes a stored part holds, restoring CRCs
// never panics, and a part it accepts zeroes back to exactly what it was
// (so it framed into whole records, each with its CRC now valid).
func FuzzCopySettingCRCs(f *testing.F) {
	if seg, err := os.ReadFile(filepath.Join("testdata", "golden.seg")); err == nil {
		var z bytes.Buffer
		if _, err := CopyZeroingCRCs(&z, bytes.NewReader(seg), 0); err == nil {
			f.Add(z.Bytes(), false)
			f.Add(z.Bytes()[segmentHeaderLen:], true)
		}
		f.Add(seg, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, records bool) {
		off := int64(0)
		if records {
			off = segmentHeaderLen
		}
		var out bytes.Buffer
		n, err := CopySettingCRCs(&out, bytes.NewReader(b), off)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if n != int64(len(b)) || out.Len() != len(b) {
			t.Fatalf("copied %d (%d) of %d bytes", n, out.Len(), len(b))
		}
		var z bytes.Buffer
		if _, err := CopyZeroingCRCs(&z, bytes.NewReader(out.Bytes()), off); err != nil || !bytes.Equal(z.Bytes(), b) {
			t.Fatalf("zeroing the restored CRCs: %v, same %v", err, bytes.Equal(z.Bytes(), b))
		}
	})
}
