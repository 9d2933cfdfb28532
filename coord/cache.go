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
	"strings"
	"time"

	"strata/internal/fileutil"
	"strata/quota"
)

// The cache's files (FORMAT.md).
const (
	cacheDir        = "cache"
	cacheUsageFile  = "cache.usage"
	cacheMagic      = "STRCACH1"
	cacheHeaderSize = 32
	usageMagic      = "STRCUSE1"
	usageSize       = 64
)

// Bounds of a cache entry.
const (
	MaxValue        = 1 << 20 // bytes of one value
	MaxCacheTTL     = 30 * 24 * time.Hour
	DefaultCacheTTL = time.Hour
)

// ErrNotFound: no such cache entry, or it has expired.
var ErrNotFound = errors.New("no such cache entry")

// Entry is a cache entry read.
type Entry struct {
	Value   []byte
	Expires time.Time
}

// Cache is the cache of one tenant: one file per entry in Dir/cache, and
// the tenant's usage (entries and bytes) in Dir/cache.usage, whose flock
// every change takes. Reads take no lock: an entry is replaced by rename.
// The value holds no file open. Safe for concurrent use.
type Cache struct {
	Dir string
	// Limits bound the tenant's entries and bytes (0: unbounded).
	MaxEntries, MaxBytes int64
}

func (c *Cache) entryPath(key string) string { return filepath.Join(c.Dir, cacheDir, key) }

// encodeEntry is an entry file's content.
func encodeEntry(value []byte, expires, now time.Time) []byte {
	b := make([]byte, cacheHeaderSize, cacheHeaderSize+len(value))
	copy(b, cacheMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(expires.UnixNano()))
	binary.LittleEndian.PutUint64(b[16:], uint64(now.UnixNano()))
	binary.LittleEndian.PutUint32(b[24:], uint32(len(value)))
	binary.LittleEndian.PutUint32(b[28:], crc32.ChecksumIEEE(value))
	return append(b, value...)
}

// decodeEntry checks an entry file's content; ok is false for anything a
// crash (or someone) could have left that is not a whole entry.
func decodeEntry(b []byte) (e Entry, ok bool) {
	if len(b) < cacheHeaderSize || string(b[:8]) != cacheMagic {
		return Entry{}, false
	}
	n := binary.LittleEndian.Uint32(b[24:])
	v := b[cacheHeaderSize:]
	if uint64(len(v)) != uint64(n) || crc32.ChecksumIEEE(v) != binary.LittleEndian.Uint32(b[28:]) {
		return Entry{}, false
	}
	return Entry{Value: v, Expires: time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:])))}, true
}

// Get returns the entry key, ErrNotFound when it is absent, expired at
// now, or not whole (a crash cut it). An expired or broken entry is
// removed on the way.
func (c *Cache) Get(key string, now time.Time) (Entry, error) {
	if err := ValidKey(key); err != nil {
		return Entry{}, err
	}
	b, err := os.ReadFile(c.entryPath(key))
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read cache entry: %w", err)
	}
	e, ok := decodeEntry(b)
	if ok && e.Expires.After(now) {
		return e, nil
	}
	// Reclaim it, unless it was replaced meanwhile; a failure to is no
	// failure of the read.
	c.change(now, func(u *usage, _ func() error) error {
		b, err := os.ReadFile(c.entryPath(key))
		if err != nil {
			return nil
		}
		if e, ok := decodeEntry(b); ok && e.Expires.After(now) {
			return nil
		}
		return c.remove(u, key, int64(len(b)))
	})
	return Entry{}, ErrNotFound
}

// Put stores value under key until now+ttl, replacing any entry, or
// refuses with a *quota.ExceededError when the tenant's entries or bytes
// would go over its limits even after every expired entry is reclaimed.
// value is stored as it is; the caller checks it is JSON.
func (c *Cache) Put(key string, value []byte, ttl time.Duration, now time.Time) (Entry, error) {
	if err := ValidKey(key); err != nil {
		return Entry{}, err
	}
	body := encodeEntry(value, now.Add(ttl), now)
	err := c.change(now, func(u *usage, save func() error) error {
		old, err := c.admit(u, key, int64(len(body)), now)
		if err != nil {
			return err
		}
		before := *u
		if old < 0 {
			if err := fileutil.MkdirAll(filepath.Join(c.Dir, cacheDir), 0o700); err != nil {
				return wrapIO("cache directory", err)
			}
			u.entries++
		}
		u.bytes += int64(len(body)) - max(old, 0)
		// The count first: if the entry's write then fails and the count
		// cannot be put back either, it is high (refusing early, never
		// late) until the next sweep recounts.
		if err := save(); err != nil {
			return err
		}
		// Not synced (see the package doc): the rename makes it whole or
		// absent to every reader; a machine crash may lose it.
		if err := fileutil.WriteFileNoSync(c.entryPath(key), body, 0o600); err != nil {
			*u = before // change writes the count back
			return wrapIO("write cache entry", err)
		}
		return nil
	})
	if err != nil {
		return Entry{}, err
	}
	return Entry{Value: value, Expires: now.Add(ttl)}, nil
}

// admit checks that an entry of size bytes under key fits the limits,
// replacing the entry there (whose size it returns; -1: none); past them
// it reclaims the expired entries (recounting usage exactly, and perhaps
// removing key's own) and checks again.
func (c *Cache) admit(u *usage, key string, size int64, now time.Time) (old int64, err error) {
	over := func() error {
		old = -1
		if st, err := os.Stat(c.entryPath(key)); err == nil {
			old = st.Size()
		}
		n, b := u.entries, u.bytes+size
		if old >= 0 {
			b -= old
		} else {
			n++
		}
		if c.MaxEntries > 0 && n > c.MaxEntries {
			return &quota.ExceededError{Quota: quota.QuotaCacheEntries, Limit: float64(c.MaxEntries), Used: u.entries, Adding: 1}
		}
		if c.MaxBytes > 0 && b > c.MaxBytes {
			return &quota.ExceededError{Quota: quota.QuotaCacheBytes, Limit: float64(c.MaxBytes), Used: u.bytes, Adding: size - max(old, 0)}
		}
		return nil
	}
	if over() == nil {
		return old, nil
	}
	if err := c.sweep(u, now); err != nil {
		return 0, err
	}
	return old, over()
}

// Usage returns the tenant's entries and their bytes, as the limits count
// them (expired entries not yet reclaimed included).
func (c *Cache) Usage(now time.Time) (entries, bytes int64, err error) {
	if _, err := os.Stat(filepath.Join(c.Dir, cacheUsageFile)); errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil // never used: nothing to create
	}
	err = c.change(now, func(u *usage, _ func() error) error {
		entries, bytes = u.entries, u.bytes
		return nil
	})
	return entries, bytes, err
}

// Delete removes the entry key; ErrNotFound if there is none (or it had
// expired).
func (c *Cache) Delete(key string, now time.Time) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	return c.change(now, func(u *usage, _ func() error) error {
		b, err := os.ReadFile(c.entryPath(key))
		if errors.Is(err, os.ErrNotExist) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read cache entry: %w", err)
		}
		e, ok := decodeEntry(b)
		if err := c.remove(u, key, int64(len(b))); err != nil {
			return err
		}
		if !ok || !e.Expires.After(now) {
			return ErrNotFound
		}
		return nil
	})
}

// remove deletes an entry file of size bytes and counts it out of u.
func (c *Cache) remove(u *usage, key string, size int64) error {
	if err := fileutil.Remove(c.entryPath(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return wrapIO("remove cache entry", err)
	}
	u.entries = max(u.entries-1, 0)
	u.bytes = max(u.bytes-size, 0)
	return nil
}

// sweep removes every expired or broken entry and the temporary files
// of writers that died, and recounts u from what is left.
func (c *Cache) sweep(u *usage, now time.Time) error {
	dir := filepath.Join(c.Dir, cacheDir)
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		*u = usage{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep cache: %w", err)
	}
	defer d.Close()
	var n usage
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			p := filepath.Join(dir, name)
			if strings.HasPrefix(name, ".") {
				// A temporary file: the flock is held, so its writer is
				// gone.
				fileutil.Remove(p)
				continue
			}
			e, size, err := readHeader(p)
			if err != nil {
				continue // vanished, or unreadable: not counted
			}
			if e.Expires.After(now) {
				n.entries++
				n.bytes += size
				continue
			}
			if err := fileutil.Remove(p); err != nil {
				n.entries++
				n.bytes += size
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("sweep cache: %w", err)
		}
	}
	*u = n
	return nil
}

// readHeader reads an entry's expiry and its file's size, without the
// value; a file whose header or size is wrong has expired (the zero
// time), so that a sweep removes it.
func readHeader(p string) (Entry, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return Entry{}, 0, err
	}
	defer f.Close()
	var h [cacheHeaderSize]byte
	n, _ := io.ReadFull(f, h[:])
	st, err := f.Stat()
	if err != nil {
		return Entry{}, 0, err
	}
	if n < cacheHeaderSize || string(h[:8]) != cacheMagic || int64(binary.LittleEndian.Uint32(h[24:]))+cacheHeaderSize != st.Size() {
		return Entry{}, st.Size(), nil
	}
	return Entry{Expires: time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:])))}, st.Size(), nil
}

// usage is the tenant's entries and their bytes, as counted in the usage
// file.
type usage struct{ entries, bytes int64 }

// change runs fn with the usage file flocked and its count read (a count
// this boot did not write is recounted first: without fsync, a count from
// before a machine crash may be anything). fn may save the count itself
// before a step that may fail; change saves it afterwards if fn changed it
// since — also when fn failed after changing files.
func (c *Cache) change(now time.Time, fn func(u *usage, save func() error) error) error {
	if err := fileutil.MkdirAll(c.Dir, 0o700); err != nil {
		return wrapIO("cache directory", err)
	}
	f, err := openLocked(filepath.Join(c.Dir, cacheUsageFile))
	if err != nil {
		return wrapIO("open cache usage", err)
	}
	defer f.Close()
	var b [usageSize]byte
	n, _ := f.ReadAt(b[:], 0)
	boot := fileutil.BootID()
	var u usage
	if n == usageSize && string(b[:8]) == usageMagic && bytes.Equal(bytes.TrimRight(b[24:], "\x00"), boot) && len(boot) > 0 {
		u.entries = int64(binary.LittleEndian.Uint64(b[8:]))
		u.bytes = int64(binary.LittleEndian.Uint64(b[16:]))
	} else if err := c.sweep(&u, now); err != nil {
		return err
	}
	saved, written := u, n == usageSize
	save := func() error {
		if u == saved && written {
			return nil
		}
		clear(b[:])
		copy(b[:], usageMagic)
		binary.LittleEndian.PutUint64(b[8:], uint64(u.entries))
		binary.LittleEndian.PutUint64(b[16:], uint64(u.bytes))
		copy(b[24:], boot)
		if _, err := fileutil.WriteAt(f, b[:], 0); err != nil {
			// Whatever reached the file, the next change recounts.
			f.WriteAt(make([]byte, 8), 0)
			return wrapIO("write cache usage", err)
		}
		saved, written = u, true
		return nil
	}
	err = fn(&u, save)
	if serr := save(); err == nil {
		err = serr
	}
	return err
}
