package metrics

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"strata/internal/shm"
	"strata/quota"
)

// FileName is the metrics file's name in the data directory's system
// directory.
const FileName = "metrics"

// The file's layout (FORMAT.md).
const (
	magic      = "STRMETR\x00"
	version    = 1
	headerSize = 64
	slots      = 4096 // a power of two: the first slot of a key is a mask of its hash
	slotSize   = 256
	// The first page holds the header and the installation-wide rows
	// (fsyncs, group commits, lock waits) at fixed places: a CGI append
	// touches that page anyway, and every page it touches is a fault on a
	// fresh mapping. The hashed rows start on the second page.
	rowsAt   = 4096
	fileSize = rowsAt + slots*slotSize

	keyOff  = 8   // the key's length byte, then the key
	keyMax  = 95  // bytes of a key
	valOff  = 104 // the values: nvals little-endian uint64
	nvals   = (slotSize - valOff) / 8
	claimed = 1       // state of a slot whose key is being written
	ready   = 1 << 63 // state bit of a slot whose key is whole

	offTenants = 24 // header: tenant rows made (uint64)
	offDropped = 32 // header: observations lost to a full table (uint64)
)

// MaxTenants is how many tenants get rows of their own; observations of
// the others are counted under tenant Other.
const MaxTenants = 1000

// Other is the tenant label of tenants past MaxTenants.
const Other = "_other"

// Row kinds: the first byte of a row's key.
const (
	kindHTTP   = 'h' // "h" method " " pattern "\x00" code
	kindTenant = 't' // "t" tenant
	kindFsync  = 'f' // "f", fixed at fixedRow(kindFsync)
	kindGroup  = 'g' // "g", fixed
	kindLock   = 'l' // "l", fixed
	kindAuth   = 'a' // "a" error code
)

// Values of a tenant row.
const (
	tAppended = iota // events appended
	tBytes           // bytes of data and meta appended
	tRequests        // append requests that stored events
	tEvents          // gauge: the log's head seq at its last append
	tLogBytes        // gauge: the log's bytes at its last append
	tEntities        // gauge: entities at the last append
	tRefusals        // quota refusals, one value per quotaNames entry
	// segments compressed by a server's compaction, and the bytes it saved
	tCompacted    = tRefusals + len(quotaNames)
	tCompactSaved = tCompacted + 1
	tEnd          = tCompactSaved + 1
)

// quotaNames are the quotas whose refusals a tenant row counts apart; the
// last counts any other.
var quotaNames = [...]string{quota.QuotaEventsPerDay, quota.QuotaStorageBytes, quota.QuotaMaxBlob,
	quota.QuotaRequestsPerSecond, quota.QuotaProjections, quota.QuotaCacheEntries, quota.QuotaCacheBytes, "other"}

// Histogram bounds. A histogram row holds one count per bound, one for
// the observations above every bound, then the sum of the observations.
var (
	// secondsBounds: request latencies and lock waits.
	secondsBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// fsyncBounds: one fdatasync.
	fsyncBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
	// groupBounds: events in one group commit (at most 4096).
	groupBounds = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
)

// header is the header of every metrics file of this version.
func header() []byte {
	h := make([]byte, 24)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], version)
	binary.LittleEndian.PutUint32(h[12:], slots)
	binary.LittleEndian.PutUint32(h[16:], slotSize)
	return h
}

// Set is the shared metrics file of one data directory. Every method of a
// nil *Set does nothing, so a caller that could not open the file carries
// on without metrics. It is safe for concurrent use.
type Set struct {
	f *shm.File
}

// Open opens (creating or growing) the metrics file at path.
func Open(path string) (*Set, error) {
	f, err := shm.Open(path, fileSize, header())
	if err != nil {
		return nil, fmt.Errorf("open metrics file: %w", err)
	}
	return &Set{f: f}, nil
}

// Close unmaps the file; no call may be in progress.
func (s *Set) Close() error {
	if s == nil {
		return nil
	}
	return s.f.Close()
}

// fnv is FNV-1a of the key's parts, never 0 once the ready bit is set.
func fnv(parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
	}
	return h
}

// probes bounds the slots a lookup looks at before it gives up (a full
// table): an observation never costs a scan of the file.
const probes = 64

// row returns the offset of the row whose key is the concatenation of
// parts, making it if there is none (newRow, if not nil, is asked first
// and may refuse); -1 if there is no room or the key is too long.
//
// A slot is empty (0), being claimed (1) or ready (its key's hash with the
// top bit set). A writer claims an empty slot with a compare-and-swap,
// writes the key, then marks it ready. Lookups pass over claimed slots, so
// two processes making the same key at once may make two rows: the scrape
// adds rows with the same key together. A process killed while claiming
// leaves a slot that is never used.
func row(mem []byte, newRow func(mem []byte) bool, parts ...string) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > keyMax {
		return -1
	}
	h := fnv(parts...)
	want := h | ready
	for i := 0; i < probes; i++ {
		off := rowsAt + int((h+uint64(i))&(slots-1))*slotSize
		p := shm.Word(mem, off)
		st := atomic.LoadUint64(p)
		if st == 0 {
			if newRow != nil && !newRow(mem) {
				return -1
			}
			if !atomic.CompareAndSwapUint64(p, 0, claimed) {
				i-- // taken meanwhile: look at it again
				continue
			}
			mem[off+keyOff] = byte(n)
			k := off + keyOff + 1
			for _, part := range parts {
				k += copy(mem[k:], part)
			}
			atomic.StoreUint64(p, want)
			return off
		}
		if st == want && keyIs(mem[off+keyOff:], parts) {
			return off
		}
	}
	atomic.AddUint64(shm.Word(mem, offDropped), 1)
	return -1
}

// keyIs reports whether the length-prefixed key at k is the
// concatenation of parts.
func keyIs(k []byte, parts []string) bool {
	n := int(k[0])
	k = k[1 : 1+n]
	for _, p := range parts {
		if len(p) > len(k) || string(k[:len(p)]) != p {
			return false
		}
		k = k[len(p):]
	}
	return len(k) == 0
}

// fixedRow is the offset of an installation-wide row in the first page
// (its key bytes unused).
func fixedRow(kind byte) int {
	switch kind {
	case kindFsync:
		return 1 * slotSize
	case kindGroup:
		return 2 * slotSize
	case kindLock:
		return 3 * slotSize
	}
	return -1
}

// val is the i'th value of the row at off.
func val(mem []byte, off, i int) *uint64 { return shm.Word(mem, off+valOff+8*i) }

// observe adds x to the histogram of the row at off, whose bounds are b.
func observe(mem []byte, off int, b []float64, x float64, sum uint64) {
	i := 0
	for i < len(b) && x > b[i] {
		i++
	}
	atomic.AddUint64(val(mem, off, i), 1)
	atomic.AddUint64(val(mem, off, len(b)+1), sum)
}

// newTenant admits a new tenant row while there are fewer than
// MaxTenants.
func newTenant(mem []byte) bool {
	return atomic.AddUint64(shm.Word(mem, offTenants), 1) <= MaxTenants
}

// tenantRow is the row of tenant, or of Other past MaxTenants.
func tenantRow(mem []byte, tenant string) int {
	if off := row(mem, newTenant, "t", tenant); off >= 0 {
		return off
	}
	return row(mem, nil, "t", Other)
}

// do runs fn on the mapped file, if there is one.
func (s *Set) do(fn func(mem []byte)) {
	if s != nil {
		s.f.Do(fn)
	}
}

// HTTP counts one answered request on the route pattern (method and path
// pattern, or "" for a path no route has) with status code, taking d.
func (s *Set) HTTP(method, pattern string, code int, d time.Duration) {
	if code < 100 || code > 999 {
		code = 999
	}
	var c [4]byte
	c[0] = 0
	c[1], c[2], c[3] = byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)
	s.do(func(mem []byte) {
		if off := row(mem, nil, "h", method, " ", pattern, string(c[:])); off >= 0 {
			observe(mem, off, secondsBounds, d.Seconds(), uint64(d))
		}
	})
}

// Appended counts an append request of tenant that stored events (of
// bytes of data and meta), after which the log held head events, logBytes
// bytes and entities entities.
func (s *Set) Appended(tenant string, events, bytes int, head, logBytes, entities uint64) {
	s.do(func(mem []byte) {
		off := tenantRow(mem, tenant)
		if off < 0 {
			return
		}
		atomic.AddUint64(val(mem, off, tAppended), uint64(events))
		atomic.AddUint64(val(mem, off, tBytes), uint64(bytes))
		atomic.AddUint64(val(mem, off, tRequests), 1)
		raise(val(mem, off, tEvents), head)
		raise(val(mem, off, tEntities), entities)
		if logBytes > 0 {
			atomic.StoreUint64(val(mem, off, tLogBytes), logBytes)
		}
	})
}

// raise sets *p to v if v is larger: gauges that processes set in any
// order and that only grow.
func raise(p *uint64, v uint64) {
	for {
		old := atomic.LoadUint64(p)
		if v <= old || atomic.CompareAndSwapUint64(p, old, v) {
			return
		}
	}
}

// QuotaRefused counts a request of tenant refused by the quota named q.
func (s *Set) QuotaRefused(tenant, q string) {
	i := len(quotaNames) - 1
	for j, n := range quotaNames {
		if n == q {
			i = j
			break
		}
	}
	s.do(func(mem []byte) {
		if off := tenantRow(mem, tenant); off >= 0 {
			atomic.AddUint64(val(mem, off, tRefusals+i), 1)
		}
	})
}

// Compacted counts segments of tenant's log that a compaction in a server
// (POST /admin/compaction, the background one) compressed, saving saved
// bytes, after which the log's segments took logBytes on disk.
func (s *Set) Compacted(tenant string, segments int, saved, logBytes int64) {
	s.do(func(mem []byte) {
		off := tenantRow(mem, tenant)
		if off < 0 {
			return
		}
		atomic.AddUint64(val(mem, off, tCompacted), uint64(max(segments, 0)))
		atomic.AddUint64(val(mem, off, tCompactSaved), uint64(max(saved, 0)))
		if logBytes > 0 {
			atomic.StoreUint64(val(mem, off, tLogBytes), uint64(logBytes))
		}
	})
}

// AuthFailed counts a request refused for its credentials, by the error
// code it got (a fixed set: api's error table).
func (s *Set) AuthFailed(code string) {
	s.do(func(mem []byte) {
		if off := row(mem, nil, "a", code); off >= 0 {
			atomic.AddUint64(val(mem, off, 0), 1)
		}
	})
}

// Synced counts one fdatasync of a log segment that took d.
func (s *Set) Synced(d time.Duration) {
	s.do(func(mem []byte) {
		if off := fixedRow(kindFsync); off >= 0 {
			observe(mem, off, fsyncBounds, d.Seconds(), uint64(d))
		}
	})
}

// Group counts one group commit of n events.
func (s *Set) Group(n int) {
	s.do(func(mem []byte) {
		if off := fixedRow(kindGroup); off >= 0 {
			observe(mem, off, groupBounds, float64(n), uint64(n))
		}
	})
}

// LockWaited counts a wait of d for a tenant's lock.
func (s *Set) LockWaited(d time.Duration) {
	s.do(func(mem []byte) {
		if off := fixedRow(kindLock); off >= 0 {
			observe(mem, off, secondsBounds, d.Seconds(), uint64(d))
		}
	})
}

// nanos turns a sum of nanoseconds into seconds.
func nanos(n uint64) float64 { return float64(n) / 1e9 }
