package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"strata/jsonx"
	"strata/log"
	"strata/projections"
)

// The entity API's default event types (README "Writing entities"); a
// request may name another with ?type=.
const (
	typeEntityPut      = "entity.put"
	typeEntityPatched  = "entity.patched"
	typeEntityDeleted  = "entity.deleted"
	typeEntityReverted = "entity.reverted"
)

// subRevert is the sub-resource of POST /entities/<entity>/revert.
const subRevert = "revert"

// maxImplicitRetries bounds how often a PATCH or DELETE without
// expected_version reads the entity again after another writer got in
// between its read and its append. Each retry follows another writer's
// success, so the bound only stops a request starved by a stream of
// others; two writers racing lose about half the time each.
const maxImplicitRetries = 100

// entityWrite serves PUT, PATCH and DELETE on /entities/<entity> (and
// their ?entity= forms) and POST /entities/<entity>/revert. Each appends
// one ordinary event through commit, as POST /events does, and answers the
// entity's new state.
func (h *Handler) entityWrite(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	want := subState
	if r.Method == http.MethodPost {
		want = subRevert
	}
	entity, err := writeTarget(c.arg, q, want)
	if err == nil {
		err = checkParams(q, "entity", "type", "expected_version")
	}
	if err == nil {
		if verr := log.ValidateEntity(entity); verr != nil {
			err = badParam("entity", verr.Error())
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	var op entityOp
	switch r.Method {
	case http.MethodPut:
		op = entityOp{typ: typeEntityPut, meta: `{"` + projections.MetaOp + `":"` + projections.OpPut + `"}`, audit: "entities.put"}
	case http.MethodPatch:
		op = entityOp{typ: typeEntityPatched, current: true, audit: "entities.patch"}
	case http.MethodDelete:
		op = entityOp{typ: typeEntityDeleted, meta: `{"` + projections.MetaOp + `":"` + projections.OpDelete + `"}`, current: true, audit: "entities.delete"}
	default:
		op = entityOp{typ: typeEntityReverted, meta: `{"` + projections.MetaOp + `":"` + projections.OpPut + `"}`, audit: "entities.revert"}
	}
	if q.Has("type") {
		op.typ = q.Get("type")
		if err := log.ValidateType(op.typ); err != nil {
			writeError(w, r, badParam("type", err.Error()))
			return
		}
	}
	if err := checkReserved(-1, op.typ, entity); err != nil {
		writeError(w, r, err)
		return
	}
	expected := int64(-1)
	if q.Has("expected_version") {
		n, err := strconv.ParseInt(q.Get("expected_version"), 10, 64)
		if err != nil || n < 0 || n > 1<<53 {
			writeError(w, r, badParam("expected_version", "must be the entity's current version (a whole number; 0: it must have no events)"))
			return
		}
		expected = n
	}
	ifHead, err := parseIfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The request holds its body and its event in the in-flight budget,
	// as an append does.
	held := &hold{b: h.inflight}
	defer held.release()
	var data []byte
	switch r.Method {
	case http.MethodDelete:
		data = []byte("null")
	default:
		if ndjson, err := bodyFormat(r.Header.Get("Content-Type")); err != nil || ndjson {
			if err == nil {
				err = errorf("unsupported_media_type", "send one JSON value as application/json (or application/merge-patch+json), not NDJSON")
			}
			writeError(w, r, err)
			return
		}
		bp := bodyBufs.Get().(*bytes.Buffer)
		defer putBodyBuf(bp)
		body, err := readBody(r, h.cfg.MaxBody, bp, held)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if r.Method == http.MethodPost {
			data, err = h.revertState(c, entity, body)
		} else if data, err = jsonx.Compact(nil, body); err != nil {
			err = bodyField("body", "is not one JSON value: "+err.Error())
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	held.force(eventCost)
	// Who writes goes into meta.by, as on every append; the entity API
	// takes no meta from the client, only the marker it sets itself.
	meta, err := jsonx.SetMember(nil, []byte(op.meta), "by", jsonx.AppendString(nil, c.who.String()))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if int64(len(data)+len(meta)) > h.cfg.MaxEvent {
		writeError(w, r, errorf("event_too_large", "data and meta are %d bytes, over this server's limit of %d", len(data)+len(meta), h.cfg.MaxEvent))
		return
	}
	var (
		prev *projections.State
		res  *log.Result
	)
	for try := 0; ; try++ {
		ev := expected
		if op.current {
			// PATCH and DELETE act on the current state: a deleted entity
			// answers 410 (a PUT recreates it), a missing one 404 for a
			// DELETE. The append then expects the version read, so the
			// state checked is the state written over.
			prev, err = h.entities(c).StateAt(r.Context(), entity, projections.Point{})
			switch {
			case errors.Is(err, projections.ErrNoEntity) && r.Method == http.MethodPatch:
				prev, err = nil, nil
			case err != nil:
				writeError(w, r, entityError(err, entity))
				return
			}
			cur := uint64(0)
			if prev != nil {
				cur = prev.Version
			}
			if expected >= 0 && uint64(expected) != cur {
				writeError(w, r, &log.VersionConflictError{Entity: entity, Expected: uint64(expected), Current: cur})
				return
			}
			if prev != nil && prev.Deleted {
				writeError(w, r, goneError(prev))
				return
			}
			ev = int64(cur)
		}
		req := &log.Request{IfHead: ifHead, Events: []log.Proposed{{Type: op.typ, Entity: entity, Data: data, Meta: meta, ExpectedVersion: ev}}}
		res, err = h.commit(c, req)
		var vc *log.VersionConflictError
		if op.current && expected < 0 && errors.As(err, &vc) && try < maxImplicitRetries {
			// Another writer got in between: read again, once its event
			// is visible to readers.
			awaitVersion(c.t.log, entity, vc.Current)
			continue
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		break
	}
	e := res.Events[0]
	var state []byte
	if prev != nil {
		state = prev.State
	}
	state, deleted, err := projections.Apply(state, e)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s := &projections.State{Entity: entity, Version: e.Version, Seq: e.Seq, ID: e.ID, Time: e.Time, State: state, Deleted: deleted}
	b := appendState(nil, s)
	if deleted {
		b = append(b[:len(b)-1], `,"deleted":true}`...)
	}
	// 201 when the request wrote the entity's first event; no Location,
	// the entity's address being the one just written to.
	status := http.StatusOK
	if e.Version == 1 {
		status = http.StatusCreated
	}
	setHead(w, res.Head)
	w.Header().Set("Cache-Control", "no-cache")
	h.auditAppend(c, op.audit, status, res)
	writeJSON(w, status, b)
}

// entityOp is what one verb of the entity API writes.
type entityOp struct {
	typ  string // default event type
	meta string // meta before meta.by: the projections.MetaOp marker, or ""
	// current: the write acts on the current state, which is read first
	// (PATCH, DELETE).
	current bool
	audit   string // the audit action
}

// writeTarget returns the entity a write names: by ?entity=<id>, the rest
// of the path being sub; or by the rest of the path, "<entity>" for
// PUT/PATCH/DELETE or "<entity>/revert" for a revert.
func writeTarget(rest string, q url.Values, sub string) (string, error) {
	if q.Has("entity") {
		entity := q.Get("entity")
		if rest != sub {
			if sub == subRevert {
				return "", badParam("entity", "is given in the path too; with ?entity= a revert is POST /entities/revert")
			}
			return "", badParam("entity", "is given in the path too; with ?entity= the path is /entities")
		}
		if entity == "" {
			return "", badParam("entity", "must not be empty")
		}
		return entity, nil
	}
	if sub == subRevert {
		if e, ok := strings.CutSuffix(rest, "/"+subRevert); ok && e != "" {
			return e, nil
		}
		return "", errorf("no_route", "POST on an entity is /entities/<entity>/revert")
	}
	if rest == "" {
		return "", badParam("entity", "is required: /entities/<entity> or /entities?entity=<entity>")
	}
	return rest, nil
}

// revertState reads a revert's body, {"version":n} or {"id":"<event
// id>"}, and returns the entity's state at that version: the data of the
// put event that restores it.
func (h *Handler) revertState(c *call, entity string, body []byte) ([]byte, error) {
	var in struct {
		Version json.RawMessage `json:"version"`
		ID      *string         `json:"id"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil {
		return nil, bodyField("body", `must be {"version":<n>} or {"id":"<event id>"}`)
	}
	var version uint64
	switch {
	case (in.Version == nil) == (in.ID == nil):
		return nil, bodyField("version", `give exactly one of version and id: {"version":<n>} or {"id":"<event id>"}`)
	case in.Version != nil:
		n, err := strconv.ParseUint(string(in.Version), 10, 64)
		if err != nil || n == 0 {
			return nil, bodyField("version", "must be a version of the entity (a whole number from 1)")
		}
		version = n
	default:
		id, ok := log.ParseID(*in.ID)
		if !ok {
			return nil, bodyField("id", "must be an event id (64 lowercase hex)")
		}
		seq, err := c.t.log.Lookup(id)
		if errors.Is(err, log.ErrNotFound) {
			return nil, errorf("not_found", "no event with id %x on this chain", id)
		}
		if err != nil {
			return nil, err
		}
		e, err := c.t.log.Event(seq)
		if err != nil {
			return nil, err
		}
		if e.Entity != entity {
			return nil, bodyField("id", "is an event of another entity, not of "+strconv.Quote(clip(entity)))
		}
		version = e.Version
	}
	s, err := projections.StateAt(c.t.log, entity, projections.Point{Version: version})
	if err != nil {
		return nil, entityError(err, entity)
	}
	if s.Deleted {
		return nil, bodyField("version", "version "+strconv.FormatUint(version, 10)+" deleted the entity; there is no state to restore (DELETE it instead)")
	}
	return s.State, nil
}

// bodyField is the 400 answer naming a bad field of a request body.
func bodyField(field, why string) *apiError {
	e := errorf("invalid_body", "%s: %s", field, why)
	e.extra = map[string]any{"field": field}
	return e
}

// awaitVersion waits, for a bounded time, until entity's committed version
// is at least v. An append checks expected versions against every event
// written, including those of groups still being made durable (by this
// process or another), which readers see only once published: a PATCH
// that lost a race would otherwise read the same old state again at once
// and lose every retry.
func awaitVersion(l *log.Log, entity string, v uint64) {
	delay := 50 * time.Microsecond
	for waited := time.Duration(0); waited < awaitLimit; waited += delay {
		seq, err := l.EntityHead(entity)
		if err != nil {
			return
		}
		if seq > 0 {
			e, err := l.Event(seq)
			if err != nil || e.Version >= v {
				return
			}
		}
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// awaitLimit is the longest awaitVersion waits: past it the retry reads
// what there is and the append answers 409 if it is still behind.
const awaitLimit = 2 * time.Second
