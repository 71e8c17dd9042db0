//go:build cgo

package kinesisbatcher

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// aggData is random bytes that records' data are cut from, so that a round trip that
// mixes records up shows.
var aggData = func() []byte {
	b := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

func dataAt(rng *rand.Rand, n int) []byte {
	n = min(n, len(aggData))
	off := rng.IntN(len(aggData) - n + 1)
	return aggData[off : off+n : off+n]
}

// checkAggregated checks an Aggregate result against its input: every index once, the
// sizes, the layouts the mode makes, the keys, and the round trip through Deaggregate.
func checkAggregated(t testing.TB, recs []Record, l Limits, opts AggregateOptions, agg *Aggregated) {
	t.Helper()
	seen := make([]int, len(recs))
	for _, r := range agg.Refusals {
		seen[r.Index]++
	}
	maxBytes := l.MaxRecordBytes()
	if opts.MaxBytes > 0 && opts.MaxBytes < maxBytes {
		maxBytes = opts.MaxBytes
	}
	prevEnd := 0
	for i := range agg.Kinesis {
		k := &agg.Kinesis[i]
		if k.Start >= k.End || k.Start < prevEnd || k.End > len(recs) {
			t.Fatalf("kinesis record %d: range %d..%d after %d", i, k.Start, k.End, prevEnd)
		}
		prevEnd = k.End
		for j := k.Start; j < k.End; j++ {
			seen[j]++
		}
		// Size as the service counts it, within the caps.
		want := len(k.Data) + len(k.PartitionKey)
		if l.CountsHashKeys() {
			want += len(k.ExplicitHashKey)
		}
		if k.Size != want || k.Size > l.MaxRecordBytes() {
			t.Fatalf("kinesis record %d: size %d, want %d (cap %d)", i, k.Size, want, l.MaxRecordBytes())
		}
		if k.Layout != LayoutPlain && k.Size > maxBytes {
			t.Fatalf("kinesis record %d: aggregate of %d bytes over MaxBytes %d", i, k.Size, maxBytes)
		}
		wantLayout := map[AggregationMode]Layout{SharedHashKey: LayoutSharedHashKey, OneKey: LayoutOneKey, PerShard: LayoutOwnKeys}[opts.Mode]
		if (k.End-k.Start == 1) != (k.Layout == LayoutPlain) || k.Layout != LayoutPlain && k.Layout != wantLayout {
			t.Fatalf("kinesis record %d: %d records in layout %v (mode %v)", i, k.End-k.Start, k.Layout, opts.Mode)
		}
		// The outer keys route it to its hash key.
		if h, err := HashKeyOf(k.PartitionKey, k.ExplicitHashKey); err != nil || h != k.HashKey {
			t.Fatalf("kinesis record %d: HashKeyOf(%q, %q) = %v %v, HashKey %v", i, k.PartitionKey, k.ExplicitHashKey, h, err, k.HashKey)
		}
		users, err := Deaggregate(k.Data, k.PartitionKey, k.ExplicitHashKey)
		if err != nil {
			t.Fatalf("kinesis record %d (%v): %v", i, k.Layout, err)
		}
		if len(users) != k.End-k.Start {
			t.Fatalf("kinesis record %d: %d user records back, want %d", i, len(users), k.End-k.Start)
		}
		var shard int
		if opts.Mode == PerShard {
			shard = opts.Shards.ShardOf(k.HashKey)
		}
		for j, u := range users {
			in := recs[k.Start+j]
			wantEHK := in.ExplicitHashKey
			if k.Layout == LayoutSharedHashKey {
				// The mode's documented behaviour: every user record points to the
				// aggregate's hash key, and one with its own had that very one.
				wantEHK = k.ExplicitHashKey
				if in.ExplicitHashKey != "" && in.ExplicitHashKey != k.ExplicitHashKey {
					t.Fatalf("record %d: own hash key %s in an aggregate of %s", k.Start+j, in.ExplicitHashKey, k.ExplicitHashKey)
				}
			}
			if !bytes.Equal(u.Data, in.Data) || u.PartitionKey != in.PartitionKey || u.ExplicitHashKey != wantEHK {
				t.Fatalf("record %d (%v): got %q/%q/%q(len %d), want %q/%q/%q(len %d)", k.Start+j, k.Layout,
					u.PartitionKey, u.ExplicitHashKey, trim(u.Data), len(u.Data), in.PartitionKey, wantEHK, trim(in.Data), len(in.Data))
			}
			if k.Layout == LayoutOneKey && (in.PartitionKey != k.PartitionKey || in.ExplicitHashKey != k.ExplicitHashKey) {
				t.Fatalf("record %d: keys %q/%q in a one-key aggregate of %q/%q", k.Start+j, in.PartitionKey, in.ExplicitHashKey, k.PartitionKey, k.ExplicitHashKey)
			}
			if opts.Mode == PerShard {
				h, err := HashKeyOf(in.PartitionKey, in.ExplicitHashKey)
				if err != nil || opts.Shards.ShardOf(h) != shard {
					t.Fatalf("record %d: hash key %v (%v) not in shard %d of its Kinesis record", k.Start+j, h, err, shard)
				}
			}
		}
		if len(k.Data) > 0 && k.Layout == LayoutPlain && &k.Data[0] == &recs[k.Start].Data[0] {
			t.Fatalf("kinesis record %d: Data aliases the input", i)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("input %d accounted %d times", i, n)
		}
	}
	// Refused exactly as the planner refuses.
	plan, err := Plan(recs, l)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(plan.Refusals, agg.Refusals) {
		t.Fatalf("refusals %v, the planner's %v", agg.Refusals, plan.Refusals)
	}
	// The Kinesis records plan into requests under the same limits, none refused.
	out, err := Plan(agg.Records(), l)
	if err != nil || len(out.Refusals) != 0 || out.Stats.Records != len(agg.Kinesis) {
		t.Fatalf("planning the Kinesis records: %v, %+v", err, out.Refusals)
	}
}

func trim(b []byte) []byte { return b[:min(len(b), 8)] }

func mustAggregate(t testing.TB, recs []Record, l Limits, opts AggregateOptions) *Aggregated {
	t.Helper()
	agg, err := Aggregate(recs, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkAggregated(t, recs, l, opts, agg)
	return agg
}

func fourShards(t testing.TB) *ShardMap {
	q := func(i uint64) HashKey { return HashKey{Hi: i << 62} }
	m, err := NewShardMap([]ShardRange{
		{Start: q(0), End: minusOne(q(1))}, {Start: q(1), End: minusOne(q(2))},
		{Start: q(2), End: minusOne(q(3))}, {Start: q(3), End: MaxHashKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func allModes(t testing.TB) []AggregateOptions {
	return []AggregateOptions{{}, {Mode: OneKey}, {Mode: PerShard, Shards: fourShards(t)}}
}

func TestAggregateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := make([]Record, 5000)
	for i := range recs {
		recs[i] = Record{Data: dataAt(rng, rng.IntN(300)), PartitionKey: fmt.Sprintf("user-%d", rng.IntN(20)/8)}
		if rng.IntN(10) == 0 {
			recs[i].ExplicitHashKey = randHash(rng).String()
		}
	}
	for _, opts := range allModes(t) {
		for _, maxBytes := range []int{0, 51200, 1000, 1} {
			opts.MaxBytes = maxBytes
			agg := mustAggregate(t, recs, KDS(), opts)
			if maxBytes == 0 && opts.Mode == SharedHashKey && len(agg.Kinesis) > 600 {
				t.Fatalf("shared hash key, record cap: %d Kinesis records for 5000 small ones", len(agg.Kinesis))
			}
			if maxBytes == 1 {
				for _, k := range agg.Kinesis {
					if k.Layout != LayoutPlain {
						t.Fatalf("MaxBytes 1: %v", k.Layout)
					}
				}
			}
		}
	}
}

func TestAggregateProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 300 {
		l := randLimits(rng)
		n := rng.IntN(60)
		recs := randRecords(rng, n, l)
		for i := range recs {
			recs[i].Data = dataAt(rng, len(recs[i].Data))
			if rng.IntN(3) == 0 && i > 0 { // runs of one key, for OneKey
				recs[i].PartitionKey, recs[i].ExplicitHashKey = recs[i-1].PartitionKey, recs[i-1].ExplicitHashKey
			}
		}
		opts := allModes(t)[rng.IntN(3)]
		opts.MaxBytes = []int{0, 0, rng.IntN(3000), -1}[rng.IntN(4)]
		agg, err := Aggregate(recs, l, opts)
		if !l.PartitionKeys() {
			if !errors.Is(err, ErrInvalidLimits) {
				t.Fatalf("%d: limits without keys: %v", iter, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d: %v", iter, err)
		}
		checkAggregated(t, recs, l, opts, agg)
	}
}

func TestAggregateLarge(t *testing.T) {
	// More Kinesis records and refusals than one planning call writes.
	rng := rand.New(rand.NewPCG(11, 12))
	recs := make([]Record, 3*aggregateChunk+17)
	for i := range recs {
		recs[i] = Record{Data: dataAt(rng, rng.IntN(50)), PartitionKey: fmt.Sprintf("k%d", i)}
		if i%3 == 0 {
			recs[i].PartitionKey = ""
		}
	}
	agg := mustAggregate(t, recs, KDS(), AggregateOptions{Mode: OneKey})
	if len(agg.Kinesis) <= aggregateChunk || len(agg.Refusals) <= aggregateChunk {
		t.Fatalf("%d Kinesis records, %d refusals", len(agg.Kinesis), len(agg.Refusals))
	}
	mustAggregate(t, recs, KDS(), AggregateOptions{MaxBytes: 200})
}

func TestAggregateRefusals(t *testing.T) {
	l := KDS()
	capB := l.MaxRecordBytes()
	recs := []Record{
		{Data: []byte("a"), PartitionKey: "k"},
		{Data: []byte("b"), PartitionKey: ""},
		{Data: []byte("c"), PartitionKey: "k"},
		{Data: make([]byte, capB), PartitionKey: "k"},
		{Data: []byte("d"), PartitionKey: "k", ExplicitHashKey: "01"},
		{Data: []byte("e"), PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"},
		{Data: []byte("f"), PartitionKey: "k", ExplicitHashKey: "x"},
		{Data: []byte("g"), PartitionKey: strings.Repeat("é", 257)},
		{Data: []byte("h"), PartitionKey: "k\xff"},
		{Data: []byte("i"), PartitionKey: "k"},
	}
	for _, opts := range allModes(t) {
		agg := mustAggregate(t, recs, l, opts)
		want := []Refusal{{1, KeyEmpty}, {3, RecordTooLarge}, {4, HashKeyInvalid}, {5, HashKeyInvalid},
			{6, HashKeyInvalid}, {7, KeyTooLong}, {8, KeyNotUTF8}}
		if !equal(agg.Refusals, want) {
			t.Fatalf("%v: refusals %v", opts.Mode, agg.Refusals)
		}
	}
}

func TestAggregateBoundaries(t *testing.T) {
	l := KDS()
	recs := []Record{
		{Data: []byte("first"), PartitionKey: "alpha"},
		{Data: []byte("second"), PartitionKey: "beta"},
		{Data: []byte("third"), PartitionKey: "gamma"},
	}
	for _, opts := range []AggregateOptions{{}, {Mode: PerShard, Shards: fourShards(t)}} {
		// The size of the aggregate of the first two, then MaxBytes exactly that, one
		// less, one more.
		two := mustAggregate(t, recs[:2], l, opts)
		if len(two.Kinesis) != 1 || two.Kinesis[0].Layout == LayoutPlain {
			if opts.Mode == PerShard {
				continue // the two keys in different shards: nothing to measure
			}
			t.Fatalf("two records: %+v", two.Kinesis)
		}
		size := two.Kinesis[0].Size
		opts.MaxBytes = size
		exact := mustAggregate(t, recs[:2], l, opts)
		if len(exact.Kinesis) != 1 || exact.Kinesis[0].Size != size {
			t.Fatalf("MaxBytes %d exactly: %+v", size, exact.Kinesis)
		}
		opts.MaxBytes = size - 1
		if under := mustAggregate(t, recs[:2], l, opts); len(under.Kinesis) != 2 || under.Kinesis[0].Layout != LayoutPlain {
			t.Fatalf("MaxBytes %d (one under): %+v", size-1, under.Kinesis)
		}
		opts.MaxBytes = size + 1
		if over := mustAggregate(t, recs[:2], l, opts); len(over.Kinesis) != 1 {
			t.Fatalf("MaxBytes %d (one over): %+v", size+1, over.Kinesis)
		}
		// The third record does not fit in size bytes: it is sent plain, alone.
		opts.MaxBytes = size
		if three := mustAggregate(t, recs, l, opts); len(three.Kinesis) != 2 || three.Kinesis[0].End != 2 || three.Kinesis[1].Layout != LayoutPlain {
			t.Fatalf("three records in %d bytes: %+v", size, three.Kinesis)
		}
	}

	// A single record is plain, its data a copy, its keys its own.
	one := []Record{{Data: []byte("solo"), PartitionKey: "key", ExplicitHashKey: "42"}}
	for _, opts := range allModes(t) {
		agg := mustAggregate(t, one, l, opts)
		k := agg.Kinesis[0]
		if len(agg.Kinesis) != 1 || k.Layout != LayoutPlain || string(k.Data) != "solo" || k.PartitionKey != "key" ||
			k.ExplicitHashKey != "42" || k.HashKey != (HashKey{Lo: 42}) || k.Size != 4+3 {
			t.Fatalf("%v: single record: %+v", opts.Mode, k)
		}
	}

	// The record cap: exactly (plain, accepted) and one over (refused).
	capB := l.MaxRecordBytes()
	big := []Record{
		{Data: make([]byte, capB-1), PartitionKey: "k"},
		{Data: make([]byte, capB), PartitionKey: "k"},
		{Data: []byte("x"), PartitionKey: "k"},
	}
	agg := mustAggregate(t, big, l, AggregateOptions{})
	if len(agg.Kinesis) != 2 || agg.Kinesis[0].Size != capB || agg.Kinesis[0].Layout != LayoutPlain ||
		!equal(agg.Refusals, []Refusal{{1, RecordTooLarge}}) {
		t.Fatalf("record cap: %+v %v", agg.Kinesis, agg.Refusals)
	}

	// Empty data, and 256-character keys of two- and four-byte characters.
	keys := []string{strings.Repeat("é", 256), strings.Repeat("😀", 256), strings.Repeat("é", 255) + "😀"}
	var recs2 []Record
	for i := range 30 {
		recs2 = append(recs2, Record{Data: nil, PartitionKey: keys[i/10]}, Record{Data: []byte{}, PartitionKey: keys[(i/3)%3]})
	}
	for _, opts := range allModes(t) {
		agg := mustAggregate(t, recs2, l, opts)
		if len(agg.Refusals) != 0 {
			t.Fatalf("%v: %v", opts.Mode, agg.Refusals)
		}
	}
	lu, _ := l.With(WithKeyUnit(UTF16Units)) // 😀 is two UTF-16 units: refused
	agg = mustAggregate(t, recs2, lu, AggregateOptions{})
	if len(agg.Refusals) == 0 || agg.Refusals[0].Reason != KeyTooLong {
		t.Fatalf("UTF-16 units: %v", agg.Refusals)
	}

	// Nothing in, nothing out.
	if agg, err := Aggregate(nil, l, AggregateOptions{}); err != nil || len(agg.Kinesis)+len(agg.Refusals) != 0 {
		t.Fatalf("empty: %+v %v", agg, err)
	}
}

// The zero values: KDS limits, the shared hash key mode, the record cap.
func TestAggregateZeroValues(t *testing.T) {
	recs := make([]Record, 10000)
	for i := range recs {
		recs[i] = Record{Data: []byte("a small log line"), PartitionKey: fmt.Sprintf("host-%d", i%7)}
	}
	agg := mustAggregate(t, recs, Limits{}, AggregateOptions{})
	if len(agg.Kinesis) != 1 || agg.Kinesis[0].Layout != LayoutSharedHashKey || agg.Kinesis[0].PartitionKey != "a" {
		t.Fatalf("zero options: %d Kinesis records, %+v", len(agg.Kinesis), agg.Kinesis[0].Layout)
	}
	k := agg.Kinesis[0]
	h, _ := HashKeyOf(recs[0].PartitionKey, "")
	if k.HashKey != h || k.ExplicitHashKey != h.String() {
		t.Fatalf("the aggregate's hash key %v (%s), want the first record's %v", k.HashKey, k.ExplicitHashKey, h)
	}
}

func TestAggregateErrors(t *testing.T) {
	recs := []Record{{Data: []byte("x"), PartitionKey: "k"}}
	if _, err := Aggregate(recs, Firehose(), AggregateOptions{}); !errors.Is(err, ErrInvalidLimits) ||
		!strings.Contains(err.Error(), "partition keys") {
		t.Fatalf("Firehose: %v", err)
	}
	noKeys, _ := KDS().With(WithoutPartitionKeys())
	if _, err := Aggregate(recs, noKeys, AggregateOptions{}); !errors.Is(err, ErrInvalidLimits) {
		t.Fatalf("without partition keys: %v", err)
	}
	if _, err := Aggregate(recs, KDS(), AggregateOptions{Mode: PerShard}); !errors.Is(err, ErrInvalidShardMap) ||
		!strings.Contains(err.Error(), "Shards") {
		t.Fatalf("PerShard without shards: %v", err)
	}
	if _, err := Aggregate(recs, KDS(), AggregateOptions{Mode: 7}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("mode 7: %v", err)
	}
	// Shards outside PerShard are ignored.
	mustAggregate(t, recs, KDS(), AggregateOptions{Shards: fourShards(t)})
}

func TestDeaggregatePlain(t *testing.T) {
	for _, data := range [][]byte{nil, {}, []byte("plain"), {0xf3, 0x89, 0x9a, 0xc2}, append([]byte{0xf3, 0x89, 0x9a, 0xc2}, make([]byte, 16)...)} {
		users, err := Deaggregate(data, "pk", "7")
		if err != nil || len(users) != 1 || !bytes.Equal(users[0].Data, data) || users[0].PartitionKey != "pk" || users[0].ExplicitHashKey != "7" {
			t.Fatalf("%q: %+v %v", data, users, err)
		}
		if len(data) > 0 && &users[0].Data[0] != &data[0] {
			t.Fatal("plain data copied")
		}
	}
}

// aggregateOf makes a valid aggregate of n records with distinct keys.
func aggregateOf(t testing.TB, n int) KinesisRecord {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Data: []byte(fmt.Sprintf("record %d", i)), PartitionKey: fmt.Sprintf("key-%d", i%3), ExplicitHashKey: ""}
	}
	agg, err := Aggregate(recs, KDS(), AggregateOptions{Mode: PerShard, Shards: oneShard(t)})
	if err != nil || len(agg.Kinesis) != 1 {
		t.Fatalf("%v %+v", err, agg)
	}
	return agg.Kinesis[0]
}

func oneShard(t testing.TB) *ShardMap {
	m, err := NewShardMap([]ShardRange{{End: MaxHashKey}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDeaggregateCorrupt(t *testing.T) {
	k := aggregateOf(t, 5)
	good := k.Data
	// Any byte changed: an error (the digest, or the magic no longer there: plain), never
	// a panic, never other user records.
	for i := range good {
		for _, x := range []byte{1, 0x80, 0xff} {
			bad := append([]byte(nil), good...)
			bad[i] ^= x
			users, err := Deaggregate(bad, k.PartitionKey, k.ExplicitHashKey)
			switch {
			case i < 4: // the magic: a plain record now
				if err != nil || len(users) != 1 || !bytes.Equal(users[0].Data, bad) {
					t.Fatalf("byte %d: %+v %v", i, users, err)
				}
			default:
				if !errors.Is(err, ErrDigestMismatch) || users != nil {
					t.Fatalf("byte %d ^ %#x: %+v %v", i, x, users, err)
				}
			}
		}
	}
	// Truncated: the digest no longer matches (or, at 20 bytes and less, a plain record).
	for n := range good {
		users, err := Deaggregate(good[:n], "pk", "")
		if n <= 20 {
			if err != nil || len(users) != 1 {
				t.Fatalf("%d bytes: %+v %v", n, users, err)
			}
		} else if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("%d bytes: %+v %v", n, users, err)
		}
	}
	// A protobuf changed and its digest recomputed: malformed, with the offset.
	for i := 4; i < len(good)-16; i++ {
		bad := append([]byte(nil), good...)
		bad[i] = 0xff
		sum := md5.Sum(bad[4 : len(bad)-16])
		copy(bad[len(bad)-16:], sum[:])
		users, err := Deaggregate(bad, k.PartitionKey, k.ExplicitHashKey)
		var se *StatusError
		if err == nil {
			continue // a byte of data or of a key: still a valid aggregate
		}
		if !errors.Is(err, ErrMalformedAggregate) || !errors.As(err, &se) || se.Index < 4 || se.Index >= len(bad)-16 || users != nil {
			t.Fatalf("byte %d: %+v %v", i, users, err)
		}
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(aggregateOf(f, 3).Data, "a", "42")
	f.Add(aggregateOf(f, 1).Data, "k", "")
	k := mustAggregate(f, []Record{{Data: []byte("x"), PartitionKey: "p"}, {Data: nil, PartitionKey: "q", ExplicitHashKey: "5"}}, KDS(), AggregateOptions{})
	f.Add(k.Kinesis[0].Data, k.Kinesis[0].PartitionKey, k.Kinesis[0].ExplicitHashKey)
	f.Add([]byte("plain"), "pk", "")
	f.Add([]byte{0xf3, 0x89, 0x9a, 0xc2, 0x0a, 0x01, 0x61}, "", "")
	f.Fuzz(func(t *testing.T, data []byte, key, hashKey string) {
		users, err := Deaggregate(data, key, hashKey)
		if err != nil {
			var se *StatusError
			if !errors.As(err, &se) || !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrMalformedAggregate) || users != nil {
				t.Fatalf("%v %+v", err, users)
			}
			return
		}
		aggregated := len(data) > 20 && bytes.HasPrefix(data, []byte{0xf3, 0x89, 0x9a, 0xc2})
		if !aggregated && (len(users) != 1 || !bytes.Equal(users[0].Data, data) || users[0].PartitionKey != key || users[0].ExplicitHashKey != hashKey) {
			t.Fatalf("plain: %+v", users)
		}
		// Every user record a view into data; re-aggregated, they come back the same.
		recs := make([]Record, len(users))
		for i, u := range users {
			if len(u.Data) > 0 && !within(data, u.Data) {
				t.Fatalf("user record %d outside the data", i)
			}
			recs[i] = Record{Data: u.Data, PartitionKey: u.PartitionKey, ExplicitHashKey: u.ExplicitHashKey}
		}
		if aggregated && len(recs) > 0 {
			agg, err := Aggregate(recs, KDS(), AggregateOptions{Mode: PerShard, Shards: oneShard(t)})
			if err != nil {
				t.Fatal(err)
			}
			checkAggregated(t, recs, KDS(), AggregateOptions{Mode: PerShard, Shards: oneShard(t)}, agg)
		}
	})
}

func within(outer, inner []byte) bool {
	for j := range outer {
		if &outer[j] == &inner[0] {
			return j+len(inner) <= len(outer)
		}
	}
	return false
}
