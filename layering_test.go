package main

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayering fails on an import arrow that points the wrong way (DESIGN.md
// "Layout", STYLE.md rule 2): lower packages know nothing of HTTP or of the
// packages above them, and only package main wires concrete types together.
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH")
	}
	deps := func(pkg string) []string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.Bytes())
		}
		return strings.Fields(string(out))
	}
	strata := func(all []string, self string) []string {
		var s []string
		for _, p := range all {
			if p != self && (p == "strata" || strings.HasPrefix(p, "strata/")) {
				s = append(s, p)
			}
		}
		return s
	}
	usesHTTP := func(all []string) bool {
		return slices.ContainsFunc(all, func(p string) bool { return p == "net/http" || strings.HasPrefix(p, "net/http/") })
	}

	for _, r := range []struct {
		pkg    string
		allow  []string // strata packages it may depend on (transitively)
		noHTTP bool
	}{
		{"strata/internal/blake3", nil, true},
		{"strata/internal/fileutil", nil, true},
		{"strata/internal/shm", []string{"strata/internal/fileutil"}, true},
		{"strata/internal/zstdx", nil, true},
		{"strata/jsonx", nil, true},
		{"strata/blobs", []string{"strata/internal/blake3", "strata/internal/fileutil"}, true},
		{"strata/log", []string{"strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx"}, true},
		{"strata/query", []string{"strata/log", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx"}, true},
		{"strata/internal/jq", nil, true},
		{"strata/projections", []string{"strata/query", "strata/log", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx", "strata/internal/jq"}, true},
		{"strata/consumers", []string{"strata/projections", "strata/query", "strata/log", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx", "strata/internal/jq"}, true},
		{"strata/quota", []string{"strata/internal/blake3", "strata/internal/fileutil", "strata/internal/shm"}, true},
		{"strata/auth", []string{"strata/internal/blake3", "strata/internal/fileutil"}, true},
		{"strata/tenants", []string{"strata/quota", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/shm"}, true},
		{"strata/coord", []string{"strata/quota", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/shm"}, true},
		{"strata/audit", []string{"strata/log", "strata/query", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx"}, true},
		{"strata/admin", []string{"strata/audit", "strata/auth", "strata/tenants", "strata/quota", "strata/log", "strata/query", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/shm", "strata/internal/zstdx"}, true},
		{"strata/backup", []string{"strata/log", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx"}, true},
		{"strata/compaction", []string{"strata/log", "strata/jsonx", "strata/internal/blake3", "strata/internal/fileutil", "strata/internal/zstdx"}, true},
		{"strata/cgi", nil, false},
		{"strata/standalone", nil, false},
	} {
		all := deps(r.pkg)
		for _, p := range strata(all, r.pkg) {
			if !slices.Contains(r.allow, p) {
				t.Errorf("%s depends on %s; it may depend on %v only", r.pkg, p, r.allow)
			}
		}
		if r.noHTTP && usesHTTP(all) {
			t.Errorf("%s depends on net/http: it must know nothing of HTTP", r.pkg)
		}
	}

	// Every package but main: none reaches up to the adapters or to api.
	out, err := exec.Command("go", "list", "strata/...").Output()
	if err != nil {
		t.Fatalf("go list strata/...: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "strata" || strings.HasPrefix(pkg, "strata/tests/") {
			continue
		}
		forbidden := []string{"strata/cgi", "strata/standalone"}
		if pkg != "strata/api" {
			forbidden = append(forbidden, "strata/api")
		}
		for _, p := range strata(deps(pkg), pkg) {
			if slices.Contains(forbidden, p) {
				t.Errorf("%s depends on %s: only package main wires the handler to a mode", pkg, p)
			}
		}
	}

	// main is where the concrete types meet.
	main := deps("strata")
	for _, p := range []string{"strata/api", "strata/cgi", "strata/standalone", "strata/log", "strata/blobs", "strata/query", "strata/jsonx"} {
		if !slices.Contains(main, p) {
			t.Errorf("package main does not depend on %s", p)
		}
	}
}
