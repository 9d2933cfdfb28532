// Package blobs is a content-addressed, durable file store for binary
// payloads. It knows nothing of HTTP: the api package serves the files it
// returns with http.ServeContent.
//
// # Promise
//
//   - Every blob is named by the lowercase hex BLAKE3-256 of its bytes, the
//     same string the b3sum tool prints.
//   - Once Put returns, the blob is on stable storage: it was written to a
//     temp file, fsynced, renamed into place, and its directory fsynced.
//   - An interrupted upload leaves nothing behind but a temp file under
//     tmp/, which the next Open removes.
//   - Memory is constant whatever the size: Put streams through one fixed
//     256 KiB buffer.
//   - The same content twice is stored once.
//   - Hash names are validated (exactly 64 lowercase hex characters) before
//     the file system is touched, so no name can escape the directory.
//   - Usage (bytes and count of the blobs) is one small read, and an Admit
//     hook given to PutWith sees it and can refuse a new blob atomically
//     with respect to every other Put and Delete, in every process: a
//     storage quota checked there holds exactly.
//
// # Layout
//
//	<dir>/<h[0:2]>/<h>        the blob's bytes, h = hex BLAKE3-256 of them
//	<dir>/<h[0:2]>/<h>.type   content type sidecar: the bare media type, no newline
//	<dir>/tmp/put-<rand>      a blob upload in progress
//	<dir>/tmp/type-<rand>     a sidecar being written
//	<dir>/usage               the usage counter (below)
//	<dir>/usage.lock          empty; flock'ed while blobs come and go; never remove it
//
// The sidecar is written atomically (temp, fsync, rename) before the blob is
// renamed into place, so a visible blob always has its type; if a Delete
// racing a Put still leaves a blob without its sidecar, Stat and Open report
// the default type "application/octet-stream".
//
// # Usage counter
//
// The file usage is one 36-byte record, integers little-endian:
//
//	offset  size  field
//	     0     8  magic "BLOBUSG\x00"
//	     8     4  version, 1
//	    12     4  flags: bit 0 "changing", the rest zero
//	    16     8  bytes: the blobs' sizes added up (int64)
//	    24     8  count: the number of blobs (int64)
//	    32     4  CRC-32 (IEEE) of bytes 0–31 (CRC-32C would cost a table build at every CGI start)
//
// It is rewritten in place by one pwrite at offset 0, holding the usage
// lock, whenever a Put creates a blob (not when the content existed) and
// whenever a Delete removes one. A record that small lies in one sector
// and one page, so a process crash leaves the old or the new record;
// whatever else tears it (a reader racing a writer, power loss) fails the
// checksum, and a damaged or missing counter is recounted by walking the
// shards the next time it is needed. Recount does the same on demand
// (strata reindex calls it).
//
// The counter is a cache and is not fsynced. A Put or a Delete writes the
// new count with the "changing" flag before it renames or removes the
// blob's files, and writes it again without the flag once they are done.
// A process killed in between (kill -9, a CGI timeout) leaves the flag
// set, and whoever reads the counter next recounts instead of trusting it:
// without that, every such crash left the count a blob too high and a
// quota drifted towards false 507s. After an OS crash or power loss the
// counter may lag the blobs made durable in the last few seconds; run
// Recount (strata reindex) after one.
//
// # Concurrency
//
// A Store is safe for concurrent use, and several processes (CGI) may use
// the same directory at once. A new blob becomes visible, and a blob is
// removed, only under the usage lock: within the process a semaphore, and
// across processes an exclusive flock on usage.lock. Waiting for it is
// bounded (10 s, then ErrLockTimeout), never forever. So the first Put of a
// content, in any process, is the only one that reports created=true, and
// its content type is the one kept. The lock is held for the check that
// the blob is new, Admit, the counter, the two renames and the fsync of the
// shard directory between them; the blob's bytes are written and synced
// before it is taken. Recount holds it for its whole walk.
//
// Every temp file is flock'ed by its writer until it has been renamed into
// place, and Open removes only the temp files it can lock, so a process
// opening the store never deletes another process's upload in progress.
package blobs
