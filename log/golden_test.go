package log

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenEvents are the events of testdata/golden.seg, appended at fixed
// times so that the bytes never change.
func goldenEvents() []Proposed {
	placed := ev("order.placed", "order-123", `{"sku":"A-1","qty":3}`)
	placed.Key = "c-77-1"
	placed.Meta = []byte(`{"source":"shop"}`)
	return []Proposed{
		placed,
		ev("order.paid", "order-123", `{"amount":12345678901234567890,"rate":1.0}`),
		ev("book.added", "books/42", `"Der Zauberberg — Ü"`),
	}
}

// TestGoldenSegment pins the segment format byte for byte (FORMAT.md).
// Regenerate only on purpose: go test ./log -run Golden -update.
func TestGoldenSegment(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	l := mustOpen(t, dir, Options{Now: func() time.Time { return at }})
	for _, p := range goldenEvents() {
		mustAppend(t, l, p)
		at = at.Add(time.Millisecond)
	}
	got := readFile(t, segPath(dir))
	golden := filepath.Join("testdata", "golden.seg")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("segment bytes changed: the on-disk format moved.\ngot  %x\nwant %x", got, want)
	}
	// And the golden file reads back to the same events.
	e, err := l.Event(1)
	if err != nil || e.Key != "c-77-1" || string(e.Meta) != `{"source":"shop"}` {
		t.Fatalf("event 1: %+v %v", e, err)
	}
}

// TestHashRecipe pins hash recipe version 1 with the worked example of
// FORMAT.md.
func TestHashRecipe(t *testing.T) {
	e := &Event{
		Seq:     1,
		Time:    time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano(),
		Type:    "order.placed",
		Entity:  "order-123",
		Version: 1,
		Key:     "c-77-1",
		Data:    []byte(`{"sku":"A-1","qty":3}`),
		Meta:    []byte(`{"source":"shop"}`),
	}
	// Checked independently: the pre-image of FORMAT.md piped through b3sum.
	const want = "d1edf1477ce1fe0738b43e035e7435fd8cfca9c2783ad46e8d20fd5408d9f3a6"
	id := ComputeID(e)
	if got := hex.EncodeToString(id[:]); got != want {
		t.Fatalf("id = %s, want %s", got, want)
	}
	// Erasing the data keeps the id: only the digest enters the hash.
	digest := hashOf(e.Data)
	erased := *e
	erased.Erased, erased.Data = true, digest[:]
	if ComputeID(&erased) != id {
		t.Fatal("erased event no longer hashes to its id")
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder: it must
// never panic, and whatever it accepts must encode back to the same event.
func FuzzDecodeRecord(f *testing.F) {
	if seg, err := os.ReadFile(filepath.Join("testdata", "golden.seg")); err == nil {
		f.Add(seg[segmentHeaderLen:])
		f.Add(seg[segmentHeaderLen : segmentHeaderLen+40])
	}
	f.Add(appendRecord(nil, &Event{Seq: 7, Type: "a", Entity: "b", Data: []byte("1")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, n, err := frame(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("frame consumed %d of %d bytes", n, len(b))
		}
		var e Event
		if err := decodeBody(body, &e); err != nil {
			return
		}
		again := appendRecord(nil, &e)
		body2, _, err := frame(again)
		if err != nil {
			t.Fatalf("re-encoded record does not frame: %v", err)
		}
		var e2 Event
		if err := decodeBody(body2, &e2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if e2.ID != e.ID || e2.Seq != e.Seq || e2.Type != e.Type || e2.Entity != e.Entity || !bytes.Equal(e2.Data, e.Data) || !bytes.Equal(e2.Meta, e.Meta) || e2.PrevInEntity != e.PrevInEntity {
			t.Fatal("round trip changed the event")
		}
	})
}

// TestAppendTime checks the hand-written time formatting against the
// standard library across four centuries, leap days included.
func TestAppendTime(t *testing.T) {
	check := func(ns int64) {
		want := time.Unix(0, ns).UTC().Format(TimeLayout)
		if got := FormatTime(ns); got != want {
			t.Fatalf("FormatTime(%d) = %s, want %s", ns, got, want)
		}
	}
	for _, ns := range []int64{0, 1, 999_999_999, 951_782_400_000_000_000 /* 2000-02-29 */, 4_107_542_399_999_999_999, -1, 1<<63 - 1} {
		check(ns)
	}
	x := uint64(88172645463325252)
	for i := 0; i < 200_000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		check(int64(x >> 1))
	}
}

// TestSipHash checks SipHash-2-4 against the reference vectors of its paper
// (key 00 01 … 0f, messages 00 01 … of length 0, 1, 7, 8 and 15).
func TestSipHash(t *testing.T) {
	k0, k1 := uint64(0x0706050403020100), uint64(0x0f0e0d0c0b0a0908)
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, c := range []struct {
		n    int
		want uint64
	}{{0, 0x726fdb47dd0e0e31}, {1, 0x74f839c593dc67fd}, {7, 0xab0200f58b01d137}, {8, 0x93f5f5799a932462}, {15, 0xa129ca6149be45e5}} {
		if got := sipHash(k0, k1, string(msg[:c.n])); got != c.want {
			t.Errorf("sipHash of %d bytes = %#x, want %#x", c.n, got, c.want)
		}
	}
}
