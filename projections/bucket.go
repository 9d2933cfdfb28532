package projections

import (
	"time"
)

// A bucket is a span of UTC time results are grouped by: minute, hour, day,
// week (ISO: from Monday 00:00) or month. A bucket is named by its start,
// RFC 3339 in UTC ("2026-12-01T00:00:00Z"), so names sort as times do.
var bucketNames = []string{"minute", "hour", "day", "week", "month"}

func isBucket(s string) bool {
	for _, b := range bucketNames {
		if s == b {
			return true
		}
	}
	return false
}

const day = int64(24 * time.Hour)

// bucketer finds the bucket of a time, remembering the last one: the times
// of a log never decrease, so almost every event falls in the last bucket.
type bucketer struct {
	unit       string
	start, end int64 // the last bucket, [start, end)
	known      bool
}

// of returns the start of the bucket holding ns and whether it is the
// same bucket as the previous call's.
func (b *bucketer) of(ns int64) (start int64, same bool) {
	if b.known && ns >= b.start && ns < b.end {
		return b.start, true
	}
	b.start, b.end = bucketSpan(b.unit, ns)
	b.known = true
	return b.start, false
}

// bucketSpan returns the bucket of unit holding ns, [start, end).
func bucketSpan(unit string, ns int64) (start, end int64) {
	var size int64
	switch unit {
	case "minute":
		size = int64(time.Minute)
	case "hour":
		size = int64(time.Hour)
	case "day":
		size = day
	case "week":
		// 1970-01-01 was a Thursday: Monday 1969-12-29 starts week 0.
		const monday = -3 * day
		start = floorDiv(ns-monday, 7*day)*7*day + monday
		return start, start + 7*day
	case "month":
		t := time.Unix(0, ns).UTC()
		s := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return s.UnixNano(), s.AddDate(0, 1, 0).UnixNano()
	default:
		panic("projections: unknown bucket " + unit)
	}
	start = floorDiv(ns, size) * size
	return start, start + size
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// appendBucketName appends the name of the bucket starting at ns.
func appendBucketName(dst []byte, ns int64) []byte {
	return time.Unix(0, ns).UTC().AppendFormat(dst, time.RFC3339)
}

// parseBucketName is the inverse of appendBucketName.
func parseBucketName(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, err
	}
	return t.UnixNano(), nil
}
