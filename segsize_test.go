package main

import (
	"errors"
	"strings"
	"testing"

	"strata/log"
)

// A segment size of 4 GiB or more once made a tenant unopenable (record
// offsets are 32-bit); the configuration refuses it with a clear message,
// and so does log.Open.
func TestSegmentSizeLimit(t *testing.T) {
	for _, c := range []struct {
		size string
		ok   bool
	}{{"64M", true}, {"4095M", true}, {"4294967295", true}, {"4G", false}, {"8G", false}, {"4294967296", false}} {
		cfg := settings{"STRATA_SEGMENT_SIZE": c.size}.config()
		_, err := cfg.api()
		if c.ok && err != nil {
			t.Errorf("segment size %s: %v", c.size, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "at most 4095M")) {
			t.Errorf("segment size %s: %v, want it refused naming the limit", c.size, err)
		}
	}
	_, err := log.Open(t.TempDir(), log.Options{SegmentSize: log.MaxSegmentSize + 1})
	if !errors.Is(err, log.ErrSegmentSize) {
		t.Fatalf("log.Open with a 4 GiB segment size: %v, want ErrSegmentSize", err)
	}
}
