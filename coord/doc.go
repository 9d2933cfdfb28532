// Package coord holds a tenant's coordination services: mutexes with
// fencing tokens, a cache of short-lived JSON values, and a broadcast ring
// of messages that are never stored. It knows nothing of HTTP; the api
// package serves it under /mutex, /cache and /broadcast. Its files live
// in one directory per tenant (the api uses <tenant>/coord/), described
// byte by byte in FORMAT.md. None of them is the log, nor a cache of it:
// deleting them frees every lock, empties the cache and drops messages in
// flight, and changes nothing in any tenant's events.
//
// # Promise
//
//   - Every process on the data directory (CGI requests, FastCGI and
//     standalone servers, at once) sees one state: each service's file is
//     changed only under its flock, and read or written with plain
//     system calls or a shared mapping, never through a copy a process
//     keeps.
//   - Mutex: at most one holder per key at any instant, measured by the
//     wall clock the processes share; a grant's fencing token is greater
//     than every token granted before it for that key — in fact for any
//     key of the tenant that hashes to the same page of the table — and
//     is durable (fdatasync) before Lock returns, so no token is handed
//     out twice, even across a machine crash. A release or a renewal
//     (a later expiry, the same token, synced) needs the holder's token;
//     a lock nobody releases frees itself at its expiry.
//     A release is not synced: after a machine crash a released lock may
//     be held again until its expiry, never the other way round.
//   - Cache: a value is replaced atomically (a reader sees the old value
//     or the new one, whole); entries are NOT synced to disk — after a
//     machine crash a value may be missing, never wrong (a checksum
//     guards each). Expired entries answer as absent and are removed by
//     the first read that finds them, and all at once when a write would
//     go over the tenant's limit. A tenant holds at most its quota of
//     entries and bytes (quota.Limits.CacheEntries, CacheBytes).
//   - Broadcast: a message posted by any process reaches every
//     subscriber reading the tenant's ring in any process, in the order
//     posted, unless the subscriber fell more than a ring's worth behind
//     (it is told how many it missed). Nothing is stored beyond the
//     fixed ring file, which is never synced.
//   - After a failed write or sync, what a reader sees is what it saw
//     before: the failed call changed nothing but the file's free blocks.
package coord
