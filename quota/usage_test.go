package quota

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestChecks(t *testing.T) {
	now := time.Date(2025, 3, 14, 22, 0, 0, 0, time.UTC)
	free, _ := Tier("free")
	unlimited, _ := Tier("unlimited")
	for _, tc := range []struct {
		name string
		err  error
		want *ExceededError // nil: allowed
		text string
	}{
		{"events under", free.CheckEvents(9_000, 1_000, now), nil, ""},
		{"events over", free.CheckEvents(9_999, 2, now),
			&ExceededError{Quota: QuotaEventsPerDay, Limit: 10_000, Used: 9_999, Adding: 2, RetryAfter: 2 * time.Hour},
			"over the tenant's quota events_per_day: 9999 events today of 10000, adding 2"},
		{"events adding none", free.CheckEvents(20_000, 0, now), nil, ""},
		{"events unlimited", unlimited.CheckEvents(1<<50, 1, now), nil, ""},
		{"storage exactly full", free.CheckStorage(100<<20-10, 10), nil, ""},
		{"storage over", free.CheckStorage(100<<20-10, 11),
			&ExceededError{Quota: QuotaStorageBytes, Limit: 100 << 20, Used: 100<<20 - 10, Adding: 11},
			"over the tenant's quota storage_bytes: 104857590 bytes stored of 104857600, adding 11"},
		{"storage over but adding none", free.CheckStorage(200<<20, 0), nil, ""},
		{"storage unlimited", unlimited.CheckStorage(1<<60, 1<<60), nil, ""},
		{"blob at the limit", free.CheckBlob(10 << 20), nil, ""},
		{"blob over", free.CheckBlob(10<<20 + 1),
			&ExceededError{Quota: QuotaMaxBlob, Limit: 10 << 20, Used: 10<<20 + 1},
			"over the tenant's quota max_blob: a blob of 10485761 bytes, at most 10485760"},
		{"blob unlimited", unlimited.CheckBlob(1 << 60), nil, ""},
		{"cut off at the tenant's limit", free.OverBlobLimit(10 << 20),
			&ExceededError{Quota: QuotaMaxBlob, Limit: 10 << 20},
			"over the tenant's quota max_blob: a blob over 10485760 bytes"},
		{"cut off at the server's limit", free.OverBlobLimit(5 << 20), nil, ""},
		{"rate", &ExceededError{Quota: QuotaRequestsPerSecond, Limit: 0.5, RetryAfter: 1500 * time.Millisecond},
			&ExceededError{Quota: QuotaRequestsPerSecond, Limit: 0.5, RetryAfter: 1500 * time.Millisecond},
			"over the tenant's quota requests_per_second: 0.5 per second, retry after 1.5s"},
	} {
		if tc.want == nil {
			if tc.err != nil {
				t.Errorf("%s: %v, want allowed", tc.name, tc.err)
			}
			continue
		}
		var e *ExceededError
		if !errors.As(tc.err, &e) || *e != *tc.want {
			t.Errorf("%s: %#v, want %#v", tc.name, tc.err, tc.want)
			continue
		}
		if tc.err.Error() != tc.text {
			t.Errorf("%s: text %q, want %q", tc.name, tc.err.Error(), tc.text)
		}
		if wrapped := fmt.Errorf("append: %w", tc.err); !errors.Is(wrapped, ErrExceeded) {
			t.Errorf("%s: errors.Is(ErrExceeded) false", tc.name)
		}
	}
}

func TestBlobLimit(t *testing.T) {
	for _, tc := range []struct {
		tenant, server, want int64
	}{
		{0, 0, 0},
		{10, 0, 10},
		{0, 20, 20},
		{10, 20, 10},
		{30, 20, 20},
	} {
		if got := (Limits{MaxBlob: tc.tenant}).BlobLimit(tc.server); got != tc.want {
			t.Errorf("MaxBlob %d, server %d: BlobLimit = %d, want %d", tc.tenant, tc.server, got, tc.want)
		}
	}
}

func TestUntilMidnight(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		now  time.Time
		want time.Duration
	}{
		{time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{time.Date(2025, 3, 14, 23, 59, 59, 0, time.UTC), time.Second},
		{time.Date(2025, 12, 31, 12, 0, 0, 0, time.UTC), 12 * time.Hour},
		{time.Date(2025, 3, 15, 0, 30, 0, 0, paris), 30 * time.Minute}, // 23:30 UTC
	} {
		if got := UntilMidnight(tc.now); got != tc.want {
			t.Errorf("UntilMidnight(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}
