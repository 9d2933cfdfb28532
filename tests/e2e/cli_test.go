package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cliRun runs the real binary with args (no --data added) and stdin, and
// returns its standard output, standard error and exit code.
func cliRun(t testing.TB, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("strata %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// oneDash finds a flag written -flag rather than --flag.
var oneDash = regexp.MustCompile(`(^|[\s"'\[])-[a-z]{2,}`)

// TestCLIExitCodes: what each command answers to a wrong command line, a
// missing tenant or data directory, and help — the exit code and a message
// that says what is wrong — and that nothing is created on the way.
func TestCLIExitCodes(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for _, tc := range []struct {
		args   []string
		stdin  string
		code   int
		stderr string // a part of what standard error must say
		stdout string // a part of what standard output must say
	}{
		// §9: a refused user was reported as added (a shadowed err).
		{args: []string{"user", "add", "bad:name", "--tenant", "nosuch", "--role", "writer", "--password-stdin", "--data", data}, stdin: "long-enough-pw\n", code: 2, stderr: `"bad:name": a new user's name is ASCII letters`},
		{args: []string{"user", "add", "carol", "--tenant", "nosuch", "--role", "writer", "--password-stdin", "--data", data}, stdin: "long-enough-pw\n", code: 2, stderr: "no such tenant"},
		{args: []string{"user", "add", "carol", "--tenant", "shop", "--role", "writer", "--password-stdin", "--data", data}, stdin: "short\n", code: 2, stderr: "8 characters"},
		{args: []string{"user", "add", "carol", "--tenant", "shop", "--password-stdin", "--data", data}, stdin: "long-enough-pw\n", code: 2, stderr: "--role is required"},
		{args: []string{"user", "passwd", "nobody", "--password-stdin", "--data", data}, stdin: "long-enough-pw\n", code: 2, stderr: "nobody"},
		{args: []string{"user", "list", "--data", data}, code: 0, stdout: "USER"},

		// Help: on standard output, exit 0, --flag as README writes it,
		// and only the command's own flags besides the shared ones.
		{args: []string{"--help"}, code: 0, stdout: "Usage: strata COMMAND"},
		{args: []string{"help", "verify"}, code: 0, stdout: "--tenant"},
		{args: []string{"help", "tenant", "create"}, code: 0, stdout: "Usage: strata tenant create NAME"},
		{args: []string{"serve", "--help"}, code: 0, stdout: "--port N"},
		{args: []string{"tenant", "--help"}, code: 0, stdout: "suspend NAME"},
		{args: []string{"tenant", "delete", "--help"}, code: 0, stdout: "--purge"},
		{args: []string{"tenant", "create", "--help"}, code: 0, stdout: "(default standard)"},
		{args: []string{"tenant", "set", "--help"}, code: 0, stdout: "(default: unchanged)"},
		{args: []string{"token", "create", "-h"}, code: 0, stdout: "--role ROLE"},
		{args: []string{"user", "add", "--help"}, code: 0, stdout: "--password-stdin"},
		{args: []string{"version", "--help"}, code: 0, stdout: "Usage: strata version"},
		{args: []string{"reindex", "--help"}, code: 0, stdout: "--audit"},
		{args: []string{"help", "compact"}, code: 0, stdout: "--compact-age"},

		// Wrong command lines: exit 2, saying what is wrong.
		{args: []string{}, code: 2, stderr: "Usage: strata COMMAND"},
		{args: []string{"nosuch"}, code: 2, stderr: `unknown command "nosuch"`},
		{args: []string{"tenant"}, code: 2, stderr: "Usage: strata tenant"},
		{args: []string{"tenant", "frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"serve", "extra", "--port", "0"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"serve", "--nosuch"}, code: 2, stderr: "--nosuch"},
		{args: []string{"verify", "extra", "--data", data}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"version", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"tenant", "show", "--data", data}, code: 2, stderr: "missing NAME"},
		{args: []string{"tenant", "show", "shop", "extra", "--data", data}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"tenant", "set", "shop", "--data", data}, code: 2, stderr: "nothing to change"},
		{args: []string{"tenant", "suspend", "shop", "--purge", "--data", data}, code: 2, stderr: "--purge"},
		{args: []string{"token", "create", "--data", data}, code: 2, stderr: "--role is required"},
		{args: []string{"token", "revoke", "0123456789abcdef01234567", "--data", data}, code: 2, stderr: "no token"},

		// Missing tenants and data directories: exit 2 and a message.
		{args: []string{"tenant", "show", "nosuch", "--data", data}, code: 2, stderr: "no such tenant"},
		{args: []string{"verify", "--tenant", "nosuch", "--data", data}, code: 2, stderr: `no tenant "nosuch"`},
		{args: []string{"reindex", "--tenant", "typo", "--data", data}, code: 2, stderr: `no tenant "typo"`},
		{args: []string{"verify", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"verify", "--all", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"verify", "--all", "--data", t.TempDir()}, code: 2, stderr: "no tenant and no audit log"},
		{args: []string{"reindex", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"compact", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"compact", "--tenant", "nosuch", "--data", data}, code: 2, stderr: `no tenant "nosuch"`},
		{args: []string{"token", "list", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"tenant", "list", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"user", "list", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"token", "revoke", "0123456789abcdef01234567", "--data", missing}, code: 2, stderr: "no data directory"},
		{args: []string{"tenant", "suspend", "shop", "--data", missing}, code: 2, stderr: "no data directory"},
	} {
		stdout, stderr, code := cliRun(t, tc.stdin, tc.args...)
		name := "strata " + strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, tc.code, stdout, stderr)
			continue
		}
		if !strings.Contains(stderr, tc.stderr) || !strings.Contains(stdout, tc.stdout) {
			t.Errorf("%s: want %q on stderr and %q on stdout\nstdout: %s\nstderr: %s", name, tc.stderr, tc.stdout, stdout, stderr)
		}
		if oneDash.MatchString(stdout + stderr) {
			t.Errorf("%s: a flag written with one dash:\n%s%s", name, stdout, stderr)
		}
	}

	// Nothing above made a tenant or a data directory.
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", missing, err)
	}
	ents, _ := os.ReadDir(filepath.Join(data, "tenants"))
	if len(ents) != 1 || ents[0].Name() != "shop" {
		t.Errorf("tenants after the commands: %v, want only shop", ents)
	}
	if out := strataCLI(t, data, "", "user", "list"); strings.TrimSpace(out) != "USER  TENANT  ROLE" {
		t.Errorf("users after refused adds:\n%s", out)
	}

	// Every flag of serve's help names what it takes (FILE, SIZE …), as the
	// other commands' help does, not the flag package's VALUE.
	if out, _, _ := cliRun(t, "", "serve", "--help"); strings.Contains(out, "VALUE") {
		t.Errorf("serve --help:\n%s", out)
	}

	// A subcommand's help lists its own flags and the shared ones only.
	out, _, _ := cliRun(t, "", "tenant", "delete", "--help")
	for _, other := range []string{"--tier", "--reason", "--role", "--burst"} {
		if strings.Contains(out, other) {
			t.Errorf("tenant delete --help lists %s:\n%s", other, out)
		}
	}
}

// TestVerifyAndReindexEveryLog: without flags, verify and reindex take
// every tenant and the audit log; --tenant takes one.
func TestVerifyAndReindexEveryLog(t *testing.T) {
	data := t.TempDir()
	for _, n := range []string{"alpha", "beta"} {
		strataCLI(t, data, "", "tenant", "create", n)
	}
	s := startServer(t, data)
	mustAppend(t, s.url+"/t/alpha", `{"type":"a.b","entity":"e","data":1}`)
	mustAppend(t, s.url+"/t/beta", `{"type":"a.b","entity":"e","data":1}`)
	mustAppend(t, s.url+"/t/beta", `{"type":"a.b","entity":"e","data":2}`)
	s.kill()

	out, stderr, code := cliRun(t, "", "verify", "--data", data)
	for _, want := range []string{"tenant alpha: OK 1 events", "tenant beta: OK 2 events", "audit: OK"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("verify: exit %d, want 0 and %q:\n%s%s", code, want, out, stderr)
		}
	}
	for _, idx := range []string{"alpha", "beta"} {
		if err := os.RemoveAll(filepath.Join(data, "tenants", idx, "index")); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code = cliRun(t, "", "reindex", "--data", data)
	for _, want := range []string{"reindexed tenant alpha", "reindexed tenant beta", "reindexed audit"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("reindex: exit %d, want 0 and %q:\n%s%s", code, want, out, stderr)
		}
	}
	for _, idx := range []string{"alpha", "beta"} {
		if _, err := os.Stat(filepath.Join(data, "tenants", idx, "index")); err != nil {
			t.Errorf("reindex left tenant %s without indexes: %v", idx, err)
		}
	}
	out, _, code = cliRun(t, "", "reindex", "--tenant", "beta", "--data", data)
	if code != 0 || strings.TrimSpace(out) != "reindexed tenant beta" {
		t.Errorf("reindex --tenant beta: exit %d:\n%s", code, out)
	}
	out, _, code = cliRun(t, "", "verify", "--tenant", "alpha", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "OK 1 events") {
		t.Errorf("verify --tenant alpha: exit %d:\n%s", code, out)
	}
}

// TestNoAuthRecordsAnonymous: without accounts, events still get meta.by
// ("anonymous") and blob uploads still reach the audit log.
func TestNoAuthRecordsAnonymous(t *testing.T) {
	s := startServer(t, "")
	mustAppend(t, s.url, `{"type":"a.b","entity":"e","data":1,"meta":{"by":"forged","source":"x"}}`)
	evs := readAll(t, s.url)
	var meta map[string]string
	if err := json.Unmarshal(evs[0].Meta, &meta); err != nil || meta["by"] != "anonymous" || meta["source"] != "x" {
		t.Fatalf("meta %s: want by=anonymous and source kept", evs[0].Meta)
	}
	do(t, "PUT", s.url+"/storage/", "a blob").want(t, 201)
	a := do(t, "GET", s.url+"/audit", nil, "Accept", "application/x-ndjson").want(t, 200)
	if !bytes.Contains(a.body, []byte(`"anonymous"`)) {
		t.Fatalf("audit log without the anonymous upload:\n%s", a.body)
	}
}

// TestServeSaysHowToMakeAnAdmin: with accounts on and no administrator,
// every request is a 401; the server says at start how to make one.
func TestServeSaysHowToMakeAnAdmin(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--auth=required")
	if !strings.Contains(s.log(), bin+" token create --role admin --name ops --data "+data) {
		t.Errorf("no hint at start without an administrator:\n%s", s.log())
	}
	s.kill()
	strataCLI(t, data, "", "token", "create", "--role", "admin")
	s = startServer(t, data, "--auth=required")
	if strings.Contains(s.log(), "no administrator") {
		t.Errorf("hint with an administrator:\n%s", s.log())
	}
}

// TestQuotaShowsEffectiveBurst: GET /quota, tenant show and set give the burst
// the limiter applies, as README's tier table does.
func TestQuotaShowsEffectiveBurst(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop", "--tier", "free")
	tok := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--tenant", "shop", "--role", "reader"))
	var shown struct {
		Limits struct {
			Burst int `json:"burst"`
		} `json:"limits"`
	}
	if err := json.Unmarshal([]byte(strataCLI(t, data, "", "tenant", "show", "shop")), &shown); err != nil || shown.Limits.Burst != 10 {
		t.Errorf("tenant show: burst %d (%v), want 10", shown.Limits.Burst, err)
	}
	// tenant set (and create) print the limits in effect too: a new rate's
	// burst is two seconds of it.
	shown.Limits.Burst = -1
	if err := json.Unmarshal([]byte(strataCLI(t, data, "", "tenant", "set", "shop", "--rps", "5")), &shown); err != nil || shown.Limits.Burst != 10 {
		t.Errorf("tenant set: burst %d (%v), want 10", shown.Limits.Burst, err)
	}
	s := startServer(t, data, "--auth=required")
	r := do(t, "GET", s.url+"/quota", nil, bearer(tok)...).want(t, 200)
	shown.Limits.Burst = -1
	if err := json.Unmarshal(r.body, &shown); err != nil || shown.Limits.Burst != 10 {
		t.Errorf("GET /quota: burst %d (%v), want 10: %s", shown.Limits.Burst, err, r.body)
	}

	// The admin API answers a change with the limits in effect too.
	admin := strings.TrimSpace(strataCLI(t, data, "", "token", "create", "--role", "admin"))
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/admin/tenants", `{"name":"api","tier":"free"}`},
		{"PATCH", "/admin/tenants/api", `{"quota":{"requests_per_second":5}}`},
		{"POST", "/admin/tenants/api/suspend", `{"reason":"r"}`},
		{"POST", "/admin/tenants/api/resume", ``},
	} {
		r := do(t, rq.method, s.url+rq.path, rq.body, bearer(admin)...)
		shown.Limits.Burst = -1
		if err := json.Unmarshal(r.body, &shown); err != nil || r.status >= 300 || shown.Limits.Burst != 10 {
			t.Errorf("%s %s: burst %d (%v), want 10: %d %s", rq.method, rq.path, shown.Limits.Burst, err, r.status, r.body)
		}
	}
}

// TestReadOnlyCommandsWriteNothing: the commands that only look leave the
// data directory as they found it, file for file.
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	before := listTree(t, data)
	for _, args := range [][]string{
		{"verify"}, {"verify", "--tenant", "shop"}, {"verify", "--audit"}, {"verify", "--all"},
		{"tenant", "list"}, {"tenant", "show", "shop"}, {"token", "list"}, {"user", "list"},
	} {
		strataCLI(t, data, "", args...)
	}
	if after := listTree(t, data); !maps.Equal(before, after) {
		t.Errorf("read-only commands changed the data directory:\nbefore %v\nafter  %v", before, after)
	}
}
