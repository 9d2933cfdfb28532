package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// measureLimits is figure 10: the memory that large append requests take, in
// the cases of issue 7 — a 29 MB batch of 1,000,000 tiny events, three such
// 65 MB batches at once, three 60 MB batches of 10,000 large events at once
// (what --max-events lets through), and the 29 MB batch in one CGI process.
// Each standalone case runs on a fresh server, so its VmHWM is the case's
// own peak.
func (b *bench) measureLimits() {
	const name = "peak RSS of large append requests (VmHWM)"
	const target = "target bounded: ≤ 512 MB whatever the batch"
	tiny := func(n int) []byte {
		var w bytes.Buffer
		w.Grow(n * 29)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&w, `{"type":"t","entity":"e%03d"}`+"\n", i%1000)
		}
		return w.Bytes()
	}
	large := func(n, size int) []byte {
		var w bytes.Buffer
		pad := strings.Repeat("x", size-60)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&w, `{"type":"t","entity":"e%05d","data":{"p":"%s"}}`+"\n", i, pad)
		}
		return w.Bytes()
	}
	cases := []struct {
		label  string
		bodies func() [][]byte
		cgi    bool
	}{
		{"1 batch of 1,000,000 tiny events (29 MB)", func() [][]byte { return [][]byte{tiny(1000000)} }, false},
		{"3 batches of 2,240,000 tiny events (65 MB) at once", func() [][]byte { b := tiny(2240000); return [][]byte{b, b, b} }, false},
		{"3 batches of 10,000 events of 6 KB (60 MB) at once", func() [][]byte { b := large(10000, 6000); return [][]byte{b, b, b} }, false},
		{"CGI: 1 batch of 1,000,000 tiny events (29 MB)", func() [][]byte { return [][]byte{tiny(1000000)} }, true},
		{"CGI: 1 batch of 10,000 events of 6 KB (60 MB)", func() [][]byte { return [][]byte{large(10000, 6000)} }, true},
	}
	var notes []string
	worst := 0.0
	for i, c := range cases {
		data := filepath.Join(b.work, fmt.Sprintf("limits%d", i))
		bodies := c.bodies()
		var line string
		var peak float64
		var err error
		if c.cgi {
			line, peak, err = b.limitsCGI(data, bodies[0])
		} else {
			line, peak, err = b.limitsServer(data, bodies)
		}
		os.RemoveAll(data)
		if err != nil {
			b.rep.errorRow("10", name, target, fmt.Errorf("%s: %w", c.label, err))
			return
		}
		worst = max(worst, peak)
		notes = append(notes, c.label+": "+line)
	}
	b.rep.add(&row{num: "10", name: name, value: fmt.Sprintf("%.0f MB worst", worst), target: target, verdict: verdict(worst <= 512), notes: notes})
}

// limitsServer sends bodies at once to a fresh server and reports the
// answers, its peak and what stays resident after.
func (b *bench) limitsServer(data string, bodies [][]byte) (string, float64, error) {
	s, err := b.startServer(data)
	if err != nil {
		return "", 0, err
	}
	defer s.stop()
	var wg sync.WaitGroup
	answers := make([]string, len(bodies))
	t0 := time.Now()
	for i, body := range bodies {
		wg.Go(func() {
			resp, err := http.Post(s.url+"/events", "application/x-ndjson", bytes.NewReader(body))
			if err != nil {
				answers[i] = err.Error()
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers[i] = fmt.Sprintf("%d (%s bytes)", resp.StatusCode, commas(n))
		})
	}
	wg.Wait()
	took := time.Since(t0)
	hwm, err := procStatus(s.pid, "VmHWM")
	if err != nil {
		return "", 0, err
	}
	time.Sleep(5 * time.Second)
	after := rssSplit(s.pid)
	return fmt.Sprintf("answers %s in %.1fs; VmHWM %.0f MB; 5 s later %s", strings.Join(answers, ", "), took.Seconds(), float64(hwm)/1024, after), float64(hwm) / 1024, nil
}

// limitsCGI runs one CGI append of body and reports its answer and peak.
func (b *bench) limitsCGI(data string, body []byte) (string, float64, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", 0, err
	}
	cmd := exec.Command(b.bin)
	cmd.Env = append(cgiEnv(b.bin, data, "POST", "/events", ""),
		fmt.Sprintf("CONTENT_LENGTH=%d", len(body)), "CONTENT_TYPE=application/x-ndjson", "STRATA_AUTH=none")
	cmd.Stdin = bytes.NewReader(body)
	var ob, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &ob, &eb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	// The child's VmHWM, polled until it exits: its ru_maxrss would
	// count this process's own pages, since Go starts children with
	// vfork and the high-water mark survives the exec.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var hwm int64
	var err error
poll:
	for {
		if v, perr := procStatus(cmd.Process.Pid, "VmHWM"); perr == nil {
			hwm = max(hwm, v)
		}
		select {
		case err = <-done:
			break poll
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err != nil {
		return "", 0, fmt.Errorf("CGI: %v: %s", err, strings.TrimSpace(eb.String()))
	}
	took := time.Since(t0)
	st, out, err := cgiBody(ob.Bytes())
	if err != nil {
		return "", 0, err
	}
	mb := float64(hwm) / 1024
	return fmt.Sprintf("answer %s (%s bytes) in %.1fs; VmHWM %.0f MB (polled every 2 ms)", st, commas(int64(len(out))), took.Seconds(), mb), mb, nil
}
