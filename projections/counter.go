package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

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
	// order is names' entries sorted, while no name was added since it
	// was made (Load makes it): a result of many names read with a few
	// new events is then written out without sorting them again.
	order []nameCount
	fresh bool
}

type nameCount struct {
	name string
	n    *uint64
}

func newCounter(d *Definition) (Reducer, error) {
	c := &counter{by: d.By}
	c.reset()
	return c, nil
}

func (c *counter) reset() {
	c.names, c.times, c.cur = map[string]*uint64{}, map[int64]*uint64{}, nil
	c.bucket = bucketer{unit: c.by}
	c.order, c.fresh = nil, true
}

func (c *counter) byName() bool { return c.by == "type" || c.by == "entity" }

// sorted returns names' entries, sorted by name.
func (c *counter) sorted() []nameCount {
	if c.fresh {
		return c.order
	}
	c.order = c.order[:0]
	for k, n := range c.names {
		c.order = append(c.order, nameCount{k, n})
	}
	slices.SortFunc(c.order, func(a, b nameCount) int { return strings.Compare(a.name, b.name) })
	c.fresh = true
	return c.order
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
	c.fresh = false
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
	if c.byName() {
		order := c.sorted()
		keys := make([]string, len(order))
		for i, e := range order {
			keys[i] = e.name
		}
		return keys
	}
	starts := make([]int64, 0, len(c.times))
	for t := range c.times {
		starts = append(starts, t)
	}
	slices.Sort(starts)
	keys := make([]string, len(starts))
	for i, t := range starts {
		keys[i] = string(appendBucketName(nil, t))
	}
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
	if c.byName() {
		order := c.sorted()
		b = slices.Grow(b, len(order)*24)
		for i, e := range order {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonx.AppendString(b, e.name)
			b = append(b, ':')
			b = strconv.AppendUint(b, *e.n, 10)
		}
		return append(b, '}'), nil
	}
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
	c.reset()
	if c.byName() {
		return c.loadNames(b)
	}
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("load counter: %w", err)
	}
	for k, n := range m {
		t, err := parseBucketName(k)
		if err != nil {
			return fmt.Errorf("load counter: %w", err)
		}
		n := n
		c.times[t] = &n
	}
	return nil
}

// loadNames reads a by-name result as Save wrote it: {"name":count,…},
// names sorted. Names without escapes are substrings of one copy of b,
// counts one slab: a load of a million names costs a few allocations,
// where encoding/json made two per name. Anything else (an escaped name)
// takes the slow path for that name; a malformed payload is an error.
func (c *counter) loadNames(b []byte) error {
	bad := errors.New("load counter: malformed payload")
	all := string(b)
	if len(all) < 2 || all[0] != '{' || all[len(all)-1] != '}' {
		return bad
	}
	n := strings.Count(all, ":") // at least the number of members
	vals := make([]uint64, 0, n)
	c.order = make([]nameCount, 0, n)
	i := 1
	for i < len(all)-1 {
		end := skipString(b, i)
		if end < 0 || end >= len(all) || all[end] != ':' {
			return bad
		}
		name := all[i+1 : end-1]
		if strings.IndexByte(name, '\\') >= 0 {
			var err error
			if name, err = strconv.Unquote(all[i:end]); err != nil {
				return bad
			}
		}
		j := end + 1
		k := j
		for k < len(all) && all[k] >= '0' && all[k] <= '9' {
			k++
		}
		v, err := strconv.ParseUint(all[j:k], 10, 64)
		if err != nil || len(vals) == cap(vals) {
			return bad
		}
		vals = append(vals, v)
		p := &vals[len(vals)-1]
		c.names[name] = p
		c.order = append(c.order, nameCount{name, p})
		i = k
		if i < len(all)-1 {
			if all[i] != ',' || i+1 == len(all)-1 {
				return bad
			}
			i++
		}
	}
	c.fresh = slices.IsSortedFunc(c.order, func(a, b nameCount) int { return strings.Compare(a.name, b.name) }) && len(c.order) == len(c.names)
	return nil
}
