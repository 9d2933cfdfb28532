package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// appendRun is single-event appends from `clients` concurrent keep-alive
// clients, each append acknowledged (201) only once durable.
type appendRun struct {
	n       int64
	elapsed time.Duration
	lat     []time.Duration
	cpu     string
	cpuSrv  time.Duration // the server's CPU time during the run
}

func singleAppends(s *server, clients int, maxPerClient int, dur time.Duration, seed uint64, hdr ...string) (appendRun, error) {
	c := newClient(clients)
	defer c.CloseIdleConnections()
	url := s.url + "/events"
	var (
		stop     atomic.Bool
		firstErr error
		once     sync.Once
		mu       sync.Mutex
		lat      []time.Duration
		wg       sync.WaitGroup
	)
	cpu := startCPU(s.pid)
	t0 := time.Now()
	deadline := t0.Add(dur)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g := newGen(seed + uint64(i))
			my := make([]time.Duration, 0, 1024)
			buf := make([]byte, 0, 512)
			for n := 0; !stop.Load() && (maxPerClient == 0 || n < maxPerClient); n++ {
				if dur > 0 && time.Now().After(deadline) {
					break
				}
				buf = g.appendEvent(buf[:0])
				st := time.Now()
				if err := post(c, url, "application/json", buf, 201, hdr...); err != nil {
					once.Do(func() { firstErr = err })
					stop.Store(true)
					break
				}
				my = append(my, time.Since(st))
			}
			mu.Lock()
			lat = append(lat, my...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	r := appendRun{n: int64(len(lat)), elapsed: time.Since(t0), cpuSrv: cpuTime(s.pid) - cpu.srv0}
	r.cpu = fmt.Sprintf("%s; server CPU %.1f µs/request", cpu, float64(cpu.serverPer(r.n))/1e3)
	sortDurations(lat)
	r.lat = lat
	return r, firstErr
}

// measureAppends is figure 2: 64 concurrent clients, one event per request,
// then a shorter context run with --unsafe-nosync.
func (b *bench) measureAppends() {
	b.appendsRow("2", "single-event appends, 64 concurrent clients (keep-alive, durable)", "target ≥ 50,000 events/s", b.ingestD)
	b.appendsRow("2z", "(context) the same with --unsafe-nosync: CPU path only, NOT durable", "—", b.ingestD/2, "--unsafe-nosync")
}

func (b *bench) appendsRow(num, name, target string, dur time.Duration, extra ...string) {
	data := filepath.Join(b.work, "appends"+num)
	defer os.RemoveAll(data)
	s, err := b.startServer(data, extra...)
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	// Warm-up (stated): 5 untimed appends per client, so all 64 connections
	// are open before the clock starts.
	_, err = singleAppends(s, 64, 5, 0, 100)
	var r appendRun
	if err == nil {
		r, err = singleAppends(s, 64, 0, dur, 200)
	}
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	rate := float64(r.n) / r.elapsed.Seconds()
	v := info
	what := "each its own request, answered 201 after fsync; group commit shares fsyncs"
	if target != "—" {
		v = verdict(rate >= 50000)
	} else {
		what = "each its own request, no fsync"
	}
	notes := []string{
		fmt.Sprintf("%s appends (%s) in %.2fs; per-request p50 %s p99 %s",
			commas(r.n), what, r.elapsed.Seconds(), ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99))),
		r.cpu,
	}
	if v != info {
		notes = append(notes, "warm-up: 5 untimed appends per client first")
	}
	b.rep.add(&row{num: num, name: name, value: commas(int64(rate)) + " events/s", target: target, verdict: v, notes: notes})
}

// measureLatency is figure 3: one client, one event per request.
func (b *bench) measureLatency() {
	const name = "single-event append latency, 1 client (keep-alive, durable)"
	const target = "target p50 ≤ 0.5 ms"
	data := filepath.Join(b.work, "latency")
	defer os.RemoveAll(data)
	s, err := b.startServer(data)
	if err != nil {
		b.rep.errorRow("3", name, target, err)
		return
	}
	_, err = singleAppends(s, 1, 200, 0, 300) // warm-up (stated)
	var r appendRun
	if err == nil {
		r, err = singleAppends(s, 1, 10000, b.ingestD, 400)
	}
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		b.rep.errorRow("3", name, target, err)
		return
	}
	p50, p99 := percentile(r.lat, 50), percentile(r.lat, 99)
	b.rep.add(&row{num: "3", name: name, value: fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", ms64(p50), ms64(p99)), target: target,
		verdict: verdict(p50 <= 500*time.Microsecond),
		notes: []string{
			fmt.Sprintf("%s sequential appends in %.2fs (%.0f/s), each answered 201 after its fsync; max %s",
				commas(r.n), r.elapsed.Seconds(), float64(r.n)/r.elapsed.Seconds(), ms(r.lat[len(r.lat)-1])),
			r.cpu,
			"warm-up: 200 untimed appends first",
		}})
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }
