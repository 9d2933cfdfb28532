package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// measureEntity is figure 11: GET /entities/<entity> of an entity with
// 100,000 events (and one of 1,000 for context), time travel to arbitrary
// versions of it, and a page of its events, standalone; the state in CGI
// (the binary run directly, one process per request) for context —
// through Apache it is figure 11e, from tests/apache/bench.sh. Reads go
// through the snapshots (every 128 versions by default) and the
// latest-state cache; the untimed first read of each builds them.
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
	rng := rand.New(rand.NewPCG(11, 11))
	var firstRead time.Duration // the untimed first read of the big entity: every snapshot written
	for _, m := range []struct {
		num, name, entity string
		events, reqs      int
		query             func() string
		target            string
		within            time.Duration // 0: a figure for context
		note              string
	}{
		{"11z", "(context) entity state, entity with 1,000 events, standalone", "small", 1000, 200, nil, "—", 0,
			"200 sequential GET /entities/small after one untimed (which wrote its snapshots and latest-state cache)"},
		{"11", "entity state, entity with 100,000 events, standalone", "big", 100000, 200, nil, "target p50 ≤ 0.5 ms", 500 * time.Microsecond,
			"200 sequential GET /entities/big after one untimed, which folded all 100,000 events and wrote 781 snapshots and the latest-state cache (%s); later reads start from that cache"},
		{"11b", "time travel to an arbitrary version of that entity, standalone", "big", 0, 200,
			func() string { return fmt.Sprintf("?version=%d", 1+rng.IntN(100000)) }, "target p50 ≤ 2 ms", 2 * time.Millisecond,
			"200 sequential GET /entities/big?version=<uniformly random 1..100,000>: the nearest snapshot at or before it (≤ 127 versions back) plus the events after it"},
		{"11c", "GET /events?entity=<exact>&limit=10 on that entity, standalone", "", 0, 200,
			func() string { return "" }, "target p50 ≤ 0.5 ms", 500 * time.Microsecond,
			"200 sequential GET /events?entity=big&limit=10 (its first ten events: read forward from the first version checkpoint)"},
		{"11d", "(context) GET /events?entity=<exact>&limit=10&after=<seq in the middle>", "", 0, 200,
			func() string { return "" }, "—", 0,
			"200 sequential GET /events?entity=big&limit=10&after=<a uniformly random seq of the log>"},
	} {
		target := m.target
		if m.events > 0 {
			if err := fill(m.entity, m.events); err != nil {
				b.rep.errorRow(m.num, m.name, target, err)
				continue
			}
		}
		url := func() string {
			switch m.num {
			case "11c":
				return s.url + "/events?entity=big&limit=10"
			case "11d":
				return fmt.Sprintf("%s/events?entity=big&limit=10&after=%d", s.url, 1+rng.IntN(125000))
			}
			u := s.url + "/entities/" + m.entity
			if m.query != nil {
				u += m.query()
			}
			return u
		}
		var lat []time.Duration
		d, err := get(url()) // warm-up: the log into the page cache, the snapshots written
		if err != nil {
			b.rep.errorRow(m.num, m.name, target, err)
			continue
		}
		if m.num == "11" {
			firstRead = d
		}
		for i := 0; i < m.reqs && err == nil; i++ {
			var d time.Duration
			d, err = get(url())
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
		note := m.note
		if strings.Contains(note, "%s") {
			note = fmt.Sprintf(note, fmt.Sprintf("%.0f ms", ms64(firstRead)))
		}
		b.rep.add(&row{num: m.num, name: m.name, value: fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", ms64(p50), ms64(percentile(lat, 99))), target: target,
			verdict: v, notes: []string{note}})
	}
	b.measureEntitySearch(s, c, get)
	// CGI, the binary run directly: what a CGI request pays without the web
	// server's part (figure 11e through Apache has it).
	var lat []time.Duration
	for i := 0; i < cgiRuns/2; i++ {
		out, d, err := b.cgiGet(data, "/entities/big", "")
		if err == nil {
			var st string
			if st, _, err = cgiBody(out); err == nil && st != "200" {
				err = fmt.Errorf("status %s", st)
			}
		}
		if err != nil {
			b.rep.errorRow("11f", "(context) entity state in CGI, run directly", "—", err)
			return
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	b.rep.add(&row{num: "11f", name: "(context) entity state, 100,000 events, CGI run directly (no web server)", value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms64(percentile(lat, 50)), ms64(percentile(lat, 99))), target: "—",
		verdict: info, notes: []string{fmt.Sprintf("%d sequential runs of the binary as a CGI program answering GET /entities/big (fork+exec+start-up+answer) on the standalone server's data", cgiRuns/2)}})
}

// measureEntitySearch is figure 11g, for context: searches of current
// states through the state index over 100,000 entities — a page when the
// index is current, and a page right after one append (the index caught
// up and written anew, untouched blocks copied: O(index size), the cost a
// delta file would remove).
func (b *bench) measureEntitySearch(s *server, c *http.Client, get func(string) (time.Duration, error)) {
	const n, batch = 100000, 5000
	for done := 0; done < n; done += batch {
		var sb strings.Builder
		for i := done; i < done+batch; i++ {
			fmt.Fprintf(&sb, `{"type":"item.added","entity":"item/%06d","data":{"n":%d,"status":"s%d","tags":["a","b"]}}`+"\n", i, i, i%3)
		}
		if err := post(c, s.url+"/events", "application/x-ndjson", []byte(sb.String()), 201); err != nil {
			b.rep.errorRow("11g", "(context) search of current states", "—", err)
			return
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	page := func() string {
		return fmt.Sprintf("%s/entities?prefix=item/&limit=100&after=item/%06d", s.url, rng.IntN(n))
	}
	first, err := get(page()) // builds the index from the log
	if err != nil {
		b.rep.errorRow("11g", "(context) search of current states", "—", err)
		return
	}
	var warm, caught []time.Duration
	for i := 0; i < 100 && err == nil; i++ {
		var d time.Duration
		d, err = get(page())
		warm = append(warm, d)
	}
	for i := 0; i < 20 && err == nil; i++ {
		if err = post(c, s.url+"/events", "application/json", []byte(`{"type":"item.changed","entity":"item/000001","data":{"n":-1}}`), 201); err != nil {
			break
		}
		var d time.Duration
		d, err = get(page())
		caught = append(caught, d)
	}
	if err != nil {
		b.rep.errorRow("11g", "(context) search of current states", "—", err)
		return
	}
	slices.Sort(warm)
	slices.Sort(caught)
	b.rep.add(&row{num: "11g", name: "(context) GET /entities?prefix=item/&limit=100, 100,000 entities, standalone", value: fmt.Sprintf("p50 %.3f ms current; p50 %.1f ms after an append", ms64(percentile(warm, 50)), ms64(percentile(caught, 50))), target: "—",
		verdict: info, notes: []string{fmt.Sprintf("100 pages of 100 at random cursors from a current index (the first search built it from the log: %.0f ms); then 20 times an append and a page: the index caught up (the touched block re-encoded, the others copied byte for byte: O(index size))", ms64(first))}})
}
