package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a running `strata serve`.
type server struct {
	cmd  *exec.Cmd
	url  string
	data string
	pid  int

	mu     sync.Mutex
	stderr bytes.Buffer // what it said after the ready line (bounded)
	done   chan struct{}
	err    error
}

// startServer runs `strata serve --port 0 --data data [extra…]` and waits
// for its ready line.
func (b *bench) startServer(data string, extra ...string) (*server, error) {
	extra = append(append([]string(nil), extra...), b.serverArgs...)
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--auth") }) {
		// The figures of the log and the API are taken without accounts;
		// the accounts figures say --auth=required and compare.
		extra = append(extra, "--auth=none")
	}
	args := append([]string{"serve", "--addr", "127.0.0.1", "--port", "0", "--data", data}, extra...)
	cmd := exec.Command(b.bin, args...)
	cmd.Env = cleanEnv()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, data: data, pid: cmd.Process.Pid, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				if _, u, ok := strings.Cut(line, " on http://"); ok && strings.HasPrefix(line, "strata: serving ") {
					ready <- "http://" + u
					sent = true
					continue
				}
			}
			s.mu.Lock()
			if s.stderr.Len() < 64<<10 {
				s.stderr.WriteString(line + "\n")
			}
			s.mu.Unlock()
		}
		if !sent {
			close(ready)
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			<-s.done
			return nil, fmt.Errorf("strata serve exited before listening (%v): %s", s.err, s.said())
		}
		s.url = u
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("strata serve did not listen within 60s: %s", s.said())
	}
	progress("server pid %d on %s (data %s %s)", s.pid, s.url, filepath.Base(data), strings.Join(extra, " "))
	return s, nil
}

func (s *server) said() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.stderr.String())
}

// stop sends SIGTERM (the server drains and closes its logs) and waits.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("server pid %d did not stop within 60s of SIGTERM", s.pid)
	}
	if s.err != nil {
		return fmt.Errorf("server exited: %v: %s", s.err, s.said())
	}
	return nil
}

// cleanEnv is the environment without STRATA_* settings that could change
// what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") && !strings.HasPrefix(kv, "GATEWAY_INTERFACE=") {
			env = append(env, kv)
		}
	}
	return env
}

// cpuTicks is a process's user+system CPU time from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields are counted after ")".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)          // field 14 utime
	st, _ := strconv.ParseInt(f[12], 10, 64)          // field 15 stime
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter splits the CPU used during a run between server and load generator.
type cpuMeter struct {
	pid           int
	t0            time.Time
	srv0, cli0    time.Duration
	busy0, total0 int64
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, t0: time.Now(), srv0: cpuTime(pid), cli0: selfCPU()}
	m.busy0, m.total0 = machineTicks()
	return m
}

// machineTicks is the busy and total jiffies of all CPUs from /proc/stat.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func (m *cpuMeter) String() string {
	wall := time.Since(m.t0).Seconds()
	srv := (cpuTime(m.pid) - m.srv0).Seconds()
	cli := (selfCPU() - m.cli0).Seconds()
	busy, total := machineTicks()
	mach := float64(busy-m.busy0) / float64(max(1, total-m.total0)) * float64(numCPU())
	return fmt.Sprintf("CPU over %.1fs: server %.2f cores, load generator %.2f cores, other processes %.2f cores; machine busy %.2f of %d cores",
		wall, srv/wall, cli/wall, max(0, mach-srv/wall-cli/wall), mach, numCPU())
}

// serverPer is the server's CPU time since start divided by n units.
func (m *cpuMeter) serverPer(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return (cpuTime(m.pid) - m.srv0) / time.Duration(n)
}

// clientPer is the load generator's CPU time since start divided by n
// units.
func (m *cpuMeter) clientPer(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return (selfCPU() - m.cli0) / time.Duration(n)
}

// procStatus reads a field such as VmHWM (in kB) from /proc/PID/status.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// newClient is a keep-alive client for conns concurrent connections.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	return &http.Client{Transport: tr, Timeout: 120 * time.Second}
}

// post sends body and reads the whole answer; it checks the status.
func post(c *http.Client, url, ctype string, body []byte, want int, hdr ...string) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("POST %s: status %d, want %d: %s", url, resp.StatusCode, want, msg)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// getJSON GETs url and decodes the answer into v.
func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d: %.300s", url, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

type headInfo struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
}

type servedEvent struct {
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Entity string `json:"entity"`
}

// eventAt returns the event at seq (via after=seq-1&limit=1).
func eventAt(c *http.Client, base string, seq uint64) (servedEvent, error) {
	var evs []servedEvent
	if err := getJSON(c, fmt.Sprintf("%s/events?after=%d&limit=1", base, seq-1), &evs); err != nil {
		return servedEvent{}, err
	}
	if len(evs) != 1 || evs[0].Seq != seq {
		return servedEvent{}, fmt.Errorf("after=%d&limit=1 returned %d events", seq-1, len(evs))
	}
	return evs[0], nil
}
