//go:build cgo

package kinesisbatcher

import (
	"fmt"
	"sync"
	"testing"
)

// aggBenchRecords are 100,000 records of 100 bytes, keys of 1,000 users.
var aggBenchRecords = sync.OnceValue(func() []Record {
	recs := make([]Record, 100_000)
	for i := range recs {
		recs[i] = Record{Data: aggData[i : i+100 : i+100], PartitionKey: fmt.Sprintf("user-%04d", i%1000)}
	}
	return recs
})

func benchAggregate(b *testing.B, opts AggregateOptions) {
	recs := aggBenchRecords()
	b.SetBytes(int64(100 * len(recs)))
	b.ResetTimer()
	var kinesis int
	for range b.N {
		agg, err := Aggregate(recs, KDS(), opts)
		if err != nil {
			b.Fatal(err)
		}
		kinesis = len(agg.Kinesis)
	}
	b.ReportMetric(nsPerRecord(b, b.Elapsed(), len(recs)), "ns/record")
	b.ReportMetric(float64(kinesis), "kinesis-records")
}

// BenchmarkAggregate100k: the default mode, aggregates up to the 1 MiB record cap.
func BenchmarkAggregate100k(b *testing.B) { benchAggregate(b, AggregateOptions{}) }

// BenchmarkAggregate100kKPL: aggregates of at most the KPL's default 51,200 bytes.
func BenchmarkAggregate100kKPL(b *testing.B) { benchAggregate(b, AggregateOptions{MaxBytes: 51200}) }

// BenchmarkAggregate100kPlain: OneKey with no two neighbours sharing a key: every record
// plain, the per-Kinesis-record cost.
func BenchmarkAggregate100kPlain(b *testing.B) { benchAggregate(b, AggregateOptions{Mode: OneKey}) }

func BenchmarkDeaggregate100k(b *testing.B) {
	agg, err := Aggregate(aggBenchRecords(), KDS(), AggregateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(100 * len(aggBenchRecords())))
	b.ResetTimer()
	n := 0
	for range b.N {
		n = 0
		for _, k := range agg.Kinesis {
			users, err := Deaggregate(k.Data, k.PartitionKey, k.ExplicitHashKey)
			if err != nil {
				b.Fatal(err)
			}
			n += len(users)
		}
	}
	if n != len(aggBenchRecords()) {
		b.Fatalf("%d user records", n)
	}
	b.ReportMetric(nsPerRecord(b, b.Elapsed(), n), "ns/record")
}
