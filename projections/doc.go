// Package projections derives read models from a tenant's log. Today it
// answers one question: the state of an entity at a point of the log.
//
// What it promises:
//
//   - The state is a pure function of the log: StateAt reads the entity's
//     own events (log.ScanEntity) from its first through the point asked
//     and folds each into the state with Apply, the one reducer. Nothing is
//     kept between calls, so every mode (CGI included) gets the same answer.
//   - Reduction: an event's data is an RFC 7386 JSON merge patch on the
//     state (jsonx.MergePatch): an object merges member by member (a null
//     member removes one), anything else — an array, a string, null —
//     replaces the whole state. An entity starts as null. Meta member
//     "strata" names another operation, the one the entity API writes
//     (MetaOp): "put" replaces the state with the data, "delete" tombstones
//     the entity (its state is gone until a later event writes one; its
//     history stays). An erased event's data is unknown and changes
//     nothing.
//   - Every answer names the event it reflects (seq, id, time, version),
//     so a client can check it against the chain.
//   - A point is one of: a version of the entity, a seq of the log (the
//     newest version at or before it), an event id on the chain (as of
//     that event's seq, whichever entity it belongs to) or a time (the
//     newest version at or before it).
//
// What it costs, and what is still to come: the state at version n costs n
// event reads and n merges, so an entity with 100,000 events is slow to
// read. Fold takes a starting state (a *State at some seq) so that the
// on-disk state cache and snapshots of later work can supply the state at
// a recent point and have only the events after it read. The entity write
// API (api/entitywrite.go: PUT, PATCH, DELETE, revert) writes ordinary
// events with the MetaOp markers and computes its answer with Apply on the
// state it read. Custom reducers (jq, per entity glob), the state index
// behind GET /entities?prefix= and the other projection kinds come later.
package projections
