package projections

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"strata/internal/zstdx"
	"strata/log"
)

// FuzzCacheFiles feeds arbitrary bytes to the readers of the two cache
// files of this package, a snapshot and the state index: damage of any
// kind must be refused (or, for the index, rebuilt from the log) without a
// panic, a hang or an allocation past the files' bounds, and never change
// an answer.
func FuzzCacheFiles(f *testing.F) {
	dir := f.TempDir()
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(&log.Request{Events: []log.Proposed{
		ev("a", `{"x":1}`, ""), ev("b", `[1]`, ""), ev("a", `{"y":2}`, ""),
	}}); err != nil {
		f.Fatal(err)
	}
	s, err := (&Reader{l: l}).Fold(context.Background(), "a", nil, l.Through())
	if err != nil {
		f.Fatal(err)
	}
	snap, _ := encodeSnapshot(s, KindAuto, time.Unix(0, s.Time))
	f.Add(snap)
	ix := OpenIndex(l)
	if _, err := ix.Search(context.Background(), "", "", 10, nil); err != nil {
		f.Fatal(err)
	}
	index, _ := os.ReadFile(ix.path)
	f.Add(index)
	z, _ := zstdx.Encode(nil, []byte(`{"x":1}`))
	f.Add(z)
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, _, err := checkSnapshot(l, b, "a"); err == nil && string(got.State) != string(s.State) {
			t.Fatalf("a damaged snapshot was taken: %s", got.State)
		}
		zstdx.Decode(nil, b, 1<<20)
		if err := os.MkdirAll(filepath.Dir(ix.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ix.path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := ix.Search(context.Background(), "", "", 10, nil)
		if err != nil || len(res.States) != 2 || res.States[0].Entity != "a" || string(res.States[0].State) != `{"x":1,"y":2}` || string(res.States[1].State) != `[1]` {
			t.Fatalf("search over a damaged index: %+v %v", res, err)
		}
	})
}
