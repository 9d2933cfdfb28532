package coord

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"strata/internal/fileutil"
)

// The broadcast ring's layout (FORMAT.md).
const (
	ringFile       = "broadcast"
	ringMagic      = "STRBCAST"
	ringVersion    = 1
	ringSlots      = 1024
	ringSlotSize   = 4096
	ringHeaderSize = 4096
	ringHeadOff    = 64 // the newest message's seq
	ringFileSize   = ringHeaderSize + ringSlots*ringSlotSize
	// a slot: seq (8), channel length (2), data length (2), zero (4),
	// posted at (8), channel (MaxKey), data
	ringDataOff = 24 + MaxKey
)

// MaxMessage is the largest message a channel carries, in bytes.
const MaxMessage = 3 << 10

// Message is one broadcast message read from the ring.
type Message struct {
	Seq  uint64 // the ring's count of messages posted to the tenant, any channel
	Time time.Time
	Data []byte // valid until the next call of the read
}

// Ring is a tenant's broadcast ring, mapped: every process that posts or
// subscribes maps the same file. Posts take the file's flock (and a mutex
// within the process); reads take nothing and check each slot's sequence
// number before and after copying it (a seqlock), so a writer never waits
// for a reader. Safe for concurrent use; open one per tenant per process.
type Ring struct {
	path string
	f    *os.File
	mem  []byte

	mu       sync.Mutex // serialises this process's posts (flock does not, on one descriptor)
	sigMu    sync.Mutex
	sig      chan struct{}
	pollOnce sync.Once
	stop     chan struct{} // closed by Close: the poller ends
	closeMu  sync.RWMutex
	closed   bool
}

// RingPoll is how often a ring's poller looks at the head for messages
// posted by other processes; a post by this process wakes its readers at
// once.
const RingPoll = 20 * time.Millisecond

// OpenRing opens (creating, sizing and allocating) the ring file of dir
// and maps it.
func OpenRing(dir string) (*Ring, error) {
	if err := fileutil.MkdirAll(dir, 0o700); err != nil {
		return nil, wrapIO("broadcast directory", err)
	}
	path := filepath.Join(dir, ringFile)
	f, err := openLocked(path)
	if err != nil {
		return nil, wrapIO("open broadcast ring", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	want := ringHeader()
	got := make([]byte, len(want))
	n, _ := f.ReadAt(got, 0)
	if st.Size() < ringFileSize || n < len(want) || !bytes.Equal(got, want) {
		// New, cut short, or foreign: the ring holds nothing that must
		// be kept, so it starts afresh (every slot's seq 0 is "never
		// written").
		if err := fileutil.Truncate(f, 0); err != nil {
			return nil, wrapIO("reset broadcast ring", err)
		}
		if err := fileutil.Allocate(f, ringFileSize); err != nil {
			return nil, wrapIO("allocate broadcast ring", err)
		}
		if _, err := fileutil.WriteAt(f, want, 0); err != nil {
			return nil, wrapIO("write broadcast ring", err)
		}
	}
	mem, err := fileutil.Mmap(f, ringFileSize)
	if err != nil {
		return nil, wrapIO("map broadcast ring", err)
	}
	if err := fileutil.Unlock(f); err != nil {
		fileutil.Munmap(mem)
		return nil, err
	}
	ok = true
	return &Ring{path: path, f: f, mem: mem, stop: make(chan struct{})}, nil
}

func ringHeader() []byte {
	h := make([]byte, 64)
	copy(h, ringMagic)
	binary.LittleEndian.PutUint32(h[8:], ringVersion)
	binary.LittleEndian.PutUint32(h[12:], ringSlots)
	binary.LittleEndian.PutUint32(h[16:], ringSlotSize)
	return h
}

func (r *Ring) word(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }

func slotOff(seq uint64) int { return ringHeaderSize + int(seq%ringSlots)*ringSlotSize }

// catchFault turns a fault on the mapping (the file was truncated under
// us) into an error; deferred, with SetPanicOnFault on.
func catchFault(err *error) {
	if e := recover(); e != nil {
		if _, ok := e.(interface{ Addr() uintptr }); !ok {
			panic(e)
		}
		*err = fmt.Errorf("broadcast ring: fault on the mapped file")
	}
}

// Head is the seq of the newest message posted, any channel: a subscriber
// starts after it.
func (r *Ring) Head() (seq uint64, err error) {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	return r.head()
}

// Post puts data on channel and returns its seq. data must be at most
// MaxMessage bytes and channel a valid key.
func (r *Ring) Post(channel string, data []byte, now time.Time) (seq uint64, err error) {
	if err := ValidKey(channel); err != nil {
		return 0, err
	}
	if len(data) > MaxMessage {
		return 0, fmt.Errorf("broadcast message of %d bytes: over %d", len(data), MaxMessage)
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := fileutil.Lock(r.f, lockWait, nil); err != nil {
		return 0, fmt.Errorf("lock broadcast ring: %w", err)
	}
	defer fileutil.Unlock(r.f)
	seq, err = r.put(channel, data, now)
	if err == nil {
		r.notify()
	}
	return seq, err
}

func (r *Ring) put(channel string, data []byte, now time.Time) (seq uint64, err error) {
	defer catchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	head := r.word(ringHeadOff)
	seq = atomic.LoadUint64(head) + 1
	off := slotOff(seq)
	s := r.mem[off : off+ringSlotSize]
	atomic.StoreUint64(r.word(off), 0) // being written
	binary.LittleEndian.PutUint16(s[8:], uint16(len(channel)))
	binary.LittleEndian.PutUint16(s[10:], uint16(len(data)))
	binary.LittleEndian.PutUint64(s[16:], uint64(now.UnixNano()))
	copy(s[24:], channel)
	copy(s[ringDataOff:], data)
	atomic.StoreUint64(r.word(off), seq)
	atomic.StoreUint64(head, seq)
	return seq, nil
}

// Read calls fn with every message of channel posted after seq after,
// oldest first, and returns the seq to read after next time and how many
// messages (of any channel) were overwritten before they could be read.
// buf is scratch space of at least MaxMessage bytes; Message.Data points
// into it. An error from fn ends the read, with next at the message
// before the one fn refused.
func (r *Ring) Read(channel string, after uint64, buf []byte, fn func(Message) error) (next, missed uint64, err error) {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return after, 0, os.ErrClosed
	}
	head, err := r.head()
	if err != nil {
		return after, 0, err
	}
	if head < after {
		// The ring started afresh (its file was replaced): go on from
		// its head.
		return head, 0, nil
	}
	if head-after > ringSlots {
		missed = head - ringSlots - after
		after = head - ringSlots
	}
	var name [MaxKey]byte
	for s := after + 1; s <= head; s++ {
		m, n, ok, err := r.slot(s, name[:], buf)
		if err != nil {
			return s - 1, missed, err
		}
		if !ok {
			missed++
			continue
		}
		if string(name[:n]) != channel {
			continue
		}
		if err := fn(m); err != nil {
			return s - 1, missed, err
		}
	}
	return head, missed, nil
}

// head is Head without the close lock (the caller holds it).
func (r *Ring) head() (seq uint64, err error) {
	defer catchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return atomic.LoadUint64(r.word(ringHeadOff)), nil
}

// slot copies message seq's channel into name and its data into buf; ok is
// false if the slot no longer (or does not yet) hold seq whole.
func (r *Ring) slot(seq uint64, name, buf []byte) (m Message, n int, ok bool, err error) {
	defer catchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	off := slotOff(seq)
	if atomic.LoadUint64(r.word(off)) != seq {
		return Message{}, 0, false, nil
	}
	s := r.mem[off : off+ringSlotSize]
	n = int(binary.LittleEndian.Uint16(s[8:]))
	dn := int(binary.LittleEndian.Uint16(s[10:]))
	if n > MaxKey || dn > MaxMessage || dn > len(buf) {
		return Message{}, 0, false, nil
	}
	at := int64(binary.LittleEndian.Uint64(s[16:]))
	copy(name, s[24:24+n])
	copy(buf, s[ringDataOff:ringDataOff+dn])
	if atomic.LoadUint64(r.word(off)) != seq {
		return Message{}, 0, false, nil // overwritten while copied
	}
	return Message{Seq: seq, Time: time.Unix(0, at), Data: buf[:dn]}, n, true, nil
}

// Changed returns a channel closed when a message is posted: at once by
// a post of this process, within RingPoll by another process's (one
// poller per ring, started by the first call, looks at the shared head for
// every reader of the process).
func (r *Ring) Changed() <-chan struct{} {
	r.pollOnce.Do(func() {
		// The head as of now, not as of when the goroutine runs: a post
		// in between must wake this caller.
		if last, err := r.Head(); err == nil {
			go r.poll(last)
		}
	})
	r.sigMu.Lock()
	defer r.sigMu.Unlock()
	if r.sig == nil {
		r.sig = make(chan struct{})
	}
	return r.sig
}

// poll wakes the readers when the head moves from last, until Close.
func (r *Ring) poll(last uint64) {
	t := time.NewTicker(RingPoll)
	defer t.Stop()
	var err error
	for err == nil {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		var h uint64
		if h, err = r.Head(); err == nil && h != last {
			last = h
			r.notify()
		}
	}
}

func (r *Ring) notify() {
	r.sigMu.Lock()
	if r.sig != nil {
		close(r.sig)
		r.sig = nil
	}
	r.sigMu.Unlock()
}

// Close unmaps and closes the ring; calls after it fail with
// os.ErrClosed. It waits for calls in progress.
func (r *Ring) Close() error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.stop)
	err := fileutil.Munmap(r.mem)
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
