package compaction

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata/internal/fileutil"
	"strata/log"
)

// sealedLog is a log in a new directory with several sealed segments.
func sealedLog(t *testing.T) (*log.Log, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := log.Open(dir, log.Options{SegmentSize: 16 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := 0; i < 100; i++ {
		var evs []log.Proposed
		for j := 0; j < 10; j++ {
			evs = append(evs, log.Proposed{Type: "t", Entity: fmt.Sprint("e", j), ExpectedVersion: -1,
				Data: []byte(fmt.Sprintf(`{"i":%d,"note":"a note that repeats, as notes do"}`, i*10+j))})
		}
		if _, err := l.Append(&log.Request{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	return l, dir
}

// TestRecord: a run that compressed something is recorded, with who ran
// it; a background run with nothing to do is not (an idle server would
// rewrite the file every minute), an operator's is; a missing or damaged
// file is no run recorded.
func TestRecord(t *testing.T) {
	l, dir := sealedLog(t)
	if _, ok := Last(dir); ok {
		t.Fatal("a run recorded before any")
	}
	res, recErr, err := Compact(l, dir, ByAuto, log.CompactOptions{})
	if err != nil || recErr != nil || res.Segments < 2 {
		t.Fatalf("Compact: %+v, %v, %v; want the sealed segments compressed", res, recErr, err)
	}
	r, ok := Last(dir)
	if !ok || r.By != ByAuto || r.Segments != res.Segments || r.BytesBefore != res.BytesBefore || r.BytesAfter != res.BytesAfter || r.Version != 1 || r.Time == "" {
		t.Fatalf("last run %+v (%v) after %+v", r, ok, res)
	}
	if res, _, err := Compact(l, dir, ByAuto, log.CompactOptions{}); err != nil || res.Segments != 0 {
		t.Fatalf("a second Compact: %+v, %v", res, err)
	}
	if again, _ := Last(dir); again != r {
		t.Errorf("a background run with nothing to do rewrote the record: %+v, was %+v", again, r)
	}
	if _, recErr, err := Compact(l, dir, ByCLI, log.CompactOptions{}); err != nil || recErr != nil {
		t.Fatal(recErr, err)
	}
	if r, _ := Last(dir); r.By != ByCLI || r.Segments != 0 {
		t.Errorf("an operator's run with nothing to do: %+v, want it recorded", r)
	}

	// A record that cannot be written fails nothing but the record.
	failed := errors.New("injected")
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpRename && strings.Contains(path, FileName) {
			return failed
		}
		return nil
	})
	_, recErr, err = Compact(l, dir, ByHTTP, log.CompactOptions{})
	undo()
	if err != nil || !errors.Is(recErr, failed) {
		t.Errorf("Compact with the record's rename failing: record %v, compaction %v; want only the record's error", recErr, err)
	}

	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := Last(dir); ok {
		t.Error("a damaged record read as a run")
	}
}
