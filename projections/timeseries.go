package projections

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"strata/jsonx"
	"strata/log"
)

// Kind timeseries aggregates a number in the events' data per time bucket:
//
//	{"name":"revenue","kind":"timeseries","path":".amount","op":"sum",
//	 "bucket":"day","filter":{"types":["order.paid"]}}
//
// → {"2026-12-01T00:00:00Z":130.5,…}, one member per bucket that has a
// value, sorted; each bucket is a key. Ops: count, sum, avg, min, max.
// An event whose data has no number at path (the member is missing, is a
// string such as "19.99", null, an object; or the data was erased) is
// skipped: it counts for no op, and a bucket that only such events fall in
// is absent. count without a path counts every event. Sums are float64,
// added in log order, so the same log always gives the same figures.
func init() {
	RegisterKind("timeseries", validateTimeseries, newTimeseries)
}

var timeseriesOps = []string{"count", "sum", "avg", "min", "max"}

func validateTimeseries(d *Definition) error {
	if err := d.Only("path", "op", "bucket"); err != nil {
		return err
	}
	if !slices.Contains(timeseriesOps, d.Op) {
		return fieldErr("op", "must be count, sum, avg, min or max")
	}
	if !isBucket(d.Bucket) {
		return fieldErr("bucket", "must be minute, hour, day, week or month")
	}
	if d.Path == "" && d.Op != "count" {
		return fieldErr("path", "is required for op %s", d.Op)
	}
	if d.Path != "" {
		if _, err := parsePath(d.Path); err != nil {
			return fieldErr("path", "%v", err)
		}
	}
	return nil
}

// agg is one bucket's aggregate.
type agg struct {
	Count    uint64
	Sum      float64
	Min, Max float64
}

type timeseries struct {
	op     string
	path   [][]byte
	bucket bucketer
	aggs   map[int64]*agg
	cur    *agg
}

func newTimeseries(d *Definition) (Reducer, error) {
	ts := &timeseries{op: d.Op, bucket: bucketer{unit: d.Bucket}, aggs: map[int64]*agg{}}
	if d.Path != "" {
		var err error
		if ts.path, err = parsePath(d.Path); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

func (ts *timeseries) Apply(e *log.Event) error {
	var data []byte
	if !e.Erased {
		data = e.Data
	}
	ts.add(e.Time, data)
	return nil
}

func (ts *timeseries) applyRaw(r *log.RawEvent) error {
	ts.add(r.Time, r.Data())
	return nil
}

func (ts *timeseries) add(ns int64, data []byte) {
	var x float64
	if ts.path != nil {
		v, ok := lookup(data, ts.path)
		if !ok {
			return
		}
		if x, ok = number(v); !ok {
			return
		}
	}
	start, same := ts.bucket.of(ns)
	a := ts.cur
	if !same || a == nil {
		if a = ts.aggs[start]; a == nil {
			a = &agg{Min: math.Inf(1), Max: math.Inf(-1)}
			ts.aggs[start] = a
		}
		ts.cur = a
	}
	a.Count++
	a.Sum += x
	a.Min = min(a.Min, x)
	a.Max = max(a.Max, x)
}

func (ts *timeseries) starts() []int64 {
	s := make([]int64, 0, len(ts.aggs))
	for t := range ts.aggs {
		s = append(s, t)
	}
	slices.Sort(s)
	return s
}

// appendValue appends a bucket's figure for the op.
func (ts *timeseries) appendValue(b []byte, a *agg) []byte {
	switch ts.op {
	case "count":
		return fmt.Appendf(b, "%d", a.Count)
	case "sum":
		return appendNumber(b, a.Sum)
	case "avg":
		return appendNumber(b, a.Sum/float64(a.Count))
	case "min":
		return appendNumber(b, a.Min)
	}
	return appendNumber(b, a.Max)
}

func (ts *timeseries) Result() ([]byte, error) {
	b := []byte{'{'}
	for i, t := range ts.starts() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = appendBucketName(b, t)
		b = append(b, '"', ':')
		b = ts.appendValue(b, ts.aggs[t])
	}
	return append(b, '}'), nil
}

func (ts *timeseries) Key(k string) ([]byte, bool, error) {
	t, err := parseBucketName(k)
	if err != nil {
		return nil, false, nil
	}
	a := ts.aggs[t]
	if a == nil {
		return nil, false, nil
	}
	return ts.appendValue(nil, a), true, nil
}

func (ts *timeseries) Keys(after string, limit int) ([]string, bool, error) {
	starts := ts.starts()
	keys := make([]string, len(starts))
	for i, t := range starts {
		keys[i] = string(appendBucketName(nil, t))
	}
	return pageKeys(keys, after, limit)
}

// Save writes {"<bucket>":[count,sum,min,max],…}: every op's figure can be
// carried on from it, and float64s written shortest read back exactly.
func (ts *timeseries) Save() ([]byte, error) {
	b := []byte{'{'}
	for i, t := range ts.starts() {
		if i > 0 {
			b = append(b, ',')
		}
		a := ts.aggs[t]
		b = jsonx.AppendString(b, string(appendBucketName(nil, t)))
		b = fmt.Appendf(b, ":[%d,", a.Count)
		b = appendNumber(b, a.Sum)
		b = append(b, ',')
		b = appendNumber(b, a.Min)
		b = append(b, ',')
		b = appendNumber(b, a.Max)
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

func (ts *timeseries) Load(b []byte) error {
	var m map[string][4]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("load timeseries: %w", err)
	}
	ts.aggs, ts.cur = map[int64]*agg{}, nil
	ts.bucket.known = false
	for k, v := range m {
		t, err := parseBucketName(k)
		if err != nil {
			return fmt.Errorf("load timeseries: %w", err)
		}
		ts.aggs[t] = &agg{Count: uint64(v[0]), Sum: v[1], Min: v[2], Max: v[3]}
	}
	return nil
}
