//go:build cgo

package kinesisbatcher_test

import (
	"fmt"

	"github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

func ExampleAggregate() {
	records := make([]kinesisbatcher.Record, 10000)
	for i := range records {
		records[i] = kinesisbatcher.Record{Data: []byte("a small log line"), PartitionKey: fmt.Sprintf("host-%d", i%3)}
	}
	records[5].PartitionKey = "" // refused: empty key

	// The zero options: each user record keeps its key, all share the aggregate's
	// explicit hash key, so no resharding can make a consumer drop one.
	agg, err := kinesisbatcher.Aggregate(records, kinesisbatcher.KDS(), kinesisbatcher.AggregateOptions{})
	if err != nil {
		panic(err)
	}
	for _, r := range agg.Refusals {
		fmt.Printf("record %d refused: %v\n", r.Index, r.Reason)
	}
	for _, k := range agg.Kinesis {
		fmt.Printf("records %d..%d: %v, key %q, %d bytes\n", k.Start, k.End, k.Layout, k.PartitionKey, len(k.Data))
	}
	// The Kinesis records are records like any: plan them into PutRecords requests.
	for recs, b := range kinesisbatcher.Batches(agg.Records(), kinesisbatcher.KDS(), nil) {
		fmt.Printf("request: %d Kinesis records, %d bytes\n", len(recs), b.Bytes)
	}

	// A consumer gets the user records back.
	k := agg.Kinesis[len(agg.Kinesis)-1]
	users, err := kinesisbatcher.Deaggregate(k.Data, k.PartitionKey, k.ExplicitHashKey)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d user records, the first %q with key %s\n", len(users), users[0].Data, users[0].PartitionKey)
	// Output:
	// record 5 refused: key_empty
	// records 0..5: SharedHashKey, key "a", 205 bytes
	// records 6..10000: SharedHashKey, key "a", 239941 bytes
	// request: 2 Kinesis records, 240148 bytes
	// 9994 user records, the first "a small log line" with key host-0
}

func ExampleShardMap() {
	// Two shards, split at 2^127 (what CreateStream makes with ShardCount 2), as
	// ListShards reports their HashKeyRange.
	first, _ := kinesisbatcher.ParseShardRange("0", "170141183460469231731687303715884105727")
	second, _ := kinesisbatcher.ParseShardRange("170141183460469231731687303715884105728", "340282366920938463463374607431768211455")
	shards, err := kinesisbatcher.NewShardMap([]kinesisbatcher.ShardRange{first, second})
	if err != nil {
		panic(err)
	}
	h, _ := kinesisbatcher.HashKeyOf("pk1", "") // MD5 of the partition key
	fmt.Println(h, "in shard", shards.ShardOf(h))

	// The first shard alone does not cover every hash key: the library names the problem.
	_, err = kinesisbatcher.NewShardMap([]kinesisbatcher.ShardRange{first})
	fmt.Println(err)
	// Output:
	// 329398341438914906102347661116985167824 in shard 1
	// kinesisbatcher: shard map: the last range does not end at 2^128-1
}
