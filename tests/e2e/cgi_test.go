package e2e_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// cgiServer serves the strata binary as a CGI program mounted at /api (one
// process per request, as a web server does), on data, with extra STRATA_*
// variables. Chunked requests are passed the way Apache passes them: no
// CONTENT_LENGTH, HTTP_TRANSFER_ENCODING=chunked, the body on standard
// input (Go's own cgi.Handler refuses them with a 400).
func cgiServer(t *testing.T, data string, env ...string) *httptest.Server {
	t.Helper()
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "STRATA_AUTH=") }) {
		env = append([]string{"STRATA_AUTH=none"}, env...)
	}
	h := &cgi.Handler{Path: bin, Root: "/api", Env: append([]string{"STRATA_DATA=" + data}, env...)}
	mux := http.NewServeMux()
	mux.Handle("/api/", apacheLocation(apacheChunked(h)))
	mux.Handle("/api", apacheLocation(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// apacheChunked hands a chunked request to h as Apache does.
func apacheChunked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(r.TransferEncoding, "chunked") {
			r = r.Clone(r.Context())
			r.TransferEncoding = nil
			r.ContentLength = -1 // unknown: cgi.Handler then sets no CONTENT_LENGTH but passes the body
			r.Header.Set("Transfer-Encoding", "chunked")
		}
		h.ServeHTTP(w, r)
	})
}

// apacheLocation answers as Apache does when a CGI program sends a Location
// header with status 200: with its own 302 (api/storage.go says why it never
// sends one). Go's cgi.Handler
// keeps the 200, which hid a blob re-upload's 302 under Apache.
func apacheLocation(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&locationWriter{ResponseWriter: w}, r)
	})
}

type locationWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *locationWriter) WriteHeader(code int) {
	if !w.wrote && code == http.StatusOK && w.Header().Get("Location") != "" {
		code = http.StatusFound
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *locationWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *locationWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TestBlobReuploadSameEverywhere: storing a blob that is already there
// answers 200 with the same JSON in CGI as standalone, and never a Location
// with 200 (which Apache turns into a 302 page); a new blob answers 201
// with its Location.
func TestBlobReuploadSameEverywhere(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	for i, base := range []string{s.url, c.URL + "/api"} {
		blob := content(20+uint64(i), 5000)
		first := do(t, "PUT", base+"/storage/", blob).want(t, 201)
		if loc := first.header.Get("Location"); loc != b3hex(blob) {
			t.Errorf("%s: first PUT Location %q, want the hash", base, loc)
		}
		for _, url := range []string{base + "/storage/", base + "/storage/" + b3hex(blob)} {
			again := do(t, "PUT", url, blob).want(t, 200)
			if string(again.body) != string(first.body) {
				t.Errorf("PUT %s again = %s, want %s", url, again.body, first.body)
			}
			if loc := again.header.Get("Location"); loc != "" {
				t.Errorf("PUT %s again: Location %q with status 200", url, loc)
			}
			if cl := again.header.Get("Content-Location"); cl != b3hex(blob) {
				t.Errorf("PUT %s again: Content-Location %q, want the hash", url, cl)
			}
		}
	}
}

// TestCGIAndStandaloneTogether: a standalone server and CGI processes
// append to the same data directory at once; the log stays one gapless
// chain with every acknowledged event in it.
func TestCGIAndStandaloneTogether(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	const perSide, each = 8, 18
	led := newLedger()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	fail := func(f string, a ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	for side, base := range []string{s.url, c.URL + "/api"} {
		for g := 0; g < perSide; g++ {
			wg.Go(func() {
				for i := 0; i < each; i++ {
					var evs, keys []string
					for k := 0; k < 1+i%3; k++ {
						key := fmt.Sprintf("s%d-g%d-%d-%d", side, g, i, k)
						keys = append(keys, key)
						evs = append(evs, fmt.Sprintf(`{"type":"mix","entity":"e%d","key":%q,"data":{"side":%d}}`, (g+i)%5, key, side))
					}
					body := "[" + strings.Join(evs, ",") + "]"
					if len(evs) == 1 {
						body = evs[0]
					}
					var r *response
					var err error
					for try1 := 0; try1 < 5; try1++ {
						r, err = try("POST", base+"/events", body, "Content-Type", "application/json")
						if err != nil || r.status != 503 {
							break
						}
					}
					if err != nil || r.status != 201 {
						fail("side %d goroutine %d append %d: %v %v", side, g, i, err, r)
						return
					}
					rs, err := receipts(r.body)
					if err != nil || len(rs) != len(keys) {
						fail("side %d: answer %s: %v", side, r, err)
						return
					}
					for k, rc := range rs {
						led.ack(keys[k], rc.ID)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	checkLedger(t, s.url, data, led)
	if n := len(readAll(t, s.url)); n != led.len() {
		t.Errorf("%d events in the log, %d acknowledged", n, led.len())
	}
	// A fresh process finds events either side appended by their ids.
	n := 0
	for _, id := range led.byKey {
		if n++; n > 40 {
			break
		}
		if r := do(t, "GET", c.URL+"/api/events/"+id, nil); r.status != 200 {
			t.Errorf("CGI: GET /events/%s = %s", id, r)
		}
	}
	// Both sides see the same log.
	viaCGI := readAll(t, c.URL+"/api")
	viaServer := readAll(t, s.url)
	if len(viaCGI) != len(viaServer) || viaCGI[len(viaCGI)-1].ID != viaServer[len(viaServer)-1].ID {
		t.Errorf("CGI reads %d events, the standalone server %d", len(viaCGI), len(viaServer))
	}
	if h1, h2 := mustHead(t, s.url), mustHead(t, c.URL+"/api"); h1 != h2 && (h1.ID != h2.ID || h1.Seq != h2.Seq) {
		t.Errorf("heads differ: standalone %+v, CGI %+v", h1, h2)
	}
}

// TestCGIRoutes: the API through CGI behind a /api mount routes on
// PATH_INFO, and answers like the standalone server.
func TestCGIRoutes(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	c := cgiServer(t, data)
	base := c.URL + "/api"
	h := mustHead(t, base)
	if h.Seq != 0 || h.ID != zeros {
		t.Fatalf("empty head through CGI: %+v", h)
	}
	var rcs []receipt
	for i := 0; i < 5; i++ {
		rcs = append(rcs, mustAppend(t, base, fmt.Sprintf(`{"type":"cgi.test","entity":"books/%d","data":{"big":12345678901234567890}}`, i%2)))
	}
	// from= (exclusive) and to= (inclusive) through CGI.
	r := do(t, "GET", base+"/events?from="+rcs[1].ID, nil).want(t, 200)
	evs := decode[[]event](t, r.body)
	if len(evs) != 3 || evs[0].ID != rcs[2].ID || evs[2].ID != rcs[4].ID || string(evs[0].Data) != `{"big":12345678901234567890}` {
		t.Fatalf("GET /api/events?from=<2nd> = %s", r.body)
	}
	r = do(t, "GET", base+"/events?from="+rcs[0].ID+"&to="+rcs[2].ID, nil, "Accept", "application/x-ndjson").want(t, 200)
	if evs := parseNDJSON(t, r.body); len(evs) != 2 || evs[1].ID != rcs[2].ID {
		t.Fatalf("from&to as NDJSON: %s", r.body)
	}
	do(t, "GET", base+"/events?from="+b3hex([]byte("x")), nil).wantError(t, 404, "not_on_chain")
	// Paging through CGI: a relative Link works under the mount.
	r = do(t, "GET", base+"/events?limit=2&entity=books/*", nil).want(t, 200)
	next := nextLink(t, r.header)
	if next == "" {
		t.Fatal("no Link through CGI")
	}
	r = do(t, "GET", base+"/events"+next, nil).want(t, 200)
	if evs := decode[[]event](t, r.body); len(evs) != 2 || evs[0].Seq != 3 {
		t.Fatalf("second page through CGI: %s", r.body)
	}
	r = do(t, "GET", base+"/events/"+rcs[3].ID, nil).want(t, 200)
	if e := decode[event](t, r.body); e.ID != rcs[3].ID {
		t.Fatalf("GET /api/events/<id>: %s", r.body)
	}
	do(t, "GET", base+"/events/"+zeros, nil).wantError(t, 404, "not_found")
	do(t, "GET", base+"/nope", nil).wantError(t, 404, "no_route")
	do(t, "GET", base, nil).wantError(t, 404, "no_route") // PATH_INFO empty: "/"
	do(t, "DELETE", base+"/head", nil).wantError(t, 405, "method_not_allowed")
	do(t, "PUT", base+"/events", `{"type":"Bad","entity":"e"}`).wantError(t, 400, "invalid_event")
	do(t, "PUT", base+"/events", `{"type":"a","entity":"e"}`, "Content-Type", "application/xml").wantError(t, 415, "unsupported_media_type")
	do(t, "PUT", base+"/events", `{"type":"a","entity":"books/0","expected_version":0}`).wantError(t, 409, "version_conflict")
	// Blobs through CGI.
	blob := content(9, 70000)
	r = do(t, "PUT", base+"/storage/report.pdf", blob).want(t, 201)
	if info := decode[blobInfo](t, r.body); info.Hash != b3hex(blob) || info.Type != "application/pdf" {
		t.Fatalf("PUT blob through CGI: %s", r.body)
	}
	r = do(t, "GET", base+"/storage/"+b3hex(blob), nil, "Range", "bytes=10-19").want(t, 206)
	if string(r.body) != string(blob[10:20]) {
		t.Errorf("Range through CGI: %q", r.body)
	}
	mustVerify(t, data, 5)
}

// TestCGIChunked: a chunked upload reaches strata as Apache passes it (no
// CONTENT_LENGTH, the body on standard input to its end).
func TestCGIChunked(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	// The uploads below must really arrive chunked, or this would test the
	// CONTENT_LENGTH path again: count them on the way in. (What Go's own
	// cgi.Handler does with a chunked body is not strata's to test; the
	// shim passes them as Apache does either way.)
	inner := cgiServer(t, data)
	var chunked atomic.Int32
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(r.TransferEncoding, "chunked") {
			chunked.Add(1)
		}
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(c.Close)
	base := c.URL + "/api"
	body := `[{"type":"a","entity":"e","data":"` + strings.Repeat("y", 100000) + `"},{"type":"a","entity":"e"}]`
	r := do(t, "PUT", base+"/events", strings.NewReader(body), "Content-Type", "application/json").want(t, 201)
	if rs := decode[[]receipt](t, r.body); len(rs) != 2 || rs[1].Seq != 2 {
		t.Fatalf("chunked append through CGI: %s", r.body)
	}
	evs := readAll(t, base)
	if len(evs) != 2 || len(evs[0].Data) != 100002 {
		t.Fatalf("chunked append stored %d events", len(evs))
	}
	blob := content(10, 300000)
	r = do(t, "PUT", base+"/storage/", strings.NewReader(string(blob))).want(t, 201)
	if info := decode[blobInfo](t, r.body); info.Hash != b3hex(blob) || info.Size != int64(len(blob)) {
		t.Fatalf("chunked blob through CGI: %s", r.body)
	}
	r = do(t, "GET", base+"/storage/"+b3hex(blob), nil).want(t, 200)
	if string(r.body) != string(blob) {
		t.Fatal("chunked blob read back differs")
	}
	// An explicitly empty body through CGI.
	do(t, "PUT", base+"/events", "", "Content-Type", "application/json").wantError(t, 400, "empty_body")
	mustVerify(t, data, 2)
	if n := chunked.Load(); n != 2 {
		t.Errorf("%d of the 2 uploads arrived chunked", n)
	}
}

// TestCGIEarlyError: an answer given before the body is read (413) still
// reaches the client, as JSON.
func TestCGIEarlyError(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	c := cgiServer(t, data, "STRATA_MAX_BODY=1K", "STRATA_MAX_BLOB=64K")
	base := c.URL + "/api"
	big := `{"type":"a","entity":"e","data":"` + strings.Repeat("z", 1<<20) + `"}`
	do(t, "PUT", base+"/events", big, "Content-Type", "application/json").wantError(t, 413, "body_too_large")
	do(t, "PUT", base+"/events", strings.NewReader(big), "Content-Type", "application/json").wantError(t, 413, "body_too_large")
	do(t, "PUT", base+"/events", big, "Content-Type", "application/xml").wantError(t, 415, "unsupported_media_type")
	do(t, "PUT", base+"/storage/", content(11, 1<<20)).wantError(t, 413, "blob_too_large")
	do(t, "PUT", base+"/storage/", strings.NewReader(string(content(11, 1<<20)))).wantError(t, 413, "blob_too_large")
	mustAppend(t, base, `{"type":"a","entity":"e"}`)
	if h := mustHead(t, base); h.Seq != 1 {
		t.Fatalf("head seq %d, want 1", h.Seq)
	}
	mustVerify(t, data, 1)
}

// TestCGIAndStandaloneTakeTurns: writers in two processes take turns on the
// same entities; each must see the other's events when it numbers versions
// and checks expected_version and keys.
func TestCGIAndStandaloneTakeTurns(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	sides := []string{s.url, c.URL + "/api"}
	names := []string{"standalone", "CGI"}
	for i := 0; i < 12; i++ {
		side := i % 2
		if i%4 >= 2 {
			side = 1 - side
		}
		ent := fmt.Sprintf("acct-%d", i%3)
		want := uint64(i/3 + 1)
		r := do(t, "PUT", sides[side]+"/events", fmt.Sprintf(`{"type":"t","entity":%q,"key":"turn-%d"}`, ent, i))
		if r.status != 201 {
			t.Fatalf("turn %d (%s): %s", i, names[side], r)
		}
		if rc := decode[receipt](t, r.body); rc.Seq != uint64(i+1) || rc.Version != want {
			t.Errorf("turn %d (%s): %s version %d seq %d, want version %d seq %d", i, names[side], ent, rc.Version, rc.Seq, want, i+1)
		}
	}
	// Each side sees the other's entity versions and keys.
	for side, base := range sides {
		e := do(t, "PUT", base+"/events", `{"type":"t","entity":"acct-0","expected_version":0}`).wantError(t, 409, "version_conflict")
		if e["current_version"] != 4.0 {
			t.Errorf("%s: acct-0 current_version %v, want 4", names[side], e["current_version"])
		}
		for i := 0; i < 12; i++ {
			r := do(t, "PUT", base+"/events", fmt.Sprintf(`{"type":"t","entity":"acct-%d","key":"turn-%d"}`, i%3, i))
			if r.status != 200 {
				t.Errorf("%s: repeat of key turn-%d written by the other side: %s", names[side], i, r)
			}
		}
	}
	checkChain(t, readAll(t, s.url))
	mustVerify(t, data, 12)
}

// TestCGIGrowsIndexes: a CGI process appends enough events to grow the
// hash indexes (ids, entities, keys) while a standalone server has them
// mapped; the server must then number versions, recognise keys and index
// its own new ids as the grown tables say.
func TestCGIGrowsIndexes(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	mustAppend(t, s.url, `{"type":"t","entity":"first"}`) // the server has the tenant open
	const n = 3000
	var evs []string
	for i := 0; i < n; i++ {
		evs = append(evs, fmt.Sprintf(`{"type":"t","entity":"ent-%d","key":"key-%d"}`, i, i))
	}
	if sum := mustAppendSummary(t, c.URL+"/api", "["+strings.Join(evs, ",")+"]", n); sum.Stored != n {
		t.Fatalf("%d of %d stored", sum.Stored, n)
	}
	// Now the server appends.
	rc := mustAppend(t, s.url, `{"type":"t","entity":"ent-5"}`)
	if rc.Version != 2 {
		t.Errorf("server appended ent-5 (written once by CGI) as version %d, want 2", rc.Version)
	}
	r := do(t, "PUT", s.url+"/events", `{"type":"t","entity":"ent-7","key":"key-7"}`)
	if r.status != 200 {
		t.Errorf("server: repeat of key-7 (written by CGI) = %s, want 200 repeated", r)
	}
	if r := do(t, "PUT", s.url+"/events", `{"type":"t","entity":"ent-8","expected_version":0}`); r.status != 409 {
		t.Errorf("server: expected_version 0 on ent-8 (written by CGI) = %s, want 409", r)
	}
	// A fresh process finds the server's new event by its id.
	if r := do(t, "GET", c.URL+"/api/events/"+rc.ID, nil); r.status != 200 {
		t.Errorf("CGI: GET /events/<id the server appended> = %s", r)
	}
	r = do(t, "PUT", c.URL+"/api/events", `{"type":"t","entity":"ent-5"}`).want(t, 201)
	if v := decode[receipt](t, r.body).Version; v != 3 {
		t.Errorf("CGI appended ent-5 as version %d, want 3", v)
	}
	out, code := verify(t, data)
	if code != 0 {
		t.Errorf("strata verify: exit %d\n%s", code, out)
	}
	t.Logf("strata verify: %s", out)
	checkChain(t, readAll(t, s.url))
}

// TestCGIShortBody: a CGI request whose standard input ends before
// CONTENT_LENGTH (the client went away mid-upload) is refused with 400 and
// stores nothing, as standalone refuses it; it used to store the lines
// that had arrived and answer 201.
func TestCGIShortBody(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	body := `{"type":"a","entity":"e1"}` + "\n" + `{"type":"a","entity":"e2"}` + "\n" + `{"type":"a","entity":"e3"}` + "\n"
	cut := strings.LastIndex(body[:len(body)-1], "\n") + 1 // two whole lines of three
	run := func(stdin string) string {
		cmd := exec.Command(bin)
		cmd.Env = append(cleanEnv(), "GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_METHOD=PUT",
			"SCRIPT_NAME=/cgi-bin/strata.cgi", "PATH_INFO=/events", "REQUEST_URI=/api/events",
			"CONTENT_TYPE=application/x-ndjson", "CONTENT_LENGTH="+strconv.Itoa(len(body)),
			"STRATA_DATA="+data, "STRATA_AUTH=none")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("CGI process: %v; output %q", err, out)
		}
		return string(out)
	}
	if out := run(body[:cut]); !strings.HasPrefix(out, "Status: 400") || !strings.Contains(out, `"body_unreadable"`) {
		t.Fatalf("short body: answer %q, want 400 body_unreadable", out)
	}
	s := startServer(t, data)
	if h := mustHead(t, s.url); h.Seq != 0 {
		t.Fatalf("head seq %d after a short body, want 0", h.Seq)
	}
	// The same request whole is stored, as a check that the test speaks CGI.
	if out := run(body); !strings.HasPrefix(out, "Status: 201") {
		t.Fatalf("whole body: answer %q", out)
	}
	if h := mustHead(t, s.url); h.Seq != 3 {
		t.Fatalf("head seq %d, want 3", h.Seq)
	}
	// Standalone answers the same to a body cut short.
	if st := sendShort(t, s.url, "PUT /events", "Content-Type: application/x-ndjson\r\n", body, cut); st != 400 {
		t.Fatalf("standalone, short body: status %d, want 400", st)
	}
	if h := mustHead(t, s.url); h.Seq != 3 {
		t.Fatalf("head seq %d after short bodies, want 3", h.Seq)
	}
}

// sendShort sends request line reqLine (with headers hdrs, each ending in
// CRLF) to the server at url declaring body's whole length but sending only
// its first cut bytes, then half-closes, as a client that went away
// mid-upload; it returns the answer's status.
func sendShort(t *testing.T, url, reqLine, hdrs, body string, cut int) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", reqLine, hdrs, len(body), body[:cut])
	conn.(*net.TCPConn).CloseWrite()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s, short body: %v", reqLine, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestShortBlobBody: a blob upload whose body ends before its
// Content-Length (the client went away mid-upload) is the client's fault,
// 400 body_unreadable, in CGI as in standalone, and stores nothing; it
// used to be a 500 internal error, logged as the server's fault.
func TestShortBlobBody(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	blob := strings.Repeat("strata blob ", 1000)
	cut := len(blob) / 2
	for _, path := range []string{"/storage/", "/storage/" + b3hex([]byte(blob))} {
		for _, method := range []string{"PUT", "POST"} {
			if method == "POST" && path != "/storage/" {
				continue
			}
			cmd := exec.Command(bin)
			cmd.Env = append(cleanEnv(), "GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_METHOD="+method,
				"SCRIPT_NAME=/cgi-bin/strata.cgi", "PATH_INFO="+path, "REQUEST_URI=/api"+path,
				"CONTENT_TYPE=application/octet-stream", "CONTENT_LENGTH="+strconv.Itoa(len(blob)),
				"STRATA_DATA="+data, "STRATA_AUTH=none")
			cmd.Stdin = strings.NewReader(blob[:cut])
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("CGI process: %v; output %q", err, out)
			}
			if !strings.HasPrefix(string(out), "Status: 400") || !strings.Contains(string(out), `"body_unreadable"`) {
				t.Errorf("CGI %s %s, short body: answer %q, want 400 body_unreadable", method, path, out)
			}
		}
	}
	s := startServer(t, data)
	if st := sendShort(t, s.url, "PUT /storage/", "", blob, cut); st != 400 {
		t.Errorf("standalone, short blob body: status %d, want 400", st)
	}
	for _, b := range []string{blob, blob[:cut]} {
		do(t, "HEAD", s.url+"/storage/"+b3hex([]byte(b)), nil).want(t, 404)
	}
	// The whole blob is stored, as a check that the test speaks CGI.
	do(t, "PUT", s.url+"/storage/", blob).want(t, 201)
}
