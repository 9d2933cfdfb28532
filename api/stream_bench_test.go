package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkStreamFanout: one append delivered to 1,000 open streams of a
// long-running handler (over loopback TCP, clients that only read): the
// time per append until every stream has written it.
func BenchmarkStreamFanout(b *testing.B) {
	h := newHandler(b, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	defer srv.Close()
	appendN(b, h, "a.b", "x", 1)
	const subs = 1000
	addr := strings.TrimPrefix(srv.URL, "http://")
	got := make(chan struct{}, subs*4)
	for range subs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /stream?after=1 HTTP/1.1\r\nHost: x\r\n\r\n")
		go func() {
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) > 6 && string(line[:6]) == "data: " {
					got <- struct{}{}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	b.ResetTimer()
	for range b.N {
		appendN(b, h, "a.b", "x", 1)
		for range subs {
			<-got
		}
	}
}

// BenchmarkStreamWake: 1,000 open streams whose filter skips every
// append: the cost of waking them.
func BenchmarkStreamWake(b *testing.B) {
	h := newHandler(b, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	defer srv.Close()
	appendN(b, h, "a.b", "x", 1)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /stream?after=1&type=other HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	time.Sleep(time.Second)
	b.ResetTimer()
	for range b.N {
		appendN(b, h, "a.b", "x", 1)
	}
}

// BenchmarkStreamCatchUp: a stream's backlog, 100,000 events read from
// the log and sent to one client over loopback (ns/op is per event).
func BenchmarkStreamCatchUp(b *testing.B) {
	h := newHandler(b, Config{LongRunning: true})
	srv := httptest.NewServer(h)
	defer srv.Close()
	const n = 100000
	for range n / 10000 {
		appendN(b, h, "order.placed", "orders/1", 10000)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReaderSize(c, 1<<20)
		for got := 0; got < n; {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) > 6 && string(line[:6]) == "data: " {
				got++
			}
		}
		c.Close()
	}
}
