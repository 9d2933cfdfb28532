package cgi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestShortBody: a body that ends before CONTENT_LENGTH is a read error,
// not a complete body; an exact one reads whole; extra bytes are not read.
func TestShortBody(t *testing.T) {
	for _, c := range []struct {
		length  int64
		stdin   string
		want    string
		wantErr error
	}{
		{10, "0123456789", "0123456789", nil},
		{10, "01234", "01234", io.ErrUnexpectedEOF},
		{10, "", "", io.ErrUnexpectedEOF},
		{4, "0123456789", "0123", nil},
	} {
		r, _ := http.NewRequest("PUT", "/x", nil)
		r.ContentLength = c.length
		r.Body = io.NopCloser(io.LimitReader(strings.NewReader(c.stdin), c.length)) // as net/http/cgi does
		fix(r, "/events", "", "10", nil)
		got, err := io.ReadAll(r.Body)
		if string(got) != c.want || !errors.Is(err, c.wantErr) {
			t.Errorf("length %d, stdin %q: read %q, %v; want %q, %v", c.length, c.stdin, got, err, c.want, c.wantErr)
		}
	}
}

// TestFastCGIShortBody: under FastCGI too, STDIN records that end before
// CONTENT_LENGTH make the body fail, and the next request on the
// connection is still read right.
func TestFastCGIShortBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, err.Error())
			return
		}
		io.WriteString(w, "read "+string(b))
	})
	server, client := net.Pipe()
	defer client.Close()
	go serveConn(&fcgiConn{r: bufio.NewReader(server), w: bufio.NewWriter(server), c: server}, h, nil)
	env := map[string]string{"REQUEST_METHOD": "PUT", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/events",
		"PATH_INFO": "/events", "CONTENT_LENGTH": "30"}
	out := fcgiRequest(t, client, 1, env, []byte("only twenty-three bytes"), true)
	if !strings.HasPrefix(out, "Status: 400") || !strings.HasSuffix(out, io.ErrUnexpectedEOF.Error()) {
		t.Fatalf("short body: answer %q", out)
	}
	env["CONTENT_LENGTH"] = "5"
	if out := fcgiRequest(t, client, 2, env, []byte("exact"), true); !strings.HasSuffix(out, "read exact") {
		t.Fatalf("exact body after a short one: answer %q", out)
	}
}
