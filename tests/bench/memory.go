package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measureMemory is figure 8: the standalone server's peak RSS while it
// serves a 10,000,000-event log. Slow (it writes ~4 GB): BENCH_FULL=1 only.
func (b *bench) measureMemory() {
	const name = "standalone peak RSS serving a 10,000,000-event log (VmHWM)"
	const target = "target ≤ 64 MB"
	if !b.full {
		b.rep.add(&row{num: "8", name: name, value: "—", target: target, verdict: skip, notes: []string{"skipped (set BENCH_FULL=1, or pass -full)"}})
		return
	}
	const total = 10000000
	t0 := time.Now()
	// Building this one log with --unsafe-nosync (stated): its durability is
	// not what is measured here, only the memory of serving it.
	ds, err := b.buildDataset("log10m", total, "--unsafe-nosync")
	if err != nil {
		b.rep.errorRow("8", name, target, err)
		return
	}
	defer os.RemoveAll(ds.data)
	built := time.Since(t0)

	t1 := time.Now()
	s, err := b.startServer(ds.data) // default durability from here on
	if err != nil {
		b.rep.errorRow("8", name, target, err)
		return
	}
	opened := time.Since(t1)
	c := newClient(8)
	var stats []string
	err = func() error {
		r := rand.New(rand.NewPCG(7, 8))
		get := func(url string, accept string) (int64, error) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				return n, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
			}
			return n, err
		}
		phase := func(label string, n int, fn func(i int) error) error {
			t := time.Now()
			for i := 0; i < n; i++ {
				if err := fn(i); err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
			}
			stats = append(stats, fmt.Sprintf("%s: %d in %.2fs, after: %s", label, n, time.Since(t).Seconds(), rssSplit(s.pid)))
			return nil
		}
		if err := phase("GET /head", 200, func(int) error { _, err := get(s.url+"/head", ""); return err }); err != nil {
			return err
		}
		// from= near head and anywhere; each id found by after=<seq-1>&limit=1.
		if err := phase("GET /events?from=<id within 5,000 of head>&limit=100", 200, func(int) error {
			e, err := eventAt(c, s.url, ds.headSeq-uint64(r.IntN(5000)))
			if err == nil {
				_, err = get(s.url+"/events?limit=100&from="+e.ID, "")
			}
			return err
		}); err != nil {
			return err
		}
		var ents []string
		if err := phase("GET /events?from=<random id>&limit=100, then /events/<id>", 500, func(int) error {
			e, err := eventAt(c, s.url, 1+uint64(r.Int64N(int64(ds.headSeq))))
			if err == nil {
				ents = append(ents, e.Entity)
				_, err = get(s.url+"/events?limit=100&from="+e.ID, "")
			}
			if err == nil {
				_, err = get(s.url+"/events/"+e.ID, "")
			}
			return err
		}); err != nil {
			return err
		}
		if err := phase("GET /events?entity=<entity of a random event> (whole stream)", len(ents), func(i int) error {
			_, err := get(s.url+"/events?entity="+ents[i], "")
			return err
		}); err != nil {
			return err
		}
		// 8 concurrent readers of random pages for 5 s.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var cerr error
		var cn int
		t := time.Now()
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rr := rand.New(rand.NewPCG(uint64(w), 99))
				for time.Since(t) < 5*time.Second {
					_, err := get(fmt.Sprintf("%s/events?after=%d&limit=1000", s.url, rr.Int64N(int64(ds.headSeq))), "application/x-ndjson")
					mu.Lock()
					cn++
					if err != nil && cerr == nil {
						cerr = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if cerr != nil {
			return fmt.Errorf("concurrent pages: %w", cerr)
		}
		stats = append(stats, fmt.Sprintf("8 concurrent clients, GET /events?after=<random>&limit=1000 NDJSON: %d in 5s, after: %s", cn, rssSplit(s.pid)))
		return phase("full NDJSON read of the last 1,000,000 events", 1, func(int) error {
			lines, _, d, err := readNDJSON(c, fmt.Sprintf("%s/events?after=%d&limit=1000000", s.url, ds.headSeq-1000000))
			if err == nil && lines != 1000000 {
				err = fmt.Errorf("read %d lines", lines)
			}
			if err == nil {
				stats = append(stats, fmt.Sprintf("(last 1M read at %s events/s)", commas(int64(1e6/d.Seconds()))))
			}
			return err
		})
	}()
	hwm, herr := procStatus(s.pid, "VmHWM")
	top := topMappings(s.pid, 6)
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err == nil {
		err = herr
	}
	if err != nil {
		b.rep.errorRow("8", name, target, err)
		return
	}
	alloc, _, _, _ := dirUsage(ds.data)
	mb := float64(hwm) / 1024
	notes := []string{
		fmt.Sprintf("log built by batched ingest WITH --unsafe-nosync (building this one log only) in %.0fs: %s MB on disk; server restarted on it with default durability, listening after %.2fs",
			built.Seconds(), commas(alloc>>20), opened.Seconds()),
		"VmHWM of the restarted server (peak since it started) after the mix below; pages of mmap'd files (the hash indexes) that the process has touched count toward RSS (RssFile)",
	}
	notes = append(notes, stats...)
	notes = append(notes, "largest resident mappings at the end (smaps Rss): "+top)
	b.rep.add(&row{num: "8", name: name, value: fmt.Sprintf("%.1f MB", mb), target: target, verdict: verdict(mb <= 64), notes: notes})
}

// rssSplit says how much of the resident set is anonymous (heap, stacks)
// and how much is file pages mapped into the process (the log's mmaps).
func rssSplit(pid int) string {
	rss, _ := procStatus(pid, "VmRSS")
	anon, _ := procStatus(pid, "RssAnon")
	file, _ := procStatus(pid, "RssFile")
	return fmt.Sprintf("VmRSS %.1f MB (RssAnon %.1f, RssFile %.1f)", float64(rss)/1024, float64(anon)/1024, float64(file)/1024)
}

// topMappings lists the n mappings with the largest Rss from /proc/PID/smaps.
func topMappings(pid, n int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error()
	}
	type m struct {
		name      string
		size, rss int64
	}
	var all []m
	var cur *m
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			name := "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(f[5])
				if strings.HasPrefix(f[5], "[") {
					name = f[5]
				}
			}
			all = append(all, m{name: name})
			cur = &all[len(all)-1]
			continue
		}
		if cur != nil && len(f) >= 2 && (f[0] == "Rss:" || f[0] == "Size:") {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "Rss:" {
				cur.rss = v
			} else {
				cur.size = v
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rss > all[j].rss })
	var parts []string
	for i := 0; i < n && i < len(all); i++ {
		parts = append(parts, fmt.Sprintf("%s %.1f of %.1f MB", all[i].name, float64(all[i].rss)/1024, float64(all[i].size)/1024))
	}
	return strings.Join(parts, "; ")
}
