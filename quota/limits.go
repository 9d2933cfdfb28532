package quota

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Limits are a tenant's quotas. Zero means unlimited.
type Limits struct {
	EventsPerDay      int64   `json:"events_per_day"`      // events stored per UTC day
	StorageBytes      int64   `json:"storage_bytes"`       // log segments + blobs
	MaxBlob           int64   `json:"max_blob"`            // largest blob; the server's --max-blob applies too
	RequestsPerSecond float64 `json:"requests_per_second"` // per credential
	Burst             int     `json:"burst"`               // requests at once after idling; 0 = max(1, ⌈2×rate⌉)
	Projections       int64   `json:"projections"`         // projections defined at once (deleted ones not counted)
	CacheEntries      int64   `json:"cache_entries"`       // entries in the tenant's cache (PUT /cache/<key>)
	CacheBytes        int64   `json:"cache_bytes"`         // bytes of the cache's entries, values plus 32 bytes each
}

// Overrides change some of a tier's Limits: a nil field keeps the tier's
// value, so a tenant file can say {"tier":"free","quota":{"events_per_day":50000}}.
type Overrides struct {
	EventsPerDay      *int64   `json:"events_per_day,omitempty"`
	StorageBytes      *int64   `json:"storage_bytes,omitempty"`
	MaxBlob           *int64   `json:"max_blob,omitempty"`
	RequestsPerSecond *float64 `json:"requests_per_second,omitempty"`
	Burst             *int     `json:"burst,omitempty"`
	Projections       *int64   `json:"projections,omitempty"`
	CacheEntries      *int64   `json:"cache_entries,omitempty"`
	CacheBytes        *int64   `json:"cache_bytes,omitempty"`
}

// DefaultTier is the tier of a tenant that names none.
const DefaultTier = "standard"

// Upper bounds Validate enforces: beyond them a figure is a typo, and the
// rate arithmetic stays far from overflow.
const (
	maxRate  = 1e9     // requests per second: one per nanosecond
	maxBurst = 1 << 24 // requests at once
)

const (
	miB = 1 << 20
	giB = 1 << 30
)

// tiers are the documented tiers (see the package doc).
var tiers = map[string]Limits{
	"free": {
		EventsPerDay:      10_000,
		StorageBytes:      100 * miB,
		MaxBlob:           10 * miB,
		RequestsPerSecond: 5,
		Projections:       5,
		CacheEntries:      1000,
		CacheBytes:        10 * miB,
	},
	"standard": {
		EventsPerDay:      1_000_000,
		StorageBytes:      10 * giB,
		MaxBlob:           1 * giB,
		RequestsPerSecond: 100,
		Projections:       100,
		CacheEntries:      100_000,
		CacheBytes:        1 * giB,
	},
	"unlimited": {},
}

// Tier returns the Limits of the named tier; "" is DefaultTier.
func Tier(name string) (Limits, bool) {
	if name == "" {
		name = DefaultTier
	}
	l, ok := tiers[name]
	return l, ok
}

// Tiers returns the names of the tiers, sorted.
func Tiers() []string {
	names := make([]string, 0, len(tiers))
	for name := range tiers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownTier is returned by Resolve for a tier that does not exist.
var ErrUnknownTier = errors.New("unknown quota tier")

// Resolve returns the valid Limits of a tenant: its tier ("" is
// DefaultTier) with its overrides applied.
func Resolve(tier string, over Overrides) (Limits, error) {
	l, ok := Tier(tier)
	if !ok {
		return Limits{}, fmt.Errorf("quota: %q: %w (tiers: %v)", tier, ErrUnknownTier, Tiers())
	}
	l = l.Merge(over)
	if err := l.Validate(); err != nil {
		return Limits{}, err
	}
	return l, nil
}

// Merge returns l with every non-nil field of over replacing l's.
func (l Limits) Merge(over Overrides) Limits {
	if over.EventsPerDay != nil {
		l.EventsPerDay = *over.EventsPerDay
	}
	if over.StorageBytes != nil {
		l.StorageBytes = *over.StorageBytes
	}
	if over.MaxBlob != nil {
		l.MaxBlob = *over.MaxBlob
	}
	if over.RequestsPerSecond != nil {
		l.RequestsPerSecond = *over.RequestsPerSecond
	}
	if over.Burst != nil {
		l.Burst = *over.Burst
	}
	if over.Projections != nil {
		l.Projections = *over.Projections
	}
	if over.CacheEntries != nil {
		l.CacheEntries = *over.CacheEntries
	}
	if over.CacheBytes != nil {
		l.CacheBytes = *over.CacheBytes
	}
	return l
}

// Validate reports the first impossible figure: a negative one, a rate
// that is not a finite number up to 1e9, a burst over 2^24.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"events_per_day", l.EventsPerDay},
		{"storage_bytes", l.StorageBytes},
		{"max_blob", l.MaxBlob},
		{"burst", int64(l.Burst)},
		{"projections", l.Projections},
		{"cache_entries", l.CacheEntries},
		{"cache_bytes", l.CacheBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("quota %s: negative (%d)", f.name, f.v)
		}
	}
	if r := l.RequestsPerSecond; math.IsNaN(r) || r < 0 || r > maxRate {
		return fmt.Errorf("quota requests_per_second: %v is not between 0 and %g", r, float64(maxRate))
	}
	if l.Burst > maxBurst {
		return fmt.Errorf("quota burst: %d is over %d", l.Burst, maxBurst)
	}
	return nil
}

// EffectiveBurst is the burst the limiter applies: Burst, or when it is 0,
// max(1, ⌈2×rate⌉).
func (l Limits) EffectiveBurst() int { return effectiveBurst(l.RequestsPerSecond, l.Burst) }

func effectiveBurst(rps float64, burst int) int {
	if burst > 0 {
		return min(burst, maxBurst)
	}
	b := math.Ceil(2 * rps)
	if !(b >= 1) { // also NaN
		return 1
	}
	return int(min(b, maxBurst))
}

// CheckProjections refuses defining one more projection when the tenant
// has defined (and not deleted) defined of them already.
func (l Limits) CheckProjections(defined int64) error {
	if l.Projections > 0 && defined+1 > l.Projections {
		return &ExceededError{Quota: QuotaProjections, Limit: float64(l.Projections), Used: defined, Adding: 1}
	}
	return nil
}
