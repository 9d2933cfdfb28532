package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ingestResult is what one batched-ingest run did.
type ingestResult struct {
	events, requests int64
	elapsed          time.Duration
	lat              []time.Duration // per request, sorted
	cpu              string
}

// ingest POSTs NDJSON batches of `batch` events from `conns` concurrent
// keep-alive connections until maxEvents are stored (0: no cap) or dur
// passes (0: no limit). body(worker) returns the next body of a worker.
func ingest(s *server, conns, batch int, maxEvents int64, dur time.Duration, body func(worker int) []byte) (ingestResult, error) {
	c := newClient(conns)
	defer c.CloseIdleConnections()
	url := s.url + "/events"
	var (
		reserved, done atomic.Int64
		stop           atomic.Bool
		firstErr       error
		errOnce        sync.Once
		mu             sync.Mutex
		lat            []time.Duration
		wg             sync.WaitGroup
	)
	cpu := startCPU(s.pid)
	t0 := time.Now()
	deadline := t0.Add(dur)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var my []time.Duration
			for !stop.Load() {
				if maxEvents > 0 && reserved.Add(int64(batch)) > maxEvents {
					break
				}
				if dur > 0 && time.Now().After(deadline) {
					break
				}
				b := body(w)
				st := time.Now()
				if err := post(c, url, "application/x-ndjson", b, 201); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					break
				}
				my = append(my, time.Since(st))
				done.Add(int64(batch))
			}
			mu.Lock()
			lat = append(lat, my...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res := ingestResult{events: done.Load(), requests: int64(len(lat)), elapsed: time.Since(t0)}
	res.cpu = fmt.Sprintf("%s; server CPU %.2f µs/event", cpu, float64(cpu.serverPer(res.events))/1e3)
	sortDurations(lat)
	res.lat = lat
	return res, firstErr
}

func (r ingestResult) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

// measureIngest is figure 1: batched ingest, 1,000 events per request,
// fsync per request (the server's default), several connections. A shorter
// context run with --unsafe-nosync follows, to tell the CPU path from fsync.
func (b *bench) measureIngest() {
	b.ingestRow("1", "batched ingest (1,000 events/request NDJSON, fsync/request)", "target ≥ 500,000 events/s", b.ingestD)
	b.ingestRow("1z", "(context) the same with --unsafe-nosync: CPU path only, NOT durable", "—", b.ingestD/2, "--unsafe-nosync")
}

func (b *bench) ingestRow(num, name, target string, dur time.Duration, extra ...string) {
	data := filepath.Join(b.work, "ingest"+num)
	defer os.RemoveAll(data)
	s, err := b.startServer(data, extra...)
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	// A pool of distinct bodies, generated before the clock starts, so the
	// load generator spends its CPU sending rather than formatting JSON.
	const pool = 64
	g := newGen(1)
	bodies := make([][]byte, pool)
	for i := range bodies {
		bodies[i] = g.ndjsonBatch(1000)
	}
	var next atomic.Int64
	body := func(int) []byte { return bodies[next.Add(1)%pool] }
	// Warm-up (stated): 20 requests, untimed, so connections exist and the
	// tenant is open before the clock starts.
	if _, err := ingest(s, b.conns, 1000, 20000, 0, body); err != nil {
		s.stop()
		b.rep.errorRow(num, name, target, err)
		return
	}
	res, err := ingest(s, b.conns, 1000, 3000000, dur, body)
	serr := s.stop()
	if err == nil {
		err = serr
	}
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	rate := res.rate()
	v := info
	if target != "—" {
		v = verdict(rate >= 500000)
	}
	notes := []string{
		fmt.Sprintf("%s events in %d requests over %.2fs from %d keep-alive connections; request p50 %s p99 %s",
			commas(res.events), res.requests, res.elapsed.Seconds(), b.conns, ms(percentile(res.lat, 50)), ms(percentile(res.lat, 99))),
		res.cpu,
	}
	if v != info {
		notes = append(notes, fmt.Sprintf("bodies: %d pre-generated NDJSON batches of 1,000 events (~%d KB each), cycled; warm-up: 20 untimed requests first", pool, len(bodies[0])>>10))
	}
	b.rep.add(&row{num: num, name: name, value: commas(int64(rate)) + " events/s", target: target, verdict: v, notes: notes})
}

// dataset is a data directory holding a log built by batched ingest.
type dataset struct {
	name    string
	data    string
	events  int64
	headSeq uint64
	fromID  string // id of the event 1,000 before head (seq head-1000)
	avgLine float64
}

// buildDataset ingests n fresh events (a new body for every request) into a
// new data directory with the server's default durability unless extra
// says otherwise, records its head and the id 1,000 before it, and stops
// the server.
func (b *bench) buildDataset(name string, n int64, extra ...string) (*dataset, error) {
	data := filepath.Join(b.work, name)
	s, err := b.startServer(data, extra...)
	if err != nil {
		return nil, err
	}
	const conns = 4
	gens := make([]*gen, conns)
	for i := range gens {
		gens[i] = newGen(uint64(1000 + i))
	}
	batch := 1000
	if n < int64(batch) {
		batch = int(n)
	}
	res, err := ingest(s, conns, batch, n, 0, func(w int) []byte { return gens[w].ndjsonBatch(batch) })
	if err == nil && res.events != n {
		err = fmt.Errorf("stored %d events, want %d", res.events, n)
	}
	ds := &dataset{name: name, data: data, events: res.events}
	if err == nil {
		c := newClient(1)
		var h headInfo
		if err = getJSON(c, s.url+"/head", &h); err == nil {
			ds.headSeq = h.Seq
			var e servedEvent
			if e, err = eventAt(c, s.url, h.Seq-1000); err == nil {
				ds.fromID = e.ID
			}
		}
	}
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", name, err)
	}
	progress("built %s: %s events in %.1fs (%s/s) %v", name, commas(res.events), res.elapsed.Seconds(), commas(int64(res.rate())), extra)
	return ds, nil
}

// dataset1M builds (once) the 1,000,000-event log shared by figures 6, 7, 9.
func (b *bench) dataset1M() (*dataset, error) {
	if b.ds1m != nil {
		return b.ds1m, nil
	}
	ds, err := b.buildDataset("log1m", 1000000)
	if err != nil {
		return nil, err
	}
	b.ds1m = ds
	return ds, nil
}
