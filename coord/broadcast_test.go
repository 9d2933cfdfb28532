package coord

import (
	"fmt"
	"testing"
	"time"
)

// Two rings on one file (two processes): what one posts the other reads,
// in order, on its channel only; a reader a ring behind is told how many
// it missed.
func TestRingAcrossHandles(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start, _ := b.Head()
	changed := a.Changed()
	other := b.Changed() // woken by b's poller: the post is a's
	for i := range 5 {
		ch := "x"
		if i%2 == 1 {
			ch = "y"
		}
		if _, err := a.Post(ch, []byte(fmt.Sprint(i)), t0); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
	default:
		t.Fatal("a post did not signal its own process's readers")
	}
	select {
	case <-other:
	case <-time.After(time.Second):
		t.Fatal("another handle's readers were not woken by its poller")
	}
	buf := make([]byte, MaxMessage)
	var got string
	next, missed, err := b.Read("x", start, buf, func(m Message) error {
		got += string(m.Data)
		return nil
	})
	if err != nil || got != "024" || next != start+5 || missed != 0 {
		t.Fatalf("read: %q next %d missed %d %v", got, next, missed, err)
	}
	for i := range ringSlots + 10 {
		a.Post("z", []byte(fmt.Sprint(i)), t0)
	}
	n := 0
	next2, missed, err := b.Read("z", next, buf, func(m Message) error { n++; return nil })
	if err != nil || missed != 10 || n != ringSlots || next2 != next+ringSlots+10 {
		t.Fatalf("behind: read %d, missed %d, next %d, %v", n, missed, next2, err)
	}
	if _, err := a.Post("z", make([]byte, MaxMessage+1), t0); err == nil {
		t.Fatal("a message over MaxMessage was posted")
	}
	// A third opening finds the ring as it is.
	c, err := OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, _ := c.Head(); h != next2 {
		t.Fatalf("head %d, want %d", h, next2)
	}
}
