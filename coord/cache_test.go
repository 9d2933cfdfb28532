package coord

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/quota"
)

func TestCachePutGetDelete(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	if _, err := c.Get("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of nothing: %v", err)
	}
	v := []byte(`{"n": 12345678901234567890, "s":"é"}`)
	e, err := c.Put("a", v, time.Minute, t0)
	if err != nil || !e.Expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("put: %+v %v", e, err)
	}
	got, err := c.Get("a", t0.Add(time.Second))
	if err != nil || string(got.Value) != string(v) || !got.Expires.Equal(e.Expires) {
		t.Fatalf("get: %q %v %v", got.Value, got.Expires, err)
	}
	if _, err := c.Put("a", []byte(`2`), time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get("a", t0); string(got.Value) != "2" {
		t.Fatalf("replaced value: %q", got.Value)
	}
	if err := c.Delete("a", t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := c.Get("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// An expired entry is absent, and the read that finds it removes it.
func TestCacheExpiry(t *testing.T) {
	dir := t.TempDir()
	c := Cache{Dir: dir}
	c.Put("a", []byte(`1`), time.Second, t0)
	if _, err := c.Get("a", t0.Add(time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get at expiry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, cacheDir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired entry left behind: %v", err)
	}
}

// The limits hold; expired entries are reclaimed to make room.
func TestCacheLimits(t *testing.T) {
	c := Cache{Dir: t.TempDir(), MaxEntries: 3, MaxBytes: 3 * (cacheHeaderSize + 10)}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Put(k, []byte(`"12345678"`), time.Second, t0); err != nil {
			t.Fatal(err)
		}
	}
	var qe *quota.ExceededError
	if _, err := c.Put("d", []byte(`1`), time.Second, t0); !errors.As(err, &qe) || qe.Quota != quota.QuotaCacheEntries {
		t.Fatalf("a fourth entry: %v", err)
	}
	// Replacing one is no new entry, but more bytes are refused.
	if _, err := c.Put("a", []byte(`"1234567890"`), time.Second, t0); !errors.As(err, &qe) || qe.Quota != quota.QuotaCacheBytes {
		t.Fatalf("a larger value: %v", err)
	}
	if _, err := c.Put("a", []byte(`1`), time.Second, t0); err != nil {
		t.Fatalf("a smaller value: %v", err)
	}
	// Once they expired, there is room.
	if _, err := c.Put("d", []byte(`1`), time.Second, t0.Add(time.Second)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if _, err := c.Get("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("swept entry: %v", err)
	}
}

// After a machine crash (another boot id) the count is made again from
// the entries, whatever the usage file says.
func TestCacheRecountAfterReboot(t *testing.T) {
	dir := t.TempDir()
	c := Cache{Dir: dir, MaxEntries: 2}
	c.Put("a", []byte(`1`), time.Hour, t0)
	c.Put("b", []byte(`1`), time.Hour, t0)
	os.WriteFile(filepath.Join(dir, cacheUsageFile), make([]byte, usageSize), 0o600)
	defer fileutil.SimulateReboot()()
	var qe *quota.ExceededError
	if _, err := c.Put("c", []byte(`1`), time.Hour, t0); !errors.As(err, &qe) {
		t.Fatalf("third entry after a reboot: %v", err)
	}
	// A torn entry (a crash with the entry unsynced) reads as absent.
	os.WriteFile(filepath.Join(dir, cacheDir, "a"), make([]byte, 40), 0o600)
	if _, err := c.Get("a", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("torn entry: %v", err)
	}
}

// A put whose write fails answers the error and leaves the entry as it
// was, and the count too.
func TestCacheFaults(t *testing.T) {
	for _, op := range []fileutil.Op{fileutil.OpCreate, fileutil.OpWrite, fileutil.OpRename} {
		for _, errno := range []error{syscall.ENOSPC, syscall.EIO} {
			dir := t.TempDir()
			c := Cache{Dir: dir, MaxEntries: 2}
			c.Put("a", []byte(`"old"`), time.Hour, t0)
			undo := fileutil.Inject(func(o fileutil.Op, path string) error {
				if o == op && filepath.Base(filepath.Dir(path)) == cacheDir || o == op && filepath.Base(path) == cacheDir {
					return errno
				}
				return nil
			})
			_, err1 := c.Put("a", []byte(`"new"`), time.Hour, t0)
			_, err2 := c.Put("b", []byte(`"new"`), time.Hour, t0)
			undo()
			for _, err := range []error{err1, err2} {
				if !errors.Is(err, errno) || (errno == syscall.ENOSPC) != errors.Is(err, ErrNoSpace) {
					t.Fatalf("%s %v: put answered %v", op, errno, err)
				}
			}
			if e, err := c.Get("a", t0); err != nil || string(e.Value) != `"old"` {
				t.Fatalf("%s %v: after the failure a is %q %v", op, errno, e.Value, err)
			}
			if _, err := c.Get("b", t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s %v: b: %v", op, errno, err)
			}
			// The count is right: one more entry fits, two do not.
			if _, err := c.Put("b", []byte(`1`), time.Hour, t0); err != nil {
				t.Fatalf("%s %v: %v", op, errno, err)
			}
			if _, err := c.Put("c", []byte(`1`), time.Hour, t0); err == nil {
				t.Fatalf("%s %v: a third entry fitted", op, errno)
			}
		}
	}
}

// A put over the limit sweeps; when the sweep removes the key's own
// expired entry, the put counts as a new entry, and the count stays true.
func TestCacheSweepRemovesOwnEntry(t *testing.T) {
	c := Cache{Dir: t.TempDir(), MaxEntries: 3, MaxBytes: 100}
	c.Put("a", []byte(`1`), time.Second, t0)
	c.Put("d", []byte(`1`), time.Second, t0)
	c.Put("b", []byte(`1`), time.Hour, t0)
	later := t0.Add(2 * time.Second)
	if _, err := c.Put("a", []byte(`123`), time.Hour, later); err != nil { // over the bytes: sweeps a and d
		t.Fatal(err)
	}
	var counted, real usage
	c.change(later, func(u *usage, _ func() error) error { counted = *u; return nil })
	c.sweep(&real, later)
	if counted != real || real.entries != 2 {
		t.Fatalf("usage file says %+v, the entries %+v", counted, real)
	}
}
