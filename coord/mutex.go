package coord

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"strata/internal/fileutil"
)

// The mutex table's layout (FORMAT.md).
const (
	mutexFile     = "mutex"
	mutexMagic    = "STRMUTEX"
	mutexVersion  = 1
	pageSize      = 4096
	mutexPages    = 64 // pages of slots, after the header page
	slotSize      = 256
	slotsPerPage  = pageSize / slotSize
	mutexFileSize = (1 + mutexPages) * pageSize
)

// Bounds of a lock's time to live.
const (
	MinLockTTL     = time.Millisecond
	MaxLockTTL     = time.Hour
	DefaultLockTTL = 30 * time.Second
)

// ErrHeld refuses a lock another holder has; errors.As gives the
// *HeldError with its expiry.
var ErrHeld = errors.New("the mutex is held")

// HeldError refuses a lock that is held until Expires.
type HeldError struct{ Expires time.Time }

func (e *HeldError) Error() string {
	return fmt.Sprintf("%v until %s", ErrHeld, e.Expires.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// ErrNotHolder refuses an unlock whose token is not the current holder's:
// the lock expired, was granted again since, or was never granted.
var ErrNotHolder = errors.New("the token does not hold the mutex")

// ErrTableFull refuses a lock when every slot of the page its key hashes
// to holds a lock that has not expired; RetryAfter in *TableFullError says
// when the first of them does.
var ErrTableFull = errors.New("too many mutexes held at once")

// TableFullError is ErrTableFull with the wait until a slot frees.
type TableFullError struct{ RetryAfter time.Duration }

func (e *TableFullError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrTableFull, e.RetryAfter)
}

// Is makes errors.Is(err, ErrTableFull) true.
func (e *TableFullError) Is(target error) bool { return target == ErrTableFull }

// Grant is a lock granted.
type Grant struct {
	Token   uint64
	Expires time.Time
}

// Mutexes are the mutexes of one tenant, in the file "mutex" of Dir. The
// value holds no file open: every call opens, flocks and closes it, so a
// CGI request pays for what it does and nothing else. Safe for concurrent
// use.
type Mutexes struct {
	Dir string
	// NoSync skips fdatasync. UNSAFE: a token may repeat after a machine
	// crash. For benchmarks of the CPU path only.
	NoSync bool
}

// mslot is one slot of the table, decoded.
type mslot struct {
	token   uint64
	expires int64 // unix ns; 0: not held
	key     string
	ok      bool // the checksum matched (an all-zero slot is ok and empty)
}

func (s mslot) empty() bool { return s.key == "" }

func decodeSlot(b []byte) mslot {
	s := mslot{token: binary.LittleEndian.Uint64(b[0:]), expires: int64(binary.LittleEndian.Uint64(b[8:]))}
	n := int(b[20])
	if n == 0 && s.token == 0 && s.expires == 0 {
		s.ok = true
		return s
	}
	if n > MaxKey || slotSum(b) != binary.LittleEndian.Uint32(b[16:]) {
		return s
	}
	s.key, s.ok = string(b[21:21+n]), true
	return s
}

func encodeSlot(b []byte, s mslot) {
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], s.token)
	binary.LittleEndian.PutUint64(b[8:], uint64(s.expires))
	b[20] = byte(len(s.key))
	copy(b[21:], s.key)
	binary.LittleEndian.PutUint32(b[16:], slotSum(b))
}

// slotSum is the checksum of a slot: everything but the checksum itself.
func slotSum(b []byte) uint32 {
	c := crc32.ChecksumIEEE(b[:16])
	return crc32.Update(c, crc32.IEEETable, b[20:slotSize])
}

// mutexHeader is the header page's content.
func mutexHeader() []byte {
	h := make([]byte, pageSize)
	copy(h, mutexMagic)
	binary.LittleEndian.PutUint32(h[8:], mutexVersion)
	binary.LittleEndian.PutUint32(h[12:], mutexPages)
	binary.LittleEndian.PutUint32(h[16:], slotSize)
	return h
}

// table is the mutex file, open and flocked, with the page of one key
// read.
type table struct {
	f    *os.File
	off  int64 // the page's offset
	page [pageSize]byte
}

// open opens the table, creating it when missing, locks it and reads the
// page of key.
func (m *Mutexes) open(key string) (*table, error) {
	path := filepath.Join(m.Dir, mutexFile)
	f, err := fileutil.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := fileutil.MkdirAll(m.Dir, 0o700); err != nil {
			return nil, wrapIO("mutex directory", err)
		}
		f, err = fileutil.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, wrapIO("open mutex table", err)
	}
	if err := fileutil.Lock(f, lockWait, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock mutex table: %w", err)
	}
	t := &table{f: f, off: int64(1+fnv64(key)%mutexPages) * pageSize}
	if err := m.init(t); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.ReadAt(t.page[:], t.off); err != nil {
		f.Close()
		return nil, fmt.Errorf("read mutex table: %w", err)
	}
	return t, nil
}

// init checks the header, and writes it into a new file (or one a crash
// cut short before its header reached the disk: all zeros). The flock is
// held.
func (m *Mutexes) init(t *table) error {
	want := mutexHeader()
	got := make([]byte, pageSize)
	n, err := t.f.ReadAt(got, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read mutex table: %w", err)
	}
	st, err := t.f.Stat()
	if err != nil {
		return err
	}
	if n == pageSize && bytes.Equal(got, want) && st.Size() >= mutexFileSize {
		return nil
	}
	if n > 0 && !bytes.Equal(got[:n], want[:n]) && !allZero(got[:n]) {
		return fmt.Errorf("mutex table %s: %w: bad header", t.f.Name(), ErrCorrupt)
	}
	// Reserve the blocks first: a full disk fails here, before any
	// write, and no later write into the table can fail for space.
	if err := fileutil.Allocate(t.f, mutexFileSize); err != nil {
		return wrapIO("allocate mutex table", err)
	}
	if _, err := fileutil.WriteAt(t.f, want, 0); err != nil {
		return wrapIO("write mutex table", err)
	}
	if m.NoSync {
		return nil
	}
	if err := fileutil.Fsync(t.f); err != nil {
		return wrapIO("sync mutex table", err)
	}
	return wrapIO("sync mutex directory", fileutil.SyncDir(m.Dir))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (t *table) slot(i int) []byte { return t.page[i*slotSize : (i+1)*slotSize] }

// find returns the slot index of key in the page, or -1.
func (t *table) find(key string) (int, mslot) {
	for i := range slotsPerPage {
		if s := decodeSlot(t.slot(i)); s.ok && s.key == key {
			return i, s
		}
	}
	return -1, mslot{}
}

// free picks a slot for a key not in the page: an empty one first, else
// one whose lock is released or expired at ns (its key's last token lives
// on in the page's maximum), else a damaged one; -1 if every slot holds a
// lock.
func (t *table) free(ns int64) int {
	released, damaged := -1, -1
	for i := range slotsPerPage {
		s := decodeSlot(t.slot(i))
		switch {
		case s.ok && s.empty():
			return i
		case s.ok && s.expires <= ns:
			if released < 0 {
				released = i
			}
		case !s.ok && damaged < 0:
			damaged = i
		}
	}
	if released >= 0 {
		return released
	}
	return damaged
}

// soonest is the earliest expiry of the page's locks, unix ns.
func (t *table) soonest() int64 {
	var m int64
	for i := range slotsPerPage {
		if s := decodeSlot(t.slot(i)); s.ok && !s.empty() && (m == 0 || s.expires < m) {
			m = s.expires
		}
	}
	return m
}

// maxToken is the greatest token in the page: every slot's, a damaged
// one's too (its token field may be garbage, which only makes later
// tokens larger).
func (t *table) maxToken() uint64 {
	var m uint64
	for i := range slotsPerPage {
		m = max(m, binary.LittleEndian.Uint64(t.slot(i)))
	}
	return m
}

// write writes slot i of the page to the file, synced unless sync is
// false. On a failure it puts the slot's old bytes back (unsynced) so that
// every reader sees the state before the call.
func (m *Mutexes) write(t *table, i int, s mslot, sync bool) error {
	old := make([]byte, slotSize)
	copy(old, t.slot(i))
	encodeSlot(t.slot(i), s)
	off := t.off + int64(i*slotSize)
	_, err := fileutil.WriteAt(t.f, t.slot(i), off)
	if err == nil && sync && !m.NoSync {
		if err = fileutil.Fdatasync(t.f); err != nil {
			t.f.WriteAt(old, off) // best effort: the page cache as it was
		}
	}
	if err != nil {
		copy(t.slot(i), old)
		return wrapIO("write mutex table", err)
	}
	return nil
}

// Lock grants the mutex key for ttl from now, or refuses with a
// *HeldError (the holder's expiry) or a *TableFullError.
func (m *Mutexes) Lock(key string, ttl time.Duration, now time.Time) (Grant, error) {
	if err := ValidKey(key); err != nil {
		return Grant{}, err
	}
	t, err := m.open(key)
	if err != nil {
		return Grant{}, err
	}
	defer t.f.Close()
	ns := now.UnixNano()
	i, s := t.find(key)
	if i >= 0 && s.expires > ns {
		return Grant{}, &HeldError{Expires: time.Unix(0, s.expires)}
	}
	if i < 0 {
		// A free slot: an empty one first, else one whose lock is
		// released or expired (its key's last token lives on in the
		// page's maximum), else a damaged one.
		i = t.free(ns)
		if i < 0 {
			return Grant{}, &TableFullError{RetryAfter: time.Duration(t.soonest() - ns)}
		}
	}
	g := Grant{Token: t.maxToken() + 1, Expires: now.Add(ttl)}
	if err := m.write(t, i, mslot{token: g.Token, expires: g.Expires.UnixNano(), key: key}, true); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// Unlock releases key if token is its holder's and the lock has not
// expired at now; otherwise ErrNotHolder. The release is not synced: lost
// in a machine crash, the lock is held until its expiry, which is safe.
func (m *Mutexes) Unlock(key string, token uint64, now time.Time) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	t, err := m.open(key)
	if err != nil {
		return err
	}
	defer t.f.Close()
	i, s := t.find(key)
	if i < 0 || s.token != token || s.expires <= now.UnixNano() {
		return ErrNotHolder
	}
	s.expires = 0
	return m.write(t, i, s, false)
}

// Renew extends the lock on key held with token to now+ttl, keeping the
// token (no new grant: nobody else held it meanwhile); ErrNotHolder if
// token is not the holder's or the lock expired. Synced, as a grant is:
// the holder acts on the new expiry.
func (m *Mutexes) Renew(key string, token uint64, ttl time.Duration, now time.Time) (Grant, error) {
	if err := ValidKey(key); err != nil {
		return Grant{}, err
	}
	t, err := m.open(key)
	if err != nil {
		return Grant{}, err
	}
	defer t.f.Close()
	i, s := t.find(key)
	if i < 0 || s.token != token || s.expires <= now.UnixNano() {
		return Grant{}, ErrNotHolder
	}
	g := Grant{Token: token, Expires: now.Add(ttl)}
	s.expires = g.Expires.UnixNano()
	if err := m.write(t, i, s, true); err != nil {
		return Grant{}, err
	}
	return g, nil
}
