package e2e_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

// blobInfo is the answer to a blob PUT.
type blobInfo struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
	Type string `json:"type"`
}

// content returns n bytes that differ for each seed.
func content(seed uint64, n int) []byte {
	b := make([]byte, 0, n+8)
	for x := seed*0x9e3779b97f4a7c15 + 1; len(b) < n; {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b[:n]
}

func TestBlobPutGetDelete(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	data := content(1, 10000)
	hash := b3hex(data)

	r := do(t, "PUT", s.url+"/storage/", data).want(t, 201)
	info := decode[blobInfo](t, r.body)
	if info.Hash != hash || info.Size != int64(len(data)) || info.Type == "" {
		t.Fatalf("PUT /storage/ = %s, want hash %s (BLAKE3) size %d and a type", r.body, hash, len(data))
	}
	if got := r.header.Get("ETag"); got != `"`+hash+`"` {
		t.Errorf("PUT ETag %q", got)
	}
	// Again: already there.
	r = do(t, "PUT", s.url+"/storage/", data).want(t, 200)
	if again := decode[blobInfo](t, r.body); again != info {
		t.Errorf("second PUT = %+v, want %+v", again, info)
	}
	r = do(t, "POST", s.url+"/storage", data).want(t, 200)
	if again := decode[blobInfo](t, r.body); again != info {
		t.Errorf("POST /storage of the same bytes = %+v, want %+v", again, info)
	}

	// GET: the bytes, with their type and ETag.
	r = do(t, "GET", s.url+"/storage/"+hash, nil).want(t, 200)
	if string(r.body) != string(data) {
		t.Fatalf("GET returned %d bytes, not what was stored", len(r.body))
	}
	if got := r.header.Get("Content-Type"); got != info.Type {
		t.Errorf("GET Content-Type %q, PUT said %q", got, info.Type)
	}
	if got := r.header.Get("ETag"); got != `"`+hash+`"` {
		t.Errorf("GET ETag %q", got)
	}
	if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(data)) {
		t.Errorf("GET Content-Length %q", got)
	}
	// Range.
	r = do(t, "GET", s.url+"/storage/"+hash, nil, "Range", "bytes=100-1099").want(t, 206)
	if string(r.body) != string(data[100:1100]) {
		t.Errorf("Range bytes=100-1099 returned %d bytes, not data[100:1100]", len(r.body))
	}
	if got := r.header.Get("Content-Range"); got != fmt.Sprintf("bytes 100-1099/%d", len(data)) {
		t.Errorf("Content-Range %q", got)
	}
	r = do(t, "GET", s.url+"/storage/"+hash, nil, "Range", "bytes=-10").want(t, 206)
	if string(r.body) != string(data[len(data)-10:]) {
		t.Errorf("suffix range wrong")
	}
	do(t, "GET", s.url+"/storage/"+hash, nil, "Range", "bytes=20000-").wantError(t, 416, "range_not_satisfiable")
	// Conditional.
	r = do(t, "GET", s.url+"/storage/"+hash, nil, "If-None-Match", `"`+hash+`"`).want(t, 304)
	if len(r.body) != 0 {
		t.Errorf("304 with a body")
	}
	do(t, "GET", s.url+"/storage/"+hash, nil, "If-None-Match", `"`+zeros+`"`).want(t, 200)
	// HEAD.
	r = do(t, "HEAD", s.url+"/storage/"+hash, nil).want(t, 200)
	if len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Errorf("HEAD: body %d bytes, Content-Length %q", len(r.body), r.header.Get("Content-Length"))
	}
	// DELETE.
	do(t, "DELETE", s.url+"/storage/"+hash, nil).want(t, 204)
	do(t, "GET", s.url+"/storage/"+hash, nil).wantError(t, 404, "not_found")
	if r := do(t, "HEAD", s.url+"/storage/"+hash, nil); r.status != 404 {
		t.Errorf("HEAD after DELETE: %d", r.status)
	}
	do(t, "DELETE", s.url+"/storage/"+hash, nil).wantError(t, 404, "not_found")
	// Stored again after the delete.
	do(t, "PUT", s.url+"/storage/", data).want(t, 201)
}

func TestBlobPutByHashAndName(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	data := content(2, 5000)
	hash := b3hex(data)
	// The right hash in the path.
	r := do(t, "PUT", s.url+"/storage/"+hash, data, "Content-Type", "image/png").want(t, 201)
	if info := decode[blobInfo](t, r.body); info.Hash != hash || info.Type != "image/png" {
		t.Fatalf("PUT /storage/<hash> = %s", r.body)
	}
	r = do(t, "GET", s.url+"/storage/"+hash, nil).want(t, 200)
	if r.header.Get("Content-Type") != "image/png" {
		t.Errorf("Content-Type %q, want image/png", r.header.Get("Content-Type"))
	}
	// A wrong hash: refused, and the content is not stored under either.
	other := content(3, 5000)
	wrong := b3hex([]byte("something else"))
	do(t, "PUT", s.url+"/storage/"+wrong, other).wantError(t, 400, "hash_mismatch")
	do(t, "PUT", s.url+"/storage/"+wrong, strings.NewReader(string(other))).wantError(t, 400, "hash_mismatch")
	do(t, "GET", s.url+"/storage/"+wrong, nil).wantError(t, 404, "not_found")
	do(t, "GET", s.url+"/storage/"+b3hex(other), nil).wantError(t, 404, "not_found")
	// curl -T report.pdf http://…/storage/ puts to /storage/report.pdf.
	pdf := []byte("%PDF-1.4 not really a pdf")
	r = do(t, "PUT", s.url+"/storage/report.pdf", pdf).want(t, 201)
	info := decode[blobInfo](t, r.body)
	if info.Hash != b3hex(pdf) || info.Type != "application/pdf" || info.Size != int64(len(pdf)) {
		t.Fatalf("PUT /storage/report.pdf = %s", r.body)
	}
	r = do(t, "GET", s.url+"/storage/"+info.Hash, nil).want(t, 200)
	if r.header.Get("Content-Type") != "application/pdf" || string(r.body) != string(pdf) {
		t.Errorf("GET the pdf: Content-Type %q, %d bytes", r.header.Get("Content-Type"), len(r.body))
	}
	// A chunked upload.
	chunked := content(4, 300000)
	r = do(t, "PUT", s.url+"/storage/", strings.NewReader(string(chunked))).want(t, 201)
	if info := decode[blobInfo](t, r.body); info.Hash != b3hex(chunked) || info.Size != int64(len(chunked)) {
		t.Fatalf("chunked PUT = %s", r.body)
	}
	// An empty blob has the hash of nothing.
	r = do(t, "PUT", s.url+"/storage/", []byte{}).want(t, 201)
	if info := decode[blobInfo](t, r.body); info.Hash != b3hex(nil) || info.Size != 0 {
		t.Fatalf("empty PUT = %s", r.body)
	}
}

// TestBlobLengthRequired: like PUT /events, a blob PUT with neither
// Content-Length nor chunked encoding is refused, not stored as empty.
func TestBlobLengthRequired(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	host := strings.TrimPrefix(s.url, "http://")
	r := raw(t, s.url, "PUT /storage/ HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
	r.wantError(t, 411, "length_required")
}

// TestBlobBadNames: nothing a path can say reaches outside the store.
func TestBlobBadNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	s := startServer(t, data)
	host := strings.TrimPrefix(s.url, "http://")
	stored := content(5, 100)
	hash := decode[blobInfo](t, do(t, "PUT", s.url+"/storage/", stored).want(t, 201).body).Hash
	before := tree(t, root)

	req := func(method, path, body string) *response {
		r := "" + method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
		if method == "PUT" {
			r += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
		}
		return raw(t, s.url, r+"\r\n"+body)
	}
	for _, p := range []string{
		"/storage/../../etc/passwd",
		"/storage/../../../../../../etc/passwd",
		"/storage/..%2F..%2F..%2Fetc%2Fpasswd",
		"/storage/%2e%2e/%2e%2e/etc/passwd",
		"/storage/" + hash[:2] + "/" + hash,
		"/storage/" + hash + "/",
		"/storage/" + strings.ToUpper(hash),
		"/storage/" + hash[:63],
		"/storage/" + hash + "0",
		"/storage/" + strings.Repeat("g", 64),
		"/storage/..",
		"/storage/.",
	} {
		// Names without a slash that are not 64 hex digits are file names
		// to PUT (curl -T), tested below.
		fileName := !strings.Contains(strings.TrimPrefix(p, "/storage/"), "/") && !strings.Contains(p, "%") &&
			!strings.EqualFold(strings.TrimPrefix(p, "/storage/"), hash)
		for _, m := range []string{"GET", "HEAD", "DELETE", "PUT"} {
			if m == "PUT" && fileName {
				continue
			}
			r := req(m, p, "owned")
			if r.status != 400 && r.status != 404 {
				t.Errorf("%s %s: status %d, want 400 or 404; body %q", m, p, r.status, r.body)
				continue
			}
			if m != "HEAD" {
				checkErrorBody(t, r.header, r.body, "") // any code, but JSON
			}
		}
	}
	// Uppercase hex is refused, not folded.
	do(t, "GET", s.url+"/storage/"+strings.ToUpper(hash), nil).wantError(t, 400, "invalid_hash")
	do(t, "PUT", s.url+"/storage/"+strings.ToUpper(hash), stored).wantError(t, 400, "invalid_hash")
	// A file name that is a dot-path is only a name: stored by content.
	for _, p := range []string{"/storage/..", "/storage/.", "/storage/%2e%2e", "/storage/" + hash[:63], "/storage/" + hash + "0",
		"/storage/" + strings.Repeat("g", 64), "/storage/passwd"} {
		r := req("PUT", p, "dots")
		if r.status != 201 && r.status != 200 {
			t.Errorf("PUT %s: %d %s", p, r.status, r.body)
			continue
		}
		if info := decode[blobInfo](t, r.body); info.Hash != b3hex([]byte("dots")) {
			t.Errorf("PUT %s stored %+v, not the content's hash", p, info)
		}
	}
	// The stored blob is intact and nothing appeared outside the data dir.
	if r := do(t, "GET", s.url+"/storage/"+hash, nil).want(t, 200); string(r.body) != string(stored) {
		t.Fatal("stored blob changed")
	}
	after := tree(t, root)
	for p := range after {
		if !strings.HasPrefix(p, "data/") && p != "data" {
			t.Errorf("%s appeared outside the data dir", p)
		}
		if strings.Contains(p, "passwd") || strings.Contains(p, "etc") || strings.Contains(p, "ggg") {
			t.Errorf("%s created", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok && !strings.Contains(p, "tmp") {
			t.Errorf("%s disappeared", p)
		}
	}
}

// tree lists every path under root, relative, with its size.
func tree(t *testing.T, root string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var size int64
		if info, err := d.Info(); err == nil && !d.IsDir() {
			size = info.Size()
		}
		m[filepath.ToSlash(rel)] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBlobMaxBlob(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-blob", "1M")
	big := content(6, 2<<20)
	// Refused with the length declared, chunked, and to a hash; the 413
	// names the limit, as the append's do.
	for _, r := range []*response{
		do(t, "PUT", s.url+"/storage/", big),
		do(t, "PUT", s.url+"/storage/", strings.NewReader(string(big))),
		do(t, "PUT", s.url+"/storage/"+b3hex(big), big),
	} {
		if e := r.wantError(t, 413, "blob_too_large"); !strings.Contains(e["message"].(string), "1048576") {
			t.Errorf("the 413 does not name the limit (1048576 bytes): %v", e["message"])
		}
	}
	do(t, "GET", s.url+"/storage/"+b3hex(big), nil).wantError(t, 404, "not_found")
	exact := content(7, 1<<20)
	do(t, "PUT", s.url+"/storage/", exact).want(t, 201)
	do(t, "PUT", s.url+"/storage/", content(8, 1<<20+1)).wantError(t, 413, "blob_too_large")
	// Only the blob that fits is in the store: no temp files left behind.
	n := 0
	filepath.WalkDir(s.data, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "/system/metrics") { // the metrics file: 1 MiB
			if info, _ := d.Info(); info != nil && info.Size() >= 1<<20 {
				n++
			}
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d files of 1 MiB or more in the data dir, want 1 (the blob that fit)", n)
	}
}

// genReader streams n pseudo-random bytes without holding them.
type genReader struct {
	x, left uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n+8 <= len(p) && g.left >= 8 {
		g.x ^= g.x << 13
		g.x ^= g.x >> 7
		g.x ^= g.x << 17
		binary.LittleEndian.PutUint64(p[n:], g.x)
		n += 8
		g.left -= 8
	}
	if n == 0 { // a short tail or a tiny p
		for n < len(p) && g.left > 0 {
			p[n] = byte(g.left)
			n++
			g.left--
		}
	}
	return n, nil
}

// TestBlobLargeStreamed: 200 MB through the server in constant memory.
func TestBlobLargeStreamed(t *testing.T) {
	t.Parallel()
	const size = 200 << 20
	s := startServer(t, "")
	h := blake3.New()
	body := io.TeeReader(&genReader{x: 42, left: size}, h)
	req, err := http.NewRequest("PUT", s.url+"/storage/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r := (&response{status: res.StatusCode, header: res.Header, body: b}).want(t, 201)
	want := hex.EncodeToString(h.Sum(nil))
	info := decode[blobInfo](t, r.body)
	if info.Hash != want || info.Size != size {
		t.Fatalf("200 MB PUT = %s, want hash %s size %d", r.body, want, size)
	}
	t.Logf("200 MB PUT in %v", time.Since(start))
	if hwm := vmHWM(t, s.pid()); hwm > 100<<20 {
		t.Errorf("server peak RSS (VmHWM) %d MiB after a 200 MB upload, want under 100 MiB", hwm>>20)
	} else {
		t.Logf("server peak RSS %d MiB", hwm>>20)
	}
	// The stored bytes hash to the name, read back in a stream.
	res, err = client.Get(s.url + "/storage/" + want)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h2 := blake3.New()
	n, err := io.Copy(h2, res.Body)
	if err != nil || n != size || hex.EncodeToString(h2.Sum(nil)) != want {
		t.Fatalf("GET back: %d bytes, err %v, hash match %v", n, err, hex.EncodeToString(h2.Sum(nil)) == want)
	}
	if hwm := vmHWM(t, s.pid()); hwm > 100<<20 {
		t.Errorf("server peak RSS %d MiB after serving 200 MB", hwm>>20)
	}
	// Delete it, to give the disk back early.
	do(t, "DELETE", s.url+"/storage/"+want, nil).want(t, 204)
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
