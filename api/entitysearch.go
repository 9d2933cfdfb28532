package api

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"strata/projections"
)

// entitySearch serves GET /entities?prefix=&where=&limit=&after=: the
// current states of the entities whose names start with prefix, in byte
// order of their names, after the entity after, not deleted, from the
// state index (projections.Index). A page is a JSON array of states as
// GET /entities/<entity> answers them; when more may follow, Link
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
	limit := DefaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			writeError(w, r, badParam("limit", "must be a whole number of at least 1"))
			return
		}
		limit = n
	}
	match, err := whereFilter(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	res, err := projections.OpenIndex(c.t.log).Search(r.Context(), q.Get("prefix"), q.Get("after"), limit, ownEntities(q.Get("prefix"), match))
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

// whereFilter compiles the where= parameter, a jq boolean over an
// entity's state; nil without one.
func whereFilter(q url.Values) (func(*projections.State) (bool, error), error) {
	if !q.Has("where") {
		return nil, nil
	}
	return nil, errorf("unsupported", "parameter where is not supported by this server yet")
}
