// Package log is the heart of strata: one append-only, hash-chained event log
// per tenant directory.
//
// What it promises:
//
//   - Durability: Append returns only after the records are written and
//     fsynced. Nothing acknowledged is lost by a crash of the process or of
//     the machine.
//   - Order: every event gets the next seq (1, 2, 3 … no gaps), a receive
//     time that never decreases, and the next version of its entity.
//   - The chain: every event's id is the BLAKE3 hash of its fields and of the
//     previous event's id (FORMAT.md, "hash recipe"), so anyone holding an
//     old head can check that today's log extends it.
//   - Many writers: any number of processes may open the same directory and
//     append at once; each append runs under the tenant's flock, and
//     preconditions (expected versions, the expected head, idempotency keys)
//     are checked in the same locked step as the write.
//   - Honest recovery: a torn tail — what a crash left past the acknowledged
//     point: a record cut short, a zeroed page, a request whose last record
//     never reached the disk — is cut back to the last whole request, so a
//     request is stored all or none, keeping a .broken copy of what was cut;
//     damage at or before the acknowledged point is reported as ErrCorrupt,
//     never truncated (FORMAT.md, "Torn tails and damage").
//   - Group commit: concurrent appends in one process share writes and
//     fsyncs, and the next group is prepared while the last one waits for
//     the disk (pipeline.go); a process waiting for the lock is let in.
//   - Fail stop: after a failed write or fsync the open Log refuses further
//     appends until it is reopened.
//   - Compression changes nothing a reader sees: a sealed segment may be
//     replaced by its compressed form (Compact; FORMAT.md, "Compressed
//     segments"), which decompresses to the same bytes, so no id, offset,
//     chain link or read result changes, and a crash at any point of a
//     compaction leaves a whole copy of every segment. Compaction runs
//     beside appends and reads, one per tenant at a time.
//
// Everything under index/ is a cache derived from the segments under log/:
// it can be deleted at any time and is rebuilt on the next open (Reindex
// does it on purpose), beside the indexes in use and published by rename,
// so a rebuild — even one killed midway — never hides from readers what
// they could see. The committed head — what readers may see — is the seq
// stored in index/head, advanced only after the records are fsynced, and
// never lowered.
//
// Reading: Scan iterates over decoded Events; ScanRaw over the same
// records undecoded (RawEvent: type, entity, time, seq as slices and
// numbers, data on demand), for readers that fold many events and look at
// few fields — nothing is allocated per event. Both check every record's
// checksum and seq.
//
// The package knows nothing of HTTP. FORMAT.md describes the files byte by
// byte.
package log
