package projections

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/jsonx"
	"strata/log"
)

// Stamp names an event of the log: the last one a result reflects. The
// zero Stamp (seq 0, id "") stands before the first event.
type Stamp struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// Answer is a projection's result at a point of the log.
type Answer struct {
	Name    string
	Version uint64
	// Seq and ID are the last event the result reflects.
	Seq uint64
	ID  string
	// Result is the whole result, or one key's, as compact JSON.
	Result json.RawMessage
	// Behind says the catch-up ran out of its budget: the result reflects
	// Seq, short of the point asked. The next request goes on from there.
	Behind bool
}

// States of a projection (Status.State). Paused is the api's: the engine
// does not know of pauses.
const (
	StateCreated    = "created"    // never run: no cached result
	StateRunning    = "running"    // a result is cached and caught up on read
	StatePaused     = "paused"     // set by the api from the definition's log
	StateFailed     = "failed"     // the reducer failed at FailedAt
	StateRebuilding = "rebuilding" // a rebuild is under way or was cut short
)

// Status is a projection's processing status, kept beside its result.
type Status struct {
	State     string  `json:"state"`
	Processed uint64  `json:"processed"` // events folded (passed the filter)
	LastSeq   uint64  `json:"last_seq"`  // last event of the log looked at
	Errors    uint64  `json:"errors"`    // reducer failures
	LastError string  `json:"last_error,omitempty"`
	FailedAt  *Stamp  `json:"failed_at,omitempty"`
	Millis    float64 `json:"millis"` // time spent folding, in total
}

// FailedError is returned for a projection whose reducer failed: At is the
// event that broke it. Rebuild starts it over.
type FailedError struct {
	Name string
	At   Stamp
	Msg  string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("projection %s failed at event %d (%s): %s", e.Name, e.At.Seq, e.At.ID, e.Msg)
}

// ErrNoKey is returned by Key for a key the result does not have.
var ErrNoKey = errors.New("no such key in the projection result")

// RebuildOptions narrow a rebuild: only events at or after From and before
// To (zero: unbounded), of Entity (exact or glob) and of Types (exact or
// globs), on top of the definition's filter. The narrowing is durable: the
// server records it in the log (TypeRebuilt) before rebuilding, ReadDef
// gives it back as Definition.Narrow, and every read folds with it, so a
// deleted cache is folded again to the same answer. It holds until the
// next rebuild or the next definition version.
type RebuildOptions struct {
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	Entity string    `json:"entity,omitempty"`
	Types  []string  `json:"types,omitempty"`
	// Resume goes on with a rebuild that was cut short (its context ended)
	// instead of starting over; without one to resume it starts over.
	Resume bool `json:"-"`
}

// DefaultBudget is how long a read catches a result up when no budget is
// given: past it the answer is the result so far (Answer.Behind).
const DefaultBudget = 2 * time.Second

// DefaultCheckpointEvery is the distance, in seqs of the log, between the
// checkpoints kept for time travel: a result at any point costs at most
// this many records read after the nearest checkpoint (≈ 5 ms for the
// built-in kinds). A small result's checkpoint costs ~0.1 ms to write:
// about 1% of the fold between two.
const DefaultCheckpointEvery = 1 << 14

// Projector computes projection results of one log, caching them under
// <tenant>/cache/projections. It holds nothing that must survive: every
// result is on disk, so a CGI process (one request) and a long-running
// server get the same answers.
type Projector struct {
	l   *log.Log
	dir string
	// CheckpointEvery is the seq distance between checkpoints
	// (DefaultCheckpointEvery when 0). Changing it is safe: checkpoints
	// are found by listing.
	CheckpointEvery uint64

	// warm keeps each projection's last run at the head, for a
	// long-running process (one Projector per tenant): the next read goes
	// on from it without loading the cache. mu guards it; a run is taken
	// out while in use.
	mu   sync.Mutex
	warm map[string]*run
}

func warmKey(def *Definition, version uint64) string {
	return def.Name + "/" + strconv.FormatUint(version, 10) + "/" + digest(def)
}

// takeWarm returns the warm run of def's version, if there is one that
// the result file does not contradict (another generation wrote it since:
// a rebuild in another process).
func (p *Projector) takeWarm(def *Definition, version uint64) *run {
	key := warmKey(def, version)
	p.mu.Lock()
	r := p.warm[key]
	delete(p.warm, key)
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	cur, err := readHeader(filepath.Join(r.dir, resultFileName))
	if err == nil && cur.Gen != r.h.Gen {
		return nil
	}
	if !r.onChain(r.h.Seq, r.h.ID) {
		return nil
	}
	r.def = def
	return r
}

// maxWarm bounds the saved size of a run kept warm: a larger one (a
// counter of millions of entities) would hold hundreds of megabytes of a
// long-running server's memory; it is loaded from its cache per read
// instead.
const maxWarm = 16 << 20

// release is the end of a read's use of r: a run at the head is kept warm
// for the next read.
func (p *Projector) release(r *run) {
	if r.head {
		p.putWarm(r)
	}
}

// putWarm keeps r for the next read at the head, unless a further one is
// kept already.
func (p *Projector) putWarm(r *run) {
	if r.size > maxWarm {
		return
	}
	key := warmKey(r.def, r.version)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warm == nil {
		p.warm = map[string]*run{}
	}
	if old := p.warm[key]; old == nil || old.h.Seq <= r.h.Seq {
		p.warm[key] = r
	}
}

// forget drops the warm runs of name (every version).
func (p *Projector) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, r := range p.warm {
		if r.def.Name == name {
			delete(p.warm, k)
		}
	}
}

// Open returns the projector of l's results.
func Open(l *log.Log) *Projector {
	return &Projector{l: l, dir: filepath.Join(l.Dir(), "cache", cacheDirName)}
}

func (p *Projector) every() uint64 {
	if p.CheckpointEvery == 0 {
		return DefaultCheckpointEvery
	}
	return p.CheckpointEvery
}

// versionDir is where the cache of def's version lives.
func (p *Projector) versionDir(name string, version uint64) string {
	return filepath.Join(p.dir, name, "v"+strconv.FormatUint(version, 10))
}

// digest identifies a definition's content for its cache: the definition
// and its narrowing (Narrow), so that a result folded with another
// narrowing is not used. A definition without one digests as it always
// did.
func digest(def *Definition) string {
	b, _ := json.Marshal(def)
	if def.Narrow != nil {
		n, _ := json.Marshal(def.Narrow)
		b = append(append(b, " narrow "...), n...)
	}
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func newGen() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run is one projection being folded: its reducer and where it stands.
type run struct {
	p       *Projector
	def     *Definition
	version uint64
	dir     string
	red     Reducer
	raw     rawReducer // red, if it folds records
	m       *matcher
	opt     *RebuildOptions
	extra   *matcher // opt's entity and types, nil without
	from    int64    // opt's time bounds, unix ns; 0 for none
	to      int64
	h       cacheHeader // what the run reflects; h.Seq, h.ID, h.Status
	loaded  string      // Gen of the result file the run started from, "" none
	dirty   bool        // folded something since loaded
	// saved is the payload of the cache file the run started from while
	// it has not moved: the result itself for a resultSaver.
	saved []byte
	// pending is a payload not yet given to the reducer's Load.
	pending []byte
	// base is the seq the run started from, and size the length of the
	// payload it loaded or last wrote: what a write costs (see worthSaving).
	base, size uint64
	// head says the run is at the head, to be kept warm by release.
	head bool
	// unsaved is the time spent folding since base: what the next process
	// would spend again if the result file is not written.
	unsaved time.Duration
	// lastCP is the seq of the last checkpoint written or found.
	lastCP uint64
}

// ensure gives the reducer its pending payload.
func (r *run) ensure() error {
	if r.pending == nil {
		return nil
	}
	b := r.pending
	r.pending = nil
	return r.red.Load(b)
}

func (p *Projector) newRun(def *Definition, version uint64) (*run, error) {
	red, err := NewReducer(def)
	if err != nil {
		return nil, err
	}
	r := &run{p: p, def: def, version: version, dir: p.versionDir(def.Name, version), red: red, m: newMatcher(def.Filter)}
	r.raw, _ = red.(rawReducer)
	r.h = cacheHeader{Kind: def.Kind, Def: digest(def), Gen: newGen(), Status: Status{State: StateCreated}}
	_, r.h.Result = red.(resultSaver)
	r.setOptions(def.Narrow)
	return r, nil
}

func (r *run) setOptions(opt *RebuildOptions) {
	r.opt, r.h.Options = opt, opt
	r.extra, r.from, r.to = nil, 0, 0
	if opt == nil {
		return
	}
	if opt.Entity != "" || opt.Types != nil {
		r.extra = newMatcher(Filter{Types: opt.Types, Entity: opt.Entity})
		r.extra.strata = true // the definition's filter rules strata.* types
	}
	if !opt.From.IsZero() {
		r.from = opt.From.UnixNano()
	}
	if !opt.To.IsZero() {
		r.to = opt.To.UnixNano()
	}
}

// onChain reports whether the stamp seq, id is an event of this log.
func (r *run) onChain(seq uint64, id string) bool {
	if seq == 0 {
		return id == ""
	}
	if seq > r.p.l.Through() {
		return false
	}
	e, err := r.p.l.Event(seq)
	return err == nil && e.IDString() == id
}

// load starts r from the cache file at path, if it is whole, of r's
// definition and on the chain; it reports whether it did.
func (r *run) load(path string) (bool, error) {
	h, payload, err := readCache(path)
	if err != nil {
		if errors.Is(err, errBadCache) && strings.HasPrefix(filepath.Base(path), checkpointPfx) {
			// Checkpoints are never rewritten: a torn one goes, so that
			// the next fold past its seq writes it again.
			_ = fileutil.Remove(path)
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errBadCache) {
			return false, nil
		}
		return false, err
	}
	// The digest covers the narrowing; the options are compared too for
	// a file written before it did.
	if h.Def != r.h.Def || h.Kind != r.h.Kind || !sameOptions(h.Options, r.def.Narrow) || !r.onChain(h.Seq, h.ID) {
		return false, nil
	}
	_, isResult := r.red.(resultSaver)
	if h.Result && isResult {
		r.pending = payload // loaded when first needed: maybe never
	} else if err := r.red.Load(payload); err != nil {
		return false, nil // written by another build of the kind: start over
	}
	r.h = *h
	r.h.Result = isResult
	r.setOptions(h.Options)
	r.saved = payload
	r.dirty = false
	r.base, r.size = h.Seq, uint64(len(payload))
	return true, nil
}

// loadResult starts r from the result file; loaded remembers its
// generation.
func (r *run) loadResult() error {
	ok, err := r.load(filepath.Join(r.dir, resultFileName))
	if ok {
		r.loaded = r.h.Gen
	}
	return err
}

// loadBefore starts r from the best cache at or before seq: the result
// file if it is not past seq, else the newest checkpoint at or before seq,
// else nothing (the first event). The definition's narrowing applies to
// all of them. Checkpoints are looked for where they should be (multiples of
// the spacing below seq) before the directory is listed.
func (r *run) loadBefore(seq uint64) error {
	h, err := readHeader(filepath.Join(r.dir, resultFileName))
	if err == nil && h.Def == r.h.Def && r.onChain(h.Seq, h.ID) {
		if h.Seq <= seq {
			if err := r.loadResult(); err != nil || r.loaded != "" {
				return err
			}
		} else {
			r.loaded = h.Gen // for save: that file is the one to respect
		}
	}
	try := func(cp uint64) (bool, error) {
		fresh, err := r.p.newRun(r.def, r.version)
		if err != nil {
			return false, err
		}
		ok, err := fresh.load(filepath.Join(r.dir, checkpointName(cp)))
		if err != nil || !ok {
			return false, err
		}
		fresh.loaded = r.loaded
		fresh.lastCP = cp
		*r = *fresh
		return true, nil
	}
	every := r.p.every()
	const probes = 8
	k := seq / every * every
	for i := 0; i < probes && k > 0; i, k = i+1, k-every {
		if ok, err := try(k); ok || err != nil {
			return err
		}
	}
	if k > 0 {
		cps, err := checkpoints(r.dir)
		if err != nil {
			return err
		}
		for i := len(cps) - 1; i >= 0; i-- {
			if cps[i] > k {
				continue
			}
			if ok, err := try(cps[i]); ok || err != nil {
				return err
			}
		}
	}
	fresh, err := r.p.newRun(r.def, r.version)
	if err != nil {
		return err
	}
	fresh.loaded = r.loaded
	*r = *fresh
	return nil
}

// Narrowing returns opt's narrowing, nil for none (Resume is not part of
// it).
func (opt RebuildOptions) Narrowing() *RebuildOptions {
	if opt.From.IsZero() && opt.To.IsZero() && opt.Entity == "" && len(opt.Types) == 0 {
		return nil
	}
	o := RebuildOptions{From: opt.From.UTC(), To: opt.To.UTC(), Entity: opt.Entity, Types: opt.Types}
	if opt.From.IsZero() {
		o.From = time.Time{}
	}
	if opt.To.IsZero() {
		o.To = time.Time{}
	}
	if len(o.Types) == 0 {
		o.Types = nil
	}
	return &o
}

// WithNarrow returns def, or a copy of it with opt's narrowing as its
// Narrow if that is another.
func (def *Definition) WithNarrow(opt RebuildOptions) *Definition {
	n := opt.Narrowing()
	if sameOptions(n, def.Narrow) {
		return def
	}
	d := *def
	d.Narrow = n
	return &d
}

func sameOptions(a, b *RebuildOptions) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// failed returns the run's failure, if it failed at or before seq.
func (r *run) failed(seq uint64) error {
	st := &r.h.Status
	if st.State != StateFailed || st.FailedAt == nil || st.FailedAt.Seq > seq {
		return nil
	}
	return &FailedError{Name: r.def.Name, At: *st.FailedAt, Msg: st.LastError}
}

// advance folds the events after r's seq through to, until deadline (zero:
// none) or ctx ends; it reports whether it stopped short. At every seq
// that is a multiple of every (0: none) it calls checkpoint. A reducer
// error stops it with the run marked failed (r.failed).
func (r *run) advance(ctx context.Context, to uint64, deadline time.Time, every uint64, checkpoint func() error, progress func(seq uint64)) (short bool, err error) {
	if r.h.Status.State == StateFailed || r.h.Seq >= to {
		return false, nil
	}
	if ctx.Err() != nil {
		return true, nil
	}
	if err := r.ensure(); err != nil {
		return false, err
	}
	start := time.Now()
	st := &r.h.Status
	defer func() {
		took := time.Since(start)
		st.Millis += float64(took.Microseconds()) / 1000
		r.unsaved += took
	}()
	it := r.p.l.ScanRaw(r.h.Seq+1, to)
	var ev log.Event
	var id [32]byte // of the last event folded by this call
	moved := false
	// However the fold stops, the stamp names the last event it folded.
	defer func() {
		if moved {
			r.finish(id)
		}
	}()
	// The clock is read every 1,024 records for a built-in kind (a few
	// hundred microseconds of folding), every 16 for another (a jq
	// reducer may take milliseconds an event).
	mask := 15
	if r.raw != nil {
		mask = 1023
	}
	// A jq reducer's event may legally run for a second: its run stops at
	// ctx's end and at the deadline too (ctxReducer), and the fold then
	// stops before that event, which is no failure. The deadline applies
	// from the second record on: every read gets past at least one (or
	// fails it), so that an event slower than a whole budget is still
	// folded — a read overruns its budget by at most that event — and
	// callers that read until not behind (the worker, replays) never spin.
	var cr ctxReducer
	var bounded context.Context // ctx with the deadline, until given to cr
	if r.raw == nil {
		if c, ok := r.red.(ctxReducer); ok {
			cr = c
			cr.setContext(ctx)
			defer cr.setContext(context.Background())
			if !deadline.IsZero() {
				var cancel context.CancelFunc
				bounded, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
			}
		}
	}
	n := 0
	for it.Next() {
		raw := it.Raw()
		if n++; n&mask == 0 {
			if progress != nil {
				progress(raw.Seq)
			}
			if (!deadline.IsZero() && time.Now().After(deadline)) || ctx.Err() != nil {
				return true, nil
			}
		}
		if r.pass(raw) {
			var err error
			if r.raw != nil {
				err = r.raw.applyRaw(raw)
			} else {
				if moved && bounded != nil {
					cr.setContext(bounded)
					bounded = nil
				}
				raw.Decode(&ev)
				err = safeApply(r.red, &ev)
			}
			if err != nil {
				if cr != nil && cutShort(err) {
					return true, nil // the event is the next read's
				}
				rid := raw.ID()
				st.State = StateFailed
				st.Errors++
				st.LastError = err.Error()
				st.FailedAt = &Stamp{Seq: raw.Seq, ID: hex.EncodeToString(rid[:])}
				r.dirty = true
				return false, nil
			}
			st.Processed++
		}
		id = raw.ID()
		r.h.Seq = raw.Seq
		r.dirty, moved = true, true
		if every != 0 && raw.Seq%every == 0 && checkpoint != nil {
			r.finish(id)
			if err := checkpoint(); err != nil {
				return false, err
			}
		}
	}
	return false, it.Err()
}

// cutShort reports whether a ctxReducer's error is its context's end (a
// read out of time, a request gone), not the event's fault.
func cutShort(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// safeApply is red.Apply with a panic turned into the error of that event:
// a kind of another package (jq's) must not take the server down, only
// its projection.
func safeApply(red Reducer, e *log.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reducer panicked: %v", p)
		}
	}()
	return red.Apply(e)
}

// finish stamps r with id, that of its last event (r.h.Seq's), once a
// fold that moved it stops.
func (r *run) finish(id [32]byte) {
	r.h.ID = hex.EncodeToString(id[:])
	r.h.Status.LastSeq = r.h.Seq
	r.saved = nil
}

// pass reports whether the run folds raw.
func (r *run) pass(raw *log.RawEvent) bool {
	if !r.m.match(raw.Type, raw.Entity) {
		return false
	}
	if r.opt == nil {
		return true
	}
	if (r.from != 0 && raw.Time < r.from) || (r.to != 0 && raw.Time >= r.to) {
		return false
	}
	return r.extra == nil || r.extra.match(raw.Type, raw.Entity)
}

// payload returns what to store: the saved bytes if nothing moved.
func (r *run) payload() ([]byte, error) {
	if r.saved != nil {
		return r.saved, nil
	}
	return r.red.Save()
}

// result returns the run's whole result.
func (r *run) result() ([]byte, error) {
	if r.saved != nil && r.h.Result {
		return r.saved, nil
	}
	return r.red.Result()
}

// smallResult is the size under which a result is checkpointed at every
// multiple of the spacing, whatever its size.
const smallResult = 64 << 10

// writeCheckpoint stores the reducer at r's seq, unless a checkpoint of
// that seq exists or the last one is nearer than the result's size: a
// large result (a counter of a million entities) is checkpointed at most
// once per as many seqs as its saved bytes, so that writing checkpoints
// costs a small part of the fold (a byte written costs about what a
// tenth of a record folded does). It reports whether it wrote one.
func (r *run) writeCheckpoint() (bool, error) {
	if r.lastCP != 0 && r.size > smallResult && r.h.Seq-r.lastCP < r.size {
		return false, nil
	}
	path := filepath.Join(r.dir, checkpointName(r.h.Seq))
	if _, err := os.Stat(path); err == nil {
		r.lastCP = r.h.Seq
		return false, nil
	}
	b, err := r.payload()
	if err != nil {
		return false, err
	}
	if err := fileutil.MkdirAll(r.dir, 0o755); err != nil {
		return false, err
	}
	if err := writeCache(path, &r.h, b); err != nil {
		return false, err
	}
	r.lastCP, r.size = r.h.Seq, uint64(len(b))
	return true, nil
}

// worthSaving reports whether a read should write the result file: when
// there is none, when the state changed, or when what was folded since
// the file was written took longer than writing it costs (about 1 ms to
// create and rename a file on a slow host, and ~15 ns a byte). A short
// tail stays unsaved and is folded again by the next read, which costs
// less than rewriting the result on every read.
func (r *run) worthSaving(stateChanged bool) bool {
	return r.loaded == "" || stateChanged || r.unsaved >= time.Millisecond+time.Duration(r.size)*15
}

// save replaces the result file with r, unless another process holds the
// lock (it is writing one), or the file now holds another generation (a
// rebuild started since r loaded) or is as far along as r already. The
// loser of a race thus writes nothing; the cache stays whole either way.
func (r *run) save(force bool) error {
	if !r.dirty && !force {
		return nil
	}
	lf, err := r.lockFile()
	if err != nil {
		return err
	}
	defer lf.Close()
	if ok, err := fileutil.TryLock(lf); err != nil || !ok {
		return err
	}
	defer fileutil.Unlock(lf)
	return r.saveLocked(force)
}

// lockFile opens r's lock file, making r's directory if need be.
func (r *run) lockFile() (*os.File, error) {
	if err := fileutil.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	return fileutil.OpenFile(filepath.Join(r.dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
}

// saveLocked is save with the lock held.
func (r *run) saveLocked(force bool) error {
	path := filepath.Join(r.dir, resultFileName)
	// The guards below are for a file another process wrote since r
	// started; a file nobody can use (torn, of another chain or another
	// definition) is replaced, or it would stay in the way for good.
	cur, _, herr := readCache(path)
	if !force {
		if err := herr; err == nil && cur.Def == r.h.Def && r.onChain(cur.Seq, cur.ID) {
			if cur.Gen != r.loaded && cur.Gen != r.h.Gen {
				return nil // a newer run (a rebuild) replaced what r started from
			}
			if cur.Seq >= r.h.Seq && cur.Status.State == r.h.Status.State {
				return nil
			}
		}
	}
	b, err := r.payload()
	if err != nil {
		return err
	}
	if err := writeCache(path, &r.h, b); err != nil {
		return err
	}
	r.loaded = r.h.Gen
	r.dirty = false
	r.base, r.size, r.unsaved = r.h.Seq, uint64(len(b)), 0
	if errors.Is(herr, os.ErrNotExist) {
		r.p.pruneBefore(r.def.Name, r.version)
	}
	return nil
}

// pruneBefore removes the caches of name's versions before version, once
// version has a result: a definition's new version is read from then on
// (GET …/result reads the newest), so the old ones are garbage. Best
// effort: what stays is removed by the next version or by Drop.
func (p *Projector) pruneBefore(name string, version uint64) {
	ents, _ := os.ReadDir(filepath.Join(p.dir, name))
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "v")
		if v, err := strconv.ParseUint(n, 10, 64); ok && err == nil && v < version {
			gone := filepath.Join(p.dir, name, "."+e.Name()+"."+newGen()+".drop")
			if fileutil.Rename(filepath.Join(p.dir, name, e.Name()), gone) == nil {
				os.RemoveAll(gone)
			}
		}
	}
}

// catchUp brings r from the cache to seq to (the head for 0) within
// budget, saving what it did; it is the common start of Result, Key and
// Keys.
func (p *Projector) catchUp(ctx context.Context, def *Definition, version uint64, at uint64, budget time.Duration) (*run, bool, error) {
	if budget <= 0 {
		budget = DefaultBudget
	}
	deadline := time.Now().Add(budget)
	through := p.l.Through()
	head := at == 0 || at >= through
	to := through
	var r *run
	if head {
		r = p.takeWarm(def, version)
	}
	if r == nil {
		var err error
		if r, err = p.newRun(def, version); err != nil {
			return nil, false, err
		}
		if !head {
			to = at
			err = r.loadBefore(at)
		} else {
			err = r.loadResult()
		}
		if err != nil {
			return nil, false, err
		}
	}
	// A run taken warm goes back (release) only once its caller is done
	// with it: put back here, another goroutine could take it while the
	// caller still reads its result.
	r.head = head
	if err := r.failed(to); err != nil {
		return nil, false, err
	}
	state := r.h.Status.State
	if state == StateCreated || state == StateRebuilding {
		// A read goes on with a rebuild cut short: the file says so once
		// written (see worthSaving's state change).
		r.h.Status.State = StateRunning
	}
	short, err := r.advance(ctx, to, deadline, p.every(), func() error {
		_, _ = r.writeCheckpoint() // as the result file: best effort on a read
		return nil
	}, nil)
	if err != nil {
		return nil, false, err
	}
	// Time travel saves too (save never moves the result file back). A
	// cache that cannot be written (a full disk) does not fail the read:
	// the answer is right without it, and the next read tries again.
	if short || r.worthSaving(state != r.h.Status.State) {
		_ = r.save(false)
	}
	if err := r.failed(to); err != nil {
		return nil, false, err
	}
	return r, short, nil
}

func (r *run) answer(result []byte, short bool) *Answer {
	return &Answer{Name: r.def.Name, Version: r.version, Seq: r.h.Seq, ID: r.h.ID, Result: result, Behind: short}
}

// Result returns def's result (def is version version of its projection)
// at seq at (0: the head), caught up from the cache within budget
// (DefaultBudget when 0). A result at an earlier seq is folded from the
// nearest checkpoint at or before it. A failed projection gives a
// *FailedError.
func (p *Projector) Result(ctx context.Context, def *Definition, version uint64, at uint64, budget time.Duration) (*Answer, error) {
	r, short, err := p.catchUp(ctx, def, version, at, budget)
	if err != nil {
		return nil, err
	}
	defer p.release(r)
	res, err := r.result()
	if err != nil {
		return nil, err
	}
	return r.answer(res, short), nil
}

// Key returns one key's result, as Result does the whole; ErrNoKey if the
// result has no such key, ErrNotKeyed if the kind has no keys.
func (p *Projector) Key(ctx context.Context, def *Definition, version uint64, key string, at uint64, budget time.Duration) (*Answer, error) {
	r, short, err := p.catchUp(ctx, def, version, at, budget)
	if err != nil {
		return nil, err
	}
	defer p.release(r)
	if err := r.ensure(); err != nil {
		return nil, err
	}
	v, ok, err := r.red.Key(key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoKey
	}
	return r.answer(v, short), nil
}

// Keys returns up to limit keys of def's result at the head after after,
// sorted, and whether more follow. The Answer stamps them, and its Result
// is the page: an object of those keys and their results, in key order —
// one catch-up and one load for the whole page.
func (p *Projector) Keys(ctx context.Context, def *Definition, version uint64, after string, limit int, budget time.Duration) ([]string, bool, *Answer, error) {
	r, short, err := p.catchUp(ctx, def, version, 0, budget)
	if err != nil {
		return nil, false, nil, err
	}
	defer p.release(r)
	if err := r.ensure(); err != nil {
		return nil, false, nil, err
	}
	keys, more, err := r.red.Keys(after, limit)
	if err != nil {
		return nil, false, nil, err
	}
	page := []byte{'{'}
	for i, k := range keys {
		v, ok, err := r.red.Key(k)
		if err != nil {
			return nil, false, nil, err
		}
		if !ok {
			v = []byte("null")
		}
		if i > 0 {
			page = append(page, ',')
		}
		page = jsonx.AppendString(page, k)
		page = append(page, ':')
		page = append(page, v...)
	}
	page = append(page, '}')
	return keys, more, r.answer(page, short), nil
}

// Status returns def's status as its cache records it: StateCreated with
// nothing processed if it has none.
func (p *Projector) Status(def *Definition, version uint64) (*Status, error) {
	dir := p.versionDir(def.Name, version)
	h, err := readHeader(filepath.Join(dir, resultFileName))
	if err != nil || h.Def != digest(def) {
		// A writer (this process's background worker holding the warm
		// run, or another process) may be renaming its first result into
		// place: wait for its lock a moment and look again, or a read
		// that just answered "failed" would be followed by "created".
		if waitForWriter(dir) {
			h, err = readHeader(filepath.Join(dir, resultFileName))
		}
	}
	if err != nil || h.Def != digest(def) {
		if err == nil || errors.Is(err, os.ErrNotExist) || errors.Is(err, errBadCache) {
			return &Status{State: StateCreated}, nil
		}
		return nil, err
	}
	st := h.Status
	// This process's warm run of the same generation may be further on
	// (its tail not written yet): its status is the fresher.
	p.mu.Lock()
	if w := p.warm[warmKey(def, version)]; w != nil && w.h.Gen == h.Gen && w.h.Seq > h.Seq {
		st = w.h.Status
	}
	p.mu.Unlock()
	return &st, nil
}

// statusWait is how long Status waits for a writer of a missing result:
// a save takes milliseconds; a rebuild holds the lock far longer, and
// Status then answers without it.
const statusWait = 250 * time.Millisecond

// waitForWriter waits up to statusWait for whoever holds dir's lock (a
// result being written) and says whether it got the lock; it makes
// nothing, not even the directory.
func waitForWriter(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockFileName))
	if err != nil {
		return false
	}
	defer f.Close()
	if fileutil.Lock(f, statusWait, nil) != nil {
		return false
	}
	_ = fileutil.Unlock(f)
	return true
}

// Rebuild folds def's result again from the first event (with opt's
// narrowing), replacing its cache and clearing a failure; progress, if not
// nil, is called now and then with the seqs done and the total. If ctx
// ends first, what was done is saved with state rebuilding and ctx's error
// returned: a read or a Rebuild with opt.Resume goes on from there.
//
// The result is def's with opt's narrowing as its Narrow (whatever
// def.Narrow says): reads use it only with a definition of that narrowing,
// which is why the server records the narrowing (TypeRebuilt) before it
// rebuilds.
func (p *Projector) Rebuild(ctx context.Context, def *Definition, version uint64, opt RebuildOptions, progress func(done, total uint64)) error {
	def = def.WithNarrow(opt)
	p.forget(def.Name)
	defer p.forget(def.Name) // a read during the rebuild kept the old one
	r, err := p.newRun(def, version)
	if err != nil {
		return err
	}
	lf, err := r.lockFile()
	if err != nil {
		return err
	}
	defer lf.Close()
	// Another process rebuilding holds the lock: wait for it, but not past
	// the caller's deadline (a CGI step's budget).
	wait, byCtx := time.Minute, false
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait, byCtx = max(time.Millisecond, time.Until(dl)), true
	}
	if err := fileutil.Lock(lf, wait, nil); err != nil {
		if byCtx && errors.Is(err, fileutil.ErrLockTimeout) {
			// Out of the caller's time, as if the rebuild had begun.
			return fmt.Errorf("rebuild %s: another process is rebuilding it: %w", def.Name, context.DeadlineExceeded)
		}
		return err
	}
	defer fileutil.Unlock(lf)
	removeTemps(r.dir)

	resumed := false
	if opt.Resume {
		if err := r.loadResult(); err != nil {
			return err
		}
		resumed = r.loaded != "" && r.h.Status.State == StateRebuilding
	}
	if !resumed {
		r, err = p.newRun(def, version)
		if err != nil {
			return err
		}
		// A new generation: the checkpoints of the old one go, so time
		// travel never mixes them.
		cps, err := checkpoints(r.dir)
		if err != nil {
			return err
		}
		for _, seq := range cps {
			if err := fileutil.Remove(filepath.Join(r.dir, checkpointName(seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	r.h.Status.State = StateRebuilding
	r.dirty = true
	if err := r.saveLocked(true); err != nil {
		return err
	}
	through := p.l.Through()
	report := func(seq uint64) {
		if progress != nil {
			progress(seq, through)
		}
	}
	report(r.h.Seq)
	short, err := r.advance(ctx, through, time.Time{}, p.every(), func() error {
		wrote, err := r.writeCheckpoint()
		if err != nil || !wrote {
			return err
		}
		return r.saveLocked(true) // the progress, for a rebuild cut short
	}, report)
	if err != nil {
		return err
	}
	if !short && r.h.Status.State != StateFailed {
		r.h.Status.State = StateRunning
	}
	r.dirty = true
	if err := r.saveLocked(true); err != nil {
		return err
	}
	if short {
		return ctx.Err()
	}
	report(through)
	return nil
}

// Drop deletes every cached result of the projection name (all versions).
func (p *Projector) Drop(name string) error {
	if !ValidName(name) {
		return fieldErr("name", "is not a projection name")
	}
	p.forget(name)
	dir := filepath.Join(p.dir, name)
	// Renamed away first, so no reader sees half a directory.
	gone := filepath.Join(p.dir, "."+name+"."+newGen()+".drop")
	if err := fileutil.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	// Once renamed away the result is dropped. A writer that was putting a
	// file in it as it went may make this removal fail (directory not
	// empty): what it leaves is swept by the next drop, as a killed drop's.
	os.RemoveAll(gone)
	// What a drop killed midway left.
	if old, _ := filepath.Glob(filepath.Join(p.dir, ".*.drop")); old != nil {
		for _, o := range old {
			os.RemoveAll(o)
		}
	}
	return nil
}

func tempCutoff() time.Time { return time.Now().Add(-time.Hour) }
