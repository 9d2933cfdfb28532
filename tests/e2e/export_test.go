package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exported is what these tests read of an exported line.
type exported struct {
	ID     string          `json:"id"`
	Seq    uint64          `json:"seq"`
	Type   string          `json:"type"`
	Entity string          `json:"entity"`
	Key    string          `json:"key"`
	Data   json.RawMessage `json:"data"`
	Meta   struct {
		Imported struct {
			ID string `json:"id"`
		} `json:"imported"`
	} `json:"meta"`
}

func readExport(t *testing.T, ndjson string) []exported {
	t.Helper()
	var out []exported
	for i, line := range strings.Split(strings.TrimSuffix(ndjson, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e exported
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %d: %v: %s", i+1, err, line)
		}
		out = append(out, e)
	}
	return out
}

// eventLines makes n events as NDJSON, over a few entities and types.
func eventLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"type":"order.%s","entity":"order-%d","data":{"i":%d,"s":"x y"}}`+"\n", []string{"placed", "paid", "shipped"}[i%3], i%7, i)
	}
	return b.String()
}

// TestExportImportRoundTrip: a tenant exported, imported into another
// tenant and exported again keeps types, entities, data and order; the
// second export's meta.imported names the first's ids; an import run twice
// stores nothing the second time.
func TestExportImportRoundTrip(t *testing.T) {
	data := t.TempDir()
	for _, n := range []string{"a", "b"} {
		strataCLI(t, data, "", "tenant", "create", n)
	}
	strataCLI(t, data, eventLines(50), "import", "--tenant", "a", "--batch", "7")
	first := strataCLI(t, data, "", "export", "--tenant", "a")
	file := filepath.Join(t.TempDir(), "a.ndjson")
	if err := os.WriteFile(file, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	strataCLI(t, data, "", "import", "--tenant", "b", file)
	_, stderr, code := cliRun(t, "", "import", "--tenant", "b", file, "--data", data)
	if code != 0 || !strings.Contains(stderr, "0 events stored, 50 already in") {
		t.Errorf("second import: exit %d, want 0 and nothing stored:\n%s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "b.ndjson")
	strataCLI(t, data, "", "export", "--tenant", "b", "--out", out)
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	a, b := readExport(t, first), readExport(t, string(second))
	if len(a) != 50 || len(b) != 50 {
		t.Fatalf("exports hold %d and %d events, want 50 each", len(a), len(b))
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Entity != b[i].Entity || string(a[i].Data) != string(b[i].Data) || b[i].Seq != uint64(i+1) {
			t.Errorf("event %d: %+v, then %+v", i, a[i], b[i])
		}
		if b[i].Meta.Imported.ID != a[i].ID || b[i].ID == a[i].ID {
			t.Errorf("event %d: meta.imported.id %q, new id %q; want the original %q and a new one", i, b[i].Meta.Imported.ID, b[i].ID, a[i].ID)
		}
	}
	strataCLI(t, data, "", "verify", "--tenant", "b")
}

// TestImportKilledAndRerun: an import killed with SIGKILL mid-way and run
// again ends with every event exactly once.
func TestImportKilledAndRerun(t *testing.T) {
	const n = 20000
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "b")
	file := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(file, []byte(eventLines(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "import", "--tenant", "b", "--batch", "10", file, "--data", data)
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once its log holds some events (64 KB of records), which
	// is well before the end at 10 events a batch, each batch fsynced.
	logDir := filepath.Join(data, "tenants", "b", "log")
	for deadline := time.Now().Add(30 * time.Second); logBytes(logDir) < 64<<10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the import wrote nothing in 30 s")
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	before := len(readExport(t, strataCLI(t, data, "", "export", "--tenant", "b")))
	t.Logf("killed after %d of %d events", before, n)
	if before == 0 || before == n {
		t.Fatalf("killed after %d of %d events: not mid-way", before, n)
	}
	strataCLI(t, data, "", "import", "--tenant", "b", "--batch", "1000", file)
	got := readExport(t, strataCLI(t, data, "", "export", "--tenant", "b"))
	if len(got) != n {
		t.Fatalf("%d events after the re-run, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if seen[string(e.Data)] {
			t.Fatalf("event %s stored twice", e.Data)
		}
		seen[string(e.Data)] = true
	}
	strataCLI(t, data, "", "verify", "--tenant", "b")
}

// TestImportBadLine: a bad line is exit 1 naming its line, and nothing of
// its batch is stored (the batches before it are).
func TestImportBadLine(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "b")
	lines := strings.Split(eventLines(12), "\n")
	lines[8] = `{"type":"order.placed","entity":"o","data":{"broken":}` // line 9
	_, stderr, code := cliRun(t, strings.Join(lines, "\n"), "import", "--tenant", "b", "--batch", "5", "--data", data)
	if code != 1 || !strings.Contains(stderr, "line 9:") {
		t.Errorf("exit %d, want 1 and line 9 named:\n%s", code, stderr)
	}
	if got := readExport(t, strataCLI(t, data, "", "export", "--tenant", "b")); len(got) != 5 {
		t.Errorf("%d events stored, want the first batch's 5 only", len(got))
	}
	lines[8] = `{"type":"Bad Type","entity":"o","data":1}`
	_, stderr, code = cliRun(t, strings.Join(lines, "\n"), "import", "--tenant", "b", "--batch", "5", "--data", data)
	if code != 1 || !strings.Contains(stderr, "line 9:") {
		t.Errorf("bad type: exit %d, want 1 and line 9 named:\n%s", code, stderr)
	}
	if got := readExport(t, strataCLI(t, data, "", "export", "--tenant", "b")); len(got) != 5 {
		t.Errorf("%d events stored, want still 5", len(got))
	}
}

// logBytes is the size of the segment files in dir.
func logBytes(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestVerifyShowsProgress: verify of a long chain reports its progress on
// standard error (plain lines when it is not a terminal), its result on
// standard output.
func TestVerifyShowsProgress(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "a")
	strataCLI(t, data, eventLines(5000), "import", "--tenant", "a")
	out, stderr, code := cliRun(t, "", "verify", "--tenant", "a", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "OK 5000 events") {
		t.Errorf("verify: exit %d:\n%s", code, out)
	}
	if !strings.Contains(stderr, "verify tenant a: 4096 of 5000 events") || !strings.Contains(stderr, "events/s") {
		t.Errorf("verify shows no progress:\n%s", stderr)
	}
}

// TestReindexShowsProgress: reindex reports each log's progress on
// standard error.
func TestReindexShowsProgress(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "a")
	strataCLI(t, data, eventLines(100), "import", "--tenant", "a")
	out, stderr, code := cliRun(t, "", "reindex", "--tenant", "a", "--data", data)
	if code != 0 || strings.TrimSpace(out) != "reindexed tenant a" {
		t.Errorf("reindex: exit %d:\n%s", code, out)
	}
	if !strings.Contains(stderr, "reindex tenant a: 100 of 100 events") {
		t.Errorf("reindex shows no progress:\n%s", stderr)
	}
}
