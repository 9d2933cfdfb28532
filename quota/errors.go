package quota

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The names of the quotas, as in Limits' JSON and ExceededError.Quota.
const (
	QuotaEventsPerDay      = "events_per_day"
	QuotaStorageBytes      = "storage_bytes"
	QuotaMaxBlob           = "max_blob"
	QuotaRequestsPerSecond = "requests_per_second"
	QuotaProjections       = "projections"
	QuotaCacheEntries      = "cache_entries"
	QuotaCacheBytes        = "cache_bytes"
)

// ErrExceeded matches every *ExceededError with errors.Is, so the api's
// error table needs one entry.
var ErrExceeded = errors.New("over the tenant's quota")

// ExceededError refuses a request that would go over one of the tenant's
// quotas.
type ExceededError struct {
	Quota string  // one of the Quota* names
	Limit float64 // the quota: events, bytes, or requests per second
	// Used is what the tenant holds already: events today, bytes stored,
	// the blob's size for max_blob (0 when the upload was cut off at the
	// limit, before its size was known), 0 for requests_per_second.
	Used int64
	// Adding is what the request would add: events, bytes; 0 otherwise.
	Adding int64
	// RetryAfter is when the same request may succeed: the next UTC
	// midnight for events_per_day, the limiter's wait for
	// requests_per_second, 0 when only freeing space or a smaller request
	// helps.
	RetryAfter time.Duration
}

func (e *ExceededError) Error() string {
	lim := strconv.FormatFloat(e.Limit, 'f', -1, 64)
	switch e.Quota {
	case QuotaEventsPerDay:
		return fmt.Sprintf("%v %s: %d events today of %s, adding %d", ErrExceeded, e.Quota, e.Used, lim, e.Adding)
	case QuotaStorageBytes:
		return fmt.Sprintf("%v %s: %d bytes stored of %s, adding %d", ErrExceeded, e.Quota, e.Used, lim, e.Adding)
	case QuotaMaxBlob:
		if e.Used == 0 {
			return fmt.Sprintf("%v %s: a blob over %s bytes", ErrExceeded, e.Quota, lim)
		}
		return fmt.Sprintf("%v %s: a blob of %d bytes, at most %s", ErrExceeded, e.Quota, e.Used, lim)
	case QuotaRequestsPerSecond:
		return fmt.Sprintf("%v %s: %s per second, retry after %v", ErrExceeded, e.Quota, lim, e.RetryAfter)
	case QuotaProjections:
		return fmt.Sprintf("%v %s: %d projections defined of %s; delete one first", ErrExceeded, e.Quota, e.Used, lim)
	case QuotaCacheEntries:
		return fmt.Sprintf("%v %s: %d cache entries of %s; delete one or wait for one to expire", ErrExceeded, e.Quota, e.Used, lim)
	case QuotaCacheBytes:
		return fmt.Sprintf("%v %s: %d bytes in the cache of %s, adding %d; delete entries or wait for some to expire", ErrExceeded, e.Quota, e.Used, lim, e.Adding)
	}
	return fmt.Sprintf("%v %s: %d of %s", ErrExceeded, e.Quota, e.Used, lim)
}

// Is makes errors.Is(err, ErrExceeded) true.
func (e *ExceededError) Is(target error) bool { return target == ErrExceeded }
