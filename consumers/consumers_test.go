package consumers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

func testLog(t testing.TB) *log.Log {
	t.Helper()
	l, err := log.Open(t.TempDir(), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendOne(t testing.TB, l *log.Log, typ, entity, data string) *log.Event {
	t.Helper()
	res, err := l.Append(&log.Request{Events: []log.Proposed{{Type: typ, Entity: entity, Data: []byte(data), ExpectedVersion: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Events[0]
}

func mustRead(t testing.TB, l *log.Log, name string) *Record {
	t.Helper()
	r, err := ReadDef(l, name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestParseDefinition: the fields, their checks and the one stored form.
func TestParseDefinition(t *testing.T) {
	for _, c := range []struct {
		body, field, stored string
		start               bool
	}{
		{`{"filter":{"types":["order.*"],"entity":"orders/*"},"after":0}`, "", `{"filter":{"types":["order.*"],"entity":"orders/*"}}`, true},
		{`{}`, "", `{}`, false},
		{`{"name":"c","after":7}`, "", `{"after":7}`, true},
		{`{"from":"` + strings.Repeat("0", 64) + `"}`, "", `{}`, true},
		{`{"from":"` + strings.Repeat("a", 64) + `"}`, "", `{"from":"` + strings.Repeat("a", 64) + `"}`, true},
		{`{"name":"d"}`, "name", "", false},
		{`{"after":1,"from":"` + strings.Repeat("a", 64) + `"}`, "from", "", false},
		{`{"from":"x"}`, "from", "", false},
		{`{"after":-1}`, "after", "", false},
		{`{"filter":{"types":["Bad Type"]}}`, "filter.types[0]", "", false},
		{`{"filter":{"entity":"["}}`, "filter.entity", "", false},
		{`{"kind":"counter"}`, "kind", "", false},
		{`{} {}`, "body", "", false},
	} {
		d, start, err := ParseDefinition([]byte(c.body), "c")
		var fe *FieldError
		switch {
		case c.field != "":
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("%s: %v, want a field error on %s", c.body, err, c.field)
			}
		case err != nil:
			t.Errorf("%s: %v", c.body, err)
		case string(d.Marshal()) != c.stored || start != c.start:
			t.Errorf("%s: stored %s start %v, want %s %v", c.body, d.Marshal(), start, c.stored, c.start)
		}
	}
}

// TestReadDefStart: the start version moves with a new start point, a
// deletion and a definition again, and not with a new filter.
func TestReadDefStart(t *testing.T) {
	l := testLog(t)
	e := DefEntity("c")
	appendOne(t, l, TypeDefined, e, `{"after":0}`)
	appendOne(t, l, TypeDefined, e, `{"filter":{"types":["a"]}}`) // same start
	if r := mustRead(t, l, "c"); r.Version != 2 || r.StartVersion != 1 || len(r.Def.Filter.Types) != 1 {
		t.Fatalf("%+v", r)
	}
	appendOne(t, l, TypeDefined, e, `{"after":2}`)
	if r := mustRead(t, l, "c"); r.StartVersion != 3 {
		t.Fatalf("new start: %+v", r)
	}
	appendOne(t, l, TypeDeleted, e, `null`)
	if r := mustRead(t, l, "c"); !r.Deleted {
		t.Fatalf("deleted: %+v", r)
	}
	appendOne(t, l, TypeDefined, e, `{"after":2}`)
	if r := mustRead(t, l, "c"); r.Deleted || r.StartVersion != 5 {
		t.Fatalf("defined again: %+v", r)
	}
	if _, err := ReadDef(l, "none"); !errors.Is(err, ErrNoConsumer) {
		t.Fatal(err)
	}
	appendOne(t, l, TypeDefined, DefEntity("b"), `{}`)
	list, err := List(l)
	if err != nil || len(list) != 2 || list[0].Name != "b" || list[1].Name != "c" {
		t.Fatalf("List: %v %v", list, err)
	}
}

// TestCommitAckLease: commits move forward only (back with reset), must
// be on the chain, take the lease; acks count for Done; another reader is
// refused until the lease ends.
func TestCommitAckLease(t *testing.T) {
	l := testLog(t)
	var evs []*log.Event
	for i := 0; i < 5; i++ {
		evs = append(evs, appendOne(t, l, "x", "e", `1`))
	}
	appendOne(t, l, TypeDefined, DefEntity("c"), `{"after":1}`)
	r := mustRead(t, l, "c")
	s := Open(l, false)
	now := time.Unix(1000, 0)
	st, err := s.State(r)
	if err != nil || st.Seq != 1 || st.ID != evs[0].ID || st.Committed != 0 {
		t.Fatalf("start: %+v %v", st, err)
	}
	p, err := Resolve(l, nil, &evs[2].ID)
	if err != nil || p.Seq != 3 {
		t.Fatal(p, err)
	}
	if _, err := s.Commit(r, p, false, "a", 30*time.Second, now); err != nil {
		t.Fatal(err)
	}
	// Another reader: refused with the lease's end, until it ends.
	var le *LeaseError
	if _, err := s.Acquire(r, "b", 30*time.Second, now.Add(time.Second)); !errors.As(err, &le) || le.Reader != "a" || le.Until != now.Add(30*time.Second).UnixNano() {
		t.Fatalf("second reader: %v", err)
	}
	p2, _ := Resolve(l, ptr(uint64(2)), nil)
	var be *BehindError
	if _, err := s.Commit(r, p2, false, "a", 30*time.Second, now); !errors.As(err, &be) || be.Current.Seq != 3 {
		t.Fatalf("backwards: %v", err)
	}
	for _, bad := range []struct {
		seq *uint64
		id  *[32]byte
	}{{ptr(uint64(99)), nil}, {nil, &[32]byte{1}}, {ptr(uint64(2)), &evs[2].ID}} {
		if _, err := Resolve(l, bad.seq, bad.id); !errors.Is(err, ErrNotOnChain) {
			t.Errorf("Resolve(%v, %v): %v", bad.seq, bad.id, err)
		}
	}
	// Acks ahead of the position.
	if ok, _ := s.Done(r, []uint64{3, 5}); ok {
		t.Fatal("done before the ack")
	}
	if _, err := s.Ack(r, 5, now); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Done(r, []uint64{2, 3, 5}); !ok || err != nil {
		t.Fatalf("done after the ack: %v", err)
	}
	if ok, _ := s.Done(r, []uint64{4}); ok {
		t.Fatal("4 is neither committed nor acked")
	}
	// The lease has ended: b may read, and reset the position back.
	later := now.Add(31 * time.Second)
	if _, err := s.Acquire(r, "b", 30*time.Second, later); err != nil {
		t.Fatal(err)
	}
	st, err = s.Commit(r, p2, true, "b", 30*time.Second, later)
	if err != nil || st.Seq != 2 || st.Reader != "b" || len(st.Acks) != 1 {
		t.Fatalf("reset: %+v %v", st, err)
	}
	// A new start point drops the position; so does a deletion and a
	// definition again.
	appendOne(t, l, TypeDefined, DefEntity("c"), `{"after":4}`)
	r = mustRead(t, l, "c")
	if st, err := s.State(r); err != nil || st.Seq != 4 || len(st.Acks) != 0 {
		t.Fatalf("new start: %+v %v", st, err)
	}
}

// TestCommitFsyncFails: a commit whose fsync fails returns the error and
// the old position stands, whole, for the next reader.
func TestCommitFsyncFails(t *testing.T) {
	l := testLog(t)
	for i := 0; i < 3; i++ {
		appendOne(t, l, "x", "e", `1`)
	}
	appendOne(t, l, TypeDefined, DefEntity("c"), `{}`)
	r := mustRead(t, l, "c")
	s := Open(l, false)
	now := time.Now()
	p1, _ := Resolve(l, ptr(uint64(1)), nil)
	if _, err := s.Commit(r, p1, false, "a", time.Minute, now); err != nil {
		t.Fatal(err)
	}
	for _, op := range []fileutil.Op{fileutil.OpSync, fileutil.OpRename, fileutil.OpWrite} {
		undo := fileutil.Inject(func(o fileutil.Op, path string) error {
			if o == op && strings.Contains(path, string(filepath.Separator)+Dir+string(filepath.Separator)) {
				return syscall.EIO
			}
			return nil
		})
		p3, _ := Resolve(l, ptr(uint64(3)), nil)
		_, err := s.Commit(r, p3, false, "a", time.Minute, now)
		undo()
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("%s fails: commit answered %v", op, err)
		}
		if st, err := s.State(r); err != nil || st.Seq != 1 {
			t.Fatalf("%s fails: the position is %+v %v, want the old one", op, st, err)
		}
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(filepath.Join(l.Dir(), Dir))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestChanged: the stamp sees every write (each a new file), and nothing
// else; the zero stamp matches nothing, not even a missing file.
func TestChanged(t *testing.T) {
	l := testLog(t)
	appendOne(t, l, "x", "e", `1`)
	appendOne(t, l, "x", "e", `1`)
	appendOne(t, l, TypeDefined, DefEntity("c"), `{}`)
	r := mustRead(t, l, "c")
	s := Open(l, true)
	var st Stamp
	if !s.Changed("c", &st) || s.Changed("c", &st) {
		t.Fatal("a missing file: changed once from the zero stamp, then not")
	}
	now := time.Now()
	for seq := uint64(1); seq <= 2; seq++ {
		p, _ := Resolve(l, &seq, nil)
		if _, err := s.Commit(r, p, false, "a", time.Minute, now); err != nil {
			t.Fatal(err)
		}
		if !s.Changed("c", &st) || s.Changed("c", &st) {
			t.Fatalf("commit %d: changed once, then not", seq)
		}
	}
}
