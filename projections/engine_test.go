package projections

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// failKind is a test kind whose reducer fails on an event whose data is
// {"fail":true}: what a jq runtime error or limit does to a custom kind.
func init() {
	RegisterKind("test-fail", nil, func(d *Definition) (Reducer, error) { return &failing{}, nil })
}

type failing struct{ n int }

func (f *failing) Apply(e *log.Event) error {
	if string(e.Data) == `{"fail":true}` {
		return errors.New("boom")
	}
	if string(e.Data) == `{"panic":true}` {
		panic("kaboom")
	}
	f.n++
	return nil
}
func (f *failing) Result() ([]byte, error)                  { return fmt.Appendf(nil, "%d", f.n), nil }
func (f *failing) Key(string) ([]byte, bool, error)         { return nil, false, ErrNotKeyed }
func (f *failing) Keys(string, int) ([]string, bool, error) { return nil, false, ErrNotKeyed }
func (f *failing) Save() ([]byte, error)                    { return f.Result() }
func (f *failing) Load(b []byte) error                      { _, err := fmt.Sscanf(string(b), "%d", &f.n); return err }

// fillLog appends n events: types a, b, c in turn, entities e/0 … e/9.
func fillLog(t testing.TB, l *log.Log, n int) {
	t.Helper()
	for done := 0; done < n; done += 1000 {
		var ps []log.Proposed
		for i := done; i < done+1000 && i < n; i++ {
			ps = append(ps, log.Proposed{Type: []string{"a", "b", "c"}[i%3], Entity: fmt.Sprintf("e/%d", i%10), Data: fmt.Appendf(nil, `{"i":%d}`, i), ExpectedVersion: -1})
		}
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBudget: past its budget a read answers the result so far, stamped
// with the event it reflects and Behind; the next read goes on from there.
func TestBudget(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 5000)
	p := Open(l)
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	var seqs []uint64
	for i := 0; i < 10; i++ {
		a, err := p.Result(context.Background(), d, 1, 0, time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		e, err := l.Event(a.Seq)
		if err != nil || e.IDString() != a.ID {
			t.Fatalf("stamp %d %s is not the event: %v", a.Seq, a.ID, err)
		}
		seqs = append(seqs, a.Seq)
		if !a.Behind {
			if a.Seq != 5000 || string(a.Result) != `{"a":1667,"b":1667,"c":1666}` {
				t.Fatalf("caught up: %d %s", a.Seq, a.Result)
			}
			break
		}
		if a.Seq >= 5000 {
			t.Fatalf("behind at the head: %+v", a)
		}
	}
	if len(seqs) < 3 || seqs[0] != 1023 || seqs[1] != 2046 {
		t.Errorf("reads stopped at %v; want each to go on from the last (1023, 2046, …)", seqs)
	}
	// A kind that sees decoded events (jq's) looks at the clock every 16
	// records: its events may be slow.
	slow := mustDef(t, `{"name":"slow","kind":"test-fail"}`)
	if a, err := p.Result(context.Background(), slow, 1, 0, time.Nanosecond); err != nil || !a.Behind || a.Seq != 15 || string(a.Result) != "15" {
		t.Errorf("decoded kind: %+v %v", a, err)
	}
	// A canceled context stops the catch-up the same way.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d2 := mustDef(t, `{"name":"c2","kind":"counter","by":"type"}`)
	if a, err := p.Result(ctx, d2, 1, 0, time.Hour); err != nil || !a.Behind || a.Seq != 0 || string(a.Result) != "{}" {
		t.Errorf("canceled: %+v %v", a, err)
	}
}

// TestFailed: a reducer error marks the projection failed with the event
// that broke it; the result before it is still there by time travel, and
// other projections go on.
func TestFailed(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 100)
	appendOne(t, l, "x", "e/1", `{"fail":true}`)
	fillLog(t, l, 50)
	p := Open(l)
	bad := mustDef(t, `{"name":"bad","kind":"test-fail"}`)
	good := mustDef(t, `{"name":"good","kind":"counter","by":"type"}`)
	bid := func() string { e, _ := l.Event(101); return e.IDString() }()
	for round := 0; round < 2; round++ {
		_, err := p.Result(context.Background(), bad, 1, 0, 0)
		var fe *FailedError
		if !errors.As(err, &fe) || fe.At.Seq != 101 || fe.At.ID != bid || fe.Msg != "boom" {
			t.Fatalf("round %d: %v; want failed at 101", round, err)
		}
		st, err := p.Status(bad, 1)
		if err != nil || st.State != StateFailed || st.FailedAt == nil || st.FailedAt.Seq != 101 || st.Errors != 1 || st.LastError != "boom" || st.LastSeq != 100 {
			t.Fatalf("status %+v %v", st, err)
		}
		if a, err := p.Result(context.Background(), bad, 1, 100, 0); err != nil || string(a.Result) != "100" || a.Seq != 100 {
			t.Fatalf("before the failure: %+v %v", a, err)
		}
		if a, err := p.Result(context.Background(), good, 1, 0, 0); err != nil || a.Seq != 151 {
			t.Fatalf("other projection: %+v %v", a, err)
		}
		// A rebuild starts over, and fails again at the same event.
		if err := p.Rebuild(context.Background(), bad, 1, RebuildOptions{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A reducer that panics fails its projection, not the process.
	appendOne(t, l, "y", "e/1", `{"panic":true}`)
	panicky := mustDef(t, `{"name":"panicky","kind":"test-fail","filter":{"types":["y"]}}`)
	_, err := p.Result(context.Background(), panicky, 1, 0, 0)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.At.Seq != 152 || fe.Msg != "reducer panicked: kaboom" {
		t.Fatalf("panicking reducer: %v", err)
	}
	if err := p.Rebuild(context.Background(), panicky, 1, RebuildOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestKeys: keyed results by key and paged.
func TestKeys(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 100)
	p := Open(l)
	ctx := context.Background()
	d := mustDef(t, `{"name":"e","kind":"counter","by":"entity"}`)
	a, err := p.Key(ctx, d, 1, "e/3", 0, 0)
	if err != nil || string(a.Result) != "10" || a.Seq != 100 {
		t.Fatalf("key: %+v %v", a, err)
	}
	if a, err := p.Key(ctx, d, 1, "e/3", 50, 0); err != nil || string(a.Result) != "5" || a.Seq != 50 {
		t.Fatalf("key at 50: %+v %v", a, err)
	}
	if _, err := p.Key(ctx, d, 1, "nope", 0, 0); !errors.Is(err, ErrNoKey) {
		t.Errorf("missing key: %v", err)
	}
	var all []string
	after := ""
	for {
		keys, more, a, err := p.Keys(ctx, d, 1, after, 3, 0)
		if err != nil || a.Seq != 100 {
			t.Fatal(a, err)
		}
		all = append(all, keys...)
		if after == "" && string(a.Result) != `{"e/0":10,"e/1":10,"e/2":10}` {
			t.Errorf("first page: %s", a.Result)
		}
		if !more {
			break
		}
		after = keys[len(keys)-1]
	}
	if strings.Join(all, ",") != "e/0,e/1,e/2,e/3,e/4,e/5,e/6,e/7,e/8,e/9" {
		t.Errorf("keys %v", all)
	}
	f := mustDef(t, `{"name":"f","kind":"funnel","steps":["a","b"]}`)
	if _, _, _, err := p.Keys(ctx, f, 1, "", 10, 0); !errors.Is(err, ErrNotKeyed) {
		t.Errorf("funnel keys: %v", err)
	}
	ts := mustDef(t, `{"name":"ts","kind":"timeseries","path":".i","op":"max","bucket":"day"}`)
	if a, err := p.Key(ctx, ts, 1, "2026-12-01T00:00:00Z", 0, 0); err != nil || string(a.Result) != "99" {
		t.Errorf("timeseries key: %+v %v", a, err)
	}
}

// TestRebuildOptions: a rebuild narrowed by time, entity and types keeps
// its narrowing for the reads after it; ctx ending cuts a rebuild short
// and Resume goes on.
func TestRebuildOptions(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l, now := testLog(t, start, 0)
	for i := 0; i < 10; i++ {
		*now = start.Add(time.Duration(i) * time.Hour)
		fillLog(t, l, 30)
	}
	p := Open(l)
	ctx := context.Background()
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	opt := RebuildOptions{From: start.Add(2 * time.Hour), To: start.Add(5 * time.Hour), Entity: "e/[12]", Types: []string{"a", "b"}}
	if err := p.Rebuild(ctx, d, 1, opt, nil); err != nil {
		t.Fatal(err)
	}
	// Each hour, e/1 and e/2 have events 1 (b), 2 (c), 11 (c), 12 (a), 21
	// (a) and 22 (b): 2 a and 2 b an hour, for hours 2, 3 and 4.
	// The narrowing is the definition's (as ReadDef gives it from the
	// log's TypeRebuilt record): the result is read with it.
	dn := d.WithNarrow(opt)
	want := `{"a":6,"b":6}`
	if a, err := p.Result(ctx, dn, 1, 0, 0); err != nil || string(a.Result) != want {
		t.Fatalf("narrowed: %+v %v; want %s", a, err, want)
	}
	fillLog(t, l, 30) // at 9:00, outside the range
	if a, err := p.Result(ctx, dn, 1, 0, 0); err != nil || string(a.Result) != want || a.Seq != 330 {
		t.Fatalf("after more events: %+v %v", a, err)
	}
	// The whole cache deleted: the same answer, folded again with the
	// definition's narrowing, in a process of its own and at a seq
	// before the head (time travel) too.
	if err := os.RemoveAll(filepath.Join(l.Dir(), "cache")); err != nil {
		t.Fatal(err)
	}
	if a, err := Open(l).Result(ctx, dn, 1, 0, 0); err != nil || string(a.Result) != want || a.Seq != 330 {
		t.Fatalf("narrowed, cache deleted: %+v %v; want %s", a, err, want)
	}
	if a, err := Open(l).Result(ctx, dn, 1, 300, 0); err != nil || string(a.Result) != want || a.Seq != 300 {
		t.Fatalf("narrowed at 300, cache deleted: %+v %v; want %s", a, err, want)
	}
	// A result of another narrowing is not used for a definition without
	// one (nor the other way round).
	if a, err := p.Result(ctx, d, 1, 0, 0); err != nil || string(a.Result) != `{"a":110,"b":110,"c":110}` {
		t.Fatalf("not narrowed: %+v %v", a, err)
	}
	if a, err := p.Result(ctx, dn, 1, 0, 0); err != nil || string(a.Result) != want {
		t.Fatalf("narrowed again: %+v %v; want %s", a, err, want)
	}
	// Cut short, then resumed; a plain rebuild drops the narrowing.
	p.CheckpointEvery = 16
	cctx, cancel := context.WithCancel(ctx)
	calls := 0
	err := p.Rebuild(cctx, d, 1, RebuildOptions{}, func(done, total uint64) {
		if calls++; calls == 1 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled rebuild: %v", err)
	}
	if st, _ := p.Status(d, 1); st.State != StateRebuilding {
		t.Fatalf("status after a cut-short rebuild: %+v", st)
	}
	// A read takes the cut-short rebuild over: the status says running.
	if a, err := Open(l).Result(ctx, d, 1, 0, 0); err != nil || a.Seq != 330 {
		t.Fatalf("read after a cut-short rebuild: %+v %v", a, err)
	}
	if st, _ := p.Status(d, 1); st.State != StateRunning {
		t.Fatalf("status after a read took the rebuild over: %+v", st)
	}
	if err := p.Rebuild(ctx, d, 1, RebuildOptions{Resume: true}, nil); err != nil {
		t.Fatal(err)
	}
	if a, err := p.Result(ctx, d, 1, 0, 0); err != nil || string(a.Result) != `{"a":110,"b":110,"c":110}` {
		t.Fatalf("after resume: %+v %v", a, err)
	}
	if st, _ := p.Status(d, 1); st.State != StateRunning || st.Processed != 330 {
		t.Fatalf("status after resume: %+v", st)
	}
}

// TestCacheNotTrusted: a damaged cache file, or one of another chain or
// another definition, is not used.
func TestCacheNotTrusted(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 300)
	other, _ := testLog(t, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, other, 300)
	ctx := context.Background()
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	p, q := Open(l), Open(other)
	want, err := p.Result(ctx, d, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.versionDir("c", 1), resultFileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The other log's cache, same name, same definition, same length.
	if _, err := q.Result(ctx, d, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	// Forge a result the stamp check must reject: a counter of the other
	// log's file, with its payload changed and its checksum right.
	h, _, err := readCache(filepath.Join(q.versionDir("c", 1), resultFileName))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := encodeCache(h, []byte(`{"a":999}`))
	for name, b := range map[string][]byte{
		"flipped":   flip(good, len(good)/2),
		"truncated": good[:len(good)-3],
		"empty":     nil,
		"chain":     forged,
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if a, err := Open(l).Result(ctx, d, 1, 0, 0); err != nil || string(a.Result) != string(want.Result) || a.ID != want.ID {
			t.Errorf("%s cache: %+v %v; want %s", name, a, err, want.Result)
		}
		// The read (a CGI process's: no warm run) replaced the useless file with a good one.
		if h, payload, err := readCache(path); err != nil || h.Seq != want.Seq || h.ID != want.ID || string(payload) != string(want.Result) {
			t.Errorf("%s cache: not replaced (%v)", name, err)
		}
	}
	// Another definition under the same name and version.
	d2 := mustDef(t, `{"name":"c","kind":"counter","by":"entity"}`)
	if a, err := p.Result(ctx, d2, 1, 0, 0); err != nil || !strings.HasPrefix(string(a.Result), `{"e/0":30,`) {
		t.Errorf("another definition: %+v %v", a, err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x20
	return c
}

// TestCacheWriteFails: a cache that cannot be written does not fail a read
// (the answer is right without it), leaves nothing behind, and fails a
// rebuild, which must say so.
func TestCacheWriteFails(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 300)
	ctx := context.Background()
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	p := Open(l)
	p.CheckpointEvery = 64
	for _, op := range []fileutil.Op{fileutil.OpCreate, fileutil.OpWrite, fileutil.OpRename, fileutil.OpMkdir} {
		undo := fileutil.Inject(func(o fileutil.Op, path string) error {
			if o == op && strings.Contains(path, "cache") {
				return syscall.ENOSPC
			}
			return nil
		})
		a, err := p.Result(ctx, d, 1, 0, 0)
		rerr := p.Rebuild(ctx, d, 1, RebuildOptions{}, nil)
		undo()
		if err != nil || string(a.Result) != `{"a":100,"b":100,"c":100}` {
			t.Errorf("%s failing: %+v %v", op, a, err)
		}
		if rerr == nil {
			t.Errorf("%s failing: rebuild succeeded", op)
		}
		ents, _ := os.ReadDir(p.versionDir("c", 1))
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("%s failing: left %s", op, e.Name())
			}
		}
		p.Drop("c")
	}
}

// TestConcurrentProcesses: projectors of one log (as separate processes
// would be) read, rebuild and drop at once while events are appended;
// every answer equals a fold of the log through its stamp, and the cache
// ends whole.
func TestConcurrentProcesses(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 2000)
	d := mustDef(t, `{"name":"c","kind":"counter","by":"entity","filter":{"types":["a","b"]}}`)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := Open(l)
			p.CheckpointEvery = 256
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch {
				case w == 0 && i%7 == 3:
					// A drop under way makes a rebuild fail, rightly.
					if err = p.Rebuild(ctx, d, 1, RebuildOptions{}, nil); errors.Is(err, os.ErrNotExist) {
						err = nil
					}
				case w == 1 && i%11 == 5:
					err = p.Drop("c")
				default:
					at := uint64(0)
					if i%2 == 1 {
						at = uint64(i*37) % l.Through()
					}
					var a *Answer
					if a, err = p.Result(ctx, d, 1, at, time.Hour); err == nil {
						if want := reference(t, d, events(t, l, a.Seq), a.Seq); string(a.Result) != want {
							err = fmt.Errorf("at %d: %s; want %s", a.Seq, a.Result, want)
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		fillLog(t, l, 100)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// events reads the first n events of l.
func events(t testing.TB, l *log.Log, n uint64) []*log.Event {
	var evs []*log.Event
	it := l.Scan(1, n)
	for it.Next() {
		e := *it.Event()
		e.Data = bytes.Clone(e.Data)
		evs = append(evs, &e)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestKilledWriter: a process killed (SIGKILL) while it writes caches,
// many times over, loses nothing: every file it left is whole or ignored,
// and the answers are those of a fold from scratch.
func TestKilledWriter(t *testing.T) {
	if dir := os.Getenv("STRATA_PROJ_WRITER"); dir != "" {
		killedWriter(dir)
		return
	}
	dir := t.TempDir()
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fillLog(t, l, 20000)
	defs := []*Definition{mustDef(t, writerDefs[0]), mustDef(t, writerDefs[1])}
	want := map[string]string{}
	for _, d := range defs {
		want[d.Name] = reference(t, d, events(t, l, 20000), 20000)
	}
	for round := 0; round < 12; round++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledWriter$")
		cmd.Env = append(os.Environ(), "STRATA_PROJ_WRITER="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+round*17) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		p := Open(l)
		for _, d := range defs {
			a, err := p.Result(context.Background(), d, 1, 0, time.Minute)
			if err != nil || string(a.Result) != want[d.Name] {
				t.Fatalf("round %d, %s: %v; want %s", round, d.Name, err, want[d.Name])
			}
			if a, err := p.Result(context.Background(), d, 1, 12345, time.Minute); err != nil || string(a.Result) != reference(t, d, events(t, l, 12345), 12345) {
				t.Fatalf("round %d, %s at 12345: %v", round, d.Name, err)
			}
		}
	}
}

var writerDefs = []string{
	`{"name":"w1","kind":"counter","by":"entity"}`,
	`{"name":"w2","kind":"timeseries","path":".i","op":"sum","bucket":"minute"}`,
}

// killedWriter rebuilds and reads projections of the log in dir until it
// is killed.
func killedWriter(dir string) {
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		os.Exit(2)
	}
	p := Open(l)
	p.CheckpointEvery = 512
	for i := 0; ; i++ {
		for _, js := range writerDefs {
			d, _ := ParseDefinition([]byte(js))
			if i%2 == 0 {
				p.Rebuild(context.Background(), d, 1, RebuildOptions{}, nil)
			} else {
				p.Drop(d.Name)
				p.Result(context.Background(), d, 1, 0, time.Minute)
			}
		}
	}
}

// TestWarm: a long-running process's projector goes on from its warm run
// as events come, and drops it when another process rebuilds.
func TestWarm(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	ctx := context.Background()
	d := mustDef(t, `{"name":"c","kind":"counter","by":"entity"}`)
	p := Open(l)
	for i := 1; i <= 5; i++ {
		fillLog(t, l, 100)
		a, err := p.Result(ctx, d, 1, 0, 0)
		if want := reference(t, d, events(t, l, l.Through()), l.Through()); err != nil || string(a.Result) != want {
			t.Fatalf("round %d: %+v %v; want %s", i, a, err, want)
		}
	}
	if len(p.warm) != 1 {
		t.Fatalf("warm runs: %d", len(p.warm))
	}
	if st, err := p.Status(d, 1); err != nil || st.LastSeq != 500 || st.Processed != 500 {
		t.Fatalf("status of the warm run: %+v %v", st, err)
	}
	// Another process rebuilds narrowed: this one must see it.
	if err := Open(l).Rebuild(ctx, d, 1, RebuildOptions{Entity: "e/1"}, nil); err != nil {
		t.Fatal(err)
	}
	if a, err := p.Result(ctx, d.WithNarrow(RebuildOptions{Entity: "e/1"}), 1, 0, 0); err != nil || string(a.Result) != `{"e/1":50}` {
		t.Fatalf("after another's rebuild: %+v %v", a, err)
	}
	if err := p.Drop("c"); err != nil || len(p.warm) != 0 {
		t.Fatalf("drop: %v, %d warm", err, len(p.warm))
	}
}

// TestLargeResultCheckpoints: a result past 64 KiB is checkpointed at most
// once per as many seqs as its bytes; time travel is the same either way.
func TestLargeResultCheckpoints(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	for done := 0; done < 60000; done += 1000 {
		var ps []log.Proposed
		for i := done; i < done+1000; i++ {
			ps = append(ps, log.Proposed{Type: "a", Entity: fmt.Sprintf("some-longer-entity-name/%d", i%6000), Data: []byte(`{}`), ExpectedVersion: -1})
		}
		if _, err := l.Append(&log.Request{Events: ps}); err != nil {
			t.Fatal(err)
		}
	}
	d := mustDef(t, `{"name":"big","kind":"counter","by":"entity"}`)
	p := Open(l)
	p.CheckpointEvery = 1024
	if _, err := p.Result(context.Background(), d, 1, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	cps, _ := checkpoints(p.versionDir("big", 1))
	for i := 1; i < len(cps); i++ {
		info, err := os.Stat(filepath.Join(p.versionDir("big", 1), checkpointName(cps[i-1])))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > smallResult && cps[i]-cps[i-1] < uint64(info.Size())-100 {
			t.Errorf("checkpoints %d and %d: %d seqs apart after %d bytes", cps[i-1], cps[i], cps[i]-cps[i-1], info.Size())
		}
	}
	if len(cps) < 2 || len(cps) > 30 {
		t.Errorf("%d checkpoints: %v", len(cps), cps)
	}
	evs := events(t, l, 60000)
	for _, at := range []uint64{1000, 17000, 33333, 59999} {
		a, err := Open(l).Result(context.Background(), d, 1, at, time.Minute)
		if err != nil || string(a.Result) != reference(t, d, evs, at) {
			t.Errorf("at %d: %v", at, err)
		}
	}
}

// TestPruneVersions: the first result of a definition's new version removes
// the caches of the versions before it.
func TestPruneVersions(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 100)
	p := Open(l)
	d1 := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	d2 := mustDef(t, `{"name":"c","kind":"counter","by":"entity"}`)
	for v, d := range []*Definition{d1, d1, d2} {
		if _, err := p.Result(context.Background(), d, uint64(v+1), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(p.dir, "c"))
	if len(ents) != 1 || ents[0].Name() != "v3" {
		t.Errorf("left %v", ents)
	}
}

// TestRebuildWaits: a rebuild waits for another process's, within its
// context's deadline, and says it ran out of time.
func TestRebuildWaits(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 10)
	p := Open(l)
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	r, _ := p.newRun(d, 1)
	lf, err := r.lockFile()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if ok, err := fileutil.TryLock(lf); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Rebuild(ctx, d, 1, RebuildOptions{}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("rebuild while another holds the lock: %v", err)
	}
	fileutil.Unlock(lf)
	if err := p.Rebuild(context.Background(), d, 1, RebuildOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestWarmFailure: a warm run whose tail is not saved yet, failing at the
// first event of a read, records the failure stamped right: the file's
// seq and id are an event's, so another process trusts it.
func TestWarmFailure(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 10)
	p := Open(l)
	d := mustDef(t, `{"name":"f","kind":"test-fail"}`)
	for i := 0; i < 3; i++ {
		fillLog(t, l, 2) // a short tail: not worth a write
		if _, err := p.Result(context.Background(), d, 1, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(t, l, "x", "e/1", `{"fail":true}`)
	var fe *FailedError
	if _, err := p.Result(context.Background(), d, 1, 0, 0); !errors.As(err, &fe) || fe.At.Seq != 17 {
		t.Fatalf("warm: %v", err)
	}
	h, _, err := readCache(filepath.Join(p.versionDir("f", 1), resultFileName))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.Event(h.Seq); err != nil || e.IDString() != h.ID || h.Seq != 16 {
		t.Fatalf("result file stamped %d %s: not the event before the failure (%v)", h.Seq, h.ID, err)
	}
	if _, err := Open(l).Result(context.Background(), d, 1, 0, 0); !errors.As(err, &fe) || fe.At.Seq != 17 {
		t.Fatalf("another process: %v", err)
	}
	if a, err := Open(l).Result(context.Background(), d, 1, 16, 0); err != nil || string(a.Result) != "16" {
		t.Fatalf("before the failure: %+v %v", a, err)
	}
}

// TestTornCheckpoint: a checkpoint that does not check is passed over by
// time travel and removed, and the next fold past it writes it again.
func TestTornCheckpoint(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 100)
	d := mustDef(t, `{"name":"c","kind":"counter","by":"type"}`)
	p := Open(l)
	p.CheckpointEvery = 16
	ctx := context.Background()
	if _, err := p.Result(ctx, d, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(p.versionDir("c", 1), checkpointName(48))
	b, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	q := Open(l)
	q.CheckpointEvery = 16
	a, err := q.Result(ctx, d, 1, 50, 0)
	if err != nil || string(a.Result) != `{"a":17,"b":17,"c":16}` {
		t.Fatalf("at 50: %+v %v", a, err)
	}
	if _, _, err := readCache(cp); err != nil {
		t.Errorf("checkpoint 48 not written again: %v", err)
	}
}

// TestStatusWaitsForWriter: Status of a result whose first file another
// writer (a server's worker, another process) is renaming into place
// waits for that writer's lock instead of answering "created" — a read
// had just answered "failed" when a loaded server said "created".
func TestStatusWaitsForWriter(t *testing.T) {
	l, _ := testLog(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 0)
	fillLog(t, l, 10)
	appendOne(t, l, "x", "e/1", `{"fail":true}`)
	d := mustDef(t, `{"name":"f","kind":"test-fail"}`)
	var fe *FailedError
	if _, err := Open(l).Result(context.Background(), d, 1, 0, 0); !errors.As(err, &fe) {
		t.Fatalf("want a failure: %v", err)
	}
	dir := Open(l).versionDir("f", 1)
	path := filepath.Join(dir, resultFileName)
	if err := os.Rename(path, path+".aside"); err != nil {
		t.Fatal(err)
	}
	// The writer: holds the lock while its file is not yet in place.
	lf, err := os.Open(filepath.Join(dir, lockFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if ok, err := fileutil.TryLock(lf); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		err := os.Rename(path+".aside", path)
		_ = fileutil.Unlock(lf)
		done <- err
	}()
	st, err := Open(l).Status(d, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st.State != StateFailed {
		t.Fatalf("status while the file was being written: %q, want %q", st.State, StateFailed)
	}
	// A lock held past the wait (a rebuild) is not waited for: an answer
	// comes within about statusWait.
	if err := os.Rename(path, path+".aside"); err != nil {
		t.Fatal(err)
	}
	if ok, err := fileutil.TryLock(lf); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	t0 := time.Now()
	st, err = Open(l).Status(d, 1)
	if waited := time.Since(t0); err != nil || st.State != StateCreated || waited > 5*time.Second {
		t.Fatalf("status behind a held lock: %+v %v after %v", st, err, waited)
	}
	_ = fileutil.Unlock(lf)
}
