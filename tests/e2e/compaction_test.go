package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Compaction of sealed segments (issue 10 §2, §6): strata compact, POST and
// GET /admin/compaction, and a server's background compaction, each while
// the log is read and written over HTTP, must change no byte that any read
// serves, leave a log that strata verify passes, and survive kill -9.

// compactFill appends n events (batches of 500, or of batch) to base, in
// entities e0…e49, with data a real log has: repeated field names, words,
// numbers. A batch never spans two segments.
func compactFill(t testing.TB, base string, n int, batch ...int) {
	t.Helper()
	words := []string{"order", "placed", "shipped", "paid", "customer", "alpha", "berlin", "paris", "red", "blue", "widget", "gadget"}
	size := 500
	if len(batch) > 0 {
		size = batch[0]
	}
	for done := 0; done < n; {
		k := min(size, n-done)
		var b strings.Builder
		b.WriteByte('[')
		for i := 0; i < k; i++ {
			j := done + i
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"order.%s","entity":"e%d","data":{"n":%d,"sku":"%s-%d","qty":%d,"note":"%s %s %s","price":%d.%02d}}`,
				words[j%4], j%50, j, words[4+j%8], j%97, j%7+1, words[j%12], words[(j/3)%12], words[(j/7)%12], j%1000, j%100)
		}
		b.WriteByte(']')
		do(t, "POST", base+"/events", b.String(), "Content-Type", "application/json").want(t, 201)
		done += k
	}
}

// compactReads is every kind of read of the first n events (n a multiple
// of 250): pages as JSON and NDJSON, events by id, entities' states and
// histories, a filtered read, and (unless CGI, where a stream holds its
// process until its timeout) the stream's catch-up; each answer's body by
// what was asked.
func compactReads(t testing.TB, base string, n int, cgi ...bool) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	get := func(path string, headers ...string) []byte {
		r := do(t, "GET", base+path, nil, headers...)
		if r.status != 200 {
			t.Fatalf("GET %s: %s", path, r)
		}
		out[path+" "+strings.Join(headers, " ")] = r.body
		return r.body
	}
	var ids []string
	for after := 0; after < n; after += 250 {
		body := get(fmt.Sprintf("/events?after=%d&limit=250", after), "Accept", "application/x-ndjson")
		for _, e := range parseNDJSON(t, body) {
			ids = append(ids, e.ID)
		}
		get(fmt.Sprintf("/events?after=%d&limit=250", after))
	}
	if len(ids) != n {
		t.Fatalf("%d events read, want %d", len(ids), n)
	}
	// Fewer under CGI, where each request is a process (and make race
	// runs the binary under the race detector).
	every, entityStep := 37, 7
	if len(cgi) > 0 {
		every, entityStep = 150, 20
	}
	for i := 0; i < n; i += every {
		get("/events/" + ids[i])
	}
	for e := 0; e < 50; e += entityStep {
		get(fmt.Sprintf("/entities/e%d", e))
		get(fmt.Sprintf("/entities/e%d/history?limit=20", e))
		get(fmt.Sprintf("/events?entity=e%d&limit=100&to=%s", e, ids[n-1]))
	}
	get(fmt.Sprintf("/events?type=order.paid&limit=300&to=%s", ids[n-1]))
	if len(cgi) == 0 {
		out["stream"] = streamCatchUp(t, base, ids[n-1])
	}
	return out
}

// streamCatchUp reads GET /stream from the start until the event last,
// and returns what came: its id: and data: lines.
func streamCatchUp(t testing.TB, base, last string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/stream", nil)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /stream: %v", err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "id: ") || strings.HasPrefix(line, "data: ") {
			b.WriteString(line + "\n")
		}
		if line == "id: "+last {
			return b.Bytes()
		}
	}
	t.Fatalf("GET /stream ended before event %s: %v", last, sc.Err())
	return nil
}

// sameReads fails the test for every read whose answer changed.
func sameReads(t testing.TB, when string, before, after map[string][]byte) {
	t.Helper()
	bad := 0
	for k, b := range before {
		if !bytes.Equal(b, after[k]) {
			if bad++; bad <= 3 {
				t.Errorf("%s: GET %s changed:\nbefore %.300s\nafter  %.300s", when, k, b, after[k])
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d reads changed in all", when, bad)
	}
}

// segmentFiles counts the files of the default tenant's log by kind.
func segmentFiles(t testing.TB, data string) (seg, zseg, tmp int) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(data, "tenants", "default", "log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch n := e.Name(); {
		case strings.HasSuffix(n, ".zseg.tmp"):
			tmp++
		case strings.HasSuffix(n, ".zseg"):
			zseg++
		case strings.HasSuffix(n, ".seg"):
			seg++
		}
	}
	return seg, zseg, tmp
}

// compactionRun is POST /admin/compaction's answer.
type compactionRun struct {
	Tenants []struct {
		Tenant      string
		Segments    int
		BytesBefore int64 `json:"bytes_before"`
		BytesAfter  int64 `json:"bytes_after"`
		Seconds     float64
		Remaining   int
		Busy        bool
	}
	Segments    int
	BytesBefore int64 `json:"bytes_before"`
	BytesAfter  int64 `json:"bytes_after"`
	Seconds     float64
	Remaining   int
}

// compactionStats is GET /admin/compaction's answer.
type compactionStats struct {
	AutoAge float64 `json:"auto_age_seconds"`
	Tenants []struct {
		Tenant                string
		Segments              int
		Compressed            int
		Pending               int
		BytesBefore           int64 `json:"bytes_before"`
		BytesAfter            int64 `json:"bytes_after"`
		Ratio                 float64
		CompressedBytesBefore int64 `json:"compressed_bytes_before"`
		CompressedBytesAfter  int64 `json:"compressed_bytes_after"`
		LastRun               *struct {
			Version     int
			Time        string
			By          string
			Segments    int
			BytesBefore int64 `json:"bytes_before"`
			BytesAfter  int64 `json:"bytes_after"`
			Seconds     float64
			Remaining   int
		} `json:"last_run"`
	}
}

func getCompaction(t testing.TB, base string) compactionStats {
	t.Helper()
	s := decode[compactionStats](t, do(t, "GET", base+"/admin/compaction?tenant=default", nil).want(t, 200).body)
	if len(s.Tenants) != 1 || s.Tenants[0].Tenant != "default" {
		t.Fatalf("GET /admin/compaction?tenant=default: %+v", s)
	}
	return s
}

// TestCompaction: strata compact, then POST /admin/compaction in budgeted
// calls until nothing remains, while readers check every kind of read
// against what it served before and writers seal new segments; afterwards
// every read is byte-identical, strata verify passes, every sealed
// segment is a .zseg, and GET /admin/compaction says so. Another
// compaction holding the tenant makes POST a 409 compaction_busy and
// strata compact exit 1 saying why.
func TestCompaction(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, "--segment-size", "64K", "--compact-age", "off")
	const n = 4000
	compactFill(t, s.url, n)
	before := compactReads(t, s.url, n)
	segs, _, _ := segmentFiles(t, data)
	if segs < 8 {
		t.Fatalf("%d segments; the test wants several sealed ones", segs)
	}
	// The first segment as it was, for zstd -d of its .zseg below.
	firstSeg := filepath.Join(data, "tenants", "default", "log", "00000000000000000001.seg")
	original, err := os.ReadFile(firstSeg)
	if err != nil {
		t.Fatal(err)
	}

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		reads   atomic.Int64
		appends atomic.Int64
		mu      sync.Mutex
		errs    []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	keys := make([]string, 0, len(before))
	for k := range before {
		if k != "stream" {
			keys = append(keys, k)
		}
	}
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i++ {
				k := keys[i%len(keys)]
				path, hdr, _ := strings.Cut(k, " ")
				var headers []string
				if hdr != "" {
					headers = strings.Fields(hdr)
				}
				res, err := try("GET", s.url+path, nil, headers...)
				if err != nil || res.status != 200 || !bytes.Equal(res.body, before[k]) {
					fail("while compacting, GET %s: %v %v", k, err, res)
					continue
				}
				reads.Add(1)
			}
		}()
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`[{"type":"w","entity":"w%d","data":{"i":%d,"pad":"%s"}}]`, w, i, strings.Repeat("abc ", 500))
				res, err := try("POST", s.url+"/events", body, "Content-Type", "application/json")
				if err != nil || res.status != 201 {
					fail("while compacting, an append: %v %v", err, res)
					continue
				}
				appends.Add(1)
			}
		}()
	}

	out, errOut, code := cliRun(t, "", "compact", "--tenant", "default", "--data", data)
	if code != 0 || !strings.Contains(out, "tenant default: ") || !strings.Contains(out, "× smaller") {
		t.Fatalf("strata compact: exit %d\n%s%s", code, out, errOut)
	}
	if _, zseg, _ := segmentFiles(t, data); zseg < segs-1 {
		t.Errorf("%d .zseg files after strata compact, want at least the %d segments sealed before it", zseg, segs-1)
	}
	// README: zstd -d of a .zseg gives the original segment, byte for byte.
	if _, err := exec.LookPath("zstd"); err == nil {
		cmd := exec.Command("zstd", "-d", "-c", strings.TrimSuffix(firstSeg, ".seg")+".zseg")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil || !bytes.Equal(out, original) {
			t.Errorf("zstd -d of the first .zseg: %v (%d bytes, the .seg had %d; equal %v)\n%s", err, len(out), len(original), bytes.Equal(out, original), stderr.String())
		}
	} else if os.Getenv("STRATA_REQUIRE_ZSTD") == "1" {
		t.Fatal("zstd is not installed, and STRATA_REQUIRE_ZSTD=1 (apt-get install zstd)")
	} else {
		t.Log("zstd is not installed: zstd -d of a .zseg not checked")
	}

	// POST with a budget too short for all: what remains is counted, and
	// calls until it is 0 finish the job (as a cron job would).
	time.Sleep(300 * time.Millisecond) // the writers seal more segments
	first := decode[compactionRun](t, do(t, "POST", s.url+"/admin/compaction?tenant=default&budget=1ms", nil).want(t, 200).body)
	if first.Segments < 1 || len(first.Tenants) != 1 || first.Tenants[0].Segments != first.Segments || first.BytesAfter >= first.BytesBefore {
		t.Errorf("POST /admin/compaction?budget=1ms: %+v", first)
	}
	for i := 0; ; i++ {
		r := decode[compactionRun](t, do(t, "POST", s.url+"/admin/compaction", nil).want(t, 200).body)
		if r.Remaining == 0 {
			break
		}
		if i == 10 {
			t.Fatalf("POST /admin/compaction still leaves %d segments after 10 calls", r.Remaining)
		}
	}
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if reads.Load() == 0 || appends.Load() == 0 {
		t.Fatalf("%d reads and %d appends while compacting; the test wants both", reads.Load(), appends.Load())
	}
	t.Logf("%d reads checked and %d appends while compacting", reads.Load(), appends.Load())
	sameReads(t, "after compaction", before, compactReads(t, s.url, n))

	// Everything sealed is compressed now: one last call compresses what the
	// writers sealed last; GET says so.
	do(t, "POST", s.url+"/admin/compaction?tenant=default", nil).want(t, 200)
	st := getCompaction(t, s.url).Tenants[0]
	seg, zseg, tmp := segmentFiles(t, data)
	if seg != 1 || tmp != 0 || st.Segments != zseg+1 || st.Compressed != zseg || st.Pending != 0 {
		t.Errorf("after compaction: %d .seg, %d .zseg, %d .zseg.tmp; GET /admin/compaction %+v", seg, zseg, tmp, st)
	}
	if st.Ratio < 2 || st.BytesAfter >= st.BytesBefore || st.CompressedBytesAfter*2 > st.CompressedBytesBefore {
		t.Errorf("GET /admin/compaction: the ratio of a log of JSON events %+v", st)
	}
	if st.LastRun == nil || st.LastRun.By != "http" || st.LastRun.Version != 1 {
		t.Errorf("GET /admin/compaction: last run %+v, want one by http", st.LastRun)
	}
	h := mustHead(t, s.url)
	mustVerify(t, data, int(h.Seq))
	whole := compactReads(t, s.url, int(h.Seq)/250*250)
	out, errOut, code = cliRun(t, "", "compact", "--data", data)
	if code != 0 {
		t.Fatalf("strata compact with nothing to do: exit %d\n%s%s", code, out, errOut)
	}
	sameReads(t, "a log read whole, after the last compaction", whole, compactReads(t, s.url, int(h.Seq)/250*250))

	// Another compaction holding the tenant (its compact.lock): 409 with
	// Retry-After, and strata compact says so.
	compactFill(t, s.url, 1000)
	lock, err := os.OpenFile(filepath.Join(data, "tenants", "default", "log", "compact.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", s.url+"/admin/compaction", nil)
	if e := r.wantError(t, 409, "compaction_busy"); e["remaining"] == nil || r.header.Get("Retry-After") == "" {
		t.Errorf("POST /admin/compaction while another runs: %s (Retry-After %q)", r, r.header.Get("Retry-After"))
	}
	out, errOut, code = cliRun(t, "", "compact", "--tenant", "default", "--data", data)
	if code != 1 || !strings.Contains(errOut, "another compaction of this log is running") {
		t.Errorf("strata compact while another runs: exit %d, want 1\n%s%s", code, out, errOut)
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	// Bad parameters are 400s naming them; an unknown tenant a 404.
	do(t, "POST", s.url+"/admin/compaction?budget=0s", nil).wantError(t, 400, "invalid_parameter")
	do(t, "POST", s.url+"/admin/compaction?tenant=Bad!", nil).wantError(t, 400, "invalid_parameter")
	do(t, "GET", s.url+"/admin/compaction?tenant=nosuch", nil).wantError(t, 404, "no_tenant")
}

// TestCompactionKill: strata compact killed (SIGKILL) at random moments
// after it starts compressing, round after round, while a server reads
// the log: after each kill strata verify passes and every read is
// byte-identical; a last strata compact finishes the job and leaves no
// .zseg.tmp.
func TestCompactionKill(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, "--segment-size", "256K", "--compact-age", "off")
	n := 0
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	killed := 0
	var before map[string][]byte
	for round := 0; round < 6; round++ {
		if seg, _, _ := segmentFiles(t, data); seg < 6 {
			compactFill(t, s.url, 10000)
			n += 10000
			before = compactReads(t, s.url, n)
		}
		cmd := exec.Command(bin, "compact", "--tenant", "default", "--data", data)
		cmd.Env = cleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// It starts compressing when the first .zseg.tmp appears.
		delay := time.Duration(rng.IntN(60_000)) * time.Microsecond
		started := false
	wait:
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case err := <-exited:
				exited <- err
				break wait
			default:
			}
			if _, _, tmp := segmentFiles(t, data); tmp > 0 {
				started = true
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		err := <-exited
		if ee, ok := err.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed++
		} else if err != nil {
			t.Fatalf("round %d: strata compact: %v\n%s", round, err, stderr.String())
		}
		seg, zseg, tmp := segmentFiles(t, data)
		t.Logf("round %d: started %v, killed after %v: %d .seg, %d .zseg, %d .zseg.tmp", round, started, delay, seg, zseg, tmp)
		mustVerify(t, data, n)
		sameReads(t, fmt.Sprintf("round %d, after kill -9 of strata compact", round), before, compactReads(t, s.url, n))
	}
	if killed == 0 {
		t.Errorf("strata compact finished before its kill in every round; the test wants it killed mid-way")
	}
	out, errOut, code := cliRun(t, "", "compact", "--tenant", "default", "--data", data)
	if code != 0 {
		t.Fatalf("the last strata compact: exit %d\n%s%s", code, out, errOut)
	}
	if seg, zseg, tmp := segmentFiles(t, data); seg != 1 || tmp != 0 || zseg == 0 {
		t.Errorf("after the last strata compact: %d .seg, %d .zseg, %d .zseg.tmp; want 1 .seg (the active one) and no .zseg.tmp", seg, zseg, tmp)
	}
	mustVerify(t, data, n)
	sameReads(t, "after the last strata compact", before, compactReads(t, s.url, n))
}

// TestCompactionAuto: a server with a tiny --compact-age compresses the
// sealed segments of the tenant it has open by itself, records the run
// as by "auto", changes no read, and still stops at once on SIGTERM.
func TestCompactionAuto(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	// Every append in the audit log too, so that it has sealed segments.
	s := startServer(t, data, "--segment-size", "64K", "--compact-age", "500ms", "--audit-appends")
	const n = 3000
	compactFill(t, s.url, n)
	before := compactReads(t, s.url, n)
	// Appends go on while the server compacts (it never takes the append
	// lock): a writer for the first second, which seals more segments.
	var appended, refused atomic.Int64
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for t0 := time.Now(); time.Since(t0) < time.Second; {
			r, err := try("POST", s.url+"/events", `{"type":"w","entity":"w","data":{"pad":"`+strings.Repeat("abc ", 100)+`"}}`, "Content-Type", "application/json")
			if err != nil || r.status != 201 {
				refused.Add(1)
				continue
			}
			appended.Add(1)
		}
	}()
	<-wrote
	if appended.Load() == 0 || refused.Load() > 0 {
		t.Errorf("appends while the server compacts: %d stored, %d failed", appended.Load(), refused.Load())
	}
	var st compactionStats
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = getCompaction(t, s.url)
		// The run is recorded when its last segment is done.
		if ts := st.Tenants[0]; ts.Pending == 0 && ts.Compressed >= 4 && ts.Compressed == ts.Segments-1 && ts.LastRun != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server compressed no sealed segment within 20s: %+v\n%s", st, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.AutoAge != 0.5 || st.Tenants[0].LastRun == nil || st.Tenants[0].LastRun.By != "auto" {
		t.Errorf("GET /admin/compaction after a background compaction: %+v", st)
	}
	// Counted just after the run is recorded.
	for i := 0; ; i++ {
		m := string(do(t, "GET", s.url+"/metrics", nil).want(t, 200).body)
		if strings.Contains(m, `strata_compaction_segments_total{tenant="default"} `) && !strings.Contains(m, `strata_compaction_segments_total{tenant="default"} 0`+"\n") {
			break
		}
		if i == 20 {
			t.Errorf("GET /metrics counts no background compaction:\n%s", m)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.log(), "compacted sealed segments") {
		t.Errorf("the server logged no background compaction:\n%s", s.log())
	}
	// The audit log's sealed segments too.
	auditLog := filepath.Join(data, "system", "audit", "log")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		zsegs, _ := filepath.Glob(filepath.Join(auditLog, "*.zseg"))
		segs, _ := filepath.Glob(filepath.Join(auditLog, "*.seg"))
		if len(zsegs) > 0 && len(segs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log's sealed segments were not compressed within 10 s: %d .zseg, %d .seg", len(zsegs), len(segs))
		}
	}
	if out, errOut, code := cliRun(t, "", "verify", "--audit", "--data", data); code != 0 {
		t.Errorf("strata verify --audit after the background compaction: exit %d\n%s%s", code, out, errOut)
	}
	sameReads(t, "after the background compaction", before, compactReads(t, s.url, n))
	mustVerify(t, data, n+int(appended.Load()))
	t0 := time.Now()
	if code := s.stop(syscall.SIGTERM, 10*time.Second); code != 0 || time.Since(t0) > 5*time.Second {
		t.Errorf("SIGTERM: exit %d after %v\n%s", code, time.Since(t0), s.log())
	}
}

// TestCompactionCGI: POST and GET /admin/compaction in a CGI process (one
// per request), which has no background compaction (auto_age_seconds 0),
// even with STRATA_COMPACT_AGE set.
func TestCompactionCGI(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	os.Chmod(data, 0o700) // else every CGI process warns that others may read it
	srv := cgiServer(t, data, "STRATA_SEGMENT_SIZE=32K", "STRATA_COMPACT_AGE=1s")
	base := srv.URL + "/api"
	const n = 1000
	compactFill(t, base, n, 100)
	before := compactReads(t, base, n, true)
	r := decode[compactionRun](t, do(t, "POST", base+"/admin/compaction", nil).want(t, 200).body)
	if r.Segments < 3 || r.Remaining != 0 || len(r.Tenants) != 1 {
		t.Errorf("POST /admin/compaction under CGI: %+v", r)
	}
	st := getCompaction(t, base)
	if st.AutoAge != 0 || st.Tenants[0].Compressed != r.Segments || st.Tenants[0].LastRun == nil || st.Tenants[0].LastRun.By != "http" {
		t.Errorf("GET /admin/compaction under CGI: %+v", st)
	}
	m := string(do(t, "GET", base+"/metrics", nil).want(t, 200).body)
	if want := fmt.Sprintf("strata_compaction_segments_total{tenant=\"default\"} %d\n", r.Segments); !strings.Contains(m, want) ||
		!strings.Contains(m, fmt.Sprintf("strata_compaction_saved_bytes_total{tenant=\"default\"} %d\n", r.BytesBefore-r.BytesAfter)) {
		t.Errorf("GET /metrics after POST /admin/compaction under CGI: want %q and the bytes saved in\n%s", want, m)
	}
	sameReads(t, "CGI, after POST /admin/compaction", before, compactReads(t, base, n, true))
	mustVerify(t, data, n)
}
