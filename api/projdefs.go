package api

import (
	"bytes"
	"encoding/hex"
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

// Projection definitions (README "Projections"): each is the entity
// strata/projections/<name> of the tenant's own log, written here through
// commit like any append (quotas, failed logs, audit) but with the
// reserved types no client may append (projections/defstore.go).

// subResult is the sub-resource of /projections/<name>/result[/<key>].
const subResult = "result"

// projTarget splits the rest of a /projections/… path into the
// projection's name, the sub-resource ("", "result", "pause", …) and what
// follows it (a result key, which may hold slashes).
func projTarget(rest string) (name, sub, key string, err error) {
	name, tail, _ := strings.Cut(rest, "/")
	if !projections.ValidName(name) {
		return "", "", "", errorf("invalid_name", "projection name %q: lowercase letters and digits joined by single '.', '_' or '-', at most 64 bytes", clip(name))
	}
	sub, key, _ = strings.Cut(tail, "/")
	return name, sub, key, nil
}

// readDef is the definition of projection name in c's tenant at entity
// version version (0: the newest), or the answer to give: 404 for a name
// never defined, 410 for a deleted projection (at the newest version).
func readDef(c *call, name string, version uint64) (*projections.DefRecord, error) {
	d, err := projections.ReadDef(c.t.log, name, version)
	switch {
	case errors.Is(err, projections.ErrNoProjection):
		e := errorf("not_found", "no projection %q", name)
		e.extra = map[string]any{"projection": name}
		return nil, e
	case errors.Is(err, projections.ErrNoDefVersion):
		e := errorf("not_found", "projection %q has no version %d", name, version)
		e.extra = map[string]any{"projection": name}
		return nil, e
	case err != nil:
		return nil, err
	case d.Deleted && version == 0:
		e := errorf("gone", "projection %q was deleted at version %d", name, d.EntityVersion)
		e.extra = map[string]any{"projection": name, "version": d.EntityVersion, "seq": d.Seq, "id": hex.EncodeToString(d.ID[:])}
		return nil, e
	}
	return d, nil
}

// defAnswer is a projection's definition and status as GET
// /projections/<name> answers it.
type defAnswer struct {
	Name       string              `json:"name"`
	Version    uint64              `json:"version"`
	Definition rawJSON             `json:"definition"`
	State      string              `json:"state"`
	Processed  uint64              `json:"processed"`
	LastSeq    uint64              `json:"last_seq"`
	Errors     uint64              `json:"errors"`
	LastError  string              `json:"last_error,omitempty"`
	FailedAt   *stampJSON          `json:"failed_at,omitempty"`
	Millis     float64             `json:"millis"`
	Paused     bool                `json:"paused"`
	Deleted    bool                `json:"deleted,omitempty"`
	Created    string              `json:"created"`
	Updated    string              `json:"updated"`
	Record     recordJSON          `json:"record"`
	Replay     *projections.Replay `json:"replay,omitempty"`
	// Narrowing is that of the latest rebuild of this version (its
	// strata.projection.rebuilt record), which the result folds with.
	Narrowing *projections.RebuildOptions `json:"narrowing,omitempty"`
}

// recordJSON names the definition record's event on the chain: the
// entity version the answer is as of and its event.
type recordJSON struct {
	Entity  string `json:"entity"`
	Version uint64 `json:"version"`
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Time    string `json:"time"`
}

type stampJSON struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// describe is d's answer, with the engine's status of its result and the
// replay under way (active: the unfinished replays by projection).
func (h *Handler) describe(c *call, d *projections.DefRecord, active map[string]*projections.Replay) (*defAnswer, error) {
	a := &defAnswer{Name: d.Name, Version: d.Version, Definition: rawJSON(d.Raw), Paused: d.Paused, Deleted: d.Deleted,
		Created: log.FormatTime(d.Created), Updated: log.FormatTime(d.Updated),
		Record:    recordJSON{Entity: projections.DefEntity(d.Name), Version: d.EntityVersion, Seq: d.Seq, ID: hex.EncodeToString(d.ID[:]), Time: log.FormatTime(d.Time)},
		Narrowing: d.Narrow}
	switch {
	case d.Deleted:
		a.State = "deleted"
	case d.Def == nil:
		a.State, a.LastError = "failed", "this server cannot read the stored definition: "+d.DefErr.Error()
	default:
		st, err := c.t.projector().Status(d.Def, d.Version)
		if err != nil {
			return nil, err
		}
		a.State, a.Processed, a.LastSeq, a.Errors, a.LastError, a.Millis = st.State, st.Processed, st.LastSeq, st.Errors, st.LastError, st.Millis
		if st.FailedAt != nil {
			a.FailedAt = &stampJSON{st.FailedAt.Seq, st.FailedAt.ID}
		}
	}
	if d.Paused && a.State != "failed" {
		a.State = "paused"
	}
	if rp := active[d.Name]; rp != nil {
		a.Replay = rp
		if !d.Deleted {
			a.State = "rebuilding"
		}
	}
	return a, nil
}

// projectionList serves GET /projections: every projection defined (not
// deleted), with its status, sorted by name.
func (h *Handler) projectionList(w http.ResponseWriter, r *http.Request, c *call) {
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	defs, err := liveDefs(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]*defAnswer, 0, len(defs))
	active := activeReplays(c)
	for _, d := range defs {
		a, err := h.describe(c, d, active)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out = append(out, a)
	}
	writeValue(w, r, http.StatusOK, out)
}

// liveDefs returns the newest record of every projection defined and not
// deleted in c's tenant.
func liveDefs(c *call) ([]*projections.DefRecord, error) {
	names, err := projections.ListDefs(c.t.log)
	if err != nil {
		return nil, err
	}
	var defs []*projections.DefRecord
	for _, n := range names {
		d, err := projections.ReadDef(c.t.log, n, 0)
		if errors.Is(err, projections.ErrNoProjection) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !d.Deleted {
			defs = append(defs, d)
		}
	}
	return defs, nil
}

// projectionCreate serves POST /projections: a new projection, 409 if one
// of that name exists.
func (h *Handler) projectionCreate(w http.ResponseWriter, r *http.Request, c *call) {
	h.define(w, r, c, "", false)
}

// projectionPut serves PUT /projections/<name>: a new version of the
// definition (the result is rebuilt for it), or a new projection.
func (h *Handler) projectionPut(w http.ResponseWriter, r *http.Request, c *call) {
	name, _, _, err := projTarget(c.arg)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h.define(w, r, c, name, true)
}

// define writes a definition: named by the body (POST, replace false) or
// by the path (PUT, replace true; the body's name may be left out).
func (h *Handler) define(w http.ResponseWriter, r *http.Request, c *call, name string, replace bool) {
	var params []string
	if replace {
		params = []string{"expected_version"}
	}
	want, err := expectedVersion(r.URL.Query(), params...)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ndjson, err := bodyFormat(r.Header.Get("Content-Type")); err != nil || ndjson {
		if err == nil {
			err = errorf("unsupported_media_type", "send the definition as one JSON object (application/json)")
		}
		writeError(w, r, err)
		return
	}
	held := &hold{b: h.inflight}
	defer held.release()
	bp := bodyBufs.Get().(*bytes.Buffer)
	defer putBodyBuf(bp)
	body, err := readBody(r, min(h.cfg.MaxEvent, h.cfg.MaxBody), bp, held)
	if err != nil {
		writeError(w, r, err)
		return
	}
	raw, err := jsonx.Compact(nil, body)
	if err != nil || firstByte(raw) != '{' {
		writeError(w, r, defError(&projections.FieldError{Field: "body", Msg: "must be one JSON object"}))
		return
	}
	if replace && !hasMember(raw, "name") {
		raw, err = jsonx.SetMember(nil, raw, "name", jsonx.AppendString(nil, name))
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	def, err := projections.ParseDefinition(raw)
	if err != nil {
		writeError(w, r, defError(err))
		return
	}
	if replace && def.Name != name {
		writeError(w, r, defError(&projections.FieldError{Field: "name", Msg: "is " + strconv.Quote(def.Name) + " but the path names " + strconv.Quote(name)}))
		return
	}
	name = def.Name
	cur, err := projections.ReadDef(c.t.log, name, 0)
	if err != nil && !errors.Is(err, projections.ErrNoProjection) {
		writeError(w, r, err)
		return
	}
	exists := cur != nil && !cur.Deleted
	if cur != nil {
		if err := checkExpected(name, want, cur.EntityVersion); err != nil {
			writeError(w, r, err)
			return
		}
	} else if err := checkExpected(name, want, 0); err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case exists && !replace:
		e := errorf("exists", "projection %q exists (version %d); PUT /projections/%s changes it", name, cur.Version, name)
		e.extra = map[string]any{"projection": name, "current_version": cur.Version}
		writeError(w, r, e)
		return
	case exists && sameDefinition(cur.Def, def):
		// The same definition again: nothing to write, nothing to rebuild.
		h.answerDef(w, r, c, name, http.StatusOK)
		return
	case !exists && !h.cfg.NoAuth:
		// Counted before the write, not under the tenant lock: two
		// definitions of different names racing may pass the limit by
		// one, as two uploads racing may pass the storage quota.
		defs, err := liveDefs(c)
		if err == nil {
			err = c.cfg.Limits().CheckProjections(int64(len(defs)))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	expected := int64(0)
	if cur != nil {
		expected = int64(cur.EntityVersion)
	}
	if _, err := h.writeDefEvent(c, name, projections.TypeDefined, raw, expected); err != nil {
		writeError(w, r, conflictAsExists(err, name, want))
		return
	}
	status := http.StatusCreated
	if exists {
		status = http.StatusOK
		// The old version's result is of no more use.
		if err := c.t.projector().Drop(name); err != nil {
			c.ri.logger(h).Warn("drop projection cache", "projection", name, "err", err.Error())
		}
	}
	h.wake(c.t)
	h.answerDef(w, r, c, name, status)
}

// sameDefinition reports whether a and b define the same projection,
// whatever the order of their members.
func sameDefinition(a, b *projections.Definition) bool {
	if a == nil || b == nil {
		return false
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// hasMember reports whether the JSON object obj has a top-level member
// key.
func hasMember(obj []byte, key string) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(obj, &m) == nil && m[key] != nil
}

// conflictAsExists turns the version conflict of two writers racing to
// define or change one projection into the 409 the loser gets; a request
// that gave expected_version (want ≥ 0) gets the version conflict itself.
func conflictAsExists(err error, name string, want int64) error {
	var vc *log.VersionConflictError
	if errors.As(err, &vc) && want < 0 {
		e := errorf("exists", "projection %q was changed by another request meanwhile; read it and try again", name)
		e.extra = map[string]any{"projection": name}
		return e
	}
	return err
}

// writeDefEvent appends one event of a reserved type to projection name's
// entity, expecting the entity at version expected: the server's own
// write, through the same commit as every append.
func (h *Handler) writeDefEvent(c *call, name, typ string, data []byte, expected int64) (*log.Result, error) {
	return h.writeRecord(c, projections.DefEntity(name), typ, data, expected, "projections."+strings.TrimPrefix(typ, "strata.projection."))
}

// writeRecord appends one of the server's own records (a reserved type on
// a reserved entity, which a client may not append) to entity, expecting
// it at version expected, through the same commit as every append; action
// names it in the audit log.
func (h *Handler) writeRecord(c *call, entity, typ string, data []byte, expected int64, action string) (*log.Result, error) {
	meta, err := jsonx.SetMember(nil, nil, "by", jsonx.AppendString(nil, c.who.String()))
	if err != nil {
		return nil, err
	}
	if data == nil {
		data = []byte("null")
	}
	req := &log.Request{Events: []log.Proposed{{Type: typ, Entity: entity, Data: data, Meta: meta, ExpectedVersion: expected}}}
	res, err := h.commit(c, req)
	if err != nil {
		return nil, err
	}
	h.auditAppend(c, action, http.StatusOK, res)
	return res, nil
}

// answerDef answers with projection name's definition and status as now
// stored.
func (h *Handler) answerDef(w http.ResponseWriter, r *http.Request, c *call, name string, status int) {
	h.answerDefAt(w, r, c, name, 0, status)
}

// answerDefAt answers with projection name's definition and status at
// entity version version (0: the newest).
func (h *Handler) answerDefAt(w http.ResponseWriter, r *http.Request, c *call, name string, version uint64, status int) {
	d, err := readDef(c, name, version)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a, err := h.describe(c, d, activeReplays(c))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Strata-Head", a.Record.ID)
	w.Header().Set("Strata-Head-Seq", strconv.FormatUint(a.Record.Seq, 10))
	writeValue(w, r, status, a)
}

// readableDef is readDef of the newest version, which this server must be
// able to read (to fold its result).
func readableDef(c *call, name string) (*projections.DefRecord, error) {
	d, err := readDef(c, name, 0)
	if err == nil && d.Def == nil {
		err = errorf("unreadable_definition", "projection %q's stored definition cannot be read by this server", name)
	}
	return d, err
}

// defError is the 400 answer for a bad definition, naming its field.
func defError(err error) error {
	var fe *projections.FieldError
	if errors.As(err, &fe) {
		e := errorf("invalid_definition", "%s: %s", fe.Field, fe.Msg)
		e.extra = map[string]any{"field": fe.Field}
		return e
	}
	return err
}

// projectionGet serves GET /projections/<name>[?version=n], and the
// result routes below it.
func (h *Handler) projectionGet(w http.ResponseWriter, r *http.Request, c *call) {
	name, sub, key, err := projTarget(c.arg)
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case sub == subResult:
		h.projectionResult(w, r, c, name, key, len(c.arg) > len(name)+1+len(subResult))
		return
	case sub != "":
		writeError(w, r, errorf("no_route", "no such path: /projections/%s/%s", name, clip(sub)))
		return
	}
	q := r.URL.Query()
	if err := checkParams(q, "version"); err != nil {
		writeError(w, r, err)
		return
	}
	version := uint64(0)
	if q.Has("version") {
		n, err := strconv.ParseUint(q.Get("version"), 10, 64)
		if err != nil || n == 0 {
			writeError(w, r, badParam("version", "must be a version of the projection (a whole number from 1)"))
			return
		}
		version = n
	}
	h.answerDefAt(w, r, c, name, version, http.StatusOK)
}

// projectionDelete serves DELETE /projections/<name>: a tombstone in the
// log (the definitions stay in the history) and the result's cache gone.
func (h *Handler) projectionDelete(w http.ResponseWriter, r *http.Request, c *call) {
	d, want, ok := targetDef(w, r, c)
	if !ok {
		return
	}
	name := d.Name
	res, err := h.writeDefEvent(c, name, projections.TypeDeleted, nil, int64(d.EntityVersion))
	if err != nil {
		writeError(w, r, conflictAsExists(err, name, want))
		return
	}
	h.cancelReplays(c, name)
	if err := c.t.projector().Drop(name); err != nil {
		c.ri.logger(h).Warn("drop projection cache", "projection", name, "err", err.Error())
	}
	e := res.Events[0]
	setHead(w, res.Head)
	b := []byte(`{"name":`)
	b = jsonx.AppendString(b, name)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"deleted":true,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, e.ID[:])
	b = append(b, `"}`...)
	writeJSON(w, http.StatusOK, b)
}

// targetDef is the newest record of the projection a route names in its
// path, for a request that takes no parameters; false when it answered
// an error.
func targetDef(w http.ResponseWriter, r *http.Request, c *call) (*projections.DefRecord, int64, bool) {
	name, _, _, err := projTarget(c.arg)
	want := int64(-1)
	if err == nil {
		want, err = expectedVersion(r.URL.Query(), "expected_version")
	}
	var d *projections.DefRecord
	if err == nil {
		d, err = readDef(c, name, 0)
	}
	if err == nil {
		err = checkExpected(name, want, d.EntityVersion)
	}
	if err != nil {
		writeError(w, r, err)
		return nil, want, false
	}
	return d, want, true
}

// expectedVersion reads the optional expected_version of a change to a
// definition (-1: none), refusing any other parameter than allowed.
func expectedVersion(q url.Values, allowed ...string) (int64, error) {
	if err := checkParams(q, allowed...); err != nil {
		return -1, err
	}
	if !q.Has("expected_version") {
		return -1, nil
	}
	n, err := strconv.ParseInt(q.Get("expected_version"), 10, 64)
	if err != nil || n < 0 || n > 1<<53 {
		return -1, badParam("expected_version", "must be the projection's record version (record.version; 0: it must never have been defined)")
	}
	return n, nil
}

// checkExpected is the 409 of a change that expected the projection's
// record at version want (≥ 0) and found cur.
func checkExpected(name string, want int64, cur uint64) error {
	if want >= 0 && uint64(want) != cur {
		return &log.VersionConflictError{Index: 0, Entity: projections.DefEntity(name), Expected: uint64(want), Current: cur}
	}
	return nil
}

// projectionPause serves POST /projections/<name>/pause.
func (h *Handler) projectionPause(w http.ResponseWriter, r *http.Request, c *call) {
	h.pauseResume(w, r, c, true)
}

// projectionResume serves POST /projections/<name>/resume.
func (h *Handler) projectionResume(w http.ResponseWriter, r *http.Request, c *call) {
	h.pauseResume(w, r, c, false)
}

// projectionRebuild serves POST /projections/<name>/rebuild.
func (h *Handler) projectionRebuild(w http.ResponseWriter, r *http.Request, c *call) {
	if !projections.ValidName(c.arg) {
		_, _, _, err := projTarget(c.arg)
		writeError(w, r, err)
		return
	}
	h.rebuild(w, r, c, c.arg)
}

// pauseResume pauses or resumes a projection: an event in the log, so
// every process sees it. Pausing what is paused (or resuming what runs)
// changes nothing.
func (h *Handler) pauseResume(w http.ResponseWriter, r *http.Request, c *call, pause bool) {
	d, want, ok := targetDef(w, r, c)
	if !ok {
		return
	}
	name := d.Name
	if d.Paused != pause {
		typ := projections.TypeResumed
		if pause {
			typ = projections.TypePaused
		}
		if _, err := h.writeDefEvent(c, name, typ, nil, int64(d.EntityVersion)); err != nil {
			writeError(w, r, conflictAsExists(err, name, want))
			return
		}
		h.wake(c.t)
	}
	h.answerDef(w, r, c, name, http.StatusOK)
}

// budget is how long a request may spend catching a result up.
func (h *Handler) budget() time.Duration { return h.cfg.CatchupBudget }
