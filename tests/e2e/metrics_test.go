package e2e_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// promtoolCheck runs `promtool check metrics` on a scrape, when promtool
// is installed (Debian's package prometheus; .ci/run installs it and sets
// STRATA_REQUIRE_PROMTOOL=1, so in CI a missing promtool fails).
func promtoolCheck(t *testing.T, scrape []byte) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("STRATA_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool is not installed, and STRATA_REQUIRE_PROMTOOL=1 (apt-get install --no-install-recommends prometheus)")
		}
		t.Log("promtool is not installed: the exposition is not checked by it")
		return
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// sample returns the value of the sample named by its whole series text
// (name{labels}), or "" if the scrape has none.
func sample(scrape []byte, series string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(scrape)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// The counters live in a file every process shares: appends made through
// a standalone server and through CGI processes on one data directory are
// counted together, and either mode's scrape shows them all.
func TestMetricsAcrossModes(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	cgiBase := c.URL + "/api"
	for i := 0; i < 3; i++ {
		do(t, "POST", s.url+"/events", `{"type":"m","entity":"e","data":1}`).want(t, 201)
	}
	for i := 0; i < 2; i++ {
		do(t, "POST", cgiBase+"/events", `[{"type":"m","entity":"f","data":1},{"type":"m","entity":"g","data":2}]`).want(t, 201)
	}
	do(t, "GET", cgiBase+"/events", nil).want(t, 200)
	do(t, "GET", cgiBase+"/nosuch/path", nil).want(t, 404)
	for _, base := range []string{s.url, cgiBase} {
		r := do(t, "GET", base+"/metrics", nil).want(t, 200)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("%s: Content-Type %q", base, ct)
		}
		for series, want := range map[string]string{
			`strata_events_appended_total{tenant="default"}`:                            "7",
			`strata_append_requests_total{tenant="default"}`:                            "5",
			`strata_log_events{tenant="default"}`:                                       "7",
			`strata_http_requests_total{method="POST",route="/events",code="201"}`:      "5",
			`strata_http_requests_total{method="GET",route="unmatched",code="404"}`:     "1",
			`strata_reads_total{kind="events"}`:                                         "1",
			`strata_http_request_duration_seconds_count{method="POST",route="/events"}`: "5",
		} {
			if got := sample(r.body, series); got != want {
				t.Errorf("%s: %s = %q, want %s", base, series, got, want)
			}
		}
		if n := sample(r.body, "strata_fsync_duration_seconds_count"); n == "" || n == "0" {
			t.Errorf("%s: no fsyncs counted (%q)", base, n)
		}
		if strings.Contains(string(r.body), "/nosuch") {
			t.Errorf("%s: a raw path is a label", base)
		}
		promtoolCheck(t, r.body)
	}
	for _, base := range []string{s.url, cgiBase} {
		do(t, "GET", base+"/ready", nil).want(t, 200)
		st := decode[map[string]any](t, do(t, "GET", base+"/stats", nil).want(t, 200).body)
		if st["events"] != float64(7) || st["entities"] != float64(3) {
			t.Errorf("%s: GET /stats = %v", base, st)
		}
	}
}

// Metrics are best-effort: with the metrics file unusable (a directory
// in its place) CGI and standalone requests succeed all the same.
func TestMetricsFileUnusable(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "system", "metrics"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := cgiServer(t, data)
	do(t, "POST", c.URL+"/api/events", `{"type":"m","entity":"e","data":1}`).want(t, 201)
	r := do(t, "GET", c.URL+"/api/metrics", nil).want(t, 200)
	if !strings.Contains(string(r.body), "strata_goroutines") {
		t.Errorf("scrape without the file: %s", r.body)
	}
	s := startServer(t, data)
	do(t, "POST", s.url+"/events", `{"type":"m","entity":"e","data":1}`).want(t, 201)
	do(t, "GET", s.url+"/ready", nil).want(t, 200)
}
