// Command loadgen times sequential HTTP requests from one client and prints
// their p50 and p99 beside a target, for tests/apache/bench.sh:
//
//	loadgen -label "cgi append" -n 300 -target 5 -method POST \
//	    -body '{"type":"bench.tick","entity":"bench-{i}","data":{"i":{i}}}' \
//	    -want 201 http://127.0.0.1:8089/api/events
//
// prints
//
//	cgi append p50 2.41 ms p99 3.10 ms (target p50 <= 5 ms) [300 requests, 0 errors, 402 req/s]
//
// {i} in the body is replaced by the request number. -H 'Name: value' adds
// a request header (repeatable), e.g. -H "Authorization: Bearer strata_…". Every request uses a
// new connection (Connection: close) unless -keepalive is given: Apache
// waits for a CGI process to exit before it reads the next request on a
// kept-alive connection, which makes keep-alive timings bimodal.
// The exit status is 1 when any request failed; timings never fail it.
//
// With -wake URL, each timed round is a long-poll's wake-up instead: a GET
// of URL&after=<the last append's seq> (a GET /events?…&wait=<s> that
// waits) is sent, and once it has had -settle (plus up to 50 ms at random) to start waiting, the
// request of -method/-body is made (the append); the time printed runs from
// the append's start to the long-poll's answer, which must hold the event.
//
// With -then URL, each timed round is two requests: the one of
// -method/-body, then a POST of -then-body to URL, where {token} is the
// "token" of the first answer (a mutex lock, then its unlock); the time
// printed is both, and both must answer -want.
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// headerFlags is a repeatable -H 'Name: value' flag.
type headerFlags [][2]string

func (h *headerFlags) String() string {
	var b strings.Builder
	for i, kv := range *h {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(kv[0])
	}
	return b.String()
}

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want 'Name: value', got %q", v)
	}
	*h = append(*h, [2]string{name, strings.TrimSpace(value)})
	return nil
}

func main() {
	var headers headerFlags
	flag.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	var (
		label     = flag.String("label", "request", "name printed before the figures")
		n         = flag.Int("n", 300, "number of timed requests")
		warmup    = flag.Int("warmup", 5, "untimed requests first")
		method    = flag.String("method", "GET", "HTTP method")
		body      = flag.String("body", "", "request body; {i} is replaced by the request number")
		ctype     = flag.String("ctype", "application/json", "Content-Type of the body")
		want      = flag.Int("want", 200, "expected status code")
		target    = flag.Float64("target", 0, "target p50 in ms (0: none)")
		keepalive = flag.Bool("keepalive", false, "reuse connections")
		timeout   = flag.Duration("timeout", 30*time.Second, "per-request timeout")
		wake      = flag.String("wake", "", "long-poll URL (GET /events?…&wait=<s>) whose wake-up by each request is timed")
		settle    = flag.Duration("settle", 200*time.Millisecond, "with -wake: how long the long-poll waits before the request is made")
		then      = flag.String("then", "", "URL POSTed after each request, in the same timed round (a mutex unlock after its lock)")
		thenBody  = flag.String("then-body", "", "with -then: its body; {token} is the first answer's \"token\"")
	)
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen [flags] URL")
		os.Exit(2)
	}
	url := flag.Arg(0)
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{DisableKeepAlives: !*keepalive, DisableCompression: true},
	}

	var wakeStart time.Time
	var doWake func(int, func(int) (time.Duration, error)) (time.Duration, error)
	var lastBody []byte
	do := func(i int) (time.Duration, error) {
		var rd io.Reader
		if *body != "" {
			rd = strings.NewReader(strings.ReplaceAll(*body, "{i}", strconv.Itoa(i)))
		}
		req, err := http.NewRequest(*method, url, rd)
		if err != nil {
			return 0, err
		}
		if rd != nil {
			req.Header.Set("Content-Type", *ctype)
		}
		for _, kv := range headers {
			req.Header.Add(kv[0], kv[1])
		}
		start := time.Now()
		if doWake != nil {
			wakeStart = start
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		lastBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != *want {
			return 0, fmt.Errorf("status %d, want %d", resp.StatusCode, *want)
		}
		return d, nil
	}

	if *wake != "" {
		doWake = newWaker(client, *wake, *settle, headers, func() []byte { return lastBody }, func() time.Time { return wakeStart })
		plain := do
		do = func(i int) (time.Duration, error) { return doWake(i, plain) }
	}

	if *then != "" {
		first := do
		do = func(i int) (time.Duration, error) {
			d, err := first(i)
			if err != nil {
				return 0, err
			}
			m := tokenField.FindSubmatch(lastBody)
			if m == nil {
				return 0, fmt.Errorf("no token in %.200q", lastBody)
			}
			req, err := http.NewRequest("POST", *then, strings.NewReader(strings.ReplaceAll(*thenBody, "{token}", string(m[1]))))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Content-Type", *ctype)
			for _, kv := range headers {
				req.Header.Add(kv[0], kv[1])
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != *want {
				return 0, fmt.Errorf("-then: status %d, want %d", resp.StatusCode, *want)
			}
			return d + time.Since(start), nil
		}
	}

	errs := 0
	var firstErr error
	for i := 0; i < *warmup; i++ {
		if _, err := do(-1 - i); err != nil {
			errs++
			firstErr = err
		}
	}
	times := make([]time.Duration, 0, *n)
	began := time.Now()
	for i := 0; i < *n; i++ {
		d, err := do(i)
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		times = append(times, d)
	}
	elapsed := time.Since(began)

	tgt := "no target"
	if *target > 0 {
		tgt = fmt.Sprintf("target p50 <= %g ms", *target)
	}
	if len(times) == 0 {
		fmt.Printf("%s: no successful request (%s) [%d errors: %v]\n", *label, tgt, errs, firstErr)
		os.Exit(1)
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	fmt.Printf("%s p50 %s ms p99 %s ms (%s) [%d requests, %d errors, %.0f req/s]\n",
		*label, ms(pct(times, 50)), ms(pct(times, 99)), tgt,
		len(times), errs, float64(*n)/elapsed.Seconds())
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "%s: first error: %v\n", *label, firstErr)
		os.Exit(1)
	}
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

// tokenField finds the "token":N of a mutex lock's answer.
var tokenField = regexp.MustCompile(`"token":([0-9]+)`)

// seqField finds the largest "seq":N in an append's answer.
var seqField = regexp.MustCompile(`"seq":([0-9]+)`)

// newWaker returns a round of -wake: the long-poll started after the last
// append's seq, the append made once it waits, the time from the append's
// start to the long-poll's answer. The first round (a warm-up) appends
// once untimed to learn the seq.
func newWaker(client *http.Client, wake string, settle time.Duration, headers headerFlags, last func() []byte, started func() time.Time) func(int, func(int) (time.Duration, error)) (time.Duration, error) {
	after := ""
	return func(i int, appendOne func(int) (time.Duration, error)) (time.Duration, error) {
		if after == "" {
			if _, err := appendOne(i); err != nil {
				return 0, err
			}
			m := seqField.FindAllSubmatch(last(), -1)
			if m == nil {
				return 0, fmt.Errorf("no seq in the append's answer: %.200s", last())
			}
			after = string(m[len(m)-1][1])
		}
		type answer struct {
			body []byte
			at   time.Time
			err  error
		}
		got := make(chan answer, 1)
		go func() {
			req, err := http.NewRequest("GET", wake+"&after="+after, nil)
			if err != nil {
				got <- answer{err: err}
				return
			}
			for _, kv := range headers {
				req.Header.Add(kv[0], kv[1])
			}
			resp, err := client.Do(req)
			if err != nil {
				got <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("long-poll: status %d: %.200s", resp.StatusCode, b)
			}
			got <- answer{body: b, at: time.Now(), err: err}
		}()
		// A random part, so the appends do not all fall at one phase of
		// the server's polling (its period is 50 ms).
		time.Sleep(settle + time.Duration(rand.Int64N(int64(50*time.Millisecond))))
		select {
		case a := <-got:
			return 0, fmt.Errorf("the long-poll answered before the append (settle %v): %v %.200s", settle, a.err, a.body)
		default:
		}
		if _, err := appendOne(i); err != nil {
			<-got
			return 0, err
		}
		m := seqField.FindAllSubmatch(last(), -1)
		if m == nil {
			<-got
			return 0, fmt.Errorf("no seq in the append's answer: %.200s", last())
		}
		seq := string(m[len(m)-1][1])
		a := <-got
		if a.err != nil {
			return 0, a.err
		}
		if !strings.Contains(string(a.body), `"seq":`+seq+`,`) {
			return 0, fmt.Errorf("the long-poll's answer does not hold the appended event (seq %s): %.200s", seq, a.body)
		}
		after = seq
		return a.at.Sub(started()), nil
	}
}
