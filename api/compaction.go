package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"strata/audit"
	"strata/compaction"
	"strata/log"
	"strata/tenants"
)

// Compaction of sealed segments (issue 10 §2; the format is the log's:
// log/FORMAT.md). Three ways in, one mechanism (compaction.Compact):
//
//   - POST /admin/compaction compresses within a time budget (default
//     DefaultCompactBudget, ?budget=), so that it fits a CGI request; what
//     is left is counted in "remaining", and a cron job calls it again
//     until that is 0.
//   - A long-running server (standalone, FastCGI) compresses, in the
//     background, the sealed segments of the tenants it has open, and of
//     the audit log, once they have not been written for
//     Config.CompactAge.
//   - `strata compact` (package main) compresses everything now.
//
// One compaction of a log runs at a time, across processes (the log's
// compact.lock): another caller gets log.ErrCompactBusy — 409
// compaction_busy here, silence in the background (someone else does the
// work). Compaction never takes the tenant's append lock.

const (
	// DefaultCompactBudget is how long POST /admin/compaction starts new
	// segments for: under Apache's default Timeout (60 s) and mod_fcgid's
	// FcgidIOTimeout (40 s) with room for the segment in flight.
	DefaultCompactBudget = 20 * time.Second
	// maxCompactBudget bounds ?budget=.
	maxCompactBudget = 10 * time.Minute
	// compactSlice is how long one background call starts new segments
	// for: the compactor looks at its context between calls, so a shutdown
	// waits at most this and the segment in flight.
	compactSlice = time.Second
	// compactBusyRetry is the Retry-After of a 409 compaction_busy.
	compactBusyRetry = 10 * time.Second
	// compactWarnEvery bounds how often one tenant's failing background
	// compaction is logged.
	compactWarnEvery = 10 * time.Minute
)

// compactRun is one tenant's part of POST /admin/compaction's answer.
type compactRun struct {
	Tenant      string  `json:"tenant"`
	Segments    int     `json:"segments"`
	BytesBefore int64   `json:"bytes_before"`
	BytesAfter  int64   `json:"bytes_after"`
	Seconds     float64 `json:"seconds"`
	Remaining   int     `json:"remaining"`
	// Busy: another compaction of this tenant was running; its segments
	// are in Remaining.
	Busy bool `json:"busy,omitempty"`
	// Failed: its compaction failed on the server's side (logged under the
	// request's id); its segments are in Remaining. Only when every tenant
	// was asked for: one damaged tenant must not keep the others
	// uncompressed. A tenant named in ?tenant= answers the error itself.
	Failed bool `json:"failed,omitempty"`
}

// compactionRun serves POST /admin/compaction[?tenant=T][&budget=D]:
// compress the sealed segments of one tenant or of every tenant, starting
// no new segment once the budget is spent. The answer says per tenant what
// was done and what remains; it is 409 compaction_busy (Retry-After) when
// another compaction held every tenant that had work and nothing was done.
func (h *Handler) compactionRun(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if err := checkParams(q, "tenant", "budget"); err != nil {
		writeError(w, r, err)
		return
	}
	budget := DefaultCompactBudget
	if v := q.Get("budget"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxCompactBudget {
			writeError(w, r, badParam("budget", "a duration more than 0 and at most 10m, such as 20s"))
			return
		}
		budget = d
	}
	names, err := h.compactionTenants(q.Get("tenant"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	start := time.Now()
	deadline := start.Add(budget)
	out := struct {
		Tenants     []compactRun `json:"tenants"`
		Segments    int          `json:"segments"`
		BytesBefore int64        `json:"bytes_before"`
		BytesAfter  int64        `json:"bytes_after"`
		Seconds     float64      `json:"seconds"`
		Remaining   int          `json:"remaining"`
	}{Tenants: []compactRun{}}
	busy := false
	for _, name := range names {
		t, _, err := h.tenant(name)
		if errors.Is(err, errNoTenant) && q.Get("tenant") == "" {
			continue // deleted meanwhile
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		run, err := h.compactTenant(r, t, time.Until(deadline))
		if err != nil && q.Get("tenant") == "" {
			infoOf(r).logger(h).Error("compaction failed", "tenant", name, "err", err.Error())
			run = compactRun{Tenant: name, Failed: true}
			if s, serr := t.log.SegmentStats(); serr == nil {
				run.Remaining = pending(s)
			}
			err = nil
		}
		h.release(t)
		if err != nil {
			writeError(w, r, err)
			return
		}
		busy = busy || run.Busy
		out.Tenants = append(out.Tenants, run)
		out.Segments += run.Segments
		out.BytesBefore += run.BytesBefore
		out.BytesAfter += run.BytesAfter
		out.Remaining += run.Remaining
	}
	out.Seconds = compaction.Seconds(time.Since(start))
	if busy && out.Segments == 0 {
		e := errorf("compaction_busy", "another compaction is running (strata compact, another POST /admin/compaction or a server's background compaction); try again later")
		e.retry = compactBusyRetry
		e.extra = map[string]any{"remaining": out.Remaining}
		writeError(w, r, e)
		return
	}
	writeValue(w, r, http.StatusOK, out)
}

// compactionTenants is the tenant name (checked, and that it exists), or
// every tenant when name is "".
func (h *Handler) compactionTenants(name string) ([]string, error) {
	if name != "" {
		if !tenants.ValidName(name) {
			return nil, badParam("tenant", tenants.ErrInvalidName.Error())
		}
		if !tenants.Exists(h.cfg.DataDir, name) {
			return nil, errorf("no_tenant", "no tenant %q", name)
		}
		return []string{name}, nil
	}
	cs, err := tenants.List(h.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cs))
	for i, cfg := range cs {
		names[i] = cfg.Name
	}
	return names, nil
}

// compactTenant compresses t's sealed segments for at most left (none when
// left ≤ 0: it only counts them).
func (h *Handler) compactTenant(r *http.Request, t *tenant, left time.Duration) (compactRun, error) {
	run := compactRun{Tenant: t.name}
	if left <= 0 {
		s, err := t.log.SegmentStats()
		run.Remaining = pending(s)
		return run, err
	}
	res, recErr, err := compaction.Compact(t.log, t.dir, compaction.ByHTTP, log.CompactOptions{Budget: left})
	if recErr != nil {
		infoOf(r).logger(h).Warn("compaction: recording the run", "tenant", t.name, "err", recErr.Error())
	}
	if errors.Is(err, log.ErrCompactBusy) {
		run.Busy = true
		s, err := t.log.SegmentStats()
		run.Remaining = pending(s)
		return run, err
	}
	if err != nil && res.Segments == 0 {
		return run, err
	}
	if err != nil {
		// Some segments were compressed before the failure: say so, and
		// let the operator find the failure in the log.
		infoOf(r).logger(h).Warn("compaction failed part way", "tenant", t.name, "segments", res.Segments, "err", err.Error())
	}
	h.countCompaction(t, res)
	run.Segments, run.BytesBefore, run.BytesAfter = res.Segments, res.BytesBefore, res.BytesAfter
	run.Seconds, run.Remaining = compaction.Seconds(res.Duration), res.Remaining
	if err != nil && run.Remaining == 0 {
		run.Remaining = 1 // the one that failed is not done
	}
	return run, nil
}

// countCompaction adds a compaction that did something to the metrics
// (strata_compaction_*), with the log's new size on disk.
func (h *Handler) countCompaction(t *tenant, res log.CompactResult) {
	if res.Segments == 0 {
		return
	}
	size, _ := t.log.Bytes()
	h.counters().Compacted(t.name, res.Segments, res.BytesBefore-res.BytesAfter, size)
}

// pending is the number of sealed segments not compressed yet: every
// segment but the compressed ones and the active one.
func pending(s log.SegmentStats) int {
	return max(s.Segments-s.Compressed-1, 0)
}

// compactStats is one tenant's part of GET /admin/compaction's answer.
type compactStats struct {
	Tenant     string `json:"tenant"`
	Segments   int    `json:"segments"`
	Compressed int    `json:"compressed"`
	// Pending counts the sealed segments not compressed yet.
	Pending int `json:"pending"`
	// BytesBefore is every segment's size uncompressed (the log's logical
	// size), BytesAfter their size on disk, Ratio the one over the other.
	BytesBefore int64   `json:"bytes_before"`
	BytesAfter  int64   `json:"bytes_after"`
	Ratio       float64 `json:"ratio"`
	// The compressed segments alone, before and after.
	CompressedBytesBefore int64           `json:"compressed_bytes_before"`
	CompressedBytesAfter  int64           `json:"compressed_bytes_after"`
	LastRun               *compaction.Run `json:"last_run,omitempty"`
}

// compactionStats serves GET /admin/compaction[?tenant=T]: how each
// tenant's segments are stored, and its last compaction. Each tenant's log
// is opened (in CGI, for this request), as for GET /admin/stats.
func (h *Handler) compactionStats(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if err := checkParams(q, "tenant"); err != nil {
		writeError(w, r, err)
		return
	}
	names, err := h.compactionTenants(q.Get("tenant"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		// AutoAge is this process's background policy: compress segments
		// unwritten this long, in seconds; 0 when it compacts nothing in
		// the background (off, or a CGI process).
		AutoAge float64        `json:"auto_age_seconds"`
		Tenants []compactStats `json:"tenants"`
	}{Tenants: []compactStats{}}
	if h.cfg.LongRunning {
		out.AutoAge = h.cfg.CompactAge.Seconds()
	}
	for _, name := range names {
		t, _, err := h.tenant(name)
		if errors.Is(err, errNoTenant) && q.Get("tenant") == "" {
			continue
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		s, err := t.log.SegmentStats()
		dir := t.dir
		h.release(t)
		if err != nil {
			writeError(w, r, err)
			return
		}
		cs := compactStats{Tenant: name, Segments: s.Segments, Compressed: s.Compressed, Pending: pending(s),
			BytesBefore: s.LogicalBytes, BytesAfter: s.Bytes, Ratio: ratio(s.LogicalBytes, s.Bytes),
			CompressedBytesBefore: s.CompressedLogicalBytes, CompressedBytesAfter: s.CompressedBytes}
		if last, ok := compaction.Last(dir); ok {
			cs.LastRun = &last
		}
		out.Tenants = append(out.Tenants, cs)
	}
	writeValue(w, r, http.StatusOK, out)
}

// ratio is before/after to two decimals; 1 when there is nothing.
func ratio(before, after int64) float64 {
	if before <= 0 || after <= 0 {
		return 1
	}
	return math.Round(float64(before)/float64(after)*100) / 100
}

// compactor is a long-running server's background compaction: one
// goroutine for the handler, which looks at the tenants open in this
// process every compactInterval(age).
type compactor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startCompactor starts the background compaction, in a long-running
// server with a CompactAge.
func (h *Handler) startCompactor() {
	if !h.cfg.LongRunning || h.cfg.CompactAge <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.compact = &compactor{cancel: cancel, done: make(chan struct{})}
	go h.compactLoop(ctx, h.compact.done)
}

// stopCompactor stops the background compaction and waits for it: at
// most the segment being compressed and compactSlice.
func (h *Handler) stopCompactor() {
	if h.compact != nil {
		h.compact.cancel()
		<-h.compact.done
	}
}

// compactInterval is how often the background compaction looks: a quarter
// of the age, between 100 ms and a minute. A look that finds nothing to do
// costs each open tenant a directory listing.
func compactInterval(age time.Duration) time.Duration {
	return min(max(age/4, 100*time.Millisecond), time.Minute)
}

func (h *Handler) compactLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	age := h.cfg.CompactAge
	warned := map[string]time.Time{}
	tick := time.NewTicker(compactInterval(age))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, t := range h.openTenants() {
			if ctx.Err() == nil {
				h.compactBackground(ctx, t.log, t.dir, age, warned, "tenant", t.name, func(res log.CompactResult) { h.countCompaction(t, res) })
			}
			h.release(t)
		}
		if a, dir := h.existingAuditLog(); a != nil && ctx.Err() == nil {
			h.compactBackground(ctx, a.Events(), dir, age, warned, "log", "audit", nil)
		}
	}
}

// existingAuditLog is the audit log and its directory, if the data
// directory has one (the compactor makes none).
func (h *Handler) existingAuditLog() (*audit.Log, string) {
	dir := filepath.Join(h.cfg.DataDir, systemDir, auditDir)
	if _, err := os.Stat(filepath.Join(dir, "log")); err != nil {
		return nil, ""
	}
	a, err := h.auditLog()
	if err != nil {
		return nil, ""
	}
	return a, dir
}

// openTenants returns the tenants open in this process with a log that
// takes appends, each with a reference taken (release them).
func (h *Handler) openTenants() []*tenant {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []*tenant
	for _, t := range h.tenants {
		if t.log != nil && !t.dropped && t.failedAt.IsZero() {
			t.refs++
			ts = append(ts, t)
		}
	}
	return ts
}

// compactBackground compresses the segments of l (opened on dir)
// unwritten for age, a slice of time at a time, until none is left or ctx
// ends; key, name say which log it is in the server's log, and count, if
// set, counts a run that did something. Another compaction of the log
// running (ErrCompactBusy) does the work instead; a failure is logged (at
// most every compactWarnEvery) and tried again next time.
func (h *Handler) compactBackground(ctx context.Context, l *log.Log, dir string, age time.Duration, warned map[string]time.Time, key, name string, count func(log.CompactResult)) {
	for ctx.Err() == nil {
		res, recErr, err := compaction.Compact(l, dir, compaction.ByAuto, log.CompactOptions{MinAge: age, Budget: compactSlice})
		if res.Segments > 0 {
			if count != nil {
				count(res)
			}
			h.log.Info("compacted sealed segments", key, name, "segments", res.Segments,
				"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter, "seconds", compaction.Seconds(res.Duration))
		}
		if recErr != nil {
			err = errors.Join(err, recErr)
		}
		if err != nil && !errors.Is(err, log.ErrCompactBusy) && time.Since(warned[dir]) > compactWarnEvery {
			warned[dir] = time.Now()
			h.log.Warn("background compaction failed; tried again later", key, name, "err", err.Error())
		}
		if err != nil || res.Remaining == 0 {
			return
		}
	}
}
