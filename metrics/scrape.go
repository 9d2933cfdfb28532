package metrics

import (
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"strata/internal/shm"
)

// snapshot is the file's rows as of one scrape, rows with the same key
// added together.
type snapshot struct {
	rows    map[string]*[nvals]uint64
	dropped uint64
}

// read copies every ready row out of the file.
func (s *Set) read() snapshot {
	snap := snapshot{rows: map[string]*[nvals]uint64{}}
	s.do(func(mem []byte) {
		clear(snap.rows)
		snap.dropped = atomic.LoadUint64(shm.Word(mem, offDropped))
		for _, k := range []byte{kindFsync, kindGroup, kindLock} {
			v := new([nvals]uint64)
			for j := range v {
				v[j] = atomic.LoadUint64(val(mem, fixedRow(k), j))
			}
			snap.rows[string(k)] = v
		}
		for i := 0; i < slots; i++ {
			off := rowsAt + i*slotSize
			if atomic.LoadUint64(shm.Word(mem, off))&ready == 0 {
				continue
			}
			n := min(int(mem[off+keyOff]), keyMax)
			key := string(mem[off+keyOff+1 : off+keyOff+1+n])
			v := snap.rows[key]
			if v == nil {
				v = new([nvals]uint64)
				snap.rows[key] = v
			}
			for j := range v {
				v[j] += atomic.LoadUint64(val(mem, off, j))
			}
		}
	})
	return snap
}

// keysOf returns the keys of kind's rows, sorted.
func (snap snapshot) keysOf(kind byte) []string {
	var ks []string
	for k := range snap.rows {
		if len(k) > 0 && k[0] == kind {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// Options are what the scrape needs from its caller.
type Options struct {
	// ReadKind names the kind of read a route is ("events", "entities", …),
	// or "" for a route that is no read.
	ReadKind func(method, pattern string) string
}

// Write writes every metric of the file, then the process's own, in the
// text format. A nil Set writes the process's metrics alone.
func (s *Set) Write(w *Writer, o Options) {
	snap := s.read()
	writeHTTP(w, snap, o)
	writeTenants(w, snap)
	hist := func(kind byte, name, help string, bounds []float64, unit float64) {
		v := snap.rows[string(kind)]
		if v == nil {
			v = new([nvals]uint64)
		}
		w.Family(name, "histogram", help)
		w.Histogram(name, bounds, v[:len(bounds)+1], float64(v[len(bounds)+1])*unit)
	}
	hist(kindFsync, "strata_fsync_duration_seconds", "Time one fdatasync of a log segment took (its count is the number of fsyncs).", fsyncBounds, 1e-9)
	hist(kindGroup, "strata_group_commit_events", "Events written by one group commit (one write and one fsync).", groupBounds, 1)
	hist(kindLock, "strata_lock_wait_seconds", "Time spent waiting for a tenant's lock held by another process.", secondsBounds, 1e-9)
	w.Family("strata_auth_failures_total", "counter", "Requests refused for their credentials, by error code.")
	for _, k := range snap.keysOf(kindAuth) {
		w.Sample("strata_auth_failures_total", float64(snap.rows[k][0]), "code", k[1:])
	}
	w.Family("strata_metrics_dropped_total", "counter", "Observations lost because the metrics file's table was full.")
	w.Sample("strata_metrics_dropped_total", float64(snap.dropped))
	WriteProcess(w)
}

// writeHTTP writes the request counters, the latency histograms (by
// route, all codes together) and the reads by kind.
func writeHTTP(w *Writer, snap snapshot, o Options) {
	type series struct{ method, route, code string }
	keys := snap.keysOf(kindHTTP)
	parse := func(k string) series {
		mr, code, _ := strings.Cut(k[1:], "\x00")
		m, r, _ := strings.Cut(mr, " ")
		if r == "" {
			r = "unmatched"
		}
		return series{m, r, code}
	}
	w.Family("strata_http_requests_total", "counter", "HTTP requests answered, by method, route pattern and status code.")
	for _, k := range keys {
		s, v := parse(k), snap.rows[k]
		w.Sample("strata_http_requests_total", float64(sum(v[:len(secondsBounds)+1])), "method", s.method, "route", s.route, "code", s.code)
	}
	w.Family("strata_http_request_duration_seconds", "histogram", "Time from a request's arrival to its answer, by method and route pattern.")
	for i := 0; i < len(keys); {
		s := parse(keys[i])
		var acc [nvals]uint64
		for ; i < len(keys) && parse(keys[i]).method == s.method && parse(keys[i]).route == s.route; i++ {
			for j, x := range snap.rows[keys[i]] {
				acc[j] += x
			}
		}
		w.Histogram("strata_http_request_duration_seconds", secondsBounds, acc[:len(secondsBounds)+1], nanos(acc[len(secondsBounds)+1]), "method", s.method, "route", s.route)
	}
	w.Family("strata_reads_total", "counter", "Successful reads, by kind (what they read).")
	reads := map[string]uint64{}
	for _, k := range keys {
		s := parse(k)
		if o.ReadKind == nil || s.code >= "400" {
			continue
		}
		if kind := o.ReadKind(s.method, s.route); kind != "" {
			reads[kind] += sum(snap.rows[k][:len(secondsBounds)+1])
		}
	}
	kinds := make([]string, 0, len(reads))
	for k := range reads {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		w.Sample("strata_reads_total", float64(reads[k]), "kind", k)
	}
}

// writeTenants writes the per-tenant counters and gauges.
func writeTenants(w *Writer, snap snapshot) {
	keys := snap.keysOf(kindTenant)
	each := func(name, typ, help string, i int) {
		w.Family(name, typ, help)
		for _, k := range keys {
			w.Sample(name, float64(snap.rows[k][i]), "tenant", k[1:])
		}
	}
	each("strata_events_appended_total", "counter", "Events appended, by tenant.", tAppended)
	each("strata_appended_bytes_total", "counter", "Bytes of event data and meta appended, by tenant.", tBytes)
	each("strata_append_requests_total", "counter", "Append requests that stored events, by tenant.", tRequests)
	each("strata_log_events", "gauge", "Events in the tenant's log (its head seq) as of its last append.", tEvents)
	each("strata_log_bytes", "gauge", "Bytes of the tenant's log segments on disk as of its last append or compaction.", tLogBytes)
	each("strata_entities", "gauge", "Entities in the tenant's log as of its last append.", tEntities)
	each("strata_compaction_segments_total", "counter", "Sealed log segments compressed by a server's compaction (POST /admin/compaction, background), by tenant.", tCompacted)
	each("strata_compaction_saved_bytes_total", "counter", "Bytes those compactions saved (segment size before minus after), by tenant.", tCompactSaved)
	w.Family("strata_quota_refusals_total", "counter", "Requests refused by a quota, by tenant and quota.")
	for _, k := range keys {
		for i, q := range quotaNames {
			if n := snap.rows[k][tRefusals+i]; n > 0 {
				w.Sample("strata_quota_refusals_total", float64(n), "tenant", k[1:], "quota", q)
			}
		}
	}
}

func sum(v []uint64) uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}

// WriteProcess writes the metrics of the process answering the scrape.
// Under CGI that is the scrape's own short-lived process.
func WriteProcess(w *Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Family("strata_process_heap_bytes", "gauge", "Bytes of allocated heap objects in the process answering the scrape.")
	w.Sample("strata_process_heap_bytes", float64(ms.HeapAlloc))
	w.Family("strata_process_memory_bytes", "gauge", "Bytes of memory the Go runtime obtained from the system in the process answering the scrape.")
	w.Sample("strata_process_memory_bytes", float64(ms.Sys))
	w.Family("strata_goroutines", "gauge", "Goroutines in the process answering the scrape.")
	w.Sample("strata_goroutines", float64(runtime.NumGoroutine()))
	w.Family("strata_info", "gauge", "Always 1; the labels say which Go runtime serves.")
	w.Sample("strata_info", 1, "go_version", runtime.Version(), "metrics_file_version", strconv.Itoa(version))
}
