package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Parking: a live SSE stream of a standalone server, once caught up, gives
// its goroutine back. It takes its connection over from net/http (which
// then frees the connection's buffers, its request and both of its
// goroutines) and waits in its tenant's hub as a plain struct: its
// cursor, its filters and the connection, some hundreds of bytes where a
// waiting request holds some 28 KB. The hub starts a goroutine for it
// when there is something to do — events published, a heartbeat due, the
// stream's end — which sends as a waiting stream would (from the ring,
// from disk if it fell behind), then parks it again. A slow client holds
// that goroutine only while its writes block; writers and the other
// streams never wait for it.
//
// Only plain streams park: HTTP/1.x (an HTTP/2 connection cannot be taken
// over), SSE (a WebSocket has its own framing and pings), and without a
// Sent callback (a consumer's, which renews a lease on its own schedule).
// The taken-over connection goes on with the chunked encoding net/http
// began, one chunk per flush, and ends with the last chunk.

// parkTick is how often the hub looks for parked streams whose heartbeat
// or end is due.
const parkTick = time.Second

// parking is a streamer's parked state.
type parking struct {
	hub   *hub
	rg    *ring
	cloud bool
	conn  net.Conn
	// busy: a goroutine is working for the stream; wake starts one only
	// when none is.
	busy atomic.Bool
	// beat: a heartbeat is due (set by the hub's tick).
	beat atomic.Bool
	// nextBeat is when the next heartbeat is due (the hub's tick only,
	// under hub.mu); deadline, if set, when the stream ends (timeout).
	nextBeat time.Time
	deadline time.Time
}

// parkOn takes the connection over from net/http and parks the stream in
// hb; false (nothing changed) if the connection cannot be taken over or
// the hub is closing. On true the caller returns: the hub owns the stream.
func (st *streamer) parkOn(w http.ResponseWriter, hb *hub, rg *ring, cloud bool) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	st.out = &sse{w: chunkConn{conn}}
	st.ctx = context.Background() // the request's ends as the handler returns
	st.park.hub, st.park.rg, st.park.cloud, st.park.conn = hb, rg, cloud, conn
	st.park.nextBeat = time.Now().Add(st.h.cfg.Heartbeat)
	if !hb.parkStream(st) {
		st.end("reopened")
		st.closeParked()
		hb.unsubscribe(cloud)
		return true
	}
	return true
}

// chunkConn writes each Write as one chunk of the chunked encoding, in
// one write to the connection.
type chunkConn struct{ c net.Conn }

func (cc chunkConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bp := ssePool.Get().(*[]byte)
	b := strconv.AppendInt((*bp)[:0], int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	_, err := cc.c.Write(b)
	if cap(b) <= 4*sseChunk {
		*bp = b[:0]
		ssePool.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// closeParked ends the chunked answer and closes the connection.
func (st *streamer) closeParked() {
	st.park.conn.SetWriteDeadline(time.Now().Add(time.Second))
	st.park.conn.Write([]byte("0\r\n\r\n"))
	st.park.conn.Close()
}

// wake starts a goroutine for a parked stream unless one is running.
func (st *streamer) wake() {
	if st.park.busy.CompareAndSwap(false, true) {
		go st.resume()
	}
}

// resume is a parked stream's turn: end it if it must end, send a due
// heartbeat, send what was published, and park again — looking once more
// after letting go, since a wake while it was busy started nothing.
func (st *streamer) resume() {
	pk := &st.park
	for {
		reason := st.endReason()
		if reason == "" && !pk.deadline.IsZero() && !time.Now().Before(pk.deadline) {
			reason = "timeout"
		}
		err := error(streamEnd(reason))
		if reason == "" {
			err = nil
			if pk.beat.Swap(false) {
				err = st.heartbeat()
			}
			if err == nil {
				err = st.deliver(pk.rg)
			}
		}
		if err != nil {
			st.fail(err)
			st.closeParked()
			pk.hub.unparkStream(st)
			return
		}
		st.scratch = nil
		after := st.after // not st's once busy is let go: another may run
		pk.busy.Store(false)
		if pk.rg.last.Load() <= after && !pk.beat.Load() && !st.mustEnd() {
			return
		}
		if !pk.busy.CompareAndSwap(false, true) {
			return // another wake took over
		}
	}
}

// mustEnd says whether a stop signal has come.
func (st *streamer) mustEnd() bool { return st.endReason() != "" }

// parkStream adds st to the parked streams; false if the hub is closing.
func (hb *hub) parkStream(st *streamer) bool {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.closed {
		return false
	}
	if hb.parked == nil {
		hb.parked = map[*streamer]struct{}{}
	}
	hb.parked[st] = struct{}{}
	hb.parkedWG.Add(1)
	// It may have missed a publish between its last look and now.
	st.wake()
	return true
}

// unparkStream forgets an ended parked stream, and its subscription.
func (hb *hub) unparkStream(st *streamer) {
	hb.mu.Lock()
	delete(hb.parked, st)
	hb.mu.Unlock()
	hb.unsubscribe(st.park.cloud)
	hb.parkedWG.Done()
}

// wakeParked wakes every parked stream (beat: with a heartbeat due).
func (hb *hub) wakeParked(beat bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.wakeParkedLocked(beat)
}

// wakeParkedLocked is wakeParked with hb.mu held.
func (hb *hub) wakeParkedLocked(beat bool) {
	for st := range hb.parked {
		if beat {
			st.park.beat.Store(true)
		}
		st.wake()
	}
}

// tickParked wakes the parked streams whose heartbeat or end is due.
func (hb *hub) tickParked(now time.Time) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for st := range hb.parked {
		pk := &st.park
		due := false
		if !now.Before(pk.nextBeat) {
			pk.nextBeat = now.Add(st.h.cfg.Heartbeat)
			pk.beat.Store(true)
			due = true
		}
		if !pk.deadline.IsZero() && !now.Before(pk.deadline) {
			due = true
		}
		if due {
			st.wake()
		}
	}
}
