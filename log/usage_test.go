package log

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

var errOver = errors.New("over quota")

// TestAdmitEventsPerDay: a daily cap holds across concurrent appenders and
// starts over at midnight UTC.
func TestAdmitEventsPerDay(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{Now: clock, NoSync: true})
	const limit = 50
	admit := func(u Usage) error {
		if u.Today+uint64(u.Adding) > limit {
			return errOver
		}
		return nil
	}
	var wg sync.WaitGroup
	var okMu sync.Mutex
	stored := 0
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				res, err := l.Append(&Request{Events: []Proposed{{Type: "t", Entity: fmt.Sprint("e", c), Data: []byte("1"), ExpectedVersion: -1}}, Admit: admit})
				if err == nil {
					okMu.Lock()
					stored += res.Stored
					okMu.Unlock()
				} else if !errors.Is(err, errOver) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if stored != limit || l.Through() != limit {
		t.Fatalf("stored %d, through %d; want %d", stored, l.Through(), limit)
	}
	if n, err := l.EventsToday(); err != nil || n != limit {
		t.Fatalf("EventsToday = %d, %v", n, err)
	}
	// A second process sees the same count.
	l2 := mustOpen(t, dir, Options{Now: clock, NoSync: true})
	if _, err := l2.Append(&Request{Events: []Proposed{{Type: "t", Entity: "x", Data: []byte("1"), ExpectedVersion: -1}}, Admit: admit}); !errors.Is(err, errOver) {
		t.Fatalf("other handle: %v, want over quota", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // the next day
	mu.Unlock()
	if _, err := l.Append(&Request{Events: []Proposed{{Type: "t", Entity: "x", Data: []byte("1"), ExpectedVersion: -1}}, Admit: admit}); err != nil {
		t.Fatalf("after midnight: %v", err)
	}
	if n, _ := l.EventsToday(); n != 1 {
		t.Fatalf("EventsToday after midnight = %d", n)
	}
}

// TestAdmitBytes: the size the check sees is the log's size after the
// request, across segments.
func TestAdmitBytes(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{NoSync: true, SegmentSize: 4096})
	var last int64
	admit := func(u Usage) error {
		if u.Bytes < last || u.AddingBytes <= 0 {
			return fmt.Errorf("bytes %d+%d: not past %d", u.Bytes, u.AddingBytes, last)
		}
		last = u.Bytes + u.AddingBytes
		if u.Bytes+u.AddingBytes > 20000 {
			return errOver
		}
		return nil
	}
	var err error
	for err == nil {
		_, err = l.Append(&Request{Events: []Proposed{{Type: "t", Entity: "e", Data: []byte(`"0123456789012345678901234567890123456789"`), ExpectedVersion: -1}}, Admit: admit})
	}
	if !errors.Is(err, errOver) {
		t.Fatal(err)
	}
	got, err := l.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if got > 20000 || got < 19000 {
		t.Fatalf("Bytes = %d after filling to 20000", got)
	}
}
