package e2e_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupWhileWriting: a backup taken while 8 writers append is a
// prefix of the chain: restored into an empty directory and verified, it
// holds every event acknowledged before the backup started, each with its
// id, and a server on the restored directory serves them. A flipped byte
// in a backup file is named by `backup verify` and refused by restore.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	data, bk := t.TempDir(), t.TempDir()
	s := startServer(t, data)
	var (
		mu    sync.Mutex
		acked = map[uint64]string{} // seq → id
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`[{"type":"t","entity":"w%d","data":{"i":%d}},{"type":"t","entity":"x%d","data":"%s"}]`, w, i, i%13, strings.Repeat("y", i%200))
				r, err := try("POST", s.url+"/events", body, "Content-Type", "application/json")
				if err != nil || r.status != 201 {
					continue
				}
				var rs []receipt
				if err := json.Unmarshal(r.body, &rs); err != nil {
					continue
				}
				mu.Lock()
				for _, x := range rs {
					acked[x.Seq] = x.ID
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	before := make(map[uint64]string, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	mu.Unlock()
	out, errOut, code := cliRun(t, "", "backup", "--to", bk, "--data", data)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(before) == 0 {
		t.Fatal("no event acknowledged before the backup")
	}

	to := filepath.Join(t.TempDir(), "restored")
	out, errOut, code = cliRun(t, "", "restore", "--from", bk, "--to", to)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = cliRun(t, "", "verify", "--data", to)
	if code != 0 {
		t.Fatalf("verify of the restored directory: exit %d\n%s%s", code, out, errOut)
	}
	r2 := startServer(t, to)
	h := mustHead(t, r2.url)
	mu.Lock()
	defer mu.Unlock()
	if h.Seq >= uint64(len(acked)) {
		t.Logf("the backup holds all %d events: the writers were not writing during it?", len(acked))
	}
	for seq, id := range acked {
		if seq <= h.Seq && id != "" {
			if _, ok := before[seq]; ok || seq%50 == 0 {
				ev := decode[event](t, do(t, "GET", r2.url+"/events/"+id, nil).want(t, 200).body)
				if ev.Seq != seq {
					t.Fatalf("restored event %s has seq %d, acknowledged as %d", id, ev.Seq, seq)
				}
			}
		} else if _, ok := before[seq]; ok {
			t.Fatalf("event %d, acknowledged before the backup began, is not in it (head %d)", seq, h.Seq)
		}
	}

	// Damage one stored file.
	files, _ := filepath.Glob(filepath.Join(bk, "*", "files", "*.zst"))
	if len(files) == 0 {
		t.Fatal("no stored file")
	}
	victim := files[len(files)/2]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	name := regexp.QuoteMeta(filepath.Base(victim))
	out, _, code = cliRun(t, "", "backup", "verify", "--from", bk)
	if code != 1 || !regexp.MustCompile(name).MatchString(out) {
		t.Fatalf("backup verify of a damaged file: exit %d\n%s", code, out)
	}
	_, errOut, code = cliRun(t, "", "restore", "--from", bk, "--to", filepath.Join(t.TempDir(), "again"))
	if code != 1 || !regexp.MustCompile(name).MatchString(errOut) {
		t.Fatalf("restore of a damaged backup: exit %d\n%s", code, errOut)
	}
}

// TestBackupOverHTTP: GET /admin/backup streams a tar that, extracted into
// a backup directory, `strata backup verify` accepts and `strata restore`
// restores; ?since=<its id> streams only what is new, and the two restore
// as a chain to the later head. A bad since is a 400, an unknown one 404.
func TestBackupOverHTTP(t *testing.T) {
	t.Parallel()
	data, bk := t.TempDir(), t.TempDir()
	s := startServer(t, data)
	for i := 0; i < 20; i++ {
		mustAppend(t, s.url, fmt.Sprintf(`{"type":"t","entity":"e%d","data":%d}`, i%3, i))
	}
	pull := func(query string) string {
		t.Helper()
		r := do(t, "GET", s.url+"/admin/backup"+query, nil).want(t, 200)
		tr := tar.NewReader(bytes.NewReader(r.body))
		for {
			hd, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(bk, filepath.FromSlash(hd.Name))
			if hd.Typeflag == tar.TypeDir {
				os.MkdirAll(p, 0o700)
				continue
			}
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return r.header.Get("Strata-Backup")
	}
	first := pull("")
	for i := 0; i < 5; i++ {
		mustAppend(t, s.url, fmt.Sprintf(`{"type":"t","entity":"e%d","data":%d}`, i, i))
	}
	want := mustHead(t, s.url)
	second := pull("?since=" + first)
	if first == "" || second == "" || first == second {
		t.Fatalf("backup ids %q, %q", first, second)
	}
	out, errOut, code := cliRun(t, "", "backup", "verify", "--from", bk)
	if code != 0 {
		t.Fatalf("backup verify: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = cliRun(t, "", "backup", "list", "--from", bk)
	if !strings.Contains(out, "after "+first) {
		t.Fatalf("backup list does not show the second after the first:\n%s", out)
	}
	to := filepath.Join(t.TempDir(), "r")
	out, errOut, code = cliRun(t, "", "restore", "--from", bk, "--to", to)
	if code != 0 || !strings.Contains(out, "OK 25 events, head "+want.ID) {
		t.Fatalf("restore: exit %d, want 25 events up to %s\n%s%s", code, want.ID, out, errOut)
	}
	do(t, "GET", s.url+"/admin/backup?since=nope", nil).wantError(t, 400, "invalid_parameter")
	do(t, "GET", s.url+"/admin/backup?since=20200101T000000.000000000Z-00000000", nil).wantError(t, 404, "not_found")
	do(t, "GET", s.url+"/admin/backup?what=1", nil).wantError(t, 400, "invalid_parameter")
}

// TestIncrementalChainOfFive: a full backup and four incremental ones,
// each after more appends (and a blob); `strata restore` of the chain
// gives the last head, and --seq a seq in the middle of the third backup
// gives that event as head, verified.
func TestIncrementalChainOfFive(t *testing.T) {
	t.Parallel()
	data, bk := t.TempDir(), t.TempDir()
	s := startServer(t, data)
	var mid receipt
	for b := 0; b < 5; b++ {
		for i := 0; i < 10; i++ {
			r := mustAppend(t, s.url, fmt.Sprintf(`{"type":"t","entity":"e%d","data":{"b":%d,"i":%d}}`, i%4, b, i))
			if b == 2 && i == 4 {
				mid = r
			}
		}
		do(t, "PUT", s.url+"/storage/", []byte(fmt.Sprintf("blob %d", b)), "Content-Type", "text/plain").want(t, 201)
		args := []string{"backup", "--to", bk, "--data", data}
		if b > 0 {
			args = append(args, "--incremental")
		}
		if out, errOut, code := cliRun(t, "", args...); code != 0 || (b > 0) != strings.Contains(out, "incremental") {
			t.Fatalf("backup %d: exit %d\n%s%s", b, code, out, errOut)
		}
	}
	want := mustHead(t, s.url)
	out, _, _ := cliRun(t, "", "backup", "list", "--from", bk)
	if n := strings.Count(out, "  after "); n != 4 {
		t.Fatalf("%d incremental backups listed, want 4:\n%s", n, out)
	}
	to := filepath.Join(t.TempDir(), "all")
	out, errOut, code := cliRun(t, "", "restore", "--from", bk, "--to", to)
	if code != 0 || !strings.Contains(out, "tenants/default: OK 50 events, head "+want.ID) {
		t.Fatalf("restore of the chain: exit %d, want 50 events up to %s\n%s%s", code, want.ID, out, errOut)
	}
	blobs, _ := filepath.Glob(filepath.Join(to, "tenants", "default", "blobs", "*", "*"))
	if len(blobs) < 5 {
		t.Fatalf("%d blob files restored, want the 5 blobs: %v", len(blobs), blobs)
	}
	to = filepath.Join(t.TempDir(), "mid")
	out, errOut, code = cliRun(t, "", "restore", "--from", bk, "--to", to, "--tenant", "default", "--seq", fmt.Sprint(mid.Seq))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("OK %d events, head %s", mid.Seq, mid.ID)) {
		t.Fatalf("restore to seq %d: exit %d, want head %s\n%s%s", mid.Seq, code, mid.ID, out, errOut)
	}
	if out, errOut, code := cliRun(t, "", "verify", "--data", to); code != 0 {
		t.Fatalf("verify after restore to a seq: exit %d\n%s%s", code, out, errOut)
	}
}

// TestRestoreShowsProgress: restore reports its progress on standard
// error while it copies and, per log, while it verifies the chain.
func TestRestoreShowsProgress(t *testing.T) {
	t.Parallel()
	data, bk := t.TempDir(), t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "a")
	strataCLI(t, data, eventLines(5000), "import", "--tenant", "a")
	if out, errOut, code := cliRun(t, "", "backup", "--to", bk, "--data", data); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	out, stderr, code := cliRun(t, "", "restore", "--from", bk, "--to", filepath.Join(t.TempDir(), "r"))
	if code != 0 || !strings.Contains(out, "tenants/a: OK 5000 events") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"restore: ", "restore: verify tenants/a: 4096 of 5000 events"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("restore shows no progress %q:\n%s", want, stderr)
		}
	}
}

// TestBackupOfCompactedLog: a log whose sealed segments `strata compact`
// compressed backs up and restores (as plain .seg files) to the same
// events, and the restored log verifies.
func TestBackupOfCompactedLog(t *testing.T) {
	t.Parallel()
	data, bk := t.TempDir(), t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "a")
	imp := exec.Command(bin, "import", "--tenant", "a", "--data", data)
	imp.Env = append(cleanEnv(), "STRATA_SEGMENT_SIZE=16K")
	imp.Stdin = strings.NewReader(eventLines(3000))
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	want := strataCLI(t, data, "", "export", "--tenant", "a")
	strataCLI(t, data, "", "compact", "--tenant", "a")
	if zs, _ := filepath.Glob(filepath.Join(data, "tenants", "a", "log", "*.zseg")); len(zs) < 2 {
		t.Fatalf("%d compressed segments; the test wants several", len(zs))
	}
	if out, errOut, code := cliRun(t, "", "backup", "--to", bk, "--data", data); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	to := filepath.Join(t.TempDir(), "r")
	if out, errOut, code := cliRun(t, "", "restore", "--from", bk, "--to", to); code != 0 || !strings.Contains(out, "tenants/a: OK 3000 events") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	if zs, _ := filepath.Glob(filepath.Join(to, "tenants", "a", "log", "*.zseg")); len(zs) != 0 {
		t.Errorf("restore wrote compressed segments: %v", zs)
	}
	if got := strataCLI(t, to, "", "export", "--tenant", "a"); got != want {
		t.Errorf("the restored log exports %d bytes, the original %d", len(got), len(want))
	}
	if out, errOut, code := cliRun(t, "", "verify", "--data", to); code != 0 {
		t.Fatalf("verify of the restored log: exit %d\n%s%s", code, out, errOut)
	}
}
