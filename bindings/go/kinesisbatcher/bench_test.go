//go:build cgo

package kinesisbatcher

import (
	"math/rand/v2"
	"sync"
	"testing"
	"unicode/utf8"
)

// benchRecords are 1,000,000 records as in the Rust benches: 10-2000 byte payloads
// (views of one shared buffer: only their length matters), 16-36 byte ASCII keys,
// 0.1% refused (empty key).
var benchRecords = sync.OnceValue(func() []Record {
	rng := rand.New(rand.NewPCG(42, 42))
	buf := make([]byte, 2000)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	keys := make([]string, 4096)
	for i := range keys {
		k := make([]byte, 16+rng.IntN(21))
		for j := range k {
			k[j] = alphabet[rng.IntN(len(alphabet))]
		}
		keys[i] = string(k)
	}
	recs := make([]Record, 1_000_000)
	for i := range recs {
		n := 10 + rng.IntN(1991)
		recs[i] = Record{Data: buf[:n:n], PartitionKey: keys[rng.IntN(len(keys))]}
		if rng.IntN(1000) == 0 {
			recs[i].PartitionKey = ""
		}
	}
	return recs
})

// plainGoPlan is what a producer writes by hand: the same accounting (data + key bytes,
// UTF-8 validation, rune count) and greedy batching, into the same result shape.
func plainGoPlan(records []Record, maxRecords, maxRequest, maxRecord int) ([]Batch, []Refusal) {
	batches := make([]Batch, 0, len(records)/400+1)
	var refusals []Refusal
	open := Batch{Start: -1}
	for i := range records {
		r := &records[i]
		k := r.PartitionKey
		var reason Reason = 255
		switch {
		case !utf8.ValidString(k):
			reason = KeyNotUTF8
		case k == "":
			reason = KeyEmpty
		case utf8.RuneCountInString(k) > 256:
			reason = KeyTooLong
		}
		size := len(r.Data) + len(k)
		if reason == 255 && size > maxRecord {
			reason = RecordTooLarge
		}
		if reason != 255 {
			refusals = append(refusals, Refusal{i, reason})
			continue
		}
		if open.Start >= 0 && (open.Records == maxRecords || open.Bytes+size > maxRequest) {
			batches = append(batches, open)
			open = Batch{Start: -1}
		}
		if open.Start < 0 {
			open = Batch{Start: i}
		}
		open.End = i + 1
		open.Records++
		open.Bytes += size
	}
	if open.Start >= 0 {
		batches = append(batches, open)
	}
	return batches, refusals
}

func TestBenchInputsAgree(t *testing.T) {
	recs := benchRecords()[:200_000]
	res, err := Plan(recs, KDS())
	if err != nil {
		t.Fatal(err)
	}
	b, r := plainGoPlan(recs, 500, 10<<20, 1<<20)
	if !equal(res.Batches, b) || !equal(res.Refusals, r) {
		t.Fatal("the binding and the plain-Go loop disagree")
	}
}

func BenchmarkPlan1M(b *testing.B) {
	l := KDS()
	recs := benchRecords()
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		if _, err := Plan(recs, l); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}

func BenchmarkBatches1M(b *testing.B) {
	l := KDS()
	recs := benchRecords()
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		n := 0
		for sub := range Batches(recs, l, nil) {
			n += len(sub)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}

func BenchmarkPlainGo1M(b *testing.B) {
	recs := benchRecords()
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		plainGoPlan(recs, 500, 10<<20, 1<<20)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}

func BenchmarkAccumulatorPush(b *testing.B) {
	recs := benchRecords()
	acc, _ := NewAccumulator(KDS())
	defer acc.Close()
	b.ResetTimer()
	for i := range b.N {
		acc.Push(recs[i%len(recs)])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
}
