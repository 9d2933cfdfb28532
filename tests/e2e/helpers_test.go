// Package e2e_test exercises the real strata binary over real HTTP: built
// once in TestMain, started standalone on port 0 (or run as a CGI program
// through net/http/cgi), with no mocks anywhere.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// bin is the strata binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-o", bin, "strata")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("STRATA_E2E_RACE") == "1" {
		// The server under the race detector, stopping at the first race:
		// the tests then fail on the dead server.
		cmd = exec.Command("go", "build", "-race", "-o", bin, "strata")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		os.Setenv("GORACE", "halt_on_error=1")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building strata: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// client is shared by the tests; no test relies on its keep-alive pool.
var client = &http.Client{Timeout: 60 * time.Second}

// server is one standalone `strata serve` process.
type server struct {
	t    testing.TB
	data string
	url  string // http://127.0.0.1:PORT, no trailing slash
	cmd  *exec.Cmd

	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{} // closed once the process has exited
	state  *os.ProcessState
}

var readyLine = regexp.MustCompile(`strata: serving .* on (https?://\S+)`)

// startServer starts `strata serve` on data (a new temporary directory if
// ""), waits until it listens, and kills it when the test ends.
func startServer(t testing.TB, data string, args ...string) *server {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	s := &server{t: t, data: data, done: make(chan struct{})}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--auth") }) {
		// Tests of the log and the API run without accounts; the tests
		// of accounts say --auth=required.
		args = append([]string{"--auth=none"}, args...)
	}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1", "--port", "0", "--data", data}, args...)...)
	s.cmd.Env = cleanEnv()
	pr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr.WriteString(line + "\n")
			s.mu.Unlock()
			if m := readyLine.FindStringSubmatch(line); m != nil && !sent {
				ready <- m[1]
				sent = true
			}
		}
		err := s.cmd.Wait()
		s.mu.Lock()
		s.state = s.cmd.ProcessState
		if err != nil && s.state == nil {
			fmt.Fprintf(&s.stderr, "wait: %v\n", err)
		}
		s.mu.Unlock()
		close(s.done)
	}()
	t.Cleanup(s.kill)
	select {
	case u := <-ready:
		s.url = u
	case <-s.done:
		t.Fatalf("strata serve exited before listening:\n%s", s.log())
	case <-time.After(15 * time.Second):
		s.kill()
		t.Fatalf("strata serve did not print its address within 15s:\n%s", s.log())
	}
	return s
}

// cleanEnv is the environment without any STRATA_* or CGI variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STRATA_") || strings.HasPrefix(kv, "GATEWAY_INTERFACE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// log is what the server wrote on standard error so far.
func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends sig and returns the exit code, failing the test if the server
// does not exit within timeout.
func (s *server) stop(sig os.Signal, timeout time.Duration) int {
	s.t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.kill()
		s.t.Fatalf("server did not exit within %v of %v", timeout, sig)
	}
	return s.state.ExitCode()
}

// response is a whole HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// do sends one request and reads the whole answer. body is nil, a string,
// a []byte, or an io.Reader (sent chunked, its length unknown). headers
// are name, value pairs.
func do(t testing.TB, method, url string, body any, headers ...string) *response {
	t.Helper()
	r, err := try(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// try is do without a test: it returns the transport's error.
func try(method, url string, body any, headers ...string) (*response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = struct{ io.Reader }{b} // hide any length: chunked
	default:
		panic(fmt.Sprintf("do: body of type %T", body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// want fails the test unless r has the status.
func (r *response) want(t testing.TB, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// wantError checks that r is an error answer with status and code ("" for
// any), in JSON
// with a non-empty message, and returns the error object's members.
func (r *response) wantError(t testing.TB, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s); body: %s", r.status, status, code, r.body)
	}
	return checkErrorBody(t, r.header, r.body, code)
}

func checkErrorBody(t testing.TB, h http.Header, body []byte, code string) map[string]any {
	t.Helper()
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q, want application/json; body: %s", ct, body)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("error body is not {\"error\":{…}} JSON (%v): %q", err, body)
	}
	if c, _ := e.Error["code"].(string); c == "" || code != "" && c != code {
		t.Errorf("error code %q, want %q; body: %s", e.Error["code"], code, body)
	}
	if m, _ := e.Error["message"].(string); m == "" {
		t.Errorf("error without a message: %s", body)
	}
	if id, _ := e.Error["request_id"].(string); id == "" || id != h.Get("Strata-Request-Id") {
		t.Errorf("error with request_id %q, Strata-Request-Id %q", id, h.Get("Strata-Request-Id"))
	}
	return e.Error
}

// receipt is what an append answers per event.
type receipt struct {
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	Time     string `json:"time"`
	Entity   string `json:"entity"`
	Version  uint64 `json:"version"`
	Repeated bool   `json:"repeated"`
}

// event is an event as served.
type event struct {
	ID      string          `json:"id"`
	Prev    string          `json:"prev"`
	Seq     uint64          `json:"seq"`
	Time    string          `json:"time"`
	Type    string          `json:"type"`
	Entity  string          `json:"entity"`
	Version uint64          `json:"version"`
	Key     string          `json:"key"`
	Data    json.RawMessage `json:"data"`
	Meta    json.RawMessage `json:"meta"`
}

// head is GET /head.
type head struct {
	ID   string  `json:"id"`
	Seq  uint64  `json:"seq"`
	Time *string `json:"time"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T: %v\n%s", v, err, b)
	}
	return v
}

// mustAppend appends body (JSON) and returns the one receipt.
func mustAppend(t testing.TB, base, body string, headers ...string) receipt {
	t.Helper()
	r := do(t, "PUT", base+"/events", body, append([]string{"Content-Type", "application/json"}, headers...)...).want(t, 201)
	return decode[receipt](t, r.body)
}

// mustAppendBatch appends a JSON array and returns the receipts.
func mustAppendBatch(t testing.TB, base, body string) []receipt {
	t.Helper()
	r := do(t, "POST", base+"/events", body, "Content-Type", "application/json").want(t, 201)
	return decode[[]receipt](t, r.body)
}

// summary is an append's answer to a batch of more than 1,000 events.
type summary struct {
	Events, Stored, Repeated int
	First, Last              struct {
		ID  string
		Seq uint64
	}
	Time string
}

// mustAppendSummary appends a JSON array of more than 1,000 events and
// returns the summary, checked against the count sent.
func mustAppendSummary(t testing.TB, base, body string, n int) summary {
	t.Helper()
	r := do(t, "POST", base+"/events", body, "Content-Type", "application/json").want(t, 201)
	sum := decode[summary](t, r.body)
	if sum.Events != n || sum.Stored+sum.Repeated != n || (sum.Stored > 0 && sum.Last.Seq-sum.First.Seq+1 != uint64(sum.Stored)) {
		t.Fatalf("summary of %d events: %s", n, r.body)
	}
	return sum
}

func mustHead(t testing.TB, base string) head {
	t.Helper()
	return decode[head](t, do(t, "GET", base+"/head", nil).want(t, 200).body)
}

// readAll reads the whole log as NDJSON, a page at a time, asking for the
// page after the last seq seen until a page comes back empty. (It does not
// rely on Link headers: TestPagingLargePage checks those.)
func readAll(t testing.TB, base string) []event {
	t.Helper()
	var all []event
	for {
		u := base + "/events?limit=1000"
		if len(all) > 0 {
			u += "&after=" + strconv.FormatUint(all[len(all)-1].Seq, 10)
		}
		r := do(t, "GET", u, nil, "Accept", "application/x-ndjson").want(t, 200)
		page := parseNDJSON(t, r.body)
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

func parseNDJSON(t testing.TB, b []byte) []event {
	t.Helper()
	var evs []event
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		evs = append(evs, decode[event](t, line))
	}
	return evs
}

var linkRE = regexp.MustCompile(`^<([^>]*)>;\s*rel="next"$`)

// nextLink returns the relative reference of a Link rel="next", or "".
func nextLink(t testing.TB, h http.Header) string {
	t.Helper()
	l := h.Get("Link")
	if l == "" {
		return ""
	}
	m := linkRE.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("Link header %q is not <…>; rel=\"next\"", l)
	}
	return m[1]
}

// checkChain checks what any client can: seqs 1…n without a gap, each
// prev the id before, each id the hash recipe of the event as served,
// times well formed and never decreasing, and each entity's versions
// 1, 2, 3 ….
func checkChain(t testing.TB, evs []event) {
	t.Helper()
	prev := strings.Repeat("0", 64)
	versions := map[string]uint64{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the log has a gap or a duplicate", i, e.Seq)
		}
		if e.Prev != prev {
			t.Fatalf("seq %d: prev %s, want %s", e.Seq, e.Prev, prev)
		}
		if got := recipeID(e); got != e.ID {
			t.Fatalf("seq %d: id %s, but the hash recipe gives %s", e.Seq, e.ID, got)
		}
		if !timeRE.MatchString(e.Time) {
			t.Fatalf("seq %d: time %q is not RFC 3339 UTC with 9 fractional digits", e.Seq, e.Time)
		}
		if i > 0 && e.Time < evs[i-1].Time {
			t.Fatalf("seq %d: time %s is before seq %d's %s", e.Seq, e.Time, e.Seq-1, evs[i-1].Time)
		}
		versions[e.Entity]++
		if e.Version != versions[e.Entity] {
			var hist []string
			for _, o := range evs[:i+1] {
				if o.Entity == e.Entity {
					hist = append(hist, fmt.Sprintf("seq %d version %d key %q", o.Seq, o.Version, o.Key))
				}
			}
			t.Fatalf("seq %d: entity %q version %d, want %d; the entity's events:\n%s", e.Seq, e.Entity, e.Version, versions[e.Entity], strings.Join(hist, "\n"))
		}
		prev = e.ID
	}
}

// recipeID is the event id by log/FORMAT.md's hash recipe (version 1).
func recipeID(e event) string {
	digest := func(b []byte) string {
		s := blake3.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	var b strings.Builder
	b.WriteString("strata-event-v1\n")
	for _, s := range []string{e.Prev, strconv.FormatUint(e.Seq, 10), e.Time, e.Type, e.Entity,
		strconv.FormatUint(e.Version, 10), e.Key, digest(e.Data)} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString(digest(e.Meta))
	return digest([]byte(b.String()))
}

// verify runs `strata verify --tenant default --data dir` and returns its
// standard output followed by its standard error, and its exit code.
func verify(t testing.TB, dir string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, "verify", "--tenant", "default", "--data", dir)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("strata verify: %v", err)
	}
	return string(out) + stderr.String(), cmd.ProcessState.ExitCode()
}

// mustVerify requires `strata verify` to say OK with n events.
func mustVerify(t testing.TB, dir string, n int) {
	t.Helper()
	out, code := verify(t, dir)
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("OK %d events", n)) {
		t.Fatalf("strata verify exited %d, want 0 and \"OK %d events\":\n%s", code, n, out)
	}
}

func b3hex(b []byte) string {
	s := blake3.Sum256(b)
	return hex.EncodeToString(s[:])
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// timeRE is RFC 3339 in UTC with exactly 9 fractional digits.
var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

// raw sends req (a whole HTTP/1.1 request, "\r\n" line ends) on its own
// TCP connection, so nothing rewrites it, and reads the answer.
func raw(t testing.TB, base, req string) *response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

// receipts decodes an append's answer: one receipt object or an array.
func receipts(b []byte) ([]receipt, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var rc receipt
		err := json.Unmarshal(b, &rc)
		return []receipt{rc}, err
	}
	var rs []receipt
	err := json.Unmarshal(b, &rs)
	return rs, err
}

// entityState is the answer of GET /entities/<entity> and of the entity
// write API.
type entityState struct {
	Entity  string          `json:"entity"`
	Version uint64          `json:"version"`
	Seq     uint64          `json:"seq"`
	ID      string          `json:"id"`
	Time    string          `json:"time"`
	State   json.RawMessage `json:"state"`
	Deleted bool            `json:"deleted"`
}
