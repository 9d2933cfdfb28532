// Package metrics counts what a strata installation does, in one small
// file that every process serving the data directory shares
// (<data>/system/metrics, see FORMAT.md), and writes the counts in the
// Prometheus text exposition format 0.0.4, by hand (no client library:
// it would cost every CGI process start-up time and megabytes).
//
// What it promises:
//   - Counting is lock-free and cheap: an observation is a few atomic adds
//     on a mapped page, the same in a CGI process (which maps the file for
//     one request) as in a server. Processes never wait for each other.
//   - Metrics are best-effort. A file that cannot be opened, mapped or
//     grown, or a table that is full, loses observations, never a request:
//     every method of a nil *Set does nothing, and a fault on the mapping
//     is caught (internal/shm). Lost observations of a full table are
//     counted (strata_metrics_dropped_total).
//   - Cardinality is bounded: the file has a fixed number of rows (4096).
//     HTTP rows are (method + route pattern, status code), never a raw path;
//     tenant rows are at most MaxTenants, the rest counted under tenant
//     "_other".
//   - Counters only grow while the file lives; deleting it (it is a cache
//     of counts, not data) starts them over, which Prometheus reads as a
//     counter reset.
package metrics
