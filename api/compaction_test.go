package api

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// TestBackgroundCompaction: a long-running handler with a CompactAge
// compresses the sealed segments of the tenants it has open by itself.
// While compaction fails (an injected failure to rename the compressed
// copy into place) appends go on, nothing is compressed, and the failure
// is logged once, not at every look; once the fault is gone the next look
// does the work; Close stops the compactor at once.
func TestBackgroundCompaction(t *testing.T) {
	var fl syncLog
	h := New(Config{DataDir: t.TempDir(), NoSync: true, NoAuth: true, LongRunning: true,
		CompactAge: 50 * time.Millisecond, Log: log.Options{SegmentSize: 16 << 10}, Logger: fl.logger()})
	closed := false
	t.Cleanup(func() {
		if !closed {
			h.Close()
		}
	})
	failed := errors.New("injected")
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpRename && strings.HasSuffix(path, ".zseg") {
			return failed
		}
		return nil
	})
	defer undo()
	for i := 0; i < 40; i++ {
		var b strings.Builder
		b.WriteByte('[')
		for j := 0; j < 20; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"t","entity":"e%d","data":{"i":%d,"note":"a note that repeats"}}`, j, i*20+j)
		}
		b.WriteByte(']')
		if w := serve(h, "POST", "/events", strings.NewReader(b.String()), "Content-Type", "application/json"); w.Code != 201 {
			t.Fatalf("append %d while compaction fails: %d %s", i, w.Code, w.Body)
		}
		time.Sleep(10 * time.Millisecond) // the compactor looks meanwhile
	}
	time.Sleep(500 * time.Millisecond) // five looks or more
	tn, _, err := h.tenant(DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tn.log.SegmentStats()
	if err != nil || s.Segments < 4 || s.Compressed != 0 {
		t.Fatalf("while compaction fails: %+v, %v; want sealed segments, none compressed", s, err)
	}
	if n := strings.Count(fl.String(), "background compaction failed"); n != 1 {
		t.Errorf("the failing compaction was logged %d times, want once:\n%s", n, fl.String())
	}

	undo()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Logged after the run, which the stats show as it goes.
		if s, err = tn.log.SegmentStats(); err == nil && s.Compressed == s.Segments-1 && strings.Contains(fl.String(), "compacted sealed segments") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the compactor compressed nothing within 10 s once the fault was gone: %+v, %v\n%s", s, err, fl.String())
		}
	}
	h.release(tn)
	t0 := time.Now()
	closed = true
	if err := h.Close(); err != nil || time.Since(t0) > 2*time.Second {
		t.Errorf("Close: %v after %v", err, time.Since(t0))
	}
}

// syncLog is a log a background goroutine writes while the test reads it.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// TestCompactionFault: a compaction that fails on the server's side (the
// compressed copy cannot be renamed into place) is a 500 with a request id
// and no path, logged with the detail; the segments stay as they were and
// a later call compresses them.
func TestCompactionFault(t *testing.T) {
	var fl faultLog
	data := t.TempDir()
	h := newHandler(t, Config{DataDir: data, Log: log.Options{SegmentSize: 16 << 10}, Logger: fl.logger()})
	for i := 0; i < 20; i++ {
		body := fmt.Sprintf(`[{"type":"t","entity":"e","data":"%s"},{"type":"t","entity":"f","data":%d}]`, strings.Repeat("x", 2000), i)
		if w := serve(h, "POST", "/events", strings.NewReader(body), "Content-Type", "application/json"); w.Code != 201 {
			t.Fatalf("append: %d %s", w.Code, w.Body)
		}
	}
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		if op == fileutil.OpRename && strings.HasSuffix(path, ".zseg") {
			return errors.New("injected")
		}
		return nil
	})
	w := serve(h, "POST", "/admin/compaction?tenant=default", nil)
	checkFault(t, w, data, 500, "internal", &fl, "injected")
	// Every tenant asked for: the failed one is marked, the answer a 200
	// (one damaged tenant must not keep the others uncompressed).
	w = serve(h, "POST", "/admin/compaction", nil)
	undo()
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"failed":true`) || strings.Contains(w.Body.String(), `"remaining":0}`) || strings.Contains(w.Body.String(), data) {
		t.Fatalf("POST /admin/compaction of every tenant, one failing: %d %s", w.Code, w.Body)
	}
	w = serve(h, "GET", "/admin/compaction?tenant=default", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"compressed":0,`) {
		t.Fatalf("GET /admin/compaction after the failure: %d %s", w.Code, w.Body)
	}
	w = serve(h, "POST", "/admin/compaction", nil)
	if w.Code != 200 || strings.Contains(w.Body.String(), `"segments":0,`) || !strings.Contains(w.Body.String(), `"remaining":0}`) {
		t.Fatalf("POST /admin/compaction after the failure: %d %s", w.Code, w.Body)
	}
}
