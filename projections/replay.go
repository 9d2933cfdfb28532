package projections

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// A replay is a rebuild of one projection's result that outlives the
// request that started it: its record (state, progress) is a small JSON
// file beside the tenant (ReplayDir), so that every process — a CGI
// request, a long-running server, `strata rebuild` — sees it and any of
// them can move it on. Each Step runs Projector.Rebuild for at most a
// budget, under a try-lock on the replay; the engine saves what it did
// when its context ends, and the next Step resumes from there
// (RebuildOptions.Resume). A process killed in the middle leaves the
// record "running" and the lock free: the next Step goes on.

// ReplayDir holds a tenant's replay records, under the tenant's directory.
const ReplayDir = "cache/replays"

// Replay states.
const (
	ReplayPending   = "pending"
	ReplayRunning   = "running"
	ReplayCompleted = "completed"
	ReplayFailed    = "failed"
	ReplayCancelled = "cancelled"
)

// Errors of Replays.
var (
	ErrNoReplay = errors.New("no such replay")
	// ErrReplayBusy: another process is stepping the replay.
	ErrReplayBusy = errors.New("replay is being stepped by another process")
)

// Replay is a replay's record, as stored and as served.
type Replay struct {
	ID         string  `json:"id"`
	Projection string  `json:"projection"`
	Version    uint64  `json:"version"` // the definition version rebuilt
	State      string  `json:"state"`
	Done       uint64  `json:"done"`  // seqs of the log gone through
	Total      uint64  `json:"total"` // the head when the rebuild began
	Rate       float64 `json:"rate"`  // events a second, in the latest step
	// ETA is the seconds still to go at Rate, null while unknown.
	ETA     *float64 `json:"eta"`
	From    string   `json:"from,omitempty"` // RFC 3339
	To      string   `json:"to,omitempty"`
	Entity  string   `json:"entity,omitempty"`
	Types   []string `json:"types,omitempty"`
	Created string   `json:"created"`
	Started string   `json:"started,omitempty"`
	Updated string   `json:"updated"`
	// Finished is when it completed, failed or was cancelled.
	Finished string `json:"finished,omitempty"`
	// Millis is the time spent running, over every step.
	Millis float64 `json:"millis"`
	Error  string  `json:"error,omitempty"`
	By     string  `json:"by,omitempty"`
}

// Over reports whether the replay will not move again.
func (r *Replay) Over() bool {
	return r.State == ReplayCompleted || r.State == ReplayFailed || r.State == ReplayCancelled
}

// Options returns the rebuild's narrowing.
func (r *Replay) Options() RebuildOptions {
	var o RebuildOptions
	if r.From != "" {
		o.From, _ = time.Parse(time.RFC3339Nano, r.From)
	}
	if r.To != "" {
		o.To, _ = time.Parse(time.RFC3339Nano, r.To)
	}
	o.Entity, o.Types = r.Entity, r.Types
	return o
}

// Replays are the replay records of one tenant's log.
type Replays struct {
	l   *log.Log
	p   *Projector
	dir string
	// now is the clock (tests stop it).
	now func() time.Time
}

// OpenReplays returns the replays of l's tenant, rebuilt with p.
func OpenReplays(l *log.Log, p *Projector) *Replays {
	return &Replays{l: l, p: p, dir: filepath.Join(l.Dir(), ReplayDir), now: time.Now}
}

// ValidReplayID reports whether s is a replay id: 20 lowercase hex digits.
func ValidReplayID(s string) bool {
	if len(s) != 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (rs *Replays) path(id, ext string) string { return filepath.Join(rs.dir, id+ext) }

// Start records a new replay of d (its newest definition) with opt's
// narrowing, pending: the first Step starts it.
func (rs *Replays) Start(d *DefRecord, opt RebuildOptions, by string) (*Replay, error) {
	var rnd [4]byte
	rand.Read(rnd[:])
	now := rs.now()
	r := &Replay{ID: fmt.Sprintf("%012x%08x", now.UnixMilli(), binary.BigEndian.Uint32(rnd[:])),
		Projection: d.Name, Version: d.Version, State: ReplayPending, Total: rs.l.Through(),
		Entity: opt.Entity, Types: opt.Types, By: by}
	if !opt.From.IsZero() {
		r.From = opt.From.UTC().Format(time.RFC3339Nano)
	}
	if !opt.To.IsZero() {
		r.To = opt.To.UTC().Format(time.RFC3339Nano)
	}
	r.Created = log.FormatTime(now.UnixNano())
	r.Updated = r.Created
	if err := fileutil.MkdirAll(rs.dir, 0o755); err != nil {
		return nil, err
	}
	if err := rs.save(r); err != nil {
		return nil, err
	}
	rs.prune()
	return r, nil
}

// KeepReplays is how many finished replay records a tenant keeps: past
// it, starting a replay removes the oldest finished ones.
const KeepReplays = 100

// prune removes the oldest finished records past KeepReplays. A record
// that cannot be removed now is removed by a later start.
func (rs *Replays) prune() {
	all, err := rs.List()
	if err != nil {
		return
	}
	var over []*Replay
	for _, r := range all {
		if r.Over() {
			over = append(over, r)
		}
	}
	for _, r := range over[:max(0, len(over)-KeepReplays)] {
		if f, err := rs.lock(r.ID); err == nil {
			rs.removeLocked(r.ID)
			f.Close()
		}
	}
}

// save writes r's record atomically.
func (rs *Replays) save(r *Replay) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return fileutil.WriteFileNoSync(rs.path(r.ID, ".json"), b, 0o644)
}

// Get returns replay id's record.
func (rs *Replays) Get(id string) (*Replay, error) {
	if !ValidReplayID(id) {
		return nil, ErrNoReplay
	}
	b, err := os.ReadFile(rs.path(id, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoReplay
	}
	if err != nil {
		return nil, err
	}
	var r Replay
	if err := json.Unmarshal(b, &r); err != nil || r.ID != id {
		return nil, fmt.Errorf("replay record %s is damaged", id)
	}
	return &r, nil
}

// List returns every replay record, oldest first.
func (rs *Replays) List() ([]*Replay, error) {
	ents, err := os.ReadDir(rs.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && ValidReplayID(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]*Replay, 0, len(ids))
	for _, id := range ids {
		r, err := rs.Get(id)
		if errors.Is(err, ErrNoReplay) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	// Ids sort by the millisecond; Created (to the nanosecond, as
	// FormatTime writes it: fixed width) orders those of one millisecond.
	slices.SortStableFunc(out, func(a, b *Replay) int { return strings.Compare(a.Created, b.Created) })
	return out, nil
}

// lock takes replay id's try-lock: nil, ErrReplayBusy if another process
// holds it. The caller closes the file, which lets go of the lock.
func (rs *Replays) lock(id string) (*os.File, error) {
	f, err := fileutil.OpenFile(rs.path(id, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	ok, err := fileutil.TryLock(f)
	if err != nil || !ok {
		f.Close()
		if err == nil {
			err = ErrReplayBusy
		}
		return nil, err
	}
	return f, nil
}

// Cancel stops replay id: at once if no process is stepping it, else at
// that process's next progress report. A finished replay is left as it
// is. With remove, the record is deleted too (DELETE /replays/<id>).
func (rs *Replays) Cancel(id string, remove bool) (*Replay, error) {
	r, err := rs.Get(id)
	if err != nil {
		return nil, err
	}
	f, err := rs.lock(id)
	if errors.Is(err, ErrReplayBusy) {
		// The process stepping it sees the marker and stops.
		mark := "cancel"
		if remove {
			mark = "delete"
		}
		if err := fileutil.WriteFileNoSync(rs.path(id, ".cancel"), []byte(mark), 0o644); err != nil {
			return nil, err
		}
		r.State = ReplayCancelled
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if r, err = rs.Get(id); err != nil {
		return nil, err
	}
	if remove {
		return r, rs.removeLocked(id)
	}
	if !r.Over() {
		rs.finish(r, ReplayCancelled, "")
		if err := rs.save(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// removeLocked deletes replay id's files; its lock is held.
func (rs *Replays) removeLocked(id string) error {
	for _, ext := range []string{".json", ".cancel", ".lock"} {
		if err := fileutil.Remove(rs.path(id, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (rs *Replays) finish(r *Replay, state, msg string) {
	r.State, r.Error = state, msg
	r.Finished = log.FormatTime(rs.now().UnixNano())
	r.Updated = r.Finished
	r.ETA = nil
	if state == ReplayCompleted {
		zero := 0.0
		r.Done, r.ETA = r.Total, &zero
	}
}

// reportEvery is how often a step writes its progress to the record (and
// looks for a cancellation).
const reportEvery = 250 * time.Millisecond

// Step moves replay id on for at most budget (0: until it is done, ctx
// ends or it is cancelled), and returns its record. progress, if not nil,
// is called with the record as it moves. A replay another process is
// stepping is returned as it stands. The error is the engine's or the
// disk's; a replay that fails records why.
func (rs *Replays) Step(ctx context.Context, id string, budget time.Duration, progress func(*Replay)) (*Replay, error) {
	f, err := rs.lock(id)
	if errors.Is(err, ErrReplayBusy) {
		return rs.Get(id)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := rs.Get(id)
	if err != nil || r.Over() {
		return r, err
	}
	if mark, err := os.ReadFile(rs.path(id, ".cancel")); err == nil {
		if string(mark) == "delete" {
			return r, rs.removeLocked(id)
		}
		rs.finish(r, ReplayCancelled, "")
		return r, rs.save(r)
	}
	d, err := ReadDef(rs.l, r.Projection, 0)
	switch {
	case errors.Is(err, ErrNoProjection) || err == nil && d.Deleted:
		rs.finish(r, ReplayCancelled, "the projection was deleted")
		return r, rs.save(r)
	case err != nil:
		return nil, err
	case d.Version != r.Version:
		rs.finish(r, ReplayCancelled, fmt.Sprintf("the projection's definition changed (version %d); its new version is rebuilt on read", d.Version))
		return r, rs.save(r)
	case d.Def == nil:
		rs.finish(r, ReplayFailed, "this server cannot read the stored definition")
		return r, rs.save(r)
	case !sameOptions(r.Options().Narrowing(), d.Def.Narrow):
		// A later rebuild recorded another narrowing (its own replay
		// does it): this one's result would not be read.
		rs.finish(r, ReplayCancelled, "a later rebuild of the projection replaced it")
		return r, rs.save(r)
	}
	opt := r.Options()
	opt.Resume = r.State == ReplayRunning
	if r.State == ReplayPending {
		r.State = ReplayRunning
		r.Started = log.FormatTime(rs.now().UnixNano())
	}
	sctx, cancel := context.WithCancel(ctx)
	if budget > 0 {
		sctx, cancel = context.WithTimeout(ctx, budget)
	}
	defer cancel()
	start := rs.now()
	base, startDone := r.Millis, r.Done
	var lastReport time.Time
	var cancelled string
	report := func(done, total uint64, force bool) {
		now := rs.now()
		r.Done, r.Total = done, total
		if !force && now.Sub(lastReport) < reportEvery {
			return
		}
		lastReport = now
		r.Millis = base + float64(now.Sub(start).Microseconds())/1000
		r.Updated = log.FormatTime(now.UnixNano())
		// The rate of this step: a step killed earlier leaves its events
		// done but loses its time, so the whole replay's average would
		// overstate it.
		if secs := now.Sub(start).Seconds(); secs > 0 && done > startDone {
			r.Rate = float64(done-startDone) / secs
		}
		if r.Rate > 0 && total >= done {
			eta := float64(total-done) / r.Rate
			r.ETA = &eta
		}
		if mark, err := os.ReadFile(rs.path(id, ".cancel")); err == nil && cancelled == "" {
			cancelled = string(mark)
			cancel()
		}
		rs.save(r) // a lost progress report is made good by the next
		if progress != nil {
			progress(r)
		}
	}
	if opt.Resume {
		// A read may have caught the rebuilt result up meanwhile (a read
		// goes on with a rebuild cut short, as a plain catch-up): then
		// the rest is a catch-up too, not a rebuild from the start.
		st, err := rs.p.Status(d.Def, d.Version)
		if err != nil {
			return nil, err
		}
		if st.State != StateRebuilding {
			err = rs.catchUp(sctx, d, r, report)
			report(r.Done, r.Total, true)
			return rs.stepped(ctx, r, d, cancelled, err, progress)
		}
	}
	err = rs.p.Rebuild(sctx, d.Def, d.Version, opt, func(done, total uint64) { report(done, total, false) })
	report(r.Done, r.Total, true)
	return rs.stepped(ctx, r, d, cancelled, err, progress)
}

// catchUp moves a replay whose rebuild a read took over on by catching
// the result up, reporting progress as it goes.
func (rs *Replays) catchUp(ctx context.Context, d *DefRecord, r *Replay, report func(done, total uint64, force bool)) error {
	for {
		a, err := rs.p.Result(ctx, d.Def, d.Version, 0, reportEvery)
		if err != nil {
			return err
		}
		report(a.Seq, max(r.Total, a.Seq), false)
		if !a.Behind {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// stepped records how a step ended: err is the engine's.
func (rs *Replays) stepped(ctx context.Context, r *Replay, d *DefRecord, cancelled string, err error, progress func(*Replay)) (*Replay, error) {
	id := r.ID
	var fe *FailedError
	switch {
	case cancelled == "delete":
		return r, rs.removeLocked(id)
	case cancelled != "":
		rs.finish(r, ReplayCancelled, "")
	case err == nil:
		st, serr := rs.p.Status(d.Def, d.Version)
		if serr == nil && st.State == StateFailed {
			rs.finish(r, ReplayFailed, st.LastError)
		} else {
			rs.finish(r, ReplayCompleted, "")
		}
	case errors.As(err, &fe):
		rs.finish(r, ReplayFailed, fe.Error())
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Out of budget: the next step goes on.
	case ctx.Err() != nil:
		// The process is stopping: the next step, here or elsewhere,
		// goes on.
	default:
		rs.finish(r, ReplayFailed, "the rebuild stopped on an error; see the server log")
		if serr := rs.save(r); serr != nil {
			return r, serr
		}
		return r, err
	}
	if progress != nil {
		progress(r)
	}
	return r, rs.save(r)
}

// CancelOf cancels every unfinished replay of projection name: a new
// rebuild replaces the one under way.
func (rs *Replays) CancelOf(name string) error {
	all, err := rs.List()
	if err != nil {
		return err
	}
	for _, r := range all {
		if r.Projection == name && !r.Over() {
			if _, err := rs.Cancel(r.ID, false); err != nil && !errors.Is(err, ErrNoReplay) {
				return err
			}
		}
	}
	return nil
}
