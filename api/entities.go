package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"strata/jsonx"
	"strata/log"
	"strata/projections"
)

// Sub-resources of an entity. In the path form, a final "/history" or
// "/diff" after a non-empty entity names the sub-resource; an entity whose
// own id ends so is reached with ?entity=<id> (README "Entity state").
const (
	subState   = ""
	subHistory = "history"
	subDiff    = "diff"
)

// entityTarget returns the entity and sub-resource a request names: by
// ?entity=<id>, with the rest of the path "" (state), "history" or
// "diff"; or by the rest of the path, "<entity>[/history|/diff]".
func entityTarget(rest string, q url.Values) (entity, sub string, err error) {
	if q.Has("entity") {
		entity = q.Get("entity")
		switch rest {
		case subState, subHistory, subDiff:
		default:
			return "", "", badParam("entity", "is given in the path too; with ?entity= the path is /entities, /entities/history or /entities/diff")
		}
		if entity == "" {
			return "", "", badParam("entity", "must not be empty")
		}
		return entity, rest, nil
	}
	if rest == "" {
		return "", "", badParam("entity", "is required: /entities/<entity> or /entities?entity=<entity>")
	}
	for _, s := range []string{subHistory, subDiff} {
		if e, ok := strings.CutSuffix(rest, "/"+s); ok && e != "" {
			return e, s, nil
		}
	}
	return rest, subState, nil
}

// entities returns the reader of the tenant's entity states, with the
// configured snapshot interval.
func (h *Handler) entities(c *call) *projections.Reader {
	every := h.cfg.SnapshotEvery
	if every == 0 {
		every = projections.DefaultSnapshotEvery
	}
	return projections.NewReader(c.t.log, every)
}

// badParam is the 400 answer naming a bad query parameter.
func badParam(name, why string) *apiError {
	e := errorf("invalid_parameter", "parameter %s: %s", name, why)
	e.extra = map[string]any{"parameter": name}
	return e
}

// entity serves GET /entities/<entity>, …/history and …/diff (and their
// ?entity= forms).
func (h *Handler) entity(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if c.arg == "" && !q.Has("entity") {
		h.entitySearch(w, r, c, q)
		return
	}
	entity, sub, err := entityTarget(c.arg, q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch sub {
	case subHistory:
		h.entityHistory(w, r, c, entity, q)
	case subDiff:
		h.entityDiff(w, r, c, entity, q)
	default:
		h.entityState(w, r, c, entity, q)
	}
}

// checkParams refuses a parameter not in allowed, except ones starting
// with "_", which clients use to defeat caches.
func checkParams(q url.Values, allowed ...string) error {
	for name := range q {
		if strings.HasPrefix(name, "_") {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return badParam(name, "unknown; use "+strings.Join(allowed, ", "))
		}
	}
	return nil
}

// pointParams are the query parameters of a point in time, at most one of
// which a request may give.
var pointParams = []string{"version", "seq", "at", "as_of"}

// parsePoint reads the point of a state request from its query.
func parsePoint(q url.Values) (projections.Point, error) {
	var p projections.Point
	given := ""
	for _, name := range pointParams {
		if !q.Has(name) {
			continue
		}
		if given != "" {
			return p, badParam(name, "use only one of version, seq, at and as_of; "+given+" is given too")
		}
		given = name
		v := q.Get(name)
		switch name {
		case "version":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return p, badParam(name, "must be a version of the entity (a whole number from 1)")
			}
			p.Version = n
		case "seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return p, badParam(name, "must be a seq (a whole number)")
			}
			p.Seq = &n
		case "at":
			id, ok := log.ParseID(v)
			if !ok {
				return p, badParam(name, "must be an event id (64 lowercase hex)")
			}
			p.At = &id
		case "as_of":
			ns, err := log.ParseTime(v)
			if err != nil {
				return p, badParam(name, "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
			}
			p.AsOf = &ns
		}
	}
	return p, nil
}

// entityState serves the state of an entity at a point.
func (h *Handler) entityState(w http.ResponseWriter, r *http.Request, c *call, entity string, q url.Values) {
	if err := checkParams(q, append([]string{"entity"}, pointParams...)...); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := parsePoint(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s, err := h.entities(c).StateAt(r.Context(), entity, p)
	if err != nil {
		writeError(w, r, entityError(err, entity))
		return
	}
	setStateHead(w, s)
	if s.Deleted {
		writeError(w, r, goneError(s))
		return
	}
	if err := h.reducedState(r.Context(), w, c, s, p); err != nil {
		writeError(w, r, err)
		return
	}
	b := appendState(nil, s)
	writeJSON(w, http.StatusOK, b)
}

// reducedState replaces s's state (the default merge) with the one a
// projection of kind state makes, if one is defined for s's entity: its
// result for the entity, at s's event for a point in the past. Past the
// catch-up budget the state is the projection's so far, with
// Strata-Behind: true.
func (h *Handler) reducedState(ctx context.Context, w http.ResponseWriter, c *call, s *projections.State, p projections.Point) error {
	d, err := projections.StateProjection(c.t.log, s.Entity)
	if err != nil || d == nil {
		return err
	}
	at := uint64(0) // the head: the entity's state there is its state at s
	if p != (projections.Point{}) {
		at = s.Seq
	}
	a, err := c.t.projector().Key(ctx, d.Def, d.Version, s.Entity, at, h.budget())
	switch {
	case errors.Is(err, projections.ErrNoKey): // none of its events passed the filter
		s.State = []byte("null")
		if d.Def.Init != nil {
			s.State = d.Def.Init
		}
	case err != nil:
		return resultError(err, d.Name)
	default:
		s.State = a.Result
		if a.Behind || a.Seq < s.Seq {
			w.Header().Set("Strata-Behind", "true")
		}
	}
	w.Header().Set("Strata-Projection", d.Name)
	return nil
}

// stateFailed is the error GET /entities/<e> answers for a point at seq
// of an entity state projection d makes, if d fails at or before it (at
// another entity's event: a history or diff folds only the entity's own,
// whose failures StateHistory and StateDiff find themselves).
func (h *Handler) stateFailed(ctx context.Context, c *call, d *projections.DefRecord, seq uint64) error {
	return c.t.projector().FailedBy(ctx, d.Def, d.Version, seq, h.budget())
}

// reducedError is the answer for err of an entity read, d the state
// projection that makes the entity (nil: none).
func reducedError(err error, d *projections.DefRecord, entity string) error {
	var fe *projections.FailedError
	if d != nil && errors.As(err, &fe) {
		return resultError(err, d.Name)
	}
	return entityError(err, entity)
}

// goneError is the 410 answer for a deleted entity, with its tombstone's
// version, seq, id and time.
func goneError(s *projections.State) *apiError {
	e := errorf("gone", "entity %q was deleted at version %d", clip(s.Entity), s.Version)
	e.extra = map[string]any{"entity": s.Entity, "version": s.Version, "seq": s.Seq,
		"id": hex.EncodeToString(s.ID[:]), "time": string(log.AppendTime(nil, s.Time))}
	return e
}

// pageLimit reads a page's limit parameter: DefaultLimit without one.
func pageLimit(q url.Values) (int, error) {
	if !q.Has("limit") {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 {
		return 0, badParam("limit", "must be a whole number of at least 1")
	}
	return n, nil
}

// versionPage reads the limit and after (a version, 0 without one) of a
// page of an entity's versions: its history, its snapshots.
func versionPage(q url.Values) (limit int, after uint64, err error) {
	if limit, err = pageLimit(q); err != nil {
		return 0, 0, err
	}
	if q.Has("after") {
		if after, err = strconv.ParseUint(q.Get("after"), 10, 64); err != nil {
			return 0, 0, badParam("after", "must be a version (a whole number)")
		}
	}
	return limit, after, nil
}

// entityHistory serves an entity's versions, a page at a time.
func (h *Handler) entityHistory(w http.ResponseWriter, r *http.Request, c *call, entity string, q url.Values) {
	if err := checkParams(q, "entity", "limit", "after"); err != nil {
		writeError(w, r, err)
		return
	}
	limit, after, err := versionPage(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	d, err := projections.StateProjection(c.t.log, entity)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var page []*projections.State
	var more bool
	if d != nil {
		page, more, err = projections.StateHistory(r.Context(), c.t.log, d, entity, after, limit)
		if err == nil && len(page) > 0 {
			err = h.stateFailed(r.Context(), c, d, page[len(page)-1].Seq)
		}
	} else {
		page, more, err = h.entities(c).History(r.Context(), entity, after, limit)
	}
	if err != nil {
		writeError(w, r, reducedError(err, d, entity))
		return
	}
	if d != nil {
		w.Header().Set("Strata-Projection", d.Name)
	}
	if len(page) > 0 {
		setStateHead(w, page[len(page)-1])
		if more {
			setNext(w, r, page[len(page)-1].Version)
		}
	}
	b := []byte{'['}
	for i, s := range page {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"version":`...)
		b = strconv.AppendUint(b, s.Version, 10)
		if s.Deleted {
			b = append(b, `,"deleted":true`...)
		}
		b = append(b, `,"state":`...)
		b = append(b, s.State...)
		b = append(b, `,"event":`...)
		b = s.Event.AppendJSON(b)
		b = append(b, '}')
	}
	b = append(b, ']')
	writeJSON(w, http.StatusOK, b)
}

// appendState appends s as {"entity","version","seq","id","time","state"},
// and "projection" when a state projection made it (a search's states).
func appendState(b []byte, s *projections.State) []byte {
	b = append(b, `{"entity":`...)
	b = jsonx.AppendString(b, s.Entity)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, s.Version, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, s.ID[:])
	b = append(b, `","time":"`...)
	b = log.AppendTime(b, s.Time)
	b = append(b, `","state":`...)
	b = append(b, s.State...)
	if s.Projection != "" {
		b = append(b, `,"projection":`...)
		b = jsonx.AppendString(b, s.Projection)
	}
	return append(b, '}')
}

// setStateHead stamps an answer with the event it reflects: Strata-Head
// (its id) and Strata-Head-Seq, as appends and GET /head do.
func setStateHead(w http.ResponseWriter, s *projections.State) {
	w.Header().Set("Strata-Head", hex.EncodeToString(s.ID[:]))
	w.Header().Set("Strata-Head-Seq", strconv.FormatUint(s.Seq, 10))
	w.Header().Set("Cache-Control", "no-cache")
}

// entityDiff serves the merge patch between two versions of an entity:
// {"entity","from","to","seq","id","time","exact","patch"}, seq, id and
// time being those of version to; exact false says the patch cannot
// express to (a member set to null) and the client should read to whole.
func (h *Handler) entityDiff(w http.ResponseWriter, r *http.Request, c *call, entity string, q url.Values) {
	if err := checkParams(q, "entity", "from", "to"); err != nil {
		writeError(w, r, err)
		return
	}
	var v [2]uint64
	for i, name := range []string{"from", "to"} {
		if !q.Has(name) {
			if name == "from" {
				writeError(w, r, badParam(name, "is required: the version to diff from (0: before the first)"))
				return
			}
			continue
		}
		n, err := strconv.ParseUint(q.Get(name), 10, 64)
		if err != nil || (name == "to" && n == 0) {
			writeError(w, r, badParam(name, "must be a version of the entity (a whole number)"))
			return
		}
		v[i] = n
	}
	d, err := projections.StateProjection(c.t.log, entity)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var a, b *projections.State
	var patch []byte
	var exact bool
	if d != nil {
		a, b, patch, exact, err = projections.StateDiff(r.Context(), c.t.log, d, entity, v[0], v[1])
		if err == nil {
			err = h.stateFailed(r.Context(), c, d, b.Seq)
		}
	} else {
		a, b, patch, exact, err = h.entities(c).Diff(r.Context(), entity, v[0], v[1])
	}
	if errors.Is(err, projections.ErrBackwards) {
		err = badParam("from", "must not be after to")
	}
	if err != nil {
		writeError(w, r, reducedError(err, d, entity))
		return
	}
	if d != nil {
		w.Header().Set("Strata-Projection", d.Name)
	}
	setStateHead(w, b)
	out := []byte(`{"entity":`)
	out = jsonx.AppendString(out, entity)
	out = append(out, `,"from":`...)
	out = strconv.AppendUint(out, a.Version, 10)
	out = append(out, `,"to":`...)
	out = strconv.AppendUint(out, b.Version, 10)
	out = append(out, `,"seq":`...)
	out = strconv.AppendUint(out, b.Seq, 10)
	out = append(out, `,"id":"`...)
	out = hex.AppendEncode(out, b.ID[:])
	out = append(out, `","time":"`...)
	out = log.AppendTime(out, b.Time)
	out = append(out, `","exact":`...)
	out = strconv.AppendBool(out, exact)
	out = append(out, `,"patch":`...)
	out = append(out, patch...)
	writeJSON(w, http.StatusOK, append(out, '}'))
}
