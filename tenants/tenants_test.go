package tenants

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"strata/quota"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "shop", "a-b", "0", "x1-2-3", "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxy"} {
		if !ValidName(ok) {
			t.Errorf("ValidName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "-a", "A", "a_b", "a.b", "..", "../x", "a/b", "a b", "é", "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz0", "a\x00"} {
		if ValidName(bad) {
			t.Errorf("ValidName(%q) = true", bad)
		}
	}
}

func TestLifecycle(t *testing.T) {
	data := t.TempDir()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	if _, err := Get(data, "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before create: %v", err)
	}
	c, err := Create(data, Config{Name: "shop"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Active || c.Tier != DefaultTier {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := Create(data, Config{Name: "shop"}, now); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	for _, bad := range []Config{{Name: "../etc"}, {Name: "x", Tier: "gold"}, {Name: "y", Origins: []string{"https://a.com/path"}}} {
		if _, err := Create(data, bad, now); err == nil {
			t.Errorf("Create(%+v) succeeded", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "..", "etc")); err == nil {
		// Nothing is made outside data.
		if _, err := os.Stat(filepath.Join(data, "tenants", "..", "..", "etc", configFile)); err == nil {
			t.Fatal("a tenant escaped the data directory")
		}
	}
	if _, err := os.Stat(filepath.Join(data, ".htaccess")); err != nil {
		t.Errorf("no guard .htaccess in the data directory: %v", err)
	}
	n := int64(5)
	c, err = Update(data, "shop", now, func(c *Config) error {
		c.State = Suspended
		c.Reason = "unpaid"
		c.Quota = c.Quota.With(quota.Overrides{EventsPerDay: &n})
		return nil
	})
	if err != nil || c.State != Suspended || c.Limits().EventsPerDay != 5 {
		t.Fatalf("update: %+v %v", c, err)
	}
	got, err := Get(data, "shop")
	if err != nil || got.State != Suspended || got.Reason != "unpaid" || got.Limits().EventsPerDay != 5 {
		t.Fatalf("after update: %+v %v", got, err)
	}
	if _, err := Update(data, "shop", now, func(c *Config) error { c.Tier = "gold"; return nil }); err == nil {
		t.Fatal("update to an unknown tier succeeded")
	}
	if got, _ := Get(data, "shop"); got.Tier != DefaultTier {
		t.Fatalf("a refused update changed the tier: %+v", got)
	}
	list, err := List(data)
	if err != nil || len(list) != 1 || list[0].Name != "shop" {
		t.Fatalf("List: %+v %v", list, err)
	}
	moved, err := Delete(data, "shop", false, now)
	if err != nil || moved == "" {
		t.Fatalf("delete: %q %v", moved, err)
	}
	if Exists(data, "shop") || Stamp(data, "shop") != "" {
		t.Fatal("the tenant is still there")
	}
	if _, err := os.Stat(filepath.Join(moved, configFile)); err != nil {
		t.Fatalf("deleted data not kept: %v", err)
	}
	if _, err := Create(data, Config{Name: "shop"}, now); err != nil {
		t.Fatalf("the name is not free again: %v", err)
	}
}

// TestConcurrentUpdates: updates from many goroutines (as from many
// processes) are each applied once: none is lost.
func TestConcurrentUpdates(t *testing.T) {
	data := t.TempDir()
	if _, err := Create(data, Config{Name: "t"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Update(data, "t", time.Now(), func(c *Config) error {
				c.Origins = append(c.Origins, "https://a"+string(rune('a'+len(c.Origins)))+".example")
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c, _ := Get(data, "t")
	if len(c.Origins) != 20 {
		t.Fatalf("%d origins after 20 updates", len(c.Origins))
	}
}

func TestTenantWithoutConfig(t *testing.T) {
	data := t.TempDir()
	if err := Ensure(data, "default"); err != nil {
		t.Fatal(err)
	}
	c, err := Get(data, "default")
	if err != nil || c.State != Active || c.Tier != DefaultTier {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestLimitsShowEffectiveBurst: burst 0 means two seconds' worth of the
// rate, and the limits shown carry that figure, as README's tier table
// does; an explicit burst is kept, and no rate means no burst.
func TestLimitsShowEffectiveBurst(t *testing.T) {
	three := 3
	rate := 2.5
	for _, tc := range []struct {
		c    Config
		want int
	}{
		{Config{Tier: "free"}, 10},
		{Config{Tier: "standard"}, 200},
		{Config{}, 200},
		{Config{Tier: "unlimited"}, 0},
		{Config{Tier: "free", Quota: quota.Overrides{Burst: &three}}, 3},
		{Config{Tier: "unlimited", Quota: quota.Overrides{RequestsPerSecond: &rate}}, 5},
	} {
		l := tc.c.Limits()
		if l.Burst != tc.want {
			t.Errorf("tier %q with %+v: burst %d, want %d", tc.c.Tier, tc.c.Quota, l.Burst, tc.want)
		}
		if l.Burst != 0 && l.Burst != l.EffectiveBurst() {
			t.Errorf("tier %q: shown burst %d, applied %d", tc.c.Tier, l.Burst, l.EffectiveBurst())
		}
	}
}
