package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"strata/internal/jq"
	"strata/projections"
)

// entitySearch serves GET /entities?prefix=&where=&limit=&after=: the
// current states of the entities whose names start with prefix, in byte
// order of their names, after the entity after, not deleted, from the
// state index (projections.Index). A page is a JSON array of states as
// GET /entities/<entity> answers them — for an entity a state projection
// makes, that projection's state, which where= sees, with "projection":
// <name> (Index.States; a failed one is the 409 GET answers); when more may follow, Link
// rel="next" (after=<last entity looked at>) and Strata-Next-After (that
// entity, percent-encoded) say where to go on, as GET /events pages do. The
// page is stamped with the seq and id the index reflects (Strata-Head,
// Strata-Head-Seq); Strata-Behind: true says the index could not catch up
// with the whole log in this request (a later one goes on).
func (h *Handler) entitySearch(w http.ResponseWriter, r *http.Request, c *call, q url.Values) {
	if err := checkParams(q, "prefix", "where", "limit", "after"); err != nil {
		writeError(w, r, err)
		return
	}
	limit, err := pageLimit(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	match, err := whereFilter(r.Context(), q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ix := projections.OpenIndex(c.t.log).States(c.t.projector(), h.budget())
	res, err := ix.Search(r.Context(), q.Get("prefix"), q.Get("after"), limit, ownEntities(q.Get("prefix"), match))
	var fe *projections.FailedError
	if errors.As(err, &fe) {
		err = resultError(err, fe.Name)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Strata-Head", hex.EncodeToString(res.ID[:]))
	hd.Set("Strata-Head-Seq", strconv.FormatUint(res.Seq, 10))
	hd.Set("Cache-Control", "no-cache")
	if res.Behind {
		hd.Set("Strata-Behind", "true")
	}
	if res.Next != "" {
		nq := r.URL.Query()
		nq.Set("after", res.Next)
		hd.Set("Link", "<?"+nq.Encode()+`>; rel="next"`)
		hd.Set("Strata-Next-After", url.QueryEscape(res.Next))
	}
	b := []byte{'['}
	for i, s := range res.States {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendState(b, s)
	}
	writeJSON(w, http.StatusOK, append(b, ']'))
}

// ownEntities wraps match to leave out the server's own records (entities
// under ReservedEntity, projection definitions) unless the prefix asks for
// them: a search of a tenant's entities is a search of its data.
func ownEntities(prefix string, match func(*projections.State) (bool, error)) func(*projections.State) (bool, error) {
	if strings.HasPrefix(prefix, ReservedEntity) {
		return match
	}
	return func(s *projections.State) (bool, error) {
		if strings.HasPrefix(s.Entity, ReservedEntity) {
			return false, nil
		}
		if match == nil {
			return true, nil
		}
		return match(s)
	}
}

// Bounds of a where= filter: one state's run, and the whole page's, past
// which the page ends early with a Link to go on from (so a slow program
// over many states never holds a request, or a CGI process, for long).
const (
	whereRunTime  = 100 * time.Millisecond
	wherePageTime = 2 * time.Second
)

// whereFilter compiles the where= parameter, a jq program run on each
// entity's state that keeps the entity when its first output is neither
// false nor null; nil without one. A compile error is a 400 with jq's
// message. A state the program fails on (a type error, error/1) is left
// out, as jq's select would leave it; a program past its limits (time,
// memory, depth) is a 400 naming the limit.
func whereFilter(ctx context.Context, q url.Values) (func(*projections.State) (bool, error), error) {
	if !q.Has("where") {
		return nil, nil
	}
	p, err := jq.Compile(q.Get("where"))
	if err != nil {
		return nil, badParam("where", "is not a jq program: "+err.Error())
	}
	lim := p.Limits()
	lim.Time = whereRunTime
	p = p.WithLimits(lim)
	start, n := time.Now(), 0
	return func(s *projections.State) (bool, error) {
		if n++; n > 1 && time.Since(start) > wherePageTime {
			return false, projections.ErrEndPage
		}
		v, err := jq.Decode(s.State)
		if err != nil {
			return false, err
		}
		ok, err := p.Bool(ctx, v)
		var le *jq.LimitError
		var re *jq.RuntimeError
		switch {
		case errors.As(err, &le):
			return false, badParam("where", le.Error())
		case errors.As(err, &re):
			return false, nil
		}
		return ok, err
	}, nil
}
