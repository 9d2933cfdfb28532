package log

import (
	"bytes"
	"fmt"
	"testing"
)

// TestScanRaw: ScanRaw yields the records Scan decodes, field for field,
// across segments, from any start; Decode of a record is the event, and
// an erased record reads as erased with no data.
func TestScanRaw(t *testing.T) {
	l, err := Open(t.TempDir(), Options{NoSync: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 300; i += 10 {
		var ps []Proposed
		for j := i; j < i+10; j++ {
			p := Proposed{Type: fmt.Sprintf("t.%d", j%3), Entity: fmt.Sprintf("e/%d", j%7), Data: fmt.Appendf(nil, `{"j":%d}`, j), ExpectedVersion: -1}
			if j%5 == 0 {
				p.Meta = []byte(`{"m":1}`)
				p.Key = fmt.Sprint("k", j)
			}
			ps = append(ps, p)
		}
		if _, err := l.Append(&Request{Events: ps}); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.segments()) < 3 {
		t.Fatalf("%d segments; the test wants several", len(l.segments()))
	}
	for _, from := range []uint64{0, 1, 77, 300} {
		it, raw := l.Scan(from, 300), l.ScanRaw(from, 300)
		n := 0
		for it.Next() {
			if !raw.Next() {
				t.Fatalf("from %d: raw ended at %d: %v", from, n, raw.Err())
			}
			e, r := it.Event(), raw.Raw()
			var d Event
			r.Decode(&d)
			if r.Seq != e.Seq || r.Time != e.Time || r.Version != e.Version || r.PrevInEntity != e.PrevInEntity ||
				string(r.Type) != e.Type || string(r.Entity) != e.Entity || r.ID() != e.ID ||
				!bytes.Equal(r.Data(), e.Data) || !bytes.Equal(r.Meta(), e.Meta) || r.Erased() != e.Erased ||
				d.ID != e.ID || d.Prev != e.Prev || d.Key != e.Key || d.Type != e.Type || !bytes.Equal(d.Data, e.Data) || !bytes.Equal(d.Meta, e.Meta) {
				t.Fatalf("from %d, seq %d: raw %+v decodes to %+v; Scan %+v", from, e.Seq, r, d, e)
			}
			if ComputeID(&d) != d.ID {
				t.Fatalf("seq %d: decoded event does not hash to its id", d.Seq)
			}
			n++
		}
		if raw.Next() || it.Err() != nil || raw.Err() != nil || raw.Bytes() != it.Bytes() {
			t.Fatalf("from %d: ends differ: %v %v, bytes %d %d", from, it.Err(), raw.Err(), raw.Bytes(), it.Bytes())
		}
	}
	// An erased record: no data, Erased.
	r := RawEvent{data: make([]byte, 32), flags: flagErased}
	if r.Data() != nil || !r.Erased() {
		t.Errorf("erased record: data %q erased %v", r.Data(), r.Erased())
	}
}
