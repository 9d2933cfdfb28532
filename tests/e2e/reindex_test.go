package e2e_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReindexKilledUnderServer: `strata reindex` is killed with SIGKILL at
// several points of its rebuild while a server serves the tenant. The
// server answers the same head and finds the same ids throughout, and a
// last reindex that runs to its end leaves everything as it was.
func TestReindexKilledUnderServer(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	const batches, per = 50, 1000
	for b := 0; b < batches; b++ {
		var sb strings.Builder
		sb.WriteByte('[')
		for i := 0; i < per; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"type":"t","entity":"e%d","data":%d}`, i%50, b*per+i)
		}
		sb.WriteByte(']')
		do(t, "PUT", s.url+"/events", sb.String()).want(t, 201)
	}
	want := mustHead(t, s.url)
	if want.Seq != batches*per {
		t.Fatalf("head seq %d", want.Seq)
	}
	var ids []string
	for _, after := range []int{0, 12345, 33333, batches*per - 1} {
		r := do(t, "GET", fmt.Sprintf("%s/events?after=%d&limit=1", s.url, after), nil).want(t, 200)
		ids = append(ids, decode[[]event](t, r.body)[0].ID)
	}
	check := func(when string) {
		t.Helper()
		if h := mustHead(t, s.url); h.Seq != want.Seq || h.ID != want.ID {
			t.Fatalf("%s: head %d %s, want %d %s", when, h.Seq, h.ID, want.Seq, want.ID)
		}
		for _, id := range ids {
			do(t, "GET", s.url+"/events/"+id, nil).want(t, 200)
			r := do(t, "GET", s.url+"/events?limit=1&from="+id, nil).want(t, 200)
			if id != want.ID && len(decode[[]event](t, r.body)) != 1 {
				t.Fatalf("%s: nothing after %s", when, id)
			}
		}
	}
	for _, after := range []time.Duration{5, 20, 50, 100, 200} {
		cmd := exec.Command(bin, "reindex", "--data", data)
		cmd.Env = cleanEnv()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		check(fmt.Sprintf("reindex killed after %v ms", int(after)))
	}
	cmd := exec.Command(bin, "reindex", "--data", data)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strata reindex: %v\n%s", err, out)
	}
	check("after a whole reindex")
	mustAppend(t, s.url, `{"type":"t","entity":"e1","data":"after"}`)
	mustVerify(t, data, batches*per+1)
}
