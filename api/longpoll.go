package api

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"time"

	"strata/log"
	"strata/query"
)

// MaxWait is the longest long-poll (GET /events?wait=<seconds>) a request
// may ask for: well under Apache's default Timeout of 60 s (CGI-NOTES.md),
// which would otherwise cut a CGI answer that is still waiting.
const MaxWait = 55

// waitPoll is how often a waiting read looks at the log's shared head for
// appends made by other processes (CGI, the CLI): one atomic load of the
// mapped head file, and a scan of the new tail only when it moved.
const waitPoll = 50 * time.Millisecond

// tailSignal wakes the long-polls of a tenant when this process appends:
// appended closes the current channel, which every waiter holds, and
// starts a new one.
type tailSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *tailSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *tailSignal) appended() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// latch is a channel closed once, made on first use (a zero Handler has
// one that works).
type latch struct {
	mu     sync.Mutex
	ch     chan struct{}
	closed bool
}

func (l *latch) done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	return l.ch
}

func (l *latch) close() {
	l.done()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		close(l.ch)
		l.closed = true
	}
}

// Drain ends the long-polls waiting now, each answering its page as it
// stands (empty, with its cursor, so the client asks again), and makes
// later ones answer without waiting: for a server shutting down, whose
// drain would otherwise wait out every long-poll.
func (h *Handler) Drain() { h.draining.close() }

// waitParam parses wait=<seconds> (0 when absent): 0 < n ≤ MaxWait.
func waitParam(q url.Values) (time.Duration, error) {
	v, ok := q["wait"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v[len(v)-1])
	if err != nil || n < 1 || n > MaxWait {
		e := errorf("invalid_parameter", "parameter wait: must be a whole number of seconds from 1 to %d", MaxWait)
		e.extra = map[string]any{"parameter": "wait"}
		return 0, e
	}
	return time.Duration(n) * time.Second, nil
}

// errFound ends a probe scan at its first match.
var errFound = errors.New("found")

// waitForEvents returns once the read p would answer a non-empty page (or
// a page that ends early with a cursor, or an error, which the read itself
// then answers), once d has passed, or once ctx is done. Each look scans
// only the tail appended since the previous one, so a filtered wait costs
// the events written during it, not the range from its start point again.
// A closed stop (the server draining) ends it too.
// A read with an upper bound (to, until) does not wait: its range may be
// closed already.
func waitForEvents(ctx context.Context, stop <-chan struct{}, l *log.Log, sig *tailSignal, p query.Params, d time.Duration) {
	if p.To != nil || p.Until != nil {
		return
	}
	probe := func(q query.Params) bool {
		q.Limit = 1
		pl, err := query.Prepare(l, q)
		if err != nil {
			return true
		}
		pg, err := pl.RunContext(ctx, func(*log.Event) error { return errFound })
		return err != nil || pg.Next != 0
	}
	seen := l.Through()
	if probe(p) {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		var woke <-chan struct{}
		if sig != nil {
			woke = sig.wait()
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-timer.C:
			return
		case <-woke:
		case <-tick.C:
		}
		now := l.Through()
		if now == seen {
			continue
		}
		q := p
		q.After = max(p.After, seen)
		seen = now
		if probe(q) {
			return
		}
	}
}
