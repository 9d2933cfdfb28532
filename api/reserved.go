package api

import (
	"fmt"
	"strings"
)

// The server's own records in a tenant's log (projection definitions, and
// later schemas and consumers) use event types starting ReservedType and
// entities starting ReservedEntity. A client may append neither: a record
// of the server's that a client could write, or an entity whose versions
// a client could advance, would let it forge or shift a definition's
// version. The server writes them through commit without this check
// (projdefs.go).
const (
	ReservedType   = "strata."
	ReservedEntity = "strata/"
)

// checkReserved refuses a client's event of a reserved type or on a
// reserved entity; index is the event's position in its request (-1: the
// request writes one event named by its URL, as the entity API does).
func checkReserved(index int, typ, entity string) error {
	var e *apiError
	where := ""
	if index >= 0 {
		where = fmt.Sprintf("event %d: ", index)
	}
	switch {
	case strings.HasPrefix(typ, ReservedType):
		e = errorf("reserved_type", "%stype %q: types starting %q are reserved for the server's own records (projection definitions)", where, clip(typ), ReservedType)
		e.extra = map[string]any{"field": "type"}
	case strings.HasPrefix(entity, ReservedEntity):
		e = errorf("reserved_entity", "%sentity %q: entities starting %q are reserved for the server's own records (projection definitions)", where, clip(entity), ReservedEntity)
		e.extra = map[string]any{"field": "entity"}
	default:
		return nil
	}
	if index >= 0 {
		e.extra["index"] = index
	}
	return e
}
