package api

import (
	"fmt"
	"net/http"
	"testing"

	"strata/blobs"
	"strata/internal/fileutil"
	"strata/log"
	"strata/tenants"
)

// Every package's lock timeout is a 503 with Retry-After: each wraps
// fileutil.ErrLockTimeout.
func TestLockTimeoutsAre503(t *testing.T) {
	for _, err := range []error{log.ErrLockTimeout, blobs.ErrLockTimeout, tenants.ErrLockTimeout, fileutil.ErrLockTimeout} {
		e := classify(fmt.Errorf("op: %w", err))
		if e.status != http.StatusServiceUnavailable {
			t.Errorf("%v: status %d, want 503", err, e.status)
		}
	}
}
