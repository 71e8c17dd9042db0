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
		fmt.Printf("request: records %d..%d, %d records, %d bytes, %d refused inside\n",
			b.Start, b.End, b.Records, b.Bytes, b.Refused())
	}
	fmt.Printf("%d batch, %d records\n", plan.Stats.Batches, plan.Stats.Records)
	// Output:
	// record 1 refused: key_empty
	// request: records 0..3, 2 records, 28 bytes, 1 refused inside
	// 1 batch, 2 records
}

func ExampleBatches() {
	records := make([]kinesisbatcher.Record, 1203)
	for i := range records {
		records[i] = kinesisbatcher.Record{Data: make([]byte, 100), PartitionKey: "device-7"}
	}
	records[1000].Data = make([]byte, 2<<20) // refused: over the 1 MiB record cap

	refused := map[int]bool{}
	onRefusal := func(r kinesisbatcher.Refusal) {
		fmt.Printf("record %d refused: %v\n", r.Index, r.Reason)
		refused[r.Index] = true
	}
	for recs, b := range kinesisbatcher.Batches(records, kinesisbatcher.KDS(), onRefusal) {
		sent := 0
		for i := range recs {
			if b.Refused() > 0 && refused[b.Start+i] {
				continue // skip the refused record inside the range
			}
			sent++ // add recs[i] to the PutRecords request here
		}
		fmt.Printf("request %d..%d: %d records\n", b.Start, b.End, sent)
	}
	// Output:
	// request 0..500: 500 records
	// request 500..1000: 500 records
	// record 1000 refused: record_too_large
	// request 1001..1203: 202 records
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
