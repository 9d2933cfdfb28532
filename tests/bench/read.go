package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// readAll GETs url with Accept: application/x-ndjson and counts lines and
// bytes of the answer as it streams.
func readNDJSON(c *http.Client, url string) (lines, size int64, d time.Duration, err error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, 0, 0, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		n, rerr := br.Read(buf)
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		size += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return lines, size, time.Since(t0), rerr
		}
	}
	return lines, size, time.Since(t0), nil
}

// measureRead is figure 7: the whole 1,000,000-event log as NDJSON.
func (b *bench) measureRead() {
	const name = "full read of 1,000,000 events as NDJSON (standalone)"
	const target = "target ≥ 1,000,000 events/s"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("7", name, target, err)
		return
	}
	s, err := b.startServer(ds.data)
	if err != nil {
		b.rep.errorRow("7", name, target, err)
		return
	}
	c := newClient(1)
	cpu := startCPU(s.pid)
	var rates []float64
	var runs []string
	for i := 0; i < 3 && err == nil; i++ {
		var lines, size int64
		var d time.Duration
		lines, size, d, err = readNDJSON(c, s.url+"/events?limit=2000000")
		if err == nil && lines != ds.events {
			err = fmt.Errorf("read %d lines, want %d", lines, ds.events)
		}
		if err == nil {
			ds.avgLine = float64(size) / float64(lines)
			r := float64(lines) / d.Seconds()
			rates = append(rates, r)
			runs = append(runs, fmt.Sprintf("%.2fs (%s MB)", d.Seconds(), commas(size>>20)))
		}
	}
	cpuNote := cpu.String()
	hwm, _ := procStatus(s.pid, "VmHWM")
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		b.rep.errorRow("7", name, target, err)
		return
	}
	sorted := append([]float64(nil), rates...)
	sort.Float64s(sorted)
	med := sorted[len(sorted)/2]
	b.rep.add(&row{num: "7", name: name, value: commas(int64(med)) + " events/s", target: target, verdict: verdict(med >= 1000000),
		notes: []string{
			fmt.Sprintf("median of 3 reads of GET /events?limit=2000000 (Accept: application/x-ndjson), each streamed to the end: %v; freshly restarted server, log in the page cache", runs),
			fmt.Sprintf("average NDJSON line %.1f bytes (newline included)", ds.avgLine),
			cpuNote,
		}})
	b.rep.add(&row{num: "8z", name: "(context) standalone peak RSS after 3 full reads of the 1,000,000-event log", value: fmt.Sprintf("%.1f MB", float64(hwm)/1024),
		target: "—", verdict: info, notes: []string{"VmHWM of the server process, from /proc/PID/status"}})
}
