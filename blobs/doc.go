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
//
// # Layout
//
//	<dir>/<h[0:2]>/<h>        the blob's bytes, h = hex BLAKE3-256 of them
//	<dir>/<h[0:2]>/<h>.type   content type sidecar: the bare media type, no newline
//	<dir>/tmp/put-<rand>      a blob upload in progress
//	<dir>/tmp/type-<rand>     a sidecar being written
//
// The sidecar is written atomically (temp, fsync, rename) before the blob is
// renamed into place, so a visible blob always has its type; if a Delete
// racing a Put still leaves a blob without its sidecar, Stat and Open report
// the default type "application/octet-stream".
//
// # Concurrency
//
// A Store is safe for concurrent use, and several processes (CGI) may use
// the same directory at once. Within one Store, the commit step of Put and
// all of Delete are serialized per hash, so the first Put of a content
// creates it and every later one reports created=false and keeps the first
// type. Across processes the rename keeps the bytes safe (both writers hold
// the same content), but two simultaneous first Puts may both report
// created=true and the last one's content type wins.
//
// On Unix, every temp file is flock'ed by its writer until it has been
// renamed into place, and Open removes only the temp files it can lock, so
// a process opening the store never deletes another process's upload in
// progress. Elsewhere Open removes temp files untouched for a day.
package blobs
