// Package audit keeps an installation's audit log: who changed accounts,
// tokens, tenants and quotas, who was refused (repeated refusals of one
// principal, route and status fold into one record a minute, with their
// count), and who made each mutating request. The audit log is itself a strata log (a hash chain in
// <data>/system/audit, checked by `strata verify --audit`), so a record
// cannot be altered or removed without the chain showing it.
//
// A record is an event whose type is the action ("tenant.create",
// "auth.refused", "events.append", …) and whose entity is
// "<tenant>/<principal>" ("-" for the tenant of installation-wide
// actions), so the log's own reads answer the usual questions: one
// principal in one tenant is an exact entity, read along its chain;
// a tenant or a principal alone is an entity glob; an action is a type.
// The data is a JSON object: principal, tenant, addr, status and the
// action's details. Secrets (passwords, tokens) are never recorded.
package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"unicode"

	"strata/internal/fileutil"
	"strata/log"
	"strata/query"
)

// NoTenant stands in the entity for actions that belong to no tenant.
const NoTenant = "-"

// Record is one audit entry.
type Record struct {
	Action    string         `json:"-"`
	Principal string         `json:"principal"`
	Tenant    string         `json:"tenant,omitempty"`
	Addr      string         `json:"addr,omitempty"`
	Status    int            `json:"status,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
}

// Log is the audit log.
type Log struct {
	l *log.Log

	// In a long-running process records are queued and written in
	// batches by one goroutine, so a busy server shares the audit log's
	// fsyncs among many requests and no request waits for them.
	queue chan Record
	done  chan struct{}
	once  sync.Once
	// pending counts records queued and not yet written, for Flush.
	mu      sync.Mutex
	cond    *sync.Cond
	pending int
}

// Open opens the audit log in dir. With async, Record queues and a
// goroutine writes; Close writes what is queued.
func Open(dir string, opts log.Options, async bool) (*Log, error) {
	if err := fileutil.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// dir is <data>/system/audit.
	if err := fileutil.Guard(filepath.Dir(filepath.Dir(dir))); err != nil {
		return nil, err
	}
	l, err := log.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a := &Log{l: l}
	if async {
		a.queue = make(chan Record, 4096)
		a.done = make(chan struct{})
		a.cond = sync.NewCond(&a.mu)
		go a.writer()
	}
	return a, nil
}

// Events is the underlying log, for reading and verifying.
func (a *Log) Events() *log.Log { return a.l }

// Record adds records to the audit log: at once and durably, or, in a
// long-running process, queued for the writer.
func (a *Log) Record(recs ...Record) error {
	if a.queue != nil {
		a.mu.Lock()
		a.pending += len(recs)
		a.mu.Unlock()
		for _, r := range recs {
			a.queue <- r
		}
		return nil
	}
	return a.write(recs)
}

// Flush waits until every record queued so far is written, so that a read
// of the audit log sees them.
func (a *Log) Flush() {
	if a.queue == nil {
		return
	}
	a.mu.Lock()
	for a.pending > 0 {
		a.cond.Wait()
	}
	a.mu.Unlock()
}

func (a *Log) write(recs []Record) error {
	req := &log.Request{Events: make([]log.Proposed, len(recs))}
	for i, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("audit %s: %w", r.Action, err)
		}
		req.Events[i] = log.Proposed{Type: r.Action, Entity: Entity(r.Tenant, r.Principal), Data: data, ExpectedVersion: -1}
	}
	if _, err := a.l.Append(req); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// writer writes queued records in batches until Close.
func (a *Log) writer() {
	defer close(a.done)
	batch := make([]Record, 0, 256)
	for r := range a.queue {
		batch = append(batch[:0], r)
	more:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-a.queue:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if err := a.write(batch); err != nil {
			// A batch holds many requests' records: no one request id.
			slog.Error("audit records lost", "records", len(batch), "err", err.Error())
		}
		a.mu.Lock()
		a.pending -= len(batch)
		if a.pending <= 0 {
			a.cond.Broadcast()
		}
		a.mu.Unlock()
	}
}

// Close writes what is queued and closes the log.
func (a *Log) Close() error {
	a.once.Do(func() {
		if a.queue != nil {
			close(a.queue)
			<-a.done
		}
	})
	return a.l.Close()
}

// Entity is the entity of a record: "<tenant>/<principal>", with "-" for no
// tenant. A principal's "/" would split the name; it is written "%2F".
func Entity(tenant, principal string) string {
	if tenant == "" {
		tenant = NoTenant
	}
	if principal == "" {
		principal = "anonymous"
	}
	principal = printable(strings.ReplaceAll(principal, "/", "%2F"))
	if len(tenant)+1+len(principal) > 256 {
		principal = strings.ToValidUTF8(principal[:256-len(tenant)-1], "")
	}
	return tenant + "/" + principal
}

// printable replaces what an entity may not hold — control characters,
// invalid UTF-8 — with '?': a claimed user name in a refused login is the
// client's to choose, and must not keep its refusal out of the record.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
}

// Params turns filters by tenant, principal and action into a read of the
// audit log; the caller adds the bounds (since, until, after, limit).
func Params(tenant, principal, action string) query.Params {
	p := query.Params{Type: action}
	esc := func(s string) string {
		var b strings.Builder
		for _, c := range s {
			if strings.ContainsRune(`*?[\`, c) {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	switch {
	case tenant != "" && principal != "":
		p.Entity = Entity(tenant, principal)
	case tenant != "":
		p.Entity = esc(tenant) + "/*"
	case principal != "":
		p.Entity = "*/" + esc(strings.ReplaceAll(principal, "/", "%2F"))
	}
	return p
}
