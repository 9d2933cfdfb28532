package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSSEFraming: startSSE's headers and preamble, the framing of
// messages (default type, named, multi-line data, empty data), comments,
// and a field that would break the framing refused.
func TestSSEFraming(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Content-Encoding", "gzip")
	s := startSSE(w, httptest.NewRequest("GET", "/stream", nil))
	if !w.Flushed {
		t.Fatal("startSSE did not flush")
	}
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream" ||
		w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("X-Accel-Buffering") != "no" ||
		w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("headers: %d %v", w.Code, w.Header())
	}
	if got := w.Body.String(); got != "retry: 2000\n: strata\n\n" {
		t.Fatalf("preamble %q", got)
	}
	w.Body.Reset()
	s.send("abc", "", []byte(`{"a":1}`))
	s.send("", "end", []byte(`{"reason":"timeout"}`))
	s.send("", "", []byte("one\ntwo\r\nthree\rfour"))
	s.send("", "", nil)
	s.comment("ping")
	if w.Body.Len() != 0 {
		t.Fatalf("written before flush: %q", w.Body)
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	want := "id: abc\ndata: {\"a\":1}\n\n" +
		"event: end\ndata: {\"reason\":\"timeout\"}\n\n" +
		"data: one\ndata: two\ndata: three\ndata: four\n\n" +
		"data: \n\n" +
		": ping\n"
	if got := w.Body.String(); got != want {
		t.Fatalf("frames:\n%q\nwant\n%q", got, want)
	}
	if err := s.send("a\nb", "", nil); err == nil {
		t.Fatal("an id with a line break was sent")
	}
	if err := s.send("", "x\ry", nil); err == nil {
		t.Fatal("an event name with a line break was sent")
	}
}

// countWriter counts writes and can be made to fail.
type countWriter struct {
	http.ResponseWriter
	writes, flushes int
	fail            error
}

func (c *countWriter) Write(b []byte) (int, error) {
	c.writes++
	if c.fail != nil {
		return 0, c.fail
	}
	return c.ResponseWriter.Write(b)
}

func (c *countWriter) Flush() { c.flushes++ }

// TestSSEBuffering: a backlog goes out in big writes (not one per event)
// before any flush; after a write error every call returns it.
func TestSSEBuffering(t *testing.T) {
	cw := &countWriter{ResponseWriter: httptest.NewRecorder()}
	s := startSSE(cw, httptest.NewRequest("GET", "/stream", nil))
	cw.writes, cw.flushes = 0, 0
	data := []byte(strings.Repeat("x", 200))
	for range 1000 {
		if err := s.send(strings.Repeat("f", 64), "", data); err != nil {
			t.Fatal(err)
		}
	}
	if cw.flushes != 0 || cw.writes == 0 || cw.writes > 1000*280/sseChunk+1 {
		t.Fatalf("1000 events: %d writes, %d flushes", cw.writes, cw.flushes)
	}
	if err := s.flush(); err != nil || cw.flushes != 1 {
		t.Fatalf("flush: %v, %d flushes", err, cw.flushes)
	}
	if s.buf != nil {
		t.Fatal("a flushed stream holds its buffer")
	}
	gone := errors.New("broken pipe")
	cw.fail = gone
	s.comment("ping")
	if err := s.flush(); !errors.Is(err, gone) {
		t.Fatalf("flush after a failed write: %v", err)
	}
	if err := s.send("", "", nil); !errors.Is(err, gone) {
		t.Fatalf("send after a failed write: %v", err)
	}
}
