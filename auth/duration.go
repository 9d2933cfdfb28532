package auth

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a token lifetime: a whole number of days ("30d") or
// years ("1y", 365 days), or anything time.ParseDuration takes ("12h",
// "90m", "1h30m").
func ParseDuration(s string) (time.Duration, error) {
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "y"):
		unit = 365 * 24 * time.Hour
	}
	if unit == 0 {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30d, 1y, 12h or 90m", clip(s))
		}
		return d, nil
	}
	num := s[:len(s)-1]
	n, err := strconv.ParseUint(num, 10, 63)
	if err != nil || num == "" || num[0] == '+' || n > uint64(math.MaxInt64/int64(unit)) {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30d, 1y, 12h or 90m", clip(s))
	}
	return time.Duration(n) * unit, nil
}
