// Package projections derives read models from a tenant's log: the state
// of an entity at a point of the log, and projections — results folded
// from the events by a kind of reducer.
//
// Entity state. What it promises:
//
//   - The state is a pure function of the log: the entity's own events
//     (log.ScanEntity) folded with Apply, the default reducer. Every mode
//     (CGI included) gets the same answer, whichever caches exist.
//   - An entity that an active projection of kind state matches
//     (StateProjection) has that projection's states instead, on every
//     route: its state is the projection's key (Projector.Key), its
//     history and diffs (StateHistory, StateDiff) the same reducer folded
//     over the entity's own events — what the projection does for that
//     key — so each version's state is the one Key gives at its seq; a
//     search of the state index (Index.States) answers and filters the
//     projection's key at the index's stamp.
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
// What it costs: a Reader folds from the nearest snapshot at or before the
// point (FORMAT.md, "Entity snapshots"): O(events since it), at most the
// snapshot interval (DefaultSnapshotEvery, 128) whatever the entity's
// length. Snapshots are caches, written lazily by the reads that fold
// through a multiple of the interval (appends pay nothing) or on demand
// (Snapshot), used only if their seq and id are on the chain, removed and
// rewritten when damaged; a latest-state cache spares the current state's
// fold. A fold stops when its context ends. The state index (Index,
// FORMAT.md "State index") holds every entity's current state sorted by
// name for searches by prefix, caught up from the log's tail on read. The
// entity write API (api/entitywrite.go: PUT, PATCH, DELETE, revert) writes
// ordinary events with the MetaOp markers and computes its answer with
// Apply on the state it read.
//
// Projections. A Definition (ParseDefinition) names a kind and the kind's
// fields; a Projector (Open) computes its result. What the engine promises:
//
//   - A result is a pure function of the definition and the log: the
//     events that pass the definition's Filter, folded in log order by the
//     kind's Reducer. Events of the reserved strata.* types pass only a
//     filter whose type patterns name them ("strata.…").
//   - Every Answer is stamped with the seq and id of the last event it
//     reflects. The result is cached on disk (FORMAT.md, "Projection result
//     cache"), stamped the same way, and the cache is used only if that
//     event is on the chain, for the same definition; otherwise it is
//     ignored and replaced. Caches are written atomically without fsync and
//     checksummed: a crash or a kill -9 can lose one, never corrupt an
//     answer, and deleting them all at any time loses nothing.
//   - A read catches the cache up from the log's tail within a budget
//     (DefaultBudget, 2 s): past it the answer is the result so far, with
//     its real seq and id and Behind set, and the progress is saved, so the
//     next request — in CGI, the next process — goes on from there. A jq
//     reducer's event (which may legally run for a second) stops at the
//     deadline and when the request's context ends, and the answer is then
//     Behind before that event, which is no failure; the deadline applies
//     from a read's second event on, so that every read gets past at
//     least one and an event slower than a whole budget is still folded
//     (a read overruns its budget by at most that event).
//   - Time travel: Result at a seq answers from the nearest checkpoint at
//     or before it (written every DefaultCheckpointEvery seqs, further
//     apart for a large result) plus a fold of the rest.
//   - Processes race safely: a writer replaces files under a try-lock and
//     only if the file is not newer than what it started from; a loser
//     writes nothing. A rebuild starts a new generation that readers of
//     the old one do not overwrite.
//   - A reducer error (or panic) marks the projection failed (Status,
//     FailedError) with the event that broke it; the result before it
//     stays readable by time travel, other projections go on, and Rebuild
//     starts over.
//   - A long-running process's Projector keeps each projection's last run
//     in memory (up to 16 MB saved) and goes on from it; it is dropped as
//     soon as the result file shows another process's rebuild. A read
//     writes the result file only when refolding its tail would cost more
//     than the write.
//   - Not yet covered: erasing an event's data (GDPR) keeps its id, so a
//     result folded before the erasure stays on the chain while still
//     holding what the data contributed; the erasure, when the log gains
//     it, must Drop the tenant's projection caches (they refold without
//     the data).
//   - Built-in kinds (counter, timeseries, funnel) fold records without
//     decoding events (log.ScanRaw) and allocate nothing per event: several
//     million events a second. Kinds of their own (jq: custom, state)
//     register with RegisterKind and see decoded events.
//
// Definitions and replays (defstore.go, replay.go; FORMAT.md):
//
//   - A definition is durable, not a cache: the events of the entity
//     strata/projections/<name> in the tenant's own log (TypeDefined,
//     TypePaused, TypeResumed, TypeDeleted, TypeRebuilt), written only by
//     the server. A rebuild's narrowing is its TypeRebuilt record, so
//     that it survives the deletion of every cache (Definition.Narrow).
//     ReadDef folds them at any version of that entity; the definition's
//     version is the entity version of its TypeDefined event, never
//     reused. ListDefs (and StateDef) read a catalog of the names, a cache
//     caught up from the log's tail and rebuilt when its stamp is not on
//     the chain.
//   - A replay (Replays) is a rebuild that outlives a request: a record
//     beside the tenant that any process moves on in steps (Step, under a
//     try-lock), each bounded by a budget and resumed from the engine's
//     saved progress, so a CGI request never blocks past its budget and a
//     killed process loses nothing but the step under way. A cancel or a
//     delete of a replay another process steps is a marker it obeys.
package projections
