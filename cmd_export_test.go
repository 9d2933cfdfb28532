package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata/internal/fileutil"
)

// TestExportOutFailedSync: an export to --out whose fsync fails is exit 1
// and leaves neither the file nor its temporary file: nothing that looks
// like a whole export.
func TestExportOutFailedSync(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"tenant", "create", "a", "--data", data}, &stdout, &stderr); code != exitOK {
		t.Fatalf("tenant create: exit %d: %s", code, stderr.String())
	}
	out := filepath.Join(dir, "a.ndjson")
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpSync && strings.HasSuffix(path, ".tmp") {
			return errors.New("injected fsync failure")
		}
		return nil
	})
	code := run([]string{"export", "--tenant", "a", "--out", out, "--data", data}, &stdout, &stderr)
	undo()
	if code != exitFail || !strings.Contains(stderr.String(), "injected fsync failure") {
		t.Errorf("exit %d, want %d and the failure told:\n%s", code, exitFail, stderr.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v in the output directory", ents)
	}
	stderr.Reset()
	if code := run([]string{"export", "--tenant", "a", "--out", out, "--data", data}, &stdout, &stderr); code != exitOK {
		t.Fatalf("export without the fault: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}
