package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// cgiRuns is how many fresh processes each CGI read figure times.
const cgiRuns = 200

// cgiGet runs the binary once as a CGI program answering GET path?query,
// reads its whole standard output and times it (fork+exec+start-up+answer).
func (b *bench) cgiGet(data, path, query string) ([]byte, time.Duration, error) {
	cmd := exec.Command(b.bin)
	// The figures of reads are taken without accounts; A2 and A3 measure
	// what credentials add.
	cmd.Env = append(cgiEnv(b.bin, data, "GET", path, query), "STRATA_AUTH=none")
	var out bytes.Buffer
	out.Grow(1 << 20)
	cmd.Stdout = &out
	var errb bytes.Buffer
	cmd.Stderr = &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return nil, d, fmt.Errorf("CGI run: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), d, nil
}

// cgiEnv is the environment a web server gives a CGI request.
func cgiEnv(bin, data, method, path, query string) []string {
	uri := "/api" + path
	if query != "" {
		uri += "?" + query
	}
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_SOFTWARE=strata-bench",
		"SERVER_NAME=127.0.0.1",
		"SERVER_PORT=80",
		"REMOTE_ADDR=127.0.0.1",
		"REMOTE_PORT=40000",
		"HTTP_HOST=127.0.0.1",
		"REQUEST_METHOD=" + method,
		"SCRIPT_NAME=/cgi-bin/strata.cgi",
		"SCRIPT_FILENAME=" + bin,
		"PATH_INFO=" + path,
		"QUERY_STRING=" + query,
		"REQUEST_URI=" + uri,
		"STRATA_DATA=" + data,
	}
}

// cgiStatus splits a CGI answer and checks its status.
func cgiBody(out []byte) (status string, body []byte, err error) {
	i := bytes.Index(out, []byte("\r\n\r\n"))
	sep := 4
	if i < 0 {
		i, sep = bytes.Index(out, []byte("\n\n")), 2
	}
	if i < 0 {
		return "", nil, fmt.Errorf("no header end in CGI output: %.200q", out)
	}
	status = "200"
	for _, l := range strings.Split(string(out[:i]), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Status:"); ok {
			status = strings.Fields(v)[0]
		}
	}
	return status, out[i+sep:], nil
}

// cgiReadFigure times GET /events?from=<1,000 before head> in fresh
// processes against ds.
func (b *bench) cgiReadFigure(num string, ds *dataset) {
	name := fmt.Sprintf("CGI GET /events?from=<head-1000>, %s-event log (direct exec)", commas(ds.events))
	const target = "target p50 ≤ 5 ms"
	query := "from=" + ds.fromID
	var lat []time.Duration
	var size int
	for i := 0; i < cgiRuns+5; i++ {
		out, d, err := b.cgiGet(ds.data, "/events", query)
		if err == nil {
			var st string
			var body []byte
			st, body, err = cgiBody(out)
			if err == nil && st != "200" {
				err = fmt.Errorf("status %s: %.300s", st, body)
			}
			if n := bytes.Count(body, []byte(`{"id":"`)); err == nil && n != 1000 {
				err = fmt.Errorf("answer holds %d events, want 1000", n)
			}
			size = len(body)
		}
		if err != nil {
			b.rep.errorRow(num, name, target, err)
			return
		}
		if i >= 5 { // the first 5 are a stated warm-up (page cache)
			lat = append(lat, d)
		}
	}
	sortDurations(lat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.rep.add(&row{num: num, name: name, value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms64(p50), ms64(p99)), target: target,
		verdict: verdict(p50 <= 5*time.Millisecond),
		notes: []string{fmt.Sprintf("%d fresh processes (after 5 untimed), each exec'd with a CGI environment and its %s-byte answer (1,000 events, JSON array) read to the end; includes fork+exec and Go start-up",
			len(lat), commas(int64(size)))}})
}

// measureCGIRead is figure 6 (direct exec) plus the bare start-up cost.
func (b *bench) measureCGIRead() {
	// Context: what a fresh process costs before strata does anything.
	var bare []time.Duration
	for i := 0; i < 105; i++ {
		t0 := time.Now()
		if err := exec.Command(b.bin, "version").Run(); err != nil {
			break
		}
		if i >= 5 {
			bare = append(bare, time.Since(t0))
		}
	}
	if len(bare) > 0 {
		sortDurations(bare)
		b.rep.add(&row{num: "6z", name: "(context) bare exec of the binary (`strata version`), no request", value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms64(percentile(bare, 50)), ms64(percentile(bare, 99))),
			target: "—", verdict: info})
	}

	if b.ds10k == nil {
		ds, err := b.buildDataset("log10k", 10000)
		if err != nil {
			b.rep.errorRow("6a", "CGI GET /events?from=<head-1000>, 10,000-event log (direct exec)", "target p50 ≤ 5 ms", err)
		} else {
			b.ds10k = ds
		}
	}
	if b.ds10k != nil {
		b.cgiReadFigure("6a", b.ds10k)
	}
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("6b", "CGI GET /events?from=<head-1000>, 1,000,000-event log (direct exec)", "target p50 ≤ 5 ms", err)
		return
	}
	b.cgiReadFigure("6b", ds)
}

// measureApache runs tests/apache/bench.sh (another helper's script) and
// turns its lines into figures 4, 5, 6c, A4, A5, P8, L5 and L6.
func (b *bench) measureApache() {
	rows := []struct {
		num, label, name, target string
		limit                    float64
	}{
		{"4", "cgi append", "token-authenticated CGI append through Apache mod_cgid (incl. process start)", "target p50 ≤ 5 ms", 5},
		{"A4", "cgi append (session)", "session-token CGI append through Apache mod_cgid, after one login", "target p50 ≤ 5 ms", 5},
		{"A5", "cgi append (basic)", "(context) Basic-authenticated CGI append through Apache: bcrypt on every request", "—", 1e9},
		{"5", "fcgid append", "FastCGI append through Apache mod_fcgid", "target p50 ≤ 1 ms", 1},
		{"6c", "cgi read from=<head-1000>", "CGI GET /events?from=<head-1000>, 10,000-event log, via Apache mod_cgid", "target p50 ≤ 5 ms", 5},
		{"11e", "cgi entity state", "entity state, entity with 100,000 events, CGI through Apache mod_cgid", "target p50 ≤ 5 ms", 5},
		{"P8", "cgi projection result", "CGI GET /projections/<counter>/result, nothing new to catch up, via Apache mod_cgid", "target p50 ≤ 4 ms", 4},
		{"L5", "cgi longpoll wake", "long-poll wake-up after a write, CGI through Apache mod_cgid (from the append's start)", "target p50 ≤ 100 ms", 100},
		{"L6", "cgi mutex lock+unlock", "mutex lock + unlock (two CGI requests), CGI through Apache mod_cgid", "target p50 ≤ 8 ms", 8},
		{"P8z", "cgi head", "(context) CGI GET /head, the cheapest authenticated read, via Apache mod_cgid", "—", 1e9},
	}
	skipAll := func(why string) {
		for _, r := range rows {
			b.rep.add(&row{num: r.num, name: r.name, value: "—", target: r.target, verdict: skip, notes: []string{"skipped: " + why}})
		}
	}
	script := filepath.Join(b.repo, "tests", "apache", "bench.sh")
	if _, err := os.Stat(script); err != nil {
		skipAll("apache not installed/bench.sh missing (no tests/apache/bench.sh)")
		return
	}
	if _, err := os.Stat("/usr/sbin/apache2"); err != nil {
		if _, err := exec.LookPath("apache2"); err != nil {
			skipAll("apache not installed/bench.sh missing (no apache2)")
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, b.bin)
	cmd.Dir = b.repo
	cmd.Env = cleanEnv()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, runErr := cmd.Output()
	var comments, entityNotes []string
	found := map[string]string{}
	okLine := regexp.MustCompile(`^(.*?) p50 ([0-9.]+) ms p99 ([0-9.]+) ms (.*)$`)
	badLine := regexp.MustCompile(`^(.*?): (no successful request.*)$`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	type fig struct {
		p50, p99 float64
		rest     string
		bad      string
	}
	figs := map[string]fig{}
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "# entity ") {
			entityNotes = append(entityNotes, strings.TrimPrefix(l, "# "))
			continue
		}
		if strings.HasPrefix(l, "# apache:") || strings.HasPrefix(l, "# loaded") {
			comments = append(comments, strings.TrimPrefix(l, "# "))
			continue
		}
		if m := okLine.FindStringSubmatch(l); m != nil {
			var f fig
			fmt.Sscan(m[2], &f.p50)
			fmt.Sscan(m[3], &f.p99)
			f.rest = m[4]
			figs[m[1]] = f
			found[m[1]] = l
		} else if m := badLine.FindStringSubmatch(l); m != nil {
			figs[m[1]] = fig{bad: m[2]}
			found[m[1]] = l
		}
	}
	for _, r := range rows {
		f, ok := figs[r.label]
		notes := []string{"from tests/apache/bench.sh: one client, Connection: close"}
		if r.num == "4" {
			notes = append(notes, comments...)
		}
		if r.num == "11e" {
			notes = append(notes, "token-authenticated; after one untimed read that folded the 100,000 events and wrote the snapshots")
			notes = append(notes, entityNotes...)
		}
		switch {
		case !ok:
			why := "bench.sh printed no line for it"
			if runErr != nil {
				why += fmt.Sprintf(" (exit: %v; %s)", runErr, lastLines(errb.String(), 3))
			}
			b.rep.add(&row{num: r.num, name: r.name, value: "—", target: r.target, verdict: errst, notes: append(notes, why)})
		case f.bad != "":
			b.rep.add(&row{num: r.num, name: r.name, value: "—", target: r.target, verdict: errst, notes: append(notes, "bench.sh: "+found[r.label])})
		default:
			v := verdict(f.p50 <= r.limit)
			if r.target == "—" {
				v = info
			}
			b.rep.add(&row{num: r.num, name: r.name, value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", f.p50, f.p99), target: r.target,
				verdict: v, notes: append(notes, "bench.sh: "+found[r.label])})
		}
	}
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}
