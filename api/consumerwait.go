package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"strata/consumers"
	"strata/log"
)

// An append with
//
//	Strata-Wait-Consumer: <name>[, <name>…][; timeout=<ms>]
//
// answers once every consumer named has handled the events it stored that
// its filter takes — committed a position at or past each, or acked it
// (POST /events/<id>/ack) — with the append's own status (201, or 200 when
// every event repeated an earlier one); or at the timeout with 202 and
// Strata-Consumers-Pending naming those that had not. The receipt is the
// same either way. The names are checked before anything is written: one
// that is not a consumer is a 400 and nothing is stored.
const (
	WaitConsumerHeader     = "Strata-Wait-Consumer"
	ConsumersPendingHeader = "Strata-Consumers-Pending"
	// DefaultConsumerWait is the timeout when the header gives none.
	DefaultConsumerWait = 5 * time.Second
)

// consumerPoll is how often a waiting writer looks at the position files
// for commits and acks made by other processes; this process's wake it at
// once (tenant.acks).
const consumerPoll = 20 * time.Millisecond

// consumerWait is one consumer a writer waits for.
type consumerWait struct {
	rec   *consumers.Record
	match func(typ, entity string) bool
}

// parseWaitConsumers reads Strata-Wait-Consumer (nil when absent): the
// consumers, each defined, and the timeout, at most MaxWait seconds.
func parseWaitConsumers(r *http.Request, c *call) ([]consumerWait, time.Duration, error) {
	vals := r.Header.Values(WaitConsumerHeader)
	if len(vals) == 0 {
		return nil, 0, nil
	}
	bad := func(why string) error {
		e := errorf("invalid_header", "%s: %s; send <name>[, <name>…][; timeout=<ms>]", WaitConsumerHeader, why)
		e.extra = map[string]any{"header": WaitConsumerHeader}
		return e
	}
	d := DefaultConsumerWait
	var waits []consumerWait
	seen := map[string]bool{}
	for _, v := range vals {
		names, params, _ := strings.Cut(v, ";")
		for _, p := range strings.Split(params, ";") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			k, val, _ := strings.Cut(p, "=")
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if strings.TrimSpace(k) != "timeout" || err != nil || n < 1 || n > MaxWait*1000 {
				return nil, 0, bad("timeout must be a whole number of milliseconds from 1 to " + strconv.Itoa(MaxWait*1000))
			}
			d = time.Duration(n) * time.Millisecond
		}
		for _, name := range strings.Split(names, ",") {
			name = strings.TrimSpace(name)
			if !consumers.ValidName(name) {
				return nil, 0, bad("consumer name " + strconv.Quote(clip(name)) + " is not a consumer name")
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			rec, err := consumers.ReadDef(c.t.log, name)
			if err != nil && !errors.Is(err, consumers.ErrNoConsumer) {
				return nil, 0, err
			}
			if rec == nil || rec.Deleted || rec.Def == nil {
				e := errorf("unknown_consumer", "%s names %q, which is not a consumer of this tenant; nothing was stored", WaitConsumerHeader, name)
				e.extra = map[string]any{"consumer": name, "header": WaitConsumerHeader}
				return nil, 0, e
			}
			waits = append(waits, consumerWait{rec: rec, match: rec.Def.Filter.Matches()})
		}
	}
	return waits, d, nil
}

// awaitConsumers waits up to d for every consumer of waits to have handled
// the events of res its filter takes, and returns the names of those that
// had not when it stopped (nil: all had). It stops early, with what is
// pending, when ctx ends or the server drains.
func (h *Handler) awaitConsumers(ctx context.Context, c *call, waits []consumerWait, res *log.Result, d time.Duration) []string {
	type pending struct {
		w     consumerWait
		seqs  []uint64
		stamp consumers.Stamp // of the position file last read
	}
	var left []pending
	for _, w := range waits {
		var seqs []uint64
		for _, e := range res.Events {
			if w.match(e.Type, e.Entity) {
				seqs = append(seqs, e.Seq)
			}
		}
		if len(seqs) > 0 { // events outside its filter need nothing from it
			left = append(left, pending{w: w, seqs: seqs})
		}
	}
	store := h.consumerStore(c)
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(consumerPoll)
	defer tick.Stop()
	for stop := false; ; {
		woke := c.t.acks.wait() // taken before looking, so no wake is missed
		kept := left[:0]
		for _, p := range left {
			if !store.Changed(p.w.rec.Name, &p.stamp) {
				kept = append(kept, p) // nothing committed or acked since the last look
				continue
			}
			done, err := store.Done(p.w.rec, p.seqs)
			if err != nil {
				c.ri.logger(h).Warn("read consumer position", "consumer", p.w.rec.Name, "err", err.Error())
			}
			if !done {
				kept = append(kept, p)
			}
		}
		left = kept
		if len(left) == 0 {
			return nil
		}
		if stop {
			names := make([]string, len(left))
			for i, p := range left {
				names[i] = p.w.rec.Name
			}
			return names
		}
		select {
		case <-woke:
		case <-tick.C:
		case <-ctx.Done():
			stop = true
		case <-h.draining.done():
			stop = true
		case <-timer.C:
			stop = true // one last look, then the answer
		}
	}
}
