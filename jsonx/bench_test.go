package jsonx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// benchBody builds n realistic events of about 400 bytes each, as a JSON
// array or as NDJSON.
func benchBody(n int, ndjson bool) []byte {
	var b bytes.Buffer
	if !ndjson {
		b.WriteByte('[')
	}
	for i := range n {
		if i > 0 && !ndjson {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"order.placed","entity":"order-%d","key":"c-77-%d","expected_version":%d,`+
			`"data":{"sku":"A-%d","qty":%d,"price":19.99,"currency":"EUR","customer":{"id":"cust-%d","name":"Zoë Müller","email":"zoe%d@example.com"},`+
			`"lines":[{"sku":"A-1","qty":1,"price":9.5},{"sku":"B-22","qty":2,"price":5.245}],"note":"ring twice \"please\"","gift":false},`+
			`"meta":{"source":"shop","correlation_id":"6f1c2a9e-0b7d-4e43-9a51-%012d"}}`,
			i, i, i%17, i, i%9+1, i%1000, i, i)
		if ndjson {
			b.WriteByte('\n')
		}
	}
	if !ndjson {
		b.WriteByte(']')
	}
	return b.Bytes()
}

func BenchmarkParseEvents(b *testing.B) {
	body := benchBody(1000, false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvents(body, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
}

func BenchmarkParseEventsNDJSON(b *testing.B) {
	body := benchBody(1000, true)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvents(body, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEventsIndented is the same batch as a client that pretty
// prints would send it, so whitespace removal is exercised.
func BenchmarkParseEventsIndented(b *testing.B) {
	var ind bytes.Buffer
	if err := json.Indent(&ind, benchBody(1000, false), "", "  "); err != nil {
		b.Fatal(err)
	}
	body := ind.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvents(body, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompact(b *testing.B) {
	body := benchBody(1000, false)
	dst := make([]byte, 0, len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = Compact(dst[:0], body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlibCompact is the yardstick Compact replaces.
func BenchmarkStdlibCompact(b *testing.B) {
	body := benchBody(1000, false)
	var dst bytes.Buffer
	dst.Grow(len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if err := json.Compact(&dst, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "order-123 Zoë Müller, leave at the door \"please\""
	dst := make([]byte, 0, 128)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		dst = AppendString(dst[:0], s)
	}
}
