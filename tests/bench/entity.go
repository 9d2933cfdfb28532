package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// measureEntity is figure 11: GET /entities/<entity>, which folds the
// entity's events from its first on every request until the state cache
// and snapshots exist (issue 8 §5), for an entity of 1,000 and one of
// 100,000 events, and time travel to the middle of the long one.
func (b *bench) measureEntity() {
	data := filepath.Join(b.work, "entity")
	defer os.RemoveAll(data)
	s, err := b.startServer(data)
	if err != nil {
		b.rep.errorRow("11", "entity state", "target p50 ≤ 0.5 ms", err)
		return
	}
	defer s.stop()
	c := newClient(1)
	// Every event merges a few members, one of which changes each time;
	// "noise" events of another entity lie between them.
	fill := func(entity string, n int) error {
		const batch = 5000
		for done := 0; done < n; done += batch {
			var sb strings.Builder
			for i := done; i < min(done+batch, n); i++ {
				fmt.Fprintf(&sb, `{"type":"item.changed","entity":%q,"data":{"n":%d,"k%d":"v","status":"s%d"}}`+"\n", entity, i, i%10, i%3)
				if i%4 == 0 {
					sb.WriteString(`{"type":"noise","entity":"noise","data":{"x":1}}` + "\n")
				}
			}
			if err := post(c, s.url+"/events", "application/x-ndjson", []byte(sb.String()), 201); err != nil {
				return err
			}
		}
		return nil
	}
	get := func(url string) (time.Duration, error) {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		return time.Since(t0), err
	}
	for _, m := range []struct {
		num, name, entity string
		events, reqs      int
		query, target     string
		within            time.Duration // 0: a figure for context
	}{
		{"11z", "(context) entity state, entity with 1,000 events, standalone", "small", 1000, 200, "", "—", 0},
		{"11", "entity state, entity with 100,000 events, standalone", "big", 100000, 21, "", "target p50 ≤ 0.5 ms (with the state cache and snapshots to come)", 500 * time.Microsecond},
		{"11b", "time travel to version 50,000 of that entity, standalone", "big", 0, 21, "?version=50000", "target p50 ≤ 2 ms (with snapshots to come)", 2 * time.Millisecond},
	} {
		target := m.target
		if m.events > 0 {
			if err := fill(m.entity, m.events); err != nil {
				b.rep.errorRow(m.num, m.name, target, err)
				continue
			}
		}
		url := s.url + "/entities/" + m.entity + m.query
		var lat []time.Duration
		if _, err = get(url); err != nil { // warm-up: the log into the page cache
			b.rep.errorRow(m.num, m.name, target, err)
			continue
		}
		for i := 0; i < m.reqs && err == nil; i++ {
			var d time.Duration
			d, err = get(url)
			lat = append(lat, d)
		}
		if err != nil {
			b.rep.errorRow(m.num, m.name, target, err)
			continue
		}
		slices.Sort(lat)
		p50 := percentile(lat, 50)
		v := verdict(p50 <= m.within)
		if m.within == 0 {
			v = info
		}
		b.rep.add(&row{num: m.num, name: m.name, value: fmt.Sprintf("p50 %.3f ms", ms64(p50)), target: target,
			verdict: v,
			notes:   []string{fmt.Sprintf("%d sequential GET /entities/%s%s after one untimed; no state cache yet: every request folds the entity's events from its first (merge patches of 4 members)", m.reqs, m.entity, m.query)}})
	}
}
