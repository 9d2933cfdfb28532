package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"strata/projections"
)

// Replays (README "Replay"): POST /projections/<name>/rebuild starts one,
// /replays shows and stops them. A replay's record lives beside the tenant
// (projections/replay.go). A long-running server moves replays on in the
// background (projworker.go); a CGI process, which lives for one request,
// moves them on in steps of at most the catch-up budget, in every request
// that reads a replay or the projection's result, so that no request
// blocks past the web server's timeout and a replay whose process died
// goes on in the next one.

// rebuildBody is what POST /projections/<name>/rebuild takes, all of it
// optional: only events at or after from and before to (RFC 3339), of
// entity (exact or glob), of types (exact or globs).
type rebuildBody struct {
	From   string   `json:"from"`
	To     string   `json:"to"`
	Entity string   `json:"entity"`
	Types  []string `json:"types"`
}

// rebuild serves POST /projections/<name>/rebuild: a new replay, 202 with
// its record (its address in Location), already moved on by one step in
// CGI.
func (h *Handler) rebuild(w http.ResponseWriter, r *http.Request, c *call, name string) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	var opt projections.RebuildOptions
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		bp := bodyBufs.Get().(*bytes.Buffer)
		defer putBodyBuf(bp)
		body, err := readBody(r, 64<<10, bp, nil)
		if err != nil && !isEmptyBody(err) {
			writeError(w, r, err)
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if opt, err = parseRebuild(body); err != nil {
				writeError(w, r, err)
				return
			}
		}
	}
	d, err := readableDef(c, name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The narrowing is a record in the log before it is a result: every
	// read folds with the latest one, whatever cache there is or is not.
	if _, err := h.writeDefEvent(c, name, projections.TypeRebuilt, projections.NarrowData(opt), int64(d.EntityVersion)); err != nil {
		writeError(w, r, conflictAsExists(err, name, -1))
		return
	}
	rs := c.t.replays()
	// One replay of a projection at a time: a new one replaces the one
	// under way.
	h.cancelReplays(c, name)
	rp, err := rs.Start(d, opt, c.who.String())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if h.cfg.LongRunning {
		h.wake(c.t)
	} else if rp, err = rs.Step(r.Context(), rp.ID, h.stepBudget(), nil); err != nil {
		writeError(w, r, err)
		return
	}
	// Relative to …/projections/<name>/rebuild, wherever the API is
	// mounted and whatever tenant prefix the request had.
	w.Header().Set("Location", "../../replays/"+rp.ID)
	writeValue(w, r, http.StatusAccepted, rp)
}

// isEmptyBody reports whether err is readBody's refusal of an empty body,
// which a rebuild takes as no options.
func isEmptyBody(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && (ae.code == "empty_body" || ae.code == "length_required")
}

// parseRebuild reads a rebuild's options.
func parseRebuild(body []byte) (projections.RebuildOptions, error) {
	var opt projections.RebuildOptions
	var in rebuildBody
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil {
		return opt, bodyField("body", `must be {"from":"<RFC 3339>","to":"<RFC 3339>","entity":"…","types":["…"]}, every member optional`)
	}
	for _, f := range []struct {
		name string
		v    string
		dst  *time.Time
	}{{"from", in.From, &opt.From}, {"to", in.To, &opt.To}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.v)
		if err != nil {
			return opt, bodyField(f.name, "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
		}
		*f.dst = t
	}
	if !opt.From.IsZero() && !opt.To.IsZero() && !opt.From.Before(opt.To) {
		return opt, bodyField("to", "must be after from")
	}
	for i, t := range in.Types {
		if t == "" || len(t) > 128 {
			return opt, bodyField("types", "item "+strconv.Itoa(i)+" must be an event type or a glob such as \"order.*\"")
		}
	}
	if len(in.Entity) > 256 {
		return opt, bodyField("entity", "must be an entity or a glob of at most 256 bytes")
	}
	opt.Entity, opt.Types = in.Entity, in.Types
	return opt, nil
}

// stepBudget is how long a CGI request moves a replay on.
func (h *Handler) stepBudget() time.Duration { return h.budget() }

// replayError is the answer for an error of the replay records.
func replayError(err error, id string) error {
	if errors.Is(err, projections.ErrNoReplay) {
		e := errorf("not_found", "no replay %q", clip(id))
		e.extra = map[string]any{"replay": id}
		return e
	}
	return err
}

// replayList serves GET /replays: every replay record, oldest first (in
// CGI, the unfinished ones moved on first).
func (h *Handler) replayList(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query(), "projection"); err != nil {
		writeError(w, r, err)
		return
	}
	h.advanceReplays(r.Context(), c, "")
	all, err := c.t.replays().List()
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]*projections.Replay, 0, len(all))
	for _, rp := range all {
		if p := r.URL.Query().Get("projection"); p == "" || rp.Projection == p {
			out = append(out, rp)
		}
	}
	writeValue(w, r, http.StatusOK, out)
}

// replayGet serves GET /replays/<id>, moving it on first in CGI.
func (h *Handler) replayGet(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	rs := c.t.replays()
	rp, err := rs.Get(c.arg)
	if err == nil && !rp.Over() {
		if h.cfg.LongRunning {
			h.wake(c.t)
		} else {
			rp, err = rs.Step(r.Context(), rp.ID, h.stepBudget(), nil)
		}
	}
	if err != nil {
		writeError(w, r, replayError(err, c.arg))
		return
	}
	writeValue(w, r, http.StatusOK, rp)
}

// replayCancel serves POST /replays/<id>/cancel.
func (h *Handler) replayCancel(w http.ResponseWriter, r *http.Request, c *call) {
	id := c.arg
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	rp, err := c.t.replays().Get(id)
	if err == nil && rp.Over() {
		e := errorf("replay_finished", "replay %s is %s already", id, rp.State)
		e.extra = map[string]any{"replay": id, "state": rp.State}
		writeError(w, r, e)
		return
	}
	if err == nil {
		rp, err = c.t.replays().Cancel(id, false)
	}
	if err != nil {
		writeError(w, r, replayError(err, id))
		return
	}
	writeValue(w, r, http.StatusOK, rp)
}

// replayDelete serves DELETE /replays/<id>: the record goes, and the
// replay stops if it was under way (the result keeps what was rebuilt and
// is caught up on read).
func (h *Handler) replayDelete(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	if _, err := c.t.replays().Cancel(c.arg, true); err != nil {
		writeError(w, r, replayError(err, c.arg))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// activeReplays are c's tenant's unfinished replays by projection (the
// newest of each).
func activeReplays(c *call) map[string]*projections.Replay {
	all, err := c.t.replays().List()
	if err != nil {
		return nil
	}
	m := map[string]*projections.Replay{}
	for _, rp := range all {
		if !rp.Over() {
			m[rp.Projection] = rp
		}
	}
	return m
}

// cancelReplays cancels every unfinished replay of projection name; a
// failure leaves them to be cancelled when they next step (they find
// their definition changed or deleted) and is only logged.
func (h *Handler) cancelReplays(c *call, name string) {
	if err := c.t.replays().CancelOf(name); err != nil {
		h.log.Warn("cancel replays", "tenant", c.t.name, "projection", name, "err", err.Error())
	}
}

// advanceReplays moves on, in CGI, the unfinished replays of projection
// name ("": of every projection), sharing one budget; a long-running
// server's worker does that in the background.
func (h *Handler) advanceReplays(ctx context.Context, c *call, name string) {
	if h.cfg.LongRunning {
		// The worker does it; one a killed server left waits for a
		// request to start this server's worker.
		h.wake(c.t)
		return
	}
	all, err := c.t.replays().List()
	if err != nil {
		return
	}
	deadline := time.Now().Add(h.stepBudget())
	for _, rp := range all {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		if !rp.Over() && (name == "" || rp.Projection == name) {
			if _, err := c.t.replays().Step(ctx, rp.ID, left, nil); err != nil {
				c.ri.logger(h).Warn("replay step", "replay", rp.ID, "err", err.Error())
			}
		}
	}
}
