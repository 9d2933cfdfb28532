package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command line warns at start about a data directory open to other
// users and about files it cannot read (cgi-bin/README.md, "Hosts without
// suEXEC").
func TestDataDirWarnings(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"tenant", "create", "alpha", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("tenant create: exit %d: %s", code, errb.String())
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		// root reads everything: only another user can be refused.
		os.Chmod(filepath.Join(dir, "tenants", "alpha", "tenant.json"), 0)
	}
	errb.Reset()
	prepared = "" // a new process
	run([]string{"tenant", "list", "--data", dir}, &out, &errb)
	if !strings.Contains(errb.String(), "warning: the data directory "+dir+" is open to other users") {
		t.Errorf("no warning about a 0755 data directory; stderr:\n%s", errb.String())
	}
	if os.Getuid() != 0 && !strings.Contains(errb.String(), "cannot use 1 of the files") {
		t.Errorf("no warning about an unreadable tenant.json; stderr:\n%s", errb.String())
	}
}
