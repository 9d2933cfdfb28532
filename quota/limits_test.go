package quota

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestTiers(t *testing.T) {
	if got, want := Tiers(), []string{"free", "standard", "unlimited"}; !slices.Equal(got, want) {
		t.Errorf("Tiers() = %v, want %v", got, want)
	}
	for _, name := range Tiers() {
		l, ok := Tier(name)
		if !ok {
			t.Errorf("Tier(%q) missing", name)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("tier %s: %v", name, err)
		}
	}
	for _, tc := range []struct {
		name string
		want Limits
		ok   bool
	}{
		{"free", Limits{EventsPerDay: 10_000, StorageBytes: 100 << 20, MaxBlob: 10 << 20, RequestsPerSecond: 5, Projections: 5, CacheEntries: 1000, CacheBytes: 10 << 20}, true},
		{"standard", Limits{EventsPerDay: 1_000_000, StorageBytes: 10 << 30, MaxBlob: 1 << 30, RequestsPerSecond: 100, Projections: 100, CacheEntries: 100_000, CacheBytes: 1 << 30}, true},
		{"", Limits{EventsPerDay: 1_000_000, StorageBytes: 10 << 30, MaxBlob: 1 << 30, RequestsPerSecond: 100, Projections: 100, CacheEntries: 100_000, CacheBytes: 1 << 30}, true}, // DefaultTier
		{"unlimited", Limits{}, true},
		{"gold", Limits{}, false},
		{"Free", Limits{}, false},
	} {
		if got, ok := Tier(tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("Tier(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMerge(t *testing.T) {
	free, _ := Tier("free")
	for _, tc := range []struct {
		name string
		over Overrides
		want Limits
	}{
		{"nothing", Overrides{}, free},
		{"one field", Overrides{EventsPerDay: ptr[int64](50_000)},
			Limits{EventsPerDay: 50_000, StorageBytes: 100 << 20, MaxBlob: 10 << 20, RequestsPerSecond: 5, Projections: 5, CacheEntries: 1000, CacheBytes: 10 << 20}},
		{"zero means unlimited, not keep", Overrides{StorageBytes: ptr[int64](0), RequestsPerSecond: ptr(0.0)},
			Limits{EventsPerDay: 10_000, MaxBlob: 10 << 20, Projections: 5, CacheEntries: 1000, CacheBytes: 10 << 20}},
		{"every field", Overrides{ptr[int64](1), ptr[int64](2), ptr[int64](3), ptr(4.5), ptr(6), ptr[int64](7), ptr[int64](8), ptr[int64](9)},
			Limits{1, 2, 3, 4.5, 6, 7, 8, 9}},
	} {
		if got := free.Merge(tc.over); got != tc.want {
			t.Errorf("%s: Merge = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// A tenant file's quota section decodes into Overrides and resolves.
func TestResolveTenantFile(t *testing.T) {
	var file struct {
		Tier  string    `json:"tier"`
		Quota Overrides `json:"quota"`
	}
	if err := json.Unmarshal([]byte(`{"tier":"free","quota":{"events_per_day":50000,"burst":3}}`), &file); err != nil {
		t.Fatal(err)
	}
	l, err := Resolve(file.Tier, file.Quota)
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{EventsPerDay: 50_000, StorageBytes: 100 << 20, MaxBlob: 10 << 20, RequestsPerSecond: 5, Burst: 3, Projections: 5, CacheEntries: 1000, CacheBytes: 10 << 20}
	if l != want {
		t.Errorf("Resolve = %+v, want %+v", l, want)
	}
	if _, err := Resolve("gold", Overrides{}); !errors.Is(err, ErrUnknownTier) {
		t.Errorf("unknown tier: %v", err)
	}
	if _, err := Resolve("free", Overrides{MaxBlob: ptr[int64](-1)}); err == nil {
		t.Error("Resolve accepted a negative max_blob")
	}
	if l, err := Resolve("", Overrides{}); err != nil || l != tiers[DefaultTier] {
		t.Errorf(`Resolve("") = %+v, %v; want the default tier`, l, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		l  Limits
		ok bool
	}{
		{Limits{}, true},
		{Limits{EventsPerDay: 1, StorageBytes: 1, MaxBlob: 1, RequestsPerSecond: 0.01, Burst: 1}, true},
		{Limits{RequestsPerSecond: 1e9, Burst: 1 << 24}, true},
		{Limits{EventsPerDay: -1}, false},
		{Limits{StorageBytes: -1}, false},
		{Limits{MaxBlob: -1}, false},
		{Limits{Burst: -1}, false},
		{Limits{RequestsPerSecond: -0.5}, false},
		{Limits{RequestsPerSecond: math.NaN()}, false},
		{Limits{RequestsPerSecond: math.Inf(1)}, false},
		{Limits{RequestsPerSecond: 2e9}, false},
		{Limits{Burst: 1<<24 + 1}, false},
	} {
		if err := tc.l.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}

func TestEffectiveBurst(t *testing.T) {
	for _, tc := range []struct {
		rps   float64
		burst int
		want  int
	}{
		{5, 0, 10},
		{100, 0, 200},
		{0.1, 0, 1},
		{0.7, 0, 2},
		{0, 0, 1},
		{5, 3, 3},
		{1e9, 0, 1 << 24},
	} {
		if got := (Limits{RequestsPerSecond: tc.rps, Burst: tc.burst}).EffectiveBurst(); got != tc.want {
			t.Errorf("rps %v burst %d: EffectiveBurst = %d, want %d", tc.rps, tc.burst, got, tc.want)
		}
	}
}

func TestGCRAParameters(t *testing.T) {
	for _, tc := range []struct {
		rps              float64
		burst            int
		interval, window int64
	}{
		{10, 3, 1e8, 3e8},
		{3, 1, 333_333_334, 333_333_334}, // rounded up: stricter
		{1e9, 1, 1, 1},
		{1e-9, 1, maxWindow, maxWindow}, // capped at a day
		{0.001, 100, 1e12, maxWindow},
	} {
		iv, w := gcra(tc.rps, tc.burst)
		if iv != tc.interval || w != tc.window {
			t.Errorf("gcra(%v, %d) = %d, %d; want %d, %d", tc.rps, tc.burst, iv, w, tc.interval, tc.window)
		}
	}
}

func TestCheckProjections(t *testing.T) {
	l := Limits{Projections: 2}
	for _, n := range []int64{0, 1} {
		if err := l.CheckProjections(n); err != nil {
			t.Errorf("%d defined of 2: %v", n, err)
		}
	}
	var qe *ExceededError
	if err := l.CheckProjections(2); !errors.As(err, &qe) || qe.Quota != QuotaProjections || qe.Used != 2 || !errors.Is(err, ErrExceeded) {
		t.Errorf("2 defined of 2: %v", err)
	}
	if err := (Limits{}).CheckProjections(1 << 40); err != nil {
		t.Errorf("unlimited: %v", err)
	}
}

// With carries every field of an update: a field it forgot would make
// `strata tenant set --<it>` and PATCH /admin/tenants silently do nothing
// (as --projections once did).
func TestOverridesWithEveryField(t *testing.T) {
	var n Overrides
	v := reflect.ValueOf(&n).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		f.Set(reflect.New(f.Type().Elem()))
	}
	got := reflect.ValueOf(Overrides{}.With(n))
	for i := range got.NumField() {
		if got.Field(i).IsNil() {
			t.Errorf("With drops %s", got.Type().Field(i).Name)
		}
	}
}
