package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriterEscapes(t *testing.T) {
	var w Writer
	w.Family("x_total", "counter", "a \\ help\nline with \"quotes\"")
	w.Sample("x_total", 3, "route", "a\"b\\c\nd")
	want := "# HELP x_total a \\\\ help\\nline with \"quotes\"\n# TYPE x_total counter\n" +
		`x_total{route="a\"b\\c\nd"} 3` + "\n"
	if got := string(w.B); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWriterHistogramCumulative(t *testing.T) {
	var w Writer
	w.Histogram("h", []float64{0.5, 1}, []uint64{2, 0, 3}, 7.25, "k", "v")
	want := `h_bucket{k="v",le="0.5"} 2
h_bucket{k="v",le="1"} 2
h_bucket{k="v",le="+Inf"} 5
h_sum{k="v"} 7.25
h_count{k="v"} 5
`
	if got := string(w.B); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func mustOpen(t *testing.T) (*Set, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func scrape(s *Set) string {
	var w Writer
	s.Write(&w, Options{ReadKind: func(m, p string) string {
		if m == "GET" && p == "/events" {
			return "events"
		}
		return ""
	}})
	return string(w.B)
}

// Two Sets on one file are two processes: each sees the other's counts.
func TestSharedCounts(t *testing.T) {
	a, path := mustOpen(t)
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.HTTP("GET", "/events", 200, 2*time.Millisecond)
	b.HTTP("GET", "/events", 200, 20*time.Millisecond)
	b.HTTP("GET", "", 404, time.Millisecond)
	a.Appended("t1", 3, 100, 3, 4096, 2)
	b.Appended("t1", 1, 10, 4, 4200, 2)
	b.QuotaRefused("t1", "events_per_day")
	a.Synced(time.Millisecond)
	a.Group(5)
	a.LockWaited(time.Second)
	b.AuthFailed("unauthorized")
	out := scrape(a)
	for _, want := range []string{
		`strata_http_requests_total{method="GET",route="/events",code="200"} 2`,
		`strata_http_requests_total{method="GET",route="unmatched",code="404"} 1`,
		`strata_http_request_duration_seconds_bucket{method="GET",route="/events",le="0.0025"} 1`,
		`strata_http_request_duration_seconds_bucket{method="GET",route="/events",le="0.025"} 2`,
		`strata_http_request_duration_seconds_sum{method="GET",route="/events"} 0.022`,
		`strata_reads_total{kind="events"} 2`,
		`strata_events_appended_total{tenant="t1"} 4`,
		`strata_appended_bytes_total{tenant="t1"} 110`,
		`strata_append_requests_total{tenant="t1"} 2`,
		`strata_log_events{tenant="t1"} 4`,
		`strata_log_bytes{tenant="t1"} 4200`,
		`strata_quota_refusals_total{tenant="t1",quota="events_per_day"} 1`,
		`strata_fsync_duration_seconds_count 1`,
		`strata_group_commit_events_bucket{le="8"} 1`,
		`strata_lock_wait_seconds_sum 1`,
		`strata_auth_failures_total{code="unauthorized"} 1`,
		`strata_goroutines `,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
}

// Tenants past MaxTenants are counted together under Other.
func TestTenantCap(t *testing.T) {
	s, _ := mustOpen(t)
	for i := 0; i < MaxTenants+5; i++ {
		s.Appended("t"+string(rune('a'+i%26))+strings.Repeat("x", i/26), 1, 1, 1, 1, 1)
	}
	out := scrape(s)
	if n := strings.Count(out, "strata_events_appended_total{"); n != MaxTenants+1 {
		t.Errorf("%d tenant series, want %d", n, MaxTenants+1)
	}
	if !strings.Contains(out, `strata_events_appended_total{tenant="_other"} 5`) {
		t.Errorf("no _other row with 5")
	}
}

// A nil Set (the file could not be opened) counts nothing and still
// writes the process's metrics; a file truncated under the mapping is
// mapped again and counting goes on.
func TestBestEffort(t *testing.T) {
	var none *Set
	none.HTTP("GET", "/x", 200, time.Millisecond)
	none.Appended("t", 1, 1, 1, 1, 1)
	if out := scrape(none); !strings.Contains(out, "strata_goroutines") {
		t.Errorf("nil set scrape: %s", out)
	}
	s, path := mustOpen(t)
	s.Appended("t", 1, 1, 1, 1, 1)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	s.Appended("t", 1, 1, 1, 1, 1)
	if out := scrape(s); !strings.Contains(out, `strata_events_appended_total{tenant="t"} 1`) {
		t.Errorf("after truncation: %s", out)
	}
	// An unwritable place: Open fails, and the caller goes on with nil.
	if _, err := Open(filepath.Join(path, "under-a-file")); err == nil {
		t.Errorf("Open under a file succeeded")
	}
}

func BenchmarkAppended(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < b.N; i++ {
		s.Appended("default", 1, 100, uint64(i), 1, 1)
		s.HTTP("POST", "/events", 201, time.Millisecond)
	}
}

// BenchmarkCGIRequest is what one CGI append pays for metrics: map the
// file, count an append, its request, its fsync and its group, unmap.
func BenchmarkCGIRequest(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	if s, err := Open(path); err == nil {
		s.Close()
	}
	for i := 0; i < b.N; i++ {
		s, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		s.Group(1)
		s.Synced(time.Millisecond)
		s.Appended("default", 1, 100, uint64(i), 1, 1)
		s.HTTP("POST", "/events", 201, time.Millisecond)
		s.Close() // a CGI process skips it (its exit unmaps): this is the worst case

	}
}
