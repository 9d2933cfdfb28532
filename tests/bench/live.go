package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Live subscriptions (issue 9 §6): GET /stream (Server-Sent Events) from
// raw TCP subscribers, so the load generator's side of thousands of
// connections costs little (no http.Client, no goroutine for a connection
// that is only held).
//
//	L1  write-to-delivery latency, 1,000 subscribers
//	L2  catch-up delivery to one subscriber (the 1,000,000-event log)
//	L3  subscribers one standalone process holds, and its memory for each
//	L4  append throughput with 1,000 subscribers attached, against none
//	(L5, the long-poll's wake-up through Apache, is read from bench.sh in
//	measureApache.)

// subscriber is one GET /stream over a raw TCP connection.
type subscriber struct {
	conn net.Conn
	cr   *countReader  // the connection, counting what it reads
	br   *bufio.Reader // cr, buffered
	body *bufio.Reader // the body, de-chunked
}

// writeSubscribe sends the request of a subscription to addr (host:port).
func writeSubscribe(conn net.Conn, host, target string) error {
	_, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nUser-Agent: strata-bench\r\n\r\n", target, host)
	return err
}

// subscribe opens a stream and reads its headers: 200 and an event stream
// (with noHead, it sends the request only: a long-poll's answer comes
// when it ends).
func subscribe(host, target string, bufSize int, noHead ...bool) (*subscriber, error) {
	conn, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := writeSubscribe(conn, host, target); err != nil {
		conn.Close()
		return nil, err
	}
	s := &subscriber{conn: conn, cr: &countReader{r: conn}}
	s.br = bufio.NewReaderSize(s.cr, bufSize)
	if len(noHead) > 0 && noHead[0] {
		return s, nil
	}
	if err := s.readHead(); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// readHead reads the answer's status and headers.
func (s *subscriber) readHead() error {
	s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer s.conn.SetReadDeadline(time.Time{})
	status, err := s.br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the status line: %w", err)
	}
	chunked := false
	ctype := ""
	for {
		l, err := s.br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		switch strings.ToLower(k) {
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		case "content-type":
			ctype = strings.TrimSpace(v)
		}
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" || !strings.HasPrefix(ctype, "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(s.br, 300))
		return fmt.Errorf("GET /stream: %s (%s): %s", strings.TrimSpace(status), ctype, body)
	}
	if chunked {
		s.body = bufio.NewReaderSize(httputil.NewChunkedReader(s.br), s.br.Size())
	} else {
		s.body = s.br
	}
	return nil
}

// readLongPoll reads a long-poll's answer: 200 and a page holding an event.
func (s *subscriber) readLongPoll() error {
	status, err := s.br.ReadString('\n')
	if err != nil {
		return err
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		return fmt.Errorf("long-poll: %s", strings.TrimSpace(status))
	}
	return nil
}

// events reads the stream and calls fn with each message's data line
// (without "data: "), until fn returns false or the stream ends.
func (s *subscriber) events(fn func(data []byte) bool) error {
	for {
		l, err := s.body.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("a line longer than %d bytes", s.body.Size())
			}
			return err
		}
		if d, ok := bytes.CutPrefix(l, []byte("data: ")); ok {
			if !fn(bytes.TrimRight(d, "\n")) {
				return nil
			}
		} else if bytes.HasPrefix(l, []byte("event: end")) {
			return fmt.Errorf("the stream ended: %s", s.rest())
		}
	}
}

// rest is what the stream still says (an end message), for an error.
func (s *subscriber) rest() string {
	s.conn.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 300)
	n, _ := io.ReadAtLeast(s.body, b, 1)
	return strings.TrimSpace(string(b[:n]))
}

// seqOf finds "seq":N in an event's JSON.
func seqOf(data []byte) uint64 {
	i := bytes.Index(data, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range data[i+6:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// raiseFDLimit lifts the soft limit on open files to the hard one (the
// servers started after inherit it), and says what it is.
func raiseFDLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	rl.Cur = rl.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

func (b *bench) measureLive() {
	fds := raiseFDLimit()
	b.liveLatency()
	b.liveCatchUp()
	b.liveCatchUpWS()
	b.liveHeld(fds, "L3", "", "")
	b.liveHeld(fds, "L3y", "", "/events?after=1&wait=55")
	b.liveHeld(fds, "L3z", "100", "")
	b.liveAppends()
}

// openSubscribers opens n subscriptions to target, n at a time in
// parallel groups.
func openSubscribers(host, target string, n, bufSize int, noHead ...bool) ([]*subscriber, error) {
	subs := make([]*subscriber, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	const par = 32
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += par {
				s, err := subscribe(host, target, bufSize, noHead...)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("subscriber %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				subs[i] = s
			}
		}(g)
	}
	wg.Wait()
	if first != nil {
		closeAll(subs)
		return nil, first
	}
	return subs, nil
}

func closeAll(subs []*subscriber) {
	for _, s := range subs {
		if s != nil {
			s.conn.Close()
		}
	}
}

// liveLatency is figure L1: 1,000 subscribers from the head, then 300
// appends one at a time; each delivery is timed from its append's start
// (the append's own durable write included) to the moment the
// subscriber's reader has the event's line.
func (b *bench) liveLatency() {
	const (
		name   = "write-to-delivery latency, standalone, 1,000 SSE subscribers"
		target = "target p50 ≤ 2 ms, p99 ≤ 20 ms"
		nsubs  = 1000
		nev    = 300
	)
	data := filepath.Join(b.work, "live-latency")
	defer os.RemoveAll(data)
	s, err := b.startServer(data, "--max-conns", "5000")
	if err != nil {
		b.rep.errorRow("L1", name, target, err)
		return
	}
	defer s.stop()
	c := newClient(1)
	defer c.CloseIdleConnections()
	if err := post(c, s.url+"/events", "application/json", []byte(`{"type":"bench.seed","entity":"seed","data":0}`), 201); err != nil {
		b.rep.errorRow("L1", name, target, err)
		return
	}
	subs, err := openSubscribers(hostOf(s.url), "/stream?after=1", nsubs, 4096)
	if err != nil {
		b.rep.errorRow("L1", name, target, err)
		return
	}
	defer closeAll(subs)
	type got struct {
		seq uint64
		at  time.Time
	}
	recv := make([][]got, nsubs)
	var wg sync.WaitGroup
	var readErr atomic.Value
	for i, sb := range subs {
		recv[i] = make([]got, 0, nev)
		wg.Add(1)
		go func(i int, sb *subscriber) {
			defer wg.Done()
			err := sb.events(func(d []byte) bool {
				recv[i] = append(recv[i], got{seqOf(d), time.Now()})
				return len(recv[i]) < nev
			})
			if err != nil {
				readErr.CompareAndSwap(nil, err)
			}
		}(i, sb)
	}
	cpu := startCPU(s.pid)
	sent := make(map[uint64]time.Time, nev)
	acked := make(map[uint64]time.Time, nev)
	var appendLat []time.Duration
	g := newGen(77)
	buf := make([]byte, 0, 512)
	for i := 0; i < nev; i++ {
		buf = g.appendEvent(buf[:0])
		t0 := time.Now()
		var r struct {
			Seq uint64 `json:"seq"`
		}
		if err := postJSON(c, s.url+"/events", buf, &r); err != nil {
			b.rep.errorRow("L1", name, target, err)
			return
		}
		now := time.Now()
		appendLat = append(appendLat, now.Sub(t0))
		sent[r.Seq], acked[r.Seq] = t0, now
		// One event at a time, each delivery its own, after a pause longer
		// than the hub's gap between publishes (15 µs a subscriber: 15 ms
		// here), so each goes out at once rather than waiting for the gap.
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		closeAll(subs)
		<-done
		b.rep.errorRow("L1", name, target, fmt.Errorf("not every subscriber got the %d events within 60 s", nev))
		return
	}
	// What a delivery costs both sides bounds the median: every
	// subscriber's share of the cores comes before the middle one's turn.
	srvPer, cliPer := cpu.serverPer(int64(nsubs*nev)), cpu.clientPer(int64(nsubs*nev))
	cpuNote := fmt.Sprintf("%s; server CPU %.1f µs a delivery (each event its own write to each subscriber), load generator %.1f µs (its reader); on %d cores the middle subscriber's turn comes ≥ %.1f ms after the publish",
		cpu, float64(srvPer)/1e3, float64(cliPer)/1e3, numCPU(), float64(srvPer+cliPer)*nsubs/2/float64(numCPU())/1e6)
	if e := readErr.Load(); e != nil {
		b.rep.errorRow("L1", name, target, e.(error))
		return
	}
	var lat, afterAck []time.Duration
	for _, r := range recv {
		for _, x := range r {
			t0, ok := sent[x.seq]
			if !ok {
				b.rep.errorRow("L1", name, target, fmt.Errorf("a subscriber got seq %d, which no append of the run made", x.seq))
				return
			}
			lat = append(lat, x.at.Sub(t0))
			afterAck = append(afterAck, x.at.Sub(acked[x.seq]))
		}
	}
	sortDurations(lat)
	sortDurations(afterAck)
	sortDurations(appendLat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.rep.add(&row{num: "L1", name: name, value: fmt.Sprintf("p50 %.3f ms, p99 %.3f ms", ms64(p50), ms64(p99)), target: target,
		verdict: verdict(p50 <= 2*time.Millisecond && p99 <= 20*time.Millisecond),
		notes: []string{
			fmt.Sprintf("%d subscribers (raw TCP, GET /stream?after=1) × %d appends made one at a time (20 ms apart: past the hub's 15 ms gap between publishes at 1,000 subscribers) = %s deliveries, each timed from its append's start to its subscriber's reader; max %s",
				nsubs, nev, commas(int64(len(lat))), ms(lat[len(lat)-1])),
			fmt.Sprintf("the append itself (answered 201 after its fsync): p50 %s, p99 %s; timed from the append's answer instead, delivery p50 %s, p99 %s (negative: delivered before the writer had its answer)",
				ms(percentile(appendLat, 50)), ms(percentile(appendLat, 99)), ms(percentile(afterAck, 50)), ms(percentile(afterAck, 99))),
			"the subscribers' 1,000 readers run in this process, on the same cores as the server",
			cpuNote,
		}})
}

// postJSON posts one event (201) and decodes the answer.
func postJSON(c *http.Client, url string, body []byte, v any) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 201 {
		return fmt.Errorf("POST %s: status %d: %.300s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// liveCatchUp is figure L2: one subscriber from the start of the
// 1,000,000-event log, timed from its request to its last stored event.
func (b *bench) liveCatchUp() {
	const (
		name   = "catch-up delivery to one SSE subscriber (1,000,000-event log, from its start)"
		target = "target ≥ 1,000,000 events/s"
	)
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("L2", name, target, err)
		return
	}
	s, err := b.startServer(ds.data)
	if err != nil {
		b.rep.errorRow("L2", name, target, err)
		return
	}
	defer s.stop()
	var best time.Duration
	var bytesRead int64
	var cpuNote string
	for run := 0; run < 3; run++ { // the first warms the page cache (stated)
		cpu := startCPU(s.pid)
		t0 := time.Now()
		sb, err := subscribe(hostOf(s.url), "/stream?after=0", 1<<20)
		if err != nil {
			b.rep.errorRow("L2", name, target, err)
			return
		}
		var n, last uint64
		err = sb.events(func(d []byte) bool {
			n++
			if n == ds.headSeq {
				last = seqOf(d)
				return false
			}
			return true
		})
		d := time.Since(t0)
		sb.conn.Close()
		if err == nil && (n != ds.headSeq || last != ds.headSeq) {
			err = fmt.Errorf("got %d events ending at seq %d, want %d", n, last, ds.headSeq)
		}
		if err != nil {
			b.rep.errorRow("L2", name, target, err)
			return
		}
		if run > 0 && (best == 0 || d < best) {
			best, bytesRead, cpuNote = d, sb.cr.n, cpu.String()
		}
	}
	rate := float64(ds.headSeq) / best.Seconds()
	b.rep.add(&row{num: "L2", name: name, value: commas(int64(rate)) + " events/s", target: target, verdict: verdict(rate >= 1e6),
		notes: []string{
			fmt.Sprintf("GET /stream?after=0 over raw TCP: %s events (%s MB on the wire) in %.2fs, from the request to the last event's line; best of 2 after one untimed run",
				commas(int64(ds.headSeq)), commas(bytesRead>>20), best.Seconds()),
			cpuNote,
		}})
}

// liveCatchUpWS is a context row beside L2: the same catch-up over the
// WebSocket (one message per event; the library writes and flushes each
// one: a syscall per event where SSE writes 32 KB at a time).
func (b *bench) liveCatchUpWS() {
	const (
		name = "(context) the same catch-up over a WebSocket (one message per event)"
		num  = "L2z"
	)
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow(num, name, "—", err)
		return
	}
	s, err := b.startServer(ds.data)
	if err != nil {
		b.rep.errorRow(num, name, "—", err)
		return
	}
	defer s.stop()
	var best time.Duration
	var cpuNote string
	for run := 0; run < 2; run++ { // the first warms the page cache (stated)
		cpu := startCPU(s.pid)
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/stream?after=0", nil)
		if err != nil {
			cancel()
			b.rep.errorRow(num, name, "—", err)
			return
		}
		var n uint64
		for n < ds.headSeq {
			_, rd, err := c.Reader(ctx)
			if err == nil {
				_, err = io.Copy(io.Discard, rd)
			}
			if err != nil {
				c.CloseNow()
				cancel()
				b.rep.errorRow(num, name, "—", fmt.Errorf("after %d messages: %w", n, err))
				return
			}
			n++
		}
		d := time.Since(t0)
		c.CloseNow()
		cancel()
		if run > 0 {
			best, cpuNote = d, cpu.String()
		}
	}
	rate := float64(ds.headSeq) / best.Seconds()
	b.rep.add(&row{num: num, name: name, value: commas(int64(rate)) + " events/s", target: "—", verdict: info,
		notes: []string{
			fmt.Sprintf("GET /stream?after=0 as a WebSocket (github.com/coder/websocket client): %s messages in %.2fs, after one untimed run", commas(int64(ds.headSeq)), best.Seconds()),
			cpuNote,
		}})
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// liveHeld is figure L3: 10,000 subscribers held by one standalone server,
// and what each costs it: the growth of its resident memory (VmRSS) from
// 100 subscribers to 10,100, divided by 10,000. The subscribers are raw
// TCP connections that read their answer's head and then nothing until
// one event, appended at the end, is read back from a sample of them.
//
// With gogc set (L3z, context), the server runs with GOGC=gogc instead of
// its own default (400 in long-running modes): how much of the figure is
// garbage not yet collected.
//
// With lp set (L3y, context), the connections are long-polls
// (GET /events?wait=) instead: what any request in progress costs the
// server (net/http's buffers and goroutines), the floor of a subscriber.
func (b *bench) liveHeld(fds uint64, num, gogc, lp string) {
	const n = 10000
	name := "subscribers held by one standalone process, and its memory for each"
	target := "target ≥ 10,000, ≤ 20 KB each"
	path := "/stream?after=1"
	if lp != "" {
		name = "(context) 10,000 long-polls (GET /events?wait=55) held instead: what a request in progress costs"
		target = "—"
		path = lp
	}
	if gogc != "" {
		name = "(context) the same, the server run with GOGC=" + gogc
		target = "—"
		old, had := os.LookupEnv("GOGC")
		os.Setenv("GOGC", gogc)
		defer func() {
			if had {
				os.Setenv("GOGC", old)
			} else {
				os.Unsetenv("GOGC")
			}
		}()
	}
	if fds < n+1000 {
		b.rep.add(&row{num: num, name: name, value: "—", target: target, verdict: skip,
			notes: []string{fmt.Sprintf("skipped: the open-file limit is %d, and the server and this load generator each hold %d connections: raise the hard limit (ulimit -Hn)", fds, n)}})
		return
	}
	data := filepath.Join(b.work, "live-held")
	defer os.RemoveAll(data)
	s, err := b.startServer(data, "--max-conns", strconv.Itoa(n+500))
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	defer s.stop()
	c := newClient(1)
	defer c.CloseIdleConnections()
	if err := post(c, s.url+"/events", "application/json", []byte(`{"type":"bench.seed","entity":"seed","data":0}`), 201); err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	host := hostOf(s.url)
	warm, err := openSubscribers(host, path, 100, 512, lp != "")
	if err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	defer closeAll(warm)
	time.Sleep(time.Second)
	rss0, _ := procStatus(s.pid, "VmRSS")
	t0 := time.Now()
	subs, err := openSubscribers(host, path, n, 512, lp != "")
	if err != nil {
		b.rep.errorRow(num, name, target, fmt.Errorf("after %d held: %w", countOpen(subs), err))
		return
	}
	defer closeAll(subs)
	opened := time.Since(t0)
	time.Sleep(2 * time.Second)
	rss1, _ := procStatus(s.pid, "VmRSS")
	hwm, _ := procStatus(s.pid, "VmHWM")
	// All still live: one event, read back from every 100th subscriber.
	var r struct {
		Seq uint64 `json:"seq"`
	}
	t1 := time.Now()
	if err := postJSON(c, s.url+"/events", []byte(`{"type":"bench.ping","entity":"ping","data":1}`), &r); err != nil {
		b.rep.errorRow(num, name, target, err)
		return
	}
	sampled := 0
	for i := 0; i < n; i += 100 {
		sb := subs[i]
		sb.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var seq uint64
		var err error
		if lp != "" {
			if err = sb.readLongPoll(); err == nil {
				seq = r.Seq
			}
		} else {
			err = sb.events(func(d []byte) bool { seq = seqOf(d); return false })
		}
		if err == nil && seq != r.Seq {
			err = fmt.Errorf("got seq %d, want %d", seq, r.Seq)
		}
		if err != nil {
			b.rep.errorRow(num, name, target, fmt.Errorf("subscriber %d of %d did not get the event appended after they were all open: %w", i, n, err))
			return
		}
		sampled++
	}
	allGot := time.Since(t1)
	per := float64(rss1-rss0) * 1024 / n
	vd := verdict(per <= 20*1024)
	if gogc != "" || lp != "" {
		vd = info
	}
	b.rep.add(&row{num: num, name: name, value: fmt.Sprintf("%s held, %.1f KB each", commas(n), per/1024), target: target,
		verdict: vd,
		notes: []string{
			fmt.Sprintf("server VmRSS %s KB with 100 subscribers, %s KB with %s (VmHWM %s KB): %.1f KB a subscriber; opened in %.1fs (32 at a time)",
				commas(rss0), commas(rss1), commas(n+100), commas(hwm), per/1024, opened.Seconds()),
			fmt.Sprintf("every one live: an event appended after they were all open was read from every 100th (%d sampled) within %s", sampled, allGot.Round(time.Millisecond)),
			fmt.Sprintf("raw TCP subscribers reading nothing but their answer's head; open-file limit %d, server --max-conns %d", fds, n+500),
		}})
}

func countOpen(subs []*subscriber) int {
	k := 0
	for _, s := range subs {
		if s != nil {
			k++
		}
	}
	return k
}

// liveAppends is figure L4: single-event appends from 64 clients with no
// subscriber, then with 1,000 subscribers attached, on one server. The
// figure is for subscribers of every event, reading all of it (in this
// process, on the same cores: what they cost the machine counts against
// the appends); context rows give subscribers whose filter matches none
// of the appends, and subscribers that read nothing (stalled).
func (b *bench) liveAppends() {
	const (
		name   = "append throughput with 1,000 live SSE subscribers attached (every event, read), against none"
		target = "target ≥ 80% of without"
		nsubs  = 1000
	)
	data := filepath.Join(b.work, "live-appends")
	defer os.RemoveAll(data)
	s, err := b.startServer(data, "--max-conns", "5000")
	if err != nil {
		b.rep.errorRow("L4", name, target, err)
		return
	}
	defer s.stop()
	dur := b.ingestD / 2
	if _, err = singleAppends(s, 64, 5, 0, 500); err != nil { // warm-up (stated)
		b.rep.errorRow("L4", name, target, err)
		return
	}
	base, err := singleAppends(s, 64, 0, dur, 501)
	if err != nil {
		b.rep.errorRow("L4", name, target, err)
		return
	}
	r0 := float64(base.n) / base.elapsed.Seconds()
	c := newClient(1)
	defer c.CloseIdleConnections()
	variants := []struct {
		num, name, filter string
		read              bool
	}{
		{"L4", name, "", true},
		{"L4y", "(context) the same, the 1,000 subscribers' filter matching none of the appends (type=bench.other)", "&type=bench.other", true},
		{"L4z", "(context) the same, the 1,000 subscribers of every event reading nothing (stalled)", "", false},
	}
	for i, v := range variants {
		tgt := target
		if v.num != "L4" {
			tgt = "—"
		}
		var h headInfo
		if err := getJSON(c, s.url+"/head", &h); err != nil {
			b.rep.errorRow(v.num, v.name, tgt, err)
			return
		}
		subs, err := openSubscribers(hostOf(s.url), fmt.Sprintf("/stream?after=%d%s", h.Seq, v.filter), nsubs, 32<<10)
		if err != nil {
			b.rep.errorRow(v.num, v.name, tgt, err)
			return
		}
		var got, ended atomic.Int64
		var wg sync.WaitGroup
		if v.read {
			for _, sb := range subs {
				wg.Add(1)
				go func(sb *subscriber) {
					defer wg.Done()
					if err := sb.events(func([]byte) bool { got.Add(1); return true }); err != nil && strings.Contains(err.Error(), "ended") {
						ended.Add(1)
					}
				}(sb)
			}
		}
		with, err := singleAppends(s, 64, 0, dur, 502+uint64(i))
		closeAll(subs)
		wg.Wait()
		if err != nil {
			b.rep.errorRow(v.num, v.name, tgt, err)
			return
		}
		r1 := float64(with.n) / with.elapsed.Seconds()
		vd := info
		if v.num == "L4" {
			vd = verdict(r1 >= 0.8*r0)
		}
		notes := []string{fmt.Sprintf("64 keep-alive clients, one event a request, %.0fs a run, one server; without: p50 %s; with: p50 %s", dur.Seconds(), ms(percentile(base.lat, 50)), ms(percentile(with.lat, 50)))}
		if v.read {
			notes = append(notes, fmt.Sprintf("the 1,000 subscribers (GET /stream from the head%s, raw TCP read in 32 KB) got %s deliveries during the run (%s appended × 1,000 = %s); %d were ended by the server",
				v.filter, commas(got.Load()), commas(with.n), commas(with.n*nsubs), ended.Load()))
			if g := got.Load(); g > 0 {
				extra := (float64(with.cpuSrv)/float64(with.n) - float64(base.cpuSrv)/float64(base.n)) * float64(with.n) / float64(g)
				notes = append(notes, fmt.Sprintf("server CPU beyond the appends' own: %.2f µs a delivery", extra/1e3))
			}
		}
		if i == 0 {
			notes = append(notes, "without: "+base.cpu)
		}
		notes = append(notes, "with: "+with.cpu)
		b.rep.add(&row{num: v.num, name: v.name, value: fmt.Sprintf("%.0f%% (%s vs %s events/s)", 100*r1/r0, commas(int64(r1)), commas(int64(r0))), target: tgt,
			verdict: vd, notes: notes})
	}
}
