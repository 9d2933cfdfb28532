package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Server-Sent Events (the WHATWG "text/event-stream" format), the wire
// format of every stream strata serves: GET /stream, a consumer's stream,
// a broadcast channel. Events go out as the default message type (no
// "event:" line) so a plain EventSource's onmessage gets them; other
// kinds (the "end" of a stream) are named. Heartbeats are comment lines.

// sseRetry is the reconnection delay an EventSource is told to use after
// a stream ends or breaks (the "retry:" field, in milliseconds): soon
// enough that a CGI stream, which ends every few tens of seconds, resumes
// almost at once, late enough not to hammer a server that is restarting.
const sseRetry = 2000

// sseChunk is how many bytes of frames an sse gathers before it writes
// them to the connection, flushed or not: a backlog goes out in big
// writes, not one per event.
const sseChunk = 32 << 10

// sink is where a stream's messages go, whatever the transport: *sse for
// Server-Sent Events, a WebSocket connection in standalone. send and
// comment may buffer; flush pushes what is buffered to the client. An
// error from any of them means the client is gone (under CGI the only
// sign of it) and ends the stream.
type sink interface {
	// send sends one message: id ("" for none) as its id, event ("" for
	// the default message type) as its kind, data as its payload.
	send(id, event string, data []byte) error
	// comment sends text as a comment (a heartbeat), ignored by clients.
	comment(text string) error
	// flush sends what is buffered now.
	flush() error
}

var _ sink = (*sse)(nil)

// sse writes one event stream. Frames gather in a buffer taken from a pool
// on the first send and given back on every flush, so an idle subscriber
// holds no buffer of its own (thousands of them wait at once).
type sse struct {
	w   io.Writer
	rc  *http.ResponseController // nil: w writes to the connection itself
	buf *[]byte                  // nil between flushes
	err error                    // the first write error: every later call returns it
}

var ssePool = sync.Pool{New: func() any { b := make([]byte, 0, sseChunk+4096); return &b }}

// startSSE answers r with status 200 and an event stream: headers that
// keep caches and proxies from holding it back (no Content-Encoding, which
// would make a compressing proxy buffer it), the retry delay and a first
// comment, flushed at once. (Under CGI a flush before the first write
// sends nothing, so the comment is what makes the headers go out.)
func startSSE(w http.ResponseWriter, r *http.Request) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Encoding")
	h.Del("Content-Length")
	h.Del("ETag")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	s.write(func(b []byte) []byte {
		b = append(b, "retry: "...)
		b = strconv.AppendInt(b, sseRetry, 10)
		return append(b, "\n: strata\n\n"...)
	})
	s.flush()
	return s
}

// errBadField: an id or event name that would break the framing.
var errBadField = errors.New("sse: id or event name with a line break or NUL")

// send writes one message. data may hold several lines (each becomes a
// "data:" line); "" data still makes a message.
func (s *sse) send(id, event string, data []byte) error {
	if !fieldSafe(id) || !fieldSafe(event) {
		return errBadField
	}
	return s.write(func(b []byte) []byte {
		if event != "" {
			b = append(b, "event: "...)
			b = append(b, event...)
			b = append(b, '\n')
		}
		if id != "" {
			b = append(b, "id: "...)
			b = append(b, id...)
			b = append(b, '\n')
		}
		b = appendLines(b, "data: ", data)
		return append(b, '\n')
	})
}

// fieldSafe reports whether s can stand in an id or event line: no line
// break, no NUL (a loop, not strings.ContainsAny: it runs for every event
// of a backlog).
func fieldSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c == '\r' || c == 0 {
			return false
		}
	}
	return true
}

// comment writes a comment line (": text"), which clients ignore: a
// heartbeat that keeps proxies and Apache's Timeout from ending an idle
// stream.
func (s *sse) comment(text string) error {
	return s.write(func(b []byte) []byte {
		return appendLines(b, ": ", []byte(text))
	})
}

// appendLines appends each line of data (split at \r\n, \r or \n, the
// format's line ends) as prefix+line+"\n"; empty data is one empty line.
func appendLines(b []byte, prefix string, data []byte) []byte {
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		b = append(b, prefix...)
		b = append(b, data...)
		return append(b, '\n')
	}
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, prefix...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, prefix...)
	b = append(b, data...)
	return append(b, '\n')
}

// write appends a frame to the buffer and writes the buffer out once it
// holds sseChunk bytes.
func (s *sse) write(frame func([]byte) []byte) error {
	if s.err != nil {
		return s.err
	}
	if s.buf == nil {
		s.buf = ssePool.Get().(*[]byte)
	}
	*s.buf = frame(*s.buf)
	if len(*s.buf) >= sseChunk {
		return s.writeOut()
	}
	return nil
}

// writeOut writes the buffer to the connection, unflushed.
func (s *sse) writeOut() error {
	if s.buf == nil || len(*s.buf) == 0 {
		return s.err
	}
	_, err := s.w.Write(*s.buf)
	*s.buf = (*s.buf)[:0]
	if err != nil && s.err == nil {
		s.err = err
	}
	return s.err
}

// flush writes what is buffered and flushes the connection, then gives
// the buffer back to the pool.
func (s *sse) flush() error {
	err := s.writeOut()
	if s.buf != nil {
		if cap(*s.buf) <= 4*sseChunk { // one grown by a huge event is let go
			ssePool.Put(s.buf)
		}
		s.buf = nil
	}
	if err != nil {
		return err
	}
	if s.rc == nil {
		return nil
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
	return s.err
}
