package consumers

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// The files beside the log (FORMAT.md).
const (
	// Dir is the directory of the positions, under the tenant's.
	Dir = "consumers"
	// lockFile is flocked around every read-modify-write of a position.
	lockFile = "lock"
	// stateExt ends a consumer's position file: <name>.json.
	stateExt = ".json"
	// stateFormat is the format of the position files; a file of another
	// is refused rather than guessed at.
	stateFormat = 1
)

// MaxAcks bounds the acknowledgements ahead of the position that a
// consumer's file keeps; past it the oldest are dropped (a writer waiting
// for one of those then waits for the position to pass it).
const MaxAcks = 1024

// lockTimeout is the longest a commit waits for another process's.
const lockTimeout = 5 * time.Second

// Errors.
var (
	// ErrNotOnChain: a position that is not an event of this chain.
	ErrNotOnChain = errors.New("position is not on this chain")
	// ErrBadFormat: a position file of a format this server cannot read.
	ErrBadFormat = errors.New("consumer position file of an unknown format")
)

// Position is an event of the chain (seq 0 and the zero id: the start).
type Position struct {
	Seq uint64
	ID  [32]byte
}

// positionAt is seq's position in l.
func positionAt(l *log.Log, seq uint64) (Position, error) {
	if seq == 0 {
		return Position{}, nil
	}
	e, err := l.Event(seq)
	if errors.Is(err, log.ErrNotFound) {
		return Position{}, fmt.Errorf("seq %d: %w", seq, ErrNotOnChain)
	}
	if err != nil {
		return Position{}, err
	}
	return Position{Seq: seq, ID: e.ID}, nil
}

// Resolve checks that a position given by seq and/or id is on l's chain
// and completes it (nil: not given; both given: they must agree).
func Resolve(l *log.Log, seq *uint64, id *[32]byte) (Position, error) {
	if id == nil {
		if seq == nil {
			return Position{}, fmt.Errorf("no seq or id: %w", ErrNotOnChain)
		}
		return positionAt(l, *seq)
	}
	p := Position{ID: *id}
	if *id != ([32]byte{}) {
		s, err := l.Lookup(*id)
		if errors.Is(err, log.ErrNotFound) {
			return Position{}, fmt.Errorf("id %x: %w", *id, ErrNotOnChain)
		}
		if err != nil {
			return Position{}, err
		}
		p.Seq = s
	}
	if seq != nil && *seq != p.Seq {
		return Position{}, fmt.Errorf("seq %d is not that of id %x (%d): %w", *seq, *id, p.Seq, ErrNotOnChain)
	}
	return p, nil
}

// State is a consumer's position file: where it is, who reads it, and
// the events it acknowledged ahead of its position.
type State struct {
	Position
	// Start is the Record.StartVersion the position belongs to.
	Start uint64
	// Committed is when the position was last committed (unix ns, 0:
	// never since the start).
	Committed int64
	// Reader holds the lease until LeaseUntil (unix ns).
	Reader     string
	LeaseUntil int64
	// Acks are seqs after the position, acknowledged one by one, sorted.
	Acks []uint64
}

// stateFile is State as the file holds it (FORMAT.md).
type stateFile struct {
	Format      int      `json:"format"`
	Name        string   `json:"name"`
	Start       uint64   `json:"start"`
	Seq         uint64   `json:"seq"`
	ID          string   `json:"id"`
	CommittedAt string   `json:"committed_at,omitempty"`
	Reader      string   `json:"reader,omitempty"`
	LeaseUntil  string   `json:"lease_until,omitempty"`
	Acks        []uint64 `json:"acks,omitempty"`
}

// LeaseError: another reader holds the consumer's lease until Until.
type LeaseError struct {
	Reader string
	Until  int64 // unix ns
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("consumer is read by %q until %s", e.Reader, log.FormatTime(e.Until))
}

// BehindError: a commit before the position, without reset.
type BehindError struct {
	Current Position
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("the position is seq %d; moving it back takes a reset", e.Current.Seq)
}

// Store is the positions of a tenant's consumers. It holds no open files:
// each call opens what it needs, so it costs a CGI request nothing until
// used.
type Store struct {
	l      *log.Log
	dir    string
	noSync bool
}

// Open returns the store of l's tenant. noSync is UNSAFE: positions are
// not fsynced (benchmarks, tests of the CPU path).
func Open(l *log.Log, noSync bool) *Store {
	return &Store{l: l, dir: filepath.Join(l.Dir(), Dir), noSync: noSync}
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+stateExt) }

// load reads name's file as stored (a zero State if there is none).
func (s *Store) load(name string) (*State, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil || f.Format != stateFormat || f.Name != name {
		return nil, fmt.Errorf("%s: %w", s.path(name), ErrBadFormat)
	}
	st := &State{Start: f.Start, Reader: f.Reader, Acks: f.Acks}
	st.Seq = f.Seq
	id, ok := log.ParseID(f.ID)
	if !ok {
		return nil, fmt.Errorf("%s: id: %w", s.path(name), ErrBadFormat)
	}
	st.ID = id
	for _, t := range []struct {
		s  string
		ns *int64
	}{{f.CommittedAt, &st.Committed}, {f.LeaseUntil, &st.LeaseUntil}} {
		if t.s == "" {
			continue
		}
		if *t.ns, err = log.ParseTime(t.s); err != nil {
			return nil, fmt.Errorf("%s: time: %w", s.path(name), ErrBadFormat)
		}
	}
	return st, nil
}

// State returns consumer r's state: as stored, or r's start if the file
// is of another start (or missing). A position no longer on the chain
// (a log restored from an older backup) is the start too.
func (s *Store) State(r *Record) (*State, error) {
	st, err := s.load(r.Name)
	if err != nil {
		return nil, err
	}
	return s.fit(r, st)
}

func (s *Store) fit(r *Record, st *State) (*State, error) {
	if st.Start == r.StartVersion && st.Seq <= s.l.Through() {
		if p, err := positionAt(s.l, st.Seq); err == nil && p.ID == st.ID {
			return st, nil
		}
	}
	if r.Def == nil {
		return nil, r.DefErr
	}
	p, err := r.Def.Start(s.l)
	if err != nil {
		return nil, err
	}
	return &State{Position: p, Start: r.StartVersion, Reader: st.Reader, LeaseUntil: st.LeaseUntil}, nil
}

// update runs fn on r's state under the directory's lock and writes what
// it leaves, durably, if it returns write; the state written (or the one
// read) is returned. A failed write leaves the file as it was.
func (s *Store) update(r *Record, fn func(st *State) (write bool, err error)) (*State, error) {
	if err := fileutil.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	lf, err := fileutil.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // releases the flock
	if err := fileutil.Lock(lf, lockTimeout, nil); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", r.Name, err)
	}
	st, err := s.State(r)
	if err != nil {
		return nil, err
	}
	write, err := fn(st)
	if err != nil || !write {
		return st, err
	}
	f := stateFile{Format: stateFormat, Name: r.Name, Start: st.Start, Seq: st.Seq, ID: hex.EncodeToString(st.ID[:]), Reader: st.Reader, Acks: st.Acks}
	if st.Committed != 0 {
		f.CommittedAt = log.FormatTime(st.Committed)
	}
	if st.LeaseUntil != 0 {
		f.LeaseUntil = log.FormatTime(st.LeaseUntil)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if s.noSync {
		err = fileutil.WriteFileNoSync(s.path(r.Name), b, 0o600)
	} else {
		err = fileutil.WriteFile(s.path(r.Name), b, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("write consumer %s position: %w", r.Name, err)
	}
	return st, nil
}

// lease takes or renews st's lease for reader (LeaseError if another
// holds it) and reports whether that changed the file: a renewal is
// written only once half the lease has passed, so that a reader's every
// page does not cost a durable write.
func lease(st *State, reader string, d time.Duration, now int64) (bool, error) {
	if st.Reader != "" && st.Reader != reader && st.LeaseUntil > now {
		return false, &LeaseError{Reader: st.Reader, Until: st.LeaseUntil}
	}
	until := now + int64(d)
	if st.Reader == reader && st.LeaseUntil-now >= int64(d)/2 && st.LeaseUntil <= until {
		return false, nil
	}
	st.Reader, st.LeaseUntil = reader, until
	return true, nil
}

// Acquire takes or renews r's lease for reader, for d from now, and
// returns the state: what a read does before it reads.
func (s *Store) Acquire(r *Record, reader string, d time.Duration, now time.Time) (*State, error) {
	return s.update(r, func(st *State) (bool, error) { return lease(st, reader, d, now.UnixNano()) })
}

// Release gives up reader's lease on r, so that another reader need not
// wait for it to end: a reader that stops on purpose. A lease another
// reader holds is a LeaseError; none held is nothing to do.
func (s *Store) Release(r *Record, reader string, now time.Time) (*State, error) {
	return s.update(r, func(st *State) (bool, error) {
		switch {
		case st.Reader == "" || st.LeaseUntil <= now.UnixNano():
			return false, nil
		case st.Reader != reader:
			return false, &LeaseError{Reader: st.Reader, Until: st.LeaseUntil}
		}
		st.Reader, st.LeaseUntil = "", 0
		return true, nil
	})
}

// Commit moves r's position to p (already Resolved) for reader, which
// takes or renews the lease; before the position only with reset
// (BehindError otherwise). It returns once the new position is durable.
func (s *Store) Commit(r *Record, p Position, reset bool, reader string, d time.Duration, now time.Time) (*State, error) {
	return s.update(r, func(st *State) (bool, error) {
		if _, err := lease(st, reader, d, now.UnixNano()); err != nil {
			return false, err
		}
		if p.Seq < st.Seq && !reset {
			return false, &BehindError{Current: st.Position}
		}
		st.Position, st.Committed = p, now.UnixNano()
		st.Acks = slices.DeleteFunc(st.Acks, func(a uint64) bool { return a <= p.Seq })
		return true, nil
	})
}

// Ack records that r's consumer has handled the event at seq, ahead of its
// position (one at or before the position needs nothing). It takes no
// lease: an acknowledgement is a fact about one event, whoever sends it.
func (s *Store) Ack(r *Record, seq uint64, now time.Time) (*State, error) {
	return s.update(r, func(st *State) (bool, error) {
		i, found := slices.BinarySearch(st.Acks, seq)
		if seq <= st.Seq || found {
			return false, nil
		}
		st.Acks = slices.Insert(st.Acks, i, seq)
		if len(st.Acks) > MaxAcks {
			st.Acks = st.Acks[len(st.Acks)-MaxAcks:]
		}
		return true, nil
	})
}

// Done reports whether r's consumer has handled every event of seqs: each
// is at or before its position, or acknowledged. It reads the file without
// the lock (files are replaced whole), so a waiting writer may ask often.
func (s *Store) Done(r *Record, seqs []uint64) (bool, error) {
	st, err := s.State(r)
	if err != nil {
		return false, err
	}
	for _, q := range seqs {
		if q > st.Seq {
			if _, ok := slices.BinarySearch(st.Acks, q); !ok {
				return false, nil
			}
		}
	}
	return true, nil
}

// Stamp identifies one version of a position file: every write replaces
// the file (a new inode), so an unchanged stamp means nothing to read.
type Stamp struct {
	seen      bool // the zero Stamp matches no file, not even a missing one
	ino, size uint64
	mtime     int64
}

// Changed reports whether consumer name's position file differs from the
// one *st identified, and records the one there now: a stat, which a
// writer polling for commits and acks pays instead of a read.
func (s *Store) Changed(name string, st *Stamp) bool {
	now := Stamp{seen: true}
	if fi, err := os.Stat(s.path(name)); err == nil {
		now.size, now.mtime = uint64(fi.Size()), fi.ModTime().UnixNano()
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			now.ino = sys.Ino
		}
	}
	if now == *st {
		return false
	}
	*st = now
	return true
}

// Remove deletes consumer name's position (after its deletion is
// recorded in the log: a file left by a crash in between belongs to a
// start no new definition has, and is ignored).
func (s *Store) Remove(name string) error {
	err := fileutil.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
