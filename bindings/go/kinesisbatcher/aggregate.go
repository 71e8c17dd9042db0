//go:build cgo

package kinesisbatcher

import (
	"fmt"
	"strconv"
)

// AggregationMode is how Aggregate groups user records into Kinesis records (KPL
// aggregation). Every mode makes aggregates the KCL keeps; each gives something up.
type AggregationMode uint32

// The modes, with the C ABI's values. The zero mode is SharedHashKey.
const (
	// SharedHashKey (the default): each user record keeps its partition key, and all
	// point to one explicit hash key, the aggregate's (its first record's hash key), sent
	// as the Kinesis record's ExplicitHashKey. An aggregate lands in one shard and all
	// its user records hash to that very point, so no resharding can make a consumer
	// drop it; no shard map is needed; it packs best. Given up: key-to-shard affinity
	// (a key's records may land in different shards, so per-key order holds within an
	// aggregate but not across aggregates), and consumers see the aggregate's explicit
	// hash key on every user record. A record with an explicit hash key of its own only
	// shares an aggregate whose hash key is that one.
	SharedHashKey AggregationMode = modeSharedHashKey
	// OneKey: consecutive records with the same partition key (and explicit hash key)
	// share an aggregate, sent under that key. Keeps everything (affinity, per-key
	// order, each record's keys); packs well only when neighbours share a key.
	OneKey AggregationMode = modeOneKey
	// PerShard: consecutive records that AggregateOptions.Shards puts in the same shard
	// share an aggregate, each keeping its keys. Keeps affinity and per-key order while
	// the map is current. Given up: safety under resharding (an aggregate planned with a
	// map that has since changed can straddle a new shard boundary, and the KCL then
	// drops it whole: refresh the map with ListShards AT_LATEST and aggregate again),
	// and packing when neighbours belong to different shards (group records by shard
	// first).
	PerShard AggregationMode = modePerShard
)

// String is the mode's name, such as "SharedHashKey".
func (m AggregationMode) String() string {
	switch m {
	case SharedHashKey:
		return "SharedHashKey"
	case OneKey:
		return "OneKey"
	case PerShard:
		return "PerShard"
	}
	return "AggregationMode(" + strconv.FormatUint(uint64(m), 10) + ")"
}

// Layout is how a KinesisRecord's data is laid out, which says what its keys are.
type Layout uint8

// The layouts, with the C ABI's values.
const (
	// LayoutPlain: not aggregated: one user record sent as it is, with its own keys (a
	// group of one record, or a record too large to share an aggregate).
	LayoutPlain Layout = layoutPlain
	// LayoutSharedHashKey: user records with their own partition keys, all pointing to
	// the aggregate's explicit hash key. Keys: "a" and that hash key.
	LayoutSharedHashKey Layout = layoutSharedHashKey
	// LayoutOneKey: user records sharing one partition key (and explicit hash key, if
	// they have one). Keys: theirs.
	LayoutOneKey Layout = layoutOneKey
	// LayoutOwnKeys: user records with their own partition keys and explicit hash keys
	// (PerShard). Keys: "a" and the first record's hash key.
	LayoutOwnKeys Layout = layoutOwnKeys
)

// String is the layout's name, such as "Plain".
func (l Layout) String() string {
	switch l {
	case LayoutPlain:
		return "Plain"
	case LayoutSharedHashKey:
		return "SharedHashKey"
	case LayoutOneKey:
		return "OneKey"
	case LayoutOwnKeys:
		return "OwnKeys"
	}
	return "Layout(" + strconv.FormatUint(uint64(l), 10) + ")"
}

// AggregateOptions says how to aggregate. The zero value is the safe default:
// SharedHashKey, aggregates up to the limits' record cap.
type AggregateOptions struct {
	// Mode groups the records; see the AggregationMode constants for what each keeps
	// and gives up.
	Mode AggregationMode
	// MaxBytes is the largest Kinesis record to make, as the service counts it (data and
	// outer keys): smaller aggregates fill sooner, for a producer that cares about
	// latency (the KPL's default is 51,200). 0 (or negative), or more than the limits'
	// record cap, means the record cap.
	MaxBytes int
	// Shards is the stream's open shards: required by PerShard, ignored otherwise.
	Shards *ShardMap
}

// KinesisRecord is one Kinesis record to send, made by Aggregate: the user records
// Start..End (End exclusive) of the input, aggregated in the KPL's format, or one plain
// record (LayoutPlain).
type KinesisRecord struct {
	// Data is the record's data, encoded by the library (a copy even for a plain
	// record: it never aliases the input). The Data of the records of one Aggregate call
	// share backing arrays, one per 4,096 records, so keeping one keeps its neighbours'.
	Data []byte
	// PartitionKey is the key to send it with: "a" for the layouts whose user records
	// keep their own keys, else the (first) user record's.
	PartitionKey string
	// ExplicitHashKey is the ExplicitHashKey to send it with, "" for none: the
	// aggregate's hash key for LayoutSharedHashKey and LayoutOwnKeys, else the (first)
	// user record's own.
	ExplicitHashKey string
	// Start and End are the input indices of the user records it holds.
	Start, End int
	// Layout is how Data is laid out.
	Layout Layout
	// HashKey is the hash key that decides its shard.
	HashKey HashKey
	// Size is its size as the service counts it (len(Data) + the partition key's bytes,
	// + the explicit hash key's when the limits count it): at most the record cap and
	// AggregateOptions.MaxBytes (unless a plain record alone is larger than MaxBytes).
	Size int
}

// Record is the KinesisRecord as a Record to plan and send: its Data and keys.
func (k *KinesisRecord) Record() Record {
	return Record{Data: k.Data, PartitionKey: k.PartitionKey, ExplicitHashKey: k.ExplicitHashKey}
}

// UserRecords is the number of user records it holds (End - Start).
func (k *KinesisRecord) UserRecords() int { return k.End - k.Start }

// Aggregated is the result of Aggregate: the Kinesis records to send, in input order,
// and the user records that can never be sent. Every input index is in exactly one
// Kinesis record's Start..End or in exactly one refusal.
type Aggregated struct {
	Kinesis  []KinesisRecord
	Refusals []Refusal
}

// Records returns the Kinesis records as Records, index for index (Records()[i] is
// Kinesis[i]), to plan into requests with Plan or Batches under the same limits: each
// is at most the record cap, so none is refused.
func (a *Aggregated) Records() []Record {
	out := make([]Record, len(a.Kinesis))
	for i := range a.Kinesis {
		out[i] = a.Kinesis[i].Record()
	}
	return out
}

// aggregateChunk is how many aggregates (and refusals) one planning call writes at
// most, and so how many Kinesis records share one Data backing array.
const aggregateChunk = 4096

// Aggregate packs records into Kinesis records in the KPL's aggregated format (which
// the KCL, the awslabs deaggregation libraries and Deaggregate read), under limits (the
// zero Limits is KDS; the record cap is the stream's) and opts (the zero value is the
// safe default). Planning, measuring and encoding are the library's: greedily and in
// order, an aggregate takes records until the next one is refused, belongs elsewhere
// (another key or shard, by the mode) or would take it over MaxBytes; a group of one
// record stays a plain record. Each Kinesis record is measured exactly as the service
// measures it, so planning them with Plan or Batches under the same limits refuses
// none. A record that can never be sent (an empty or too long key, a bad explicit hash
// key, too large) is refused by index and reason, as by Plan.
//
// Aggregation reads the payloads: the records' data and keys are copied once into C
// memory (freed before Aggregate returns), and each Kinesis record's Data is encoded
// into Go memory. The input is not changed or kept.
//
// Errors are *StatusError values: limits without partition keys (Firehose,
// WithoutPartitionKeys) match ErrInvalidLimits (aggregation is a Kinesis Data Streams
// format); PerShard without Shards matches ErrInvalidShardMap; an unknown mode matches
// ErrInvalidArgument.
func Aggregate(records []Record, limits Limits, opts AggregateOptions) (*Aggregated, error) {
	l := limits.get()
	var shards []cShardRange
	if opts.Mode == PerShard {
		if opts.Shards == nil || len(opts.Shards.ranges) == 0 {
			return nil, errNoShards
		}
		shards = opts.Shards.ranges
	}

	// Every record's data and keys, back to back in one C buffer, described by cRecords
	// (C addresses in Go memory that holds no Go pointer).
	total := 0
	for i := range records {
		r := &records[i]
		total += len(r.Data) + len(r.PartitionKey) + len(r.ExplicitHashKey)
	}
	buf, ok := newCBuffer(total)
	if !ok {
		return nil, &StatusError{Status: statusOutOfMemory, Index: -1}
	}
	defer buf.free()
	b := buf.bytes()
	crs := make([]cRecord, len(records))
	at := 0
	for i := range records {
		r, c := &records[i], &crs[i]
		c.data, c.dataLen = buf.addr(at), uintptr(len(r.Data))
		at += copy(b[at:], r.Data)
		c.key, c.keyLen = buf.addr(at), uintptr(len(r.PartitionKey))
		at += copy(b[at:], r.PartitionKey)
		if r.ExplicitHashKey != "" { // else NULL: no explicit hash key
			c.hashKey, c.hashKeyLen = buf.addr(at), uintptr(len(r.ExplicitHashKey))
			at += copy(b[at:], r.ExplicitHashKey)
		}
	}

	n := min(aggregateChunk, max(len(records), 1))
	aggs, refs := make([]cAggregate, n), make([]cRefusal, n)
	var keys aggregateKeys
	shared := map[uintptr]string{} // partition keys not in the input ("a"), by C address
	res := &Aggregated{Kinesis: make([]KinesisRecord, 0, n)}
	for from := 0; ; {
		s, na, nr, next, bad := aggregatePlan(&l, uint32(opts.Mode), clampU32(opts.MaxBytes), shards, crs, from, aggs, refs)
		if isError(s) {
			index := -1
			switch s {
			case statusShardMapReversed, statusShardMapGap, statusNullField, statusLengthOverflow:
				index = bad
			}
			return nil, &StatusError{Status: s, Index: index}
		}
		size := 0
		for _, a := range aggs[:na] {
			size += int(a.dataLen)
		}
		out := make([]byte, size)
		if s, bad := aggregateEncodeAll(crs, aggs[:na], out, &keys); s != statusOK {
			return nil, &StatusError{Status: s, Index: int(aggs[bad].start)}
		}
		off := 0
		for i, a := range aggs[:na] {
			first := &records[a.start]
			k := KinesisRecord{
				Data:    out[off : off+int(a.dataLen) : off+int(a.dataLen)],
				Start:   int(a.start),
				End:     int(a.end),
				Layout:  Layout(a.layout),
				HashKey: hashKeyOfC(a.hashKey),
				Size:    int(a.size),
			}
			off += int(a.dataLen)
			// The keys: the first record's own strings when the library points to them,
			// else copies out of C memory.
			if addr := keys.keyAddr(i); addr == crs[a.start].key && keys.keyLens[i] == crs[a.start].keyLen {
				k.PartitionKey = first.PartitionKey
			} else if key, ok := shared[addr]; ok && len(key) == int(keys.keyLens[i]) {
				k.PartitionKey = key
			} else {
				k.PartitionKey = keys.keyString(i)
				shared[addr] = k.PartitionKey
			}
			if hk := keys.hashKey(i); len(hk) > 0 {
				if string(hk) == first.ExplicitHashKey {
					k.ExplicitHashKey = first.ExplicitHashKey
				} else {
					k.ExplicitHashKey = string(hk)
				}
			}
			res.Kinesis = append(res.Kinesis, k)
		}
		for _, r := range refs[:nr] {
			res.Refusals = append(res.Refusals, Refusal{Index: int(r.index), Reason: Reason(r.reason)})
		}
		if s == statusOK {
			return res, nil
		}
		if s != statusAggregatesFull && s != statusRefusalsFull || next <= from && na+nr == 0 {
			return nil, &StatusError{Status: s, Index: next} // no progress: a library bug
		}
		from = next
	}
}

var errNoShards = fmt.Errorf("%w: PerShard needs AggregateOptions.Shards (NewShardMap)", ErrInvalidShardMap)

// UserRecord is one user record of a received Kinesis record, as Deaggregate returns
// it. Data aliases the data given to Deaggregate (no copy): keep that unchanged while
// the UserRecord is used, or copy it. The keys are strings of their own.
type UserRecord struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey string // "" for none
}

// Deaggregate returns the user records of a received Kinesis record, given with its
// partition key and explicit hash key ("" for none) as GetRecords returns them: an
// aggregate in the KPL's format (the magic, a protobuf, a matching MD5 digest) gives
// its user records, in order; any other record gives itself, once, with the keys given
// (the KCL's rule). The library checks every byte before returning anything, so a
// damaged aggregate is an error, never a partial result:
//
//   - a *StatusError matching ErrDigestMismatch: the record starts with the magic but
//     its digest does not match (a damaged aggregate, or a plain record that happens to
//     start with those four bytes; the KCL hands such a record to the application as
//     it is: to do the same, use data as one user record);
//   - a *StatusError matching ErrMalformedAggregate: the digest matches but the
//     protobuf is not a valid aggregate; its Index is the offending byte's offset.
//
// Each UserRecord's Data is a sub-slice of data. One cgo call; a user record costs a
// few nanoseconds and, for a partition key not seen before in the record, one string.
func Deaggregate(data []byte, partitionKey, explicitHashKey string) ([]UserRecord, error) {
	s, subs, release, plain, bad := deaggregate(data, partitionKey, explicitHashKey, explicitHashKey != "")
	defer release()
	switch {
	case s == statusMalformed:
		return nil, &StatusError{Status: s, Index: bad}
	case s != statusOK:
		return nil, &StatusError{Status: s, Index: -1}
	case plain:
		return []UserRecord{{Data: data[:len(data):len(data)], PartitionKey: partitionKey, ExplicitHashKey: explicitHashKey}}, nil
	}
	out := make([]UserRecord, len(subs))
	// Keys by their offset in data: user records name table entries, so a key shared by
	// many user records is one string.
	keys := map[uintptr]string{}
	str := func(off, n uintptr) string {
		if n == 0 {
			return ""
		}
		if k, ok := keys[off]; ok && len(k) == int(n) {
			return k
		}
		k := string(data[off : off+n])
		keys[off] = k
		return k
	}
	lastHashOff, lastHash := ^uintptr(0), ""
	size := uintptr(len(data))
	for i, sr := range subs {
		if sr.dataOff > size || sr.dataLen > size-sr.dataOff || sr.keyOff > size || sr.keyLen > size-sr.keyOff ||
			sr.hashLen != noHashKey && (sr.hashOff > size || sr.hashLen > size-sr.hashOff) {
			return nil, &StatusError{Status: statusPanic, Index: i} // not for the library's views
		}
		u := &out[i]
		u.Data = data[sr.dataOff : sr.dataOff+sr.dataLen : sr.dataOff+sr.dataLen]
		u.PartitionKey = str(sr.keyOff, sr.keyLen)
		if sr.hashLen != noHashKey {
			if sr.hashOff != lastHashOff {
				lastHashOff, lastHash = sr.hashOff, str(sr.hashOff, sr.hashLen)
			}
			u.ExplicitHashKey = lastHash
		}
	}
	return out, nil
}
