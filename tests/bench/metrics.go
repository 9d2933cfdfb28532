package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// measureMetrics is figures M1 (a /metrics scrape of a server with 100
// tenants) and M2 (what counting costs a CGI append).
func (b *bench) measureMetrics() {
	b.metricsScrape()
	b.metricsCGIAppend()
}

// metricsScrape is M1: a standalone server whose data directory has 100
// tenants, each appended to (so each has its rows in the metrics file),
// scraped 300 times, one request at a time.
func (b *bench) metricsScrape() {
	const name = "GET /metrics on a server with 100 tenants, standalone"
	const target = "target p50 ≤ 5 ms"
	data := filepath.Join(b.work, "metrics-m1")
	defer os.RemoveAll(data)
	const tenants = 100
	for i := 0; i < tenants; i++ {
		if _, err := b.cli(data, "", "tenant", "create", fmt.Sprintf("t%03d", i), "--tier", "unlimited"); err != nil {
			b.rep.errorRow("M1", name, target, err)
			return
		}
	}
	s, err := b.startServer(data)
	if err != nil {
		b.rep.errorRow("M1", name, target, err)
		return
	}
	defer s.stop()
	c := newClient(1)
	for i := 0; i < tenants; i++ {
		for j := 0; j < 3; j++ {
			ev := fmt.Appendf(nil, `{"type":"bench.metrics","entity":"e-%d","data":{"j":%d}}`, j, j)
			if err := post(c, fmt.Sprintf("%s/t/t%03d/events", s.url, i), "application/json", ev, 201); err != nil {
				b.rep.errorRow("M1", name, target, err)
				return
			}
		}
	}
	var ds []time.Duration
	size := 0
	for i := 0; i < 310; i++ {
		t0 := time.Now()
		resp, err := c.Get(s.url + "/metrics")
		if err != nil {
			b.rep.errorRow("M1", name, target, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.rep.errorRow("M1", name, target, fmt.Errorf("GET /metrics: %d %v", resp.StatusCode, err))
			return
		}
		if i >= 10 { // warm-up (stated)
			ds = append(ds, time.Since(t0))
		}
		size = len(body)
	}
	sortDurations(ds)
	p50 := percentile(ds, 50)
	b.rep.add(&row{num: "M1", name: name, value: "p50 " + ms(p50), target: target, verdict: verdict(p50 <= 5*time.Millisecond),
		notes: []string{fmt.Sprintf("300 scrapes after 10 warm-up, one at a time over keep-alive; p99 %s; %s bytes each", ms(percentile(ds, 99)), commas(int64(size)))}})
}

// metricsCGIAppend is M2: single CGI appends (direct exec) counting into
// the shared metrics file, against the same binary with STRATA_METRICS=off
// (nothing opened, mapped or counted), alternating, each on its own data
// directory.
func (b *bench) metricsCGIAppend() {
	const name = "what metrics add to a CGI append, direct exec (against STRATA_METRICS=off)"
	const target = "target ≤ 0.1 ms"
	on, off := filepath.Join(b.work, "metrics-m2-on"), filepath.Join(b.work, "metrics-m2-off")
	defer os.RemoveAll(on)
	defer os.RemoveAll(off)
	ev := func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"bench.appended","entity":"e-%d","data":{"i":%d,"sku":"A-1","qty":3}}`, i, i)
	}
	var with, without []time.Duration
	const runs = 1000 // the difference is a few percent of a CGI append: many runs
	for i := 0; i < runs; i++ {
		a, err := b.cgiTimes(1, "201", func(int) (string, string, string, []byte, []string) {
			return off, "POST", "/events", ev(i), []string{"STRATA_AUTH=none", "STRATA_METRICS=off"}
		})
		if err != nil {
			b.rep.errorRow("M2", name, target, err)
			return
		}
		m, err := b.cgiTimes(1, "201", func(int) (string, string, string, []byte, []string) {
			return on, "POST", "/events", ev(i), []string{"STRATA_AUTH=none"}
		})
		if err != nil {
			b.rep.errorRow("M2", name, target, err)
			return
		}
		if i >= 10 { // warm-up (stated)
			without, with = append(without, a...), append(with, m...)
		}
	}
	sortDurations(with)
	sortDurations(without)
	pw, po := percentile(with, 50), percentile(without, 50)
	extra := pw - po
	b.rep.add(&row{num: "M2", name: name, value: fmt.Sprintf("%+.3f ms (p50 %.3f vs %.3f ms)", ms64(extra), ms64(pw), ms64(po)), target: target,
		verdict: verdict(extra <= 100*time.Microsecond),
		notes:   []string{fmt.Sprintf("%d alternating runs of each after 10 warm-up pairs; p99 with %.3f ms, without %.3f ms; includes fork+exec and the fsync", runs-10, ms64(percentile(with, 99)), ms64(percentile(without, 99)))}})
}
