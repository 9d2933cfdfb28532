package projections

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"strata/jsonx"
	"strata/log"
)

// Kind counter counts events per type ("by":"type"), per entity
// ("by":"entity") or per time bucket ("by":"hour", …). Its result is an
// object from each type, entity or bucket name to its count, members
// sorted: {"order.paid":3,"order.placed":12}. Each member is a key.
func init() {
	RegisterKind("counter", validateCounter, newCounter)
}

func validateCounter(d *Definition) error {
	if err := d.Only("by"); err != nil {
		return err
	}
	if d.By != "type" && d.By != "entity" && !isBucket(d.By) {
		return fieldErr("by", "must be type, entity, minute, hour, day, week or month")
	}
	return nil
}

type counter struct {
	by     string
	names  map[string]*uint64 // by type or entity
	times  map[int64]*uint64  // by bucket start
	bucket bucketer
	cur    *uint64 // the count of bucket's last bucket
}

func newCounter(d *Definition) (Reducer, error) {
	c := &counter{by: d.By}
	c.reset()
	return c, nil
}

func (c *counter) reset() {
	c.names, c.times, c.cur = map[string]*uint64{}, map[int64]*uint64{}, nil
	c.bucket = bucketer{unit: c.by}
}

func (c *counter) saveIsResult() {}

func (c *counter) Apply(e *log.Event) error {
	switch c.by {
	case "type":
		c.name([]byte(e.Type))
	case "entity":
		c.name([]byte(e.Entity))
	default:
		c.at(e.Time)
	}
	return nil
}

func (c *counter) applyRaw(r *log.RawEvent) error {
	switch c.by {
	case "type":
		c.name(r.Type)
	case "entity":
		c.name(r.Entity)
	default:
		c.at(r.Time)
	}
	return nil
}

func (c *counter) name(b []byte) {
	if n := c.names[string(b)]; n != nil {
		*n++
		return
	}
	n := uint64(1)
	c.names[string(b)] = &n
}

func (c *counter) at(ns int64) {
	start, same := c.bucket.of(ns)
	if same && c.cur != nil {
		*c.cur++
		return
	}
	n := c.times[start]
	if n == nil {
		n = new(uint64)
		c.times[start] = n
	}
	*n++
	c.cur = n
}

// keys returns the result's member names, sorted.
func (c *counter) keys() []string {
	var keys []string
	if c.by == "type" || c.by == "entity" {
		keys = make([]string, 0, len(c.names))
		for k := range c.names {
			keys = append(keys, k)
		}
	} else {
		starts := make([]int64, 0, len(c.times))
		for t := range c.times {
			starts = append(starts, t)
		}
		slices.Sort(starts)
		keys = make([]string, len(starts))
		for i, t := range starts {
			keys[i] = string(appendBucketName(nil, t))
		}
		return keys
	}
	sort.Strings(keys)
	return keys
}

func (c *counter) count(k string) (uint64, bool) {
	if c.by == "type" || c.by == "entity" {
		if n := c.names[k]; n != nil {
			return *n, true
		}
		return 0, false
	}
	t, err := parseBucketName(k)
	if err != nil {
		return 0, false
	}
	if n := c.times[t]; n != nil {
		return *n, true
	}
	return 0, false
}

func (c *counter) Result() ([]byte, error) {
	b := []byte{'{'}
	for i, k := range c.keys() {
		if i > 0 {
			b = append(b, ',')
		}
		n, _ := c.count(k)
		b = jsonx.AppendString(b, k)
		b = append(b, ':')
		b = strconv.AppendUint(b, n, 10)
	}
	return append(b, '}'), nil
}

func (c *counter) Key(k string) ([]byte, bool, error) {
	n, ok := c.count(k)
	if !ok {
		return nil, false, nil
	}
	return strconv.AppendUint(nil, n, 10), true, nil
}

func (c *counter) Keys(after string, limit int) ([]string, bool, error) {
	return pageKeys(c.keys(), after, limit)
}

// pageKeys returns up to limit of sorted keys after after, and whether
// more follow.
func pageKeys(keys []string, after string, limit int) ([]string, bool, error) {
	i := sort.SearchStrings(keys, after)
	if i < len(keys) && keys[i] == after {
		i++
	}
	keys = keys[i:]
	if limit > 0 && len(keys) > limit {
		return keys[:limit], true, nil
	}
	return keys, false, nil
}

func (c *counter) Save() ([]byte, error) { return c.Result() }

func (c *counter) Load(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("load counter: %w", err)
	}
	c.reset()
	for k, n := range m {
		n := n
		if c.by == "type" || c.by == "entity" {
			c.names[k] = &n
			continue
		}
		t, err := parseBucketName(k)
		if err != nil {
			return fmt.Errorf("load counter: %w", err)
		}
		c.times[t] = &n
	}
	return nil
}
