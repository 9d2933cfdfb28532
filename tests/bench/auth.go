package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The accounts figures: what authentication costs a standalone server
// (token against none, same load), a CGI process (token against none,
// direct exec), and a browser app in CGI that logs in with a password
// once and then uses the session token.

// cli runs a strata subcommand on data and returns its standard output.
func (b *bench) cli(data, stdin string, args ...string) (string, error) {
	cmd := exec.Command(b.bin, append(args, "--data", data)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("strata %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// accountsData makes a data directory with tenant "bench" (no quotas),
// a writer token for it, and a user "bench" with a password.
func (b *bench) accountsData(name string) (data, token string, err error) {
	data = filepath.Join(b.work, name)
	if _, err = b.cli(data, "", "tenant", "create", "bench", "--tier", "unlimited"); err != nil {
		return
	}
	if token, err = b.cli(data, "", "token", "create", "--tenant", "bench", "--role", "writer"); err != nil {
		return
	}
	_, err = b.cli(data, "bench-password\n", "user", "add", "bench", "--tenant", "bench", "--role", "writer", "--password-stdin")
	return
}

func (b *bench) measureAuth() {
	b.authStandalone()
	b.authCGI()
}

// authStandalone is figure A1: 64 clients of single appends, with a token
// and without accounts, in alternating rounds (the machine's fsync speed
// drifts between runs, so one long run of each would compare weather).
func (b *bench) authStandalone() {
	const name = "token-authenticated single appends, 64 clients, standalone (against --auth=none)"
	const target = "target within 10% of unauthenticated"
	data, token, err := b.accountsData("auth-a1")
	if err != nil {
		b.rep.errorRow("A1", name, target, err)
		return
	}
	plain := filepath.Join(b.work, "auth-a1-none")
	defer os.RemoveAll(data)
	defer os.RemoveAll(plain)
	round := b.ingestD / 2
	var none, tok []float64
	for i := 0; i < 3; i++ {
		for _, withToken := range []bool{false, true} {
			var s *server
			var hdr []string
			if withToken {
				s, err = b.startServer(data, "--auth=required")
				hdr = []string{"Authorization", "Bearer " + token}
			} else {
				s, err = b.startServer(plain, "--auth=none")
			}
			if err != nil {
				b.rep.errorRow("A1", name, target, err)
				return
			}
			_, err = singleAppends(s, 64, 5, 0, 100, hdr...)
			var r appendRun
			if err == nil {
				r, err = singleAppends(s, 64, 0, round, uint64(200+i), hdr...)
			}
			if serr := s.stop(); err == nil {
				err = serr
			}
			if err != nil {
				b.rep.errorRow("A1", name, target, err)
				return
			}
			rate := float64(r.n) / r.elapsed.Seconds()
			if withToken {
				tok = append(tok, rate)
			} else {
				none = append(none, rate)
			}
		}
	}
	mn, mt := median(none), median(tok)
	ratio := mt / mn
	b.rep.add(&row{num: "A1", name: name, value: fmt.Sprintf("%.1f%% of unauthenticated", ratio*100), target: target, verdict: verdict(ratio >= 0.9),
		notes: []string{
			fmt.Sprintf("median of 3 alternating %.0fs rounds: token %s events/s, none %s events/s", round.Seconds(), commas(int64(mt)), commas(int64(mn))),
			fmt.Sprintf("rounds: token %s; none %s", rates(tok), rates(none)),
		}})
}

func rates(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, commas(int64(x)))
	}
	return strings.Join(s, ", ")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// cgiRequest runs the binary once as a CGI program and times it.
func (b *bench) cgiRequest(data, method, path string, body []byte, env ...string) (status string, out []byte, d time.Duration, err error) {
	cmd := exec.Command(b.bin)
	cmd.Env = append(cgiEnv(b.bin, data, method, path, ""),
		fmt.Sprintf("CONTENT_LENGTH=%d", len(body)), "CONTENT_TYPE=application/json")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = bytes.NewReader(body)
	var ob, eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &ob, &eb
	t0 := time.Now()
	err = cmd.Run()
	d = time.Since(t0)
	if err != nil {
		return "", nil, d, fmt.Errorf("CGI %s %s: %v: %s", method, path, err, strings.TrimSpace(eb.String()))
	}
	status, out, err = cgiBody(ob.Bytes())
	return status, out, d, err
}

// cgiTimes runs n CGI requests, each made by mk, and returns their sorted
// times; every answer must have status want.
func (b *bench) cgiTimes(n int, want string, mk func(i int) (data, method, path string, body []byte, env []string)) ([]time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		data, method, path, body, env := mk(i)
		st, out, d, err := b.cgiRequest(data, method, path, body, env...)
		if err != nil {
			return nil, err
		}
		if st != want {
			return nil, fmt.Errorf("CGI %s %s: status %s, want %s: %.300s", method, path, st, want, out)
		}
		ds = append(ds, d)
	}
	sortDurations(ds)
	return ds, nil
}

// authCGI is figures A2 (what a token costs a CGI append) and A3 (a
// password login, then requests with the session token).
func (b *bench) authCGI() {
	const nameA2 = "token-authenticated CGI append, direct exec (against STRATA_AUTH=none)"
	const targetA2 = "target auth adds ≤ 0.2 ms"
	const nameA3 = "CGI: password login (POST /session), then session-token requests"
	const targetA3 = "target only the login pays the password hash"
	data, token, err := b.accountsData("auth-cgi")
	if err != nil {
		b.rep.errorRow("A2", nameA2, targetA2, err)
		return
	}
	plain := filepath.Join(b.work, "auth-cgi-none")
	defer os.RemoveAll(data)
	defer os.RemoveAll(plain)
	ev := func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"bench.appended","entity":"e-%d","data":{"i":%d,"sku":"A-1","qty":3}}`, i, i)
	}
	// Alternate the two kinds, so both see the same disk and caches.
	var none, tok []time.Duration
	const runs = 300
	for i := 0; i < runs; i++ {
		a, err := b.cgiTimes(1, "201", func(int) (string, string, string, []byte, []string) {
			return plain, "POST", "/events", ev(i), []string{"STRATA_AUTH=none"}
		})
		if err != nil {
			b.rep.errorRow("A2", nameA2, targetA2, err)
			return
		}
		t, err := b.cgiTimes(1, "201", func(int) (string, string, string, []byte, []string) {
			return data, "POST", "/events", ev(i), []string{"HTTP_AUTHORIZATION=Bearer " + token}
		})
		if err != nil {
			b.rep.errorRow("A2", nameA2, targetA2, err)
			return
		}
		if i >= 10 { // warm-up (stated)
			none, tok = append(none, a...), append(tok, t...)
		}
	}
	sortDurations(none)
	sortDurations(tok)
	pn, pt := percentile(none, 50), percentile(tok, 50)
	extra := pt - pn
	b.rep.add(&row{num: "A2", name: nameA2, value: fmt.Sprintf("+%.3f ms (p50 %.3f vs %.3f ms)", ms64(extra), ms64(pt), ms64(pn)), target: targetA2,
		verdict: verdict(extra <= 200*time.Microsecond),
		notes:   []string{fmt.Sprintf("%d alternating runs of each after 10 warm-up pairs; p99 token %.3f ms, none %.3f ms; includes fork+exec", runs-10, ms64(percentile(tok, 99)), ms64(percentile(none, 99)))}})

	// A3: log in a few times (each pays bcrypt), then requests with the
	// session token, with the API token, and with Basic (bcrypt each).
	var session string
	login, err := b.cgiTimes(10, "201", func(int) (string, string, string, []byte, []string) {
		return data, "POST", "/session", []byte(`{"user":"bench","password":"bench-password"}`), nil
	})
	if err == nil {
		_, out, _, lerr := b.cgiRequest(data, "POST", "/session", []byte(`{"user":"bench","password":"bench-password"}`))
		var s struct{ Token string }
		json.Unmarshal(out, &s)
		session, err = s.Token, lerr
	}
	var withSession, withToken, withBasic []time.Duration
	if err == nil {
		withSession, err = b.cgiTimes(200, "200", func(int) (string, string, string, []byte, []string) {
			return data, "GET", "/head", nil, []string{"HTTP_AUTHORIZATION=Bearer " + session}
		})
	}
	if err == nil {
		withToken, err = b.cgiTimes(200, "200", func(int) (string, string, string, []byte, []string) {
			return data, "GET", "/head", nil, []string{"HTTP_AUTHORIZATION=Bearer " + token}
		})
	}
	if err == nil {
		withBasic, err = b.cgiTimes(10, "200", func(int) (string, string, string, []byte, []string) {
			return data, "GET", "/head", nil, []string{"HTTP_AUTHORIZATION=Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ="}
		})
	}
	if err != nil {
		b.rep.errorRow("A3", nameA3, targetA3, err)
		return
	}
	ls, ss, ts, bs := percentile(login, 50), percentile(withSession, 50), percentile(withToken, 50), percentile(withBasic, 50)
	b.rep.add(&row{num: "A3", name: nameA3, value: fmt.Sprintf("login p50 %.1f ms; then p50 %.2f ms per request", ms64(ls), ms64(ss)), target: targetA3,
		verdict: verdict(ss-ts < time.Millisecond && ls-ss > 10*time.Millisecond),
		notes: []string{fmt.Sprintf("GET /head p50: session token %.2f ms, API token %.2f ms, Basic (bcrypt every request) %.1f ms; all direct exec",
			ms64(ss), ms64(ts), ms64(bs))}})
}
