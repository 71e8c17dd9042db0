//go:build cgo

package kinesisbatcher_test

import (
	"fmt"
	"time"

	"github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

func ExamplePlan() {
	records := []kinesisbatcher.Record{
		{Data: []byte(`{"id":1}`), PartitionKey: "user-1"},
		{Data: []byte(`{"id":2}`), PartitionKey: ""}, // refused: empty key
		{Data: []byte(`{"id":3}`), PartitionKey: "user-3"},
	}
	plan, err := kinesisbatcher.Plan(records, kinesisbatcher.KDS())
	if err != nil {
		panic(err)
	}
	for _, r := range plan.Refusals {
		fmt.Printf("record %d refused: %v\n", r.Index, r.Reason)
	}
	for _, b := range plan.Batches {
		// records[b.Start:b.End] is the request: a refused record closes a batch.
		fmt.Printf("request: records %d..%d, %d records, %d bytes\n",
			b.Start, b.End, b.Records, b.Bytes)
	}
	fmt.Printf("%d batches, %d records\n", plan.Stats.Batches, plan.Stats.Records)
	// Output:
	// record 1 refused: key_empty
	// request: records 0..1, 1 records, 14 bytes
	// request: records 2..3, 1 records, 14 bytes
	// 2 batches, 2 records
}

func ExampleBatches() {
	records := make([]kinesisbatcher.Record, 1203)
	for i := range records {
		records[i] = kinesisbatcher.Record{Data: make([]byte, 100), PartitionKey: "device-7"}
	}
	records[700].Data = make([]byte, 2<<20) // refused: over the 1 MiB record cap

	onRefusal := func(r kinesisbatcher.Refusal) {
		fmt.Printf("record %d refused: %v\n", r.Index, r.Reason)
	}
	for recs, b := range kinesisbatcher.Batches(records, kinesisbatcher.KDS(), onRefusal) {
		// recs is one PutRecords request as it stands: no refused record in it.
		fmt.Printf("request %d..%d: %d records\n", b.Start, b.End, len(recs))
	}
	// Output:
	// request 0..500: 500 records
	// request 500..700: 200 records
	// record 700 refused: record_too_large
	// request 701..1201: 500 records
	// request 1201..1203: 2 records
}

// With SpanningRefusals a batch may hold refused records, for fewer requests: skip the
// indices the callback gave when building the request.
func ExampleSpanningRefusals() {
	records := make([]kinesisbatcher.Record, 1203)
	for i := range records {
		records[i] = kinesisbatcher.Record{Data: make([]byte, 100), PartitionKey: "device-7"}
	}
	records[700].Data = make([]byte, 2<<20) // refused: over the 1 MiB record cap

	limits, err := kinesisbatcher.KDS().With(kinesisbatcher.SpanningRefusals())
	if err != nil {
		panic(err)
	}
	refused := map[int]bool{}
	onRefusal := func(r kinesisbatcher.Refusal) { refused[r.Index] = true }
	for recs, b := range kinesisbatcher.Batches(records, limits, onRefusal) {
		sent := 0
		for i := range recs {
			if b.Refused() > 0 && refused[b.Start+i] {
				continue // the refused record inside the range: not sent
			}
			sent++ // add recs[i] to the PutRecords request here
		}
		fmt.Printf("request %d..%d: %d records, %d refused inside\n", b.Start, b.End, sent, b.Refused())
	}
	// Output:
	// request 0..500: 500 records, 0 refused inside
	// request 500..1001: 500 records, 1 refused inside
	// request 1001..1203: 202 records, 0 refused inside
}

func ExampleAccumulator() {
	acc, err := kinesisbatcher.NewAccumulator(kinesisbatcher.KDS())
	if err != nil {
		panic(err)
	}
	defer acc.Close()
	for i := 0; i < 1001; i++ {
		p, err := acc.Push(kinesisbatcher.Record{Data: []byte("event"), PartitionKey: "k"})
		if err != nil {
			panic(err)
		}
		if p.Send {
			fmt.Printf("send records %d..%d\n", p.Batch.Start, p.Batch.End)
		}
	}
	if b, ok := acc.Flush(); ok {
		fmt.Printf("send records %d..%d\n", b.Start, b.End)
	}
	// Output:
	// send records 0..500
	// send records 500..1000
	// send records 1000..1001
}

func ExampleDelivery() {
	records := make([]kinesisbatcher.Record, 1200)
	for i := range records {
		records[i] = kinesisbatcher.Record{Data: []byte("event"), PartitionKey: "device-7"}
	}
	for i := range 20 {
		records[i].PartitionKey = "" // refused: empty key
	}
	d, err := kinesisbatcher.NewDelivery(records, kinesisbatcher.KDS(), kinesisbatcher.RetryPolicy{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	now := time.Unix(0, 0)
	stored, refused, requests := 0, 0, 0
	for {
		req, done, err := d.Next(now)
		if err != nil {
			panic(err)
		}
		refused += len(req.Refusals)
		if done {
			break
		}
		requests++
		// Send req.Entries (req.Runs gives them as sub-slices of records); this
		// pretend response throttles every tenth entry on its first attempt.
		codes := make([]string, len(req.Entries))
		for i, e := range req.Entries {
			if e.Index%10 == 0 && e.Attempts == 0 {
				codes[i] = "ProvisionedThroughputExceededException"
			}
		}
		settled, err := d.Settle(codes, now)
		if err != nil {
			panic(err)
		}
		stored += settled.Accepted
		now = now.Add(d.Backoff(0x9E3779B97F4A7C15))
	}
	fmt.Printf("%d stored, %d refused, %d requests\n", stored, refused, requests)
	// Output:
	// 1180 stored, 20 refused, 4 requests
}
