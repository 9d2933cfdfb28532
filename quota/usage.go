package quota

import "time"

// Usage is what a tenant holds, for GET /quota and for enforcement.
type Usage struct {
	EventsToday  int64 `json:"events_today"`  // since midnight UTC
	StorageBytes int64 `json:"storage_bytes"` // LogBytes + BlobBytes
	LogBytes     int64 `json:"log_bytes"`
	BlobBytes    int64 `json:"blob_bytes"`
	Blobs        int64 `json:"blobs"`
	CacheEntries int64 `json:"cache_entries"` // live entries of the coordination cache
	CacheBytes   int64 `json:"cache_bytes"`   // their values plus 32 bytes each
}

// CheckEvents refuses adding events to the today already stored today when
// that would go over EventsPerDay. A request is admitted whole or not at
// all.
func (l Limits) CheckEvents(today, adding int64, now time.Time) error {
	if l.EventsPerDay <= 0 || adding <= 0 || today+adding <= l.EventsPerDay {
		return nil
	}
	return &ExceededError{
		Quota:      QuotaEventsPerDay,
		Limit:      float64(l.EventsPerDay),
		Used:       today,
		Adding:     adding,
		RetryAfter: UntilMidnight(now),
	}
}

// CheckStorage refuses adding bytes to the used ones (log + blobs) when
// that would go over StorageBytes. Adding nothing is always allowed, so a
// tenant over its quota (a lowered tier) can still read and delete.
func (l Limits) CheckStorage(used, adding int64) error {
	if l.StorageBytes <= 0 || adding <= 0 || used+adding <= l.StorageBytes {
		return nil
	}
	return &ExceededError{
		Quota:  QuotaStorageBytes,
		Limit:  float64(l.StorageBytes),
		Used:   used,
		Adding: adding,
	}
}

// CheckBlob refuses a blob of size bytes larger than MaxBlob.
func (l Limits) CheckBlob(size int64) error {
	if l.MaxBlob <= 0 || size <= l.MaxBlob {
		return nil
	}
	return &ExceededError{Quota: QuotaMaxBlob, Limit: float64(l.MaxBlob), Used: size}
}

// BlobLimit is the largest blob to accept from this tenant on a server
// whose own limit is serverMax (0 = none): the smaller of the two that are
// set, 0 if neither is.
func (l Limits) BlobLimit(serverMax int64) int64 {
	switch {
	case l.MaxBlob <= 0:
		return max(serverMax, 0)
	case serverMax <= 0:
		return l.MaxBlob
	}
	return min(l.MaxBlob, serverMax)
}

// OverBlobLimit tells whose limit an upload cut off at limit bytes crossed:
// an *ExceededError for max_blob (size unknown, so Used is 0) if limit is
// the tenant's MaxBlob, nil if it is the server's own.
func (l Limits) OverBlobLimit(limit int64) error {
	if l.MaxBlob <= 0 || limit != l.MaxBlob {
		return nil
	}
	return &ExceededError{Quota: QuotaMaxBlob, Limit: float64(l.MaxBlob)}
}

// UntilMidnight is how long from now until the next midnight UTC, when the
// events_per_day count starts again.
func UntilMidnight(now time.Time) time.Duration {
	now = now.UTC()
	y, m, d := now.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Sub(now)
}
