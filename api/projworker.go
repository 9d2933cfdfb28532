package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"strata/projections"
)

// In a long-running server (standalone, FastCGI) each open tenant has a
// worker goroutine that keeps its projections' results current and moves
// its replays on, so that reads find nothing to catch up. It wakes on
// every append and definition change made through this handler, and once
// a second to look for what other processes (CGI requests, the CLI)
// appended or defined; it does nothing while the tenant has no active
// projection and no unfinished replay. It stops when the tenant closes.
// A CGI process has no worker: every read catches up within the budget.

// workerTick is how often a worker looks at the log without being woken.
const workerTick = time.Second

// worker is one tenant's background projection worker.
type worker struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// projState is the projection engine of a tenant, opened on first use.
type projState struct {
	once    sync.Once
	proj    *projections.Projector
	replays *projections.Replays
	// worker is set once, under h.mu, in a long-running server; read
	// without it by poke, on every append.
	worker atomic.Pointer[worker]
}

// projector returns the tenant's projection engine.
func (t *tenant) projector() *projections.Projector {
	t.ps.once.Do(t.openProj)
	return t.ps.proj
}

// replays returns the tenant's replay records.
func (t *tenant) replays() *projections.Replays {
	t.ps.once.Do(t.openProj)
	return t.ps.replays
}

func (t *tenant) openProj() {
	t.ps.proj = projections.Open(t.log)
	t.ps.replays = projections.OpenReplays(t.log, t.ps.proj)
}

// wake tells t's worker to look at its projections now, starting it if
// this is a long-running server and it is not running yet.
func (h *Handler) wake(t *tenant) {
	if !h.cfg.LongRunning || t.log == nil {
		return
	}
	if w := t.ps.worker.Load(); w != nil {
		// Running already (the common case: every read): no lock.
		select {
		case w.wake <- struct{}{}:
		default:
		}
		return
	}
	h.mu.Lock()
	w := t.ps.worker.Load()
	if w == nil && !t.dropped {
		ctx, cancel := context.WithCancel(context.Background())
		w = &worker{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		t.ps.worker.Store(w)
		go h.work(ctx, t, w)
	}
	h.mu.Unlock()
	if w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// poke wakes t's worker if it has one: after an append, whose events its
// projections must fold. A tenant whose projections nobody has touched in
// this process has no worker, and its appends cost nothing more.
func (h *Handler) poke(t *tenant) {
	if !h.cfg.LongRunning {
		return
	}
	if w := t.ps.worker.Load(); w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// stopWorker stops t's worker, if it has one, and waits for it: before
// its log closes.
func (t *tenant) stopWorker() {
	if w := t.ps.worker.Load(); w != nil {
		w.cancel()
		<-w.done
	}
}

// work is the worker's loop.
func (h *Handler) work(ctx context.Context, t *tenant, w *worker) {
	defer close(w.done)
	tick := time.NewTicker(workerTick)
	defer tick.Stop()
	seen := ^uint64(0)
	for {
		if through := t.log.Through(); through != seen || h.unfinishedReplays(t) {
			seen = through
			h.catchUpAll(ctx, t)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			seen = ^uint64(0)
		case <-tick.C:
		}
	}
}

// unfinishedReplays reports whether t has a replay to move on.
func (h *Handler) unfinishedReplays(t *tenant) bool {
	all, err := t.replays().List()
	if err != nil {
		return false
	}
	for _, rp := range all {
		if !rp.Over() {
			return true
		}
	}
	return false
}

// catchUpAll moves t's replays on and brings every active projection's
// result to the head.
func (h *Handler) catchUpAll(ctx context.Context, t *tenant) {
	rs := t.replays()
	if all, err := rs.List(); err == nil {
		for _, rp := range all {
			if rp.Over() {
				continue
			}
			if _, err := rs.Step(ctx, rp.ID, 0, nil); err != nil && ctx.Err() == nil {
				h.log.Warn("replay", "tenant", t.name, "replay", rp.ID, "err", err.Error())
			}
		}
	}
	names, err := projections.ListDefs(t.log)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("projection list", "tenant", t.name, "err", err.Error())
		}
		return
	}
	p := t.projector()
	for _, n := range names {
		d, err := projections.ReadDef(t.log, n, 0)
		if err != nil || !d.Active() {
			continue
		}
		for ctx.Err() == nil {
			a, err := p.Result(ctx, d.Def, d.Version, 0, h.budget())
			if err != nil || !a.Behind {
				break // a failed projection says so on read
			}
		}
	}
}
