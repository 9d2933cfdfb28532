package log

import (
	"fmt"
	"sync"
	"testing"
)

func benchEvents(n, offset int) []Proposed {
	evs := make([]Proposed, n)
	for i := range evs {
		evs[i] = Proposed{Type: "order.placed", Entity: fmt.Sprintf("order-%d", (offset+i)%100000),
			Data:            []byte(fmt.Sprintf(`{"sku":"SKU-%06d","qty":%d,"price":"19.99","currency":"EUR","customer":"cust-%d","note":"a realistic note of some length"}`, i, i%7, i%997)),
			ExpectedVersion: -1}
	}
	return evs
}

// BenchmarkAppendBatch: 1,000 events per request, fsync per request.
func BenchmarkAppendBatch(b *testing.B) {
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(&Request{Events: benchEvents(1000, i*1000)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendConcurrent: 64 goroutines appending one event each time
// (group commit).
func BenchmarkAppendConcurrent(b *testing.B) {
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := l.Append(&Request{Events: benchEvents(1, g*per+i)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*64)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatchConcurrent: 8 goroutines appending 1,000-event
// batches, as 8 HTTP clients would.
func BenchmarkAppendBatchConcurrent(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			batches := make([][]Proposed, 8)
			for i := range batches {
				batches[i] = benchEvents(1000, i*1000)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/8 + 1
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						evs := append([]Proposed(nil), batches[g]...)
						if _, err := l.Append(&Request{Events: evs}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*8*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkEntityReadFirst: the first event of an entity with 200,000
// events, as GET /events?entity=e&limit=1 reads it (a checkpoint, then at
// most 64 records back); it costs the same at any length.
func BenchmarkEntityReadFirst(b *testing.B) {
	l, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 200_000; i += 4000 {
		evs := benchEvents(4000, i)
		for j := range evs {
			evs[j].Entity = "hot"
		}
		if _, err := l.Append(&Request{Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	before := l.RecordsRead()
	for i := 0; i < b.N; i++ {
		it := l.ScanEntity("hot", 0, l.Through())
		if !it.Next() || it.Event().Seq != 1 {
			b.Fatal(it.Err())
		}
	}
	b.ReportMetric(float64(l.RecordsRead()-before)/float64(b.N), "records/op")
}

// BenchmarkScan: Scan (decoded events) and ScanRaw (records) over 100,000
// events of ~190 bytes of data.
func BenchmarkScan(b *testing.B) {
	l, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 100000
	for i := 0; i < n; i += 1000 {
		if _, err := l.Append(&Request{Events: benchEvents(1000, i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("decoded", func(b *testing.B) {
		for b.Loop() {
			it := l.Scan(1, n)
			for it.Next() {
			}
			if it.Err() != nil {
				b.Fatal(it.Err())
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			it := l.ScanRaw(1, n)
			for it.Next() {
			}
			if it.Err() != nil {
				b.Fatal(it.Err())
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
