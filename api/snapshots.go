package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"strata/jsonx"
	"strata/log"
	"strata/projections"
)

// Bounds of one POST /snapshots for every entity: it snapshots at most
// snapshotAllMax entities or works snapshotAllTime, whichever comes
// first, and answers where to go on ("next"), so no request outlives a
// web server's timeout and a CGI request stays short.
const (
	snapshotAllMax  = 100
	snapshotAllTime = time.Second
	maxSnapshotBody = 64 << 10
)

// snapshotTake serves POST /snapshots: {"entity":"x"} writes a manual
// snapshot of x's current state and answers it (201); {} or {"all":true}
// (optionally "prefix" and "after", an entity) snapshots every entity,
// in name order, a bounded batch per request, answering
// {"snapshots":[…],"next":"<entity>"} — next absent when all are done.
func (h *Handler) snapshotTake(w http.ResponseWriter, r *http.Request, c *call) {
	var in struct {
		Entity *string `json:"entity"`
		All    bool    `json:"all"`
		Prefix string  `json:"prefix"`
		After  string  `json:"after"`
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		var buf bytes.Buffer
		body, err := readBody(r, maxSnapshotBody, &buf, nil)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			d := json.NewDecoder(bytes.NewReader(body))
			d.DisallowUnknownFields()
			if err := d.Decode(&in); err != nil {
				writeError(w, r, bodyField("body", `must be {"entity":"<entity>"} or {"all":true} (with "prefix" and "after" optional)`))
				return
			}
		}
	}
	rd := h.entities(c)
	if in.Entity != nil {
		if in.All || in.Prefix != "" || in.After != "" {
			writeError(w, r, bodyField("entity", "names one entity; all, prefix and after are for every entity"))
			return
		}
		if err := log.ValidateEntity(*in.Entity); err != nil {
			writeError(w, r, bodyField("entity", err.Error()))
			return
		}
		info, err := rd.Snapshot(r.Context(), *in.Entity)
		if err != nil {
			writeError(w, r, entityError(err, *in.Entity))
			return
		}
		setSnapshotHead(w, info)
		b, _ := json.Marshal(info)
		writeJSON(w, http.StatusCreated, b)
		return
	}
	deadline := time.Now().Add(snapshotAllTime)
	ix := projections.OpenIndex(c.t.log)
	res, err := ix.Search(r.Context(), in.Prefix, in.After, snapshotAllMax, ownEntities(in.Prefix, nil))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := []*projections.SnapshotInfo{}
	next := res.Next
	for i, s := range res.States {
		if time.Now().After(deadline) {
			next = res.States[i-1].Entity // i > 0: the first always runs
			break
		}
		info, err := rd.Snapshot(r.Context(), s.Entity)
		if errors.Is(err, projections.ErrNoEntity) {
			continue
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		out = append(out, info)
	}
	if next == "" && res.Behind && len(res.States) > 0 {
		next = res.States[len(res.States)-1].Entity
	}
	b, _ := json.Marshal(out)
	body := append([]byte(`{"snapshots":`), b...)
	if next != "" {
		body = append(body, `,"next":`...)
		body = jsonx.AppendString(body, next)
	}
	writeJSON(w, http.StatusOK, append(body, '}'))
}

// snapshotList serves GET /snapshots?entity=<entity>[&after=<version>&limit=]:
// the entity's snapshots by version, paged like history (Link rel="next",
// Strata-Next-After).
func (h *Handler) snapshotList(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if err := checkParams(q, "entity", "after", "limit"); err != nil {
		writeError(w, r, err)
		return
	}
	entity := q.Get("entity")
	if entity == "" {
		writeError(w, r, badParam("entity", "is required: GET /snapshots?entity=<entity>"))
		return
	}
	limit, after, err := versionPage(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, more, err := h.entities(c).Snapshots(entity, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(list) > 0 {
		setSnapshotHead(w, list[len(list)-1])
		if more {
			setNext(w, r, list[len(list)-1].Version)
		}
	}
	if list == nil {
		list = []*projections.SnapshotInfo{}
	}
	b, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, b)
}

// snapshotLatest serves GET /snapshots/<entity>/latest: the entity's
// newest snapshot with its state, {…the listing's fields…,"state":…}.
func (h *Handler) snapshotLatest(w http.ResponseWriter, r *http.Request, c *call) {
	entity, ok := strings.CutSuffix(c.arg, "/latest")
	if !ok || entity == "" {
		writeError(w, r, errorf("no_route", "a snapshot is read at /snapshots/<entity>/latest"))
		return
	}
	if err := checkParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	s, info, err := h.entities(c).LatestSnapshot(entity)
	if errors.Is(err, projections.ErrNoSnapshot) {
		e := errorf("not_found", "entity %q has no snapshot", clip(entity))
		e.extra = map[string]any{"entity": entity}
		writeError(w, r, e)
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	setSnapshotHead(w, info)
	b, _ := json.Marshal(info)
	b = append(b[:len(b)-1], `,"state":`...)
	b = append(b, s.State...)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

// setSnapshotHead stamps an answer with the event a snapshot reflects.
func setSnapshotHead(w http.ResponseWriter, info *projections.SnapshotInfo) {
	w.Header().Set("Strata-Head", info.ID)
	w.Header().Set("Strata-Head-Seq", strconv.FormatUint(info.Seq, 10))
	w.Header().Set("Cache-Control", "no-cache")
}
