// Package quota holds per-tenant quotas and the machine-wide request rate
// limiter that enforces one of them. It knows nothing of HTTP: the api
// package maps ExceededError to a status code.
//
// # Promise
//
//   - Limits are plain values: a named tier (Tier) plus a tenant's
//     Overrides (Merge), checked by Validate. Zero means unlimited.
//   - Rate limits requests per credential across every process on the
//     machine (CGI, FastCGI and standalone at once) through one small
//     memory-mapped file per tenant, without locks: a warm handle pays
//     nanoseconds per request, a CGI process one open and mmap.
//   - Rate never grants more than burst + rate×elapsed to a credential:
//     credentials that share a slot share one budget (stricter), never a
//     looser one.
//   - The rate file is a cache. A missing, truncated or garbage file never
//     crashes anything and never makes a credential wait more than
//     burst/rate (plus a second after the clock steps back); when it
//     cannot be used at all, Allow fails open.
//   - Every refusal is an *ExceededError naming the quota, matched by
//     errors.Is(err, ErrExceeded).
//
// # Tiers
//
//	tier        events/day   storage           largest blob     requests/s   burst   projections   cache entries   cache bytes
//	free           10,000    100 MiB           10 MiB                    5      10             5           1,000        10 MiB
//	standard    1,000,000    10 GiB            1 GiB                   100     200           100         100,000         1 GiB
//	unlimited           —    —                 —                         —       —             —               —             —
//
// "standard" is the tier of a tenant that names none (DefaultTier). Storage
// counts the tenant's log segments plus its blobs. Events per day count
// from midnight UTC. The server's own --max-blob applies on top of
// max_blob. Projections counts the projections defined and not deleted;
// every one costs the tenant CPU on each catch-up. The cache quotas
// bound the coordination cache (PUT /cache/<key>, package coord): its
// live entries, and their bytes counted as each value plus 32.
//
// # Burst
//
// Burst is how many requests a credential may send at the same instant
// after being idle; after that it gets one request every 1/rate seconds.
// Burst 0 means max(1, ⌈2×rate⌉): two seconds' worth, so a client that
// sends a handful of requests at once (a page load) is not refused at a
// modest rate, while a sustained flood still is. The limits a tenant is
// shown (strata tenant show, GET /quota, the admin API) carry the burst
// in effect, never 0 while a rate applies: the free tier's is 10, the
// standard tier's 200.
//
// # Rate file
//
// The file (the api keeps one per tenant, e.g. <tenant>/rate) is 65,600
// bytes, created 0600, sized with ftruncate and, on Linux, given its blocks
// with fallocate so a full disk cannot fault a store into the mapping:
//
//	offset  size  field
//	     0     8  magic "STRRATE\x00"
//	     8     4  version, uint32 little-endian, 1
//	    12     4  slot count, uint32 little-endian, 8192
//	    16    48  zero
//	    64  8×8192 slots: one uint64 each, in the host's byte order
//
// A slot holds a theoretical arrival time (GCRA), in unix nanoseconds, and
// is updated with compare-and-swap on the shared mapping. A credential
// uses slot (first 8 bytes of BLAKE3(credential id), little-endian) mod
// 8192. The file never leaves the machine, so host byte order is safe.
//
// Slots carry no tag. A tag could only be used to evict a colliding
// credential, and evicting a busy slot would hand a fresh burst to whoever
// evicted it (looser), while evicting an idle one changes nothing, since an
// idle slot already means "fresh". So credentials that collide simply share
// the slot: their requests together get one credential's budget, and only
// while both are busy. With 8192 slots, a tenant with 20 credentials has
// about a 2% chance of any collision at all.
//
// The time is the wall clock, the only one processes share. A tat more
// than burst/rate + 1 s ahead of now (garbage, or the clock stepped back)
// is reset to now + burst/rate, as if the burst were just spent. The slack
// second is there because callers pass a time read a moment earlier, so a
// slot may run ahead of a slow caller's now; resetting it then would hand
// out budget. retryAfter is never more than burst/rate.
//
// A handle that finds its file truncated under it (a fault on the mapping)
// maps the file again, re-growing it. A handle never notices the file being
// removed or replaced: it keeps counting in the old one, apart from the
// processes that open the new one, until it is reopened. Do not remove the
// file while a long-running server has it open.
package quota
