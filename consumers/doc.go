// Package consumers keeps strata's durable named consumers: a filter over a
// tenant's log, and the position up to which a worker has processed it.
//
// What it promises:
//
//   - A consumer's definition (its filter and where it starts) is a durable
//     record in the tenant's own log, the entity DefEntityPrefix+<name>
//     (TypeDefined, TypeDeleted), as projection definitions are: a backup,
//     a restore or an offline copy carries it, and the chain verifies it.
//   - Its position is durable state beside the log, not in the chain: one
//     small file per consumer under <tenant dir>/consumers/ (FORMAT.md),
//     replaced atomically and fsynced (file, then directory) before Commit
//     or Ack returns. A commit whose write, file fsync or rename fails
//     leaves the previous position as it was, whole (one whose directory
//     fsync fails after the rename reports the failure, though the new
//     file may be what readers see); a process killed at any point
//     (kill -9) leaves one or the other.
//   - A position is always an event on the chain (or the start, seq 0),
//     and it moves backwards only when the commit says reset.
//   - One reader at a time: reading or committing takes a lease, named by
//     the reader, kept in the same file under the directory's flock, so it
//     holds across every process serving the data directory (CGI,
//     FastCGI, standalone, the CLI). Another reader is refused with the
//     lease's expiry (LeaseError) until it ends; a reader that stops
//     renewing it loses it when it expires.
//   - Acks: a consumer may acknowledge single events ahead of its
//     position (Ack); Done answers whether every one of a set of events
//     is acknowledged or at or before the position, which is what a
//     writer waiting for the consumer polls.
//
// A position belongs to one start of its consumer: a consumer deleted and
// defined again, or given a new start point (after/from), starts at the
// new start, whatever a file from before says (State.Start).
package consumers
