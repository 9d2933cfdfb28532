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
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
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
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
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
