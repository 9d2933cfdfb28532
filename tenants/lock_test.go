package tenants

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"strata/internal/fileutil"
)

// A configuration lock held too long is a lock timeout (503), not the
// raw EWOULDBLOCK it once was (a 500).
func TestUpdateLockTimeout(t *testing.T) {
	data := t.TempDir()
	if _, err := Create(data, Config{Name: "alpha"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	holder, err := os.OpenFile(filepath.Join(Dir(data, "alpha"), lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := fileutil.Lock(holder, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 20 * time.Millisecond
	_, err = Update(data, "alpha", time.Now(), func(c *Config) error { return nil })
	if !errors.Is(err, ErrLockTimeout) || !errors.Is(err, fileutil.ErrLockTimeout) {
		t.Fatalf("Update while locked: %v, want ErrLockTimeout", err)
	}
	fileutil.Unlock(holder)
	if _, err := Update(data, "alpha", time.Now(), func(c *Config) error { return nil }); err != nil {
		t.Fatalf("Update once free: %v", err)
	}
}
