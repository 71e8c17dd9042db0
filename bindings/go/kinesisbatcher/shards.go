//go:build cgo

package kinesisbatcher

import (
	"math/bits"
	"strconv"
	"strings"
)

// HashKey is a 128-bit Kinesis hash key (0 to 2^128-1): Hi*2^64 + Lo. The service
// routes a record to the open shard whose hash key range holds its hash key: its
// ExplicitHashKey when it has one, else the MD5 digest of its partition key (HashKeyOf).
// Hash keys compare as numbers with Compare; == is equality.
type HashKey struct {
	Hi, Lo uint64
}

func hashKeyOfC(c cHashKey) HashKey { return HashKey{Hi: c.high, Lo: c.low} }
func (k HashKey) c() cHashKey       { return cHashKey{high: k.Hi, low: k.Lo} }

// MaxHashKey is 2^128-1, the last hash key: where the last shard's range ends.
var MaxHashKey = HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}

// String is the hash key in decimal, without leading zeros ("0" for 0): the form of an
// ExplicitHashKey and of ListShards' HashKeyRange bounds.
func (k HashKey) String() string {
	if k.Hi == 0 {
		return strconv.FormatUint(k.Lo, 10)
	}
	// k = q*10^19 + r, r < 10^19: q's digits, then r's, padded to 19.
	const e19 = 10_000_000_000_000_000_000
	qHi, rHi := k.Hi/e19, k.Hi%e19
	qLo, r := bits.Div64(rHi, k.Lo, e19)
	low := strconv.FormatUint(r, 10)
	return HashKey{Hi: qHi, Lo: qLo}.String() + strings.Repeat("0", 19-len(low)) + low
}

// Compare returns -1, 0 or +1 as k is less than, equal to or greater than o.
func (k HashKey) Compare(o HashKey) int {
	switch {
	case k.Hi != o.Hi:
		if k.Hi < o.Hi {
			return -1
		}
		return 1
	case k.Lo < o.Lo:
		return -1
	case k.Lo > o.Lo:
		return 1
	}
	return 0
}

// ParseHashKey reads a decimal hash key: an ExplicitHashKey, or a StartingHashKey or
// EndingHashKey of ListShards' HashKeyRange. The library accepts a decimal integer in 0
// to 2^128-1 without leading zeros or any other character; anything else is a
// *StatusError matching ErrNotAHashKey.
func ParseHashKey(decimal string) (HashKey, error) {
	c, s := hashKeyParse(decimal)
	if err := statusErr(s, -1); err != nil {
		return HashKey{}, err
	}
	return hashKeyOfC(c), nil
}

// HashKeyOf is the hash key the service routes a record by: explicitHashKey when it is
// not "" (as Record.ExplicitHashKey: "" is none), else the MD5 digest of the partition
// key's bytes read as an unsigned big-endian 128-bit integer. An explicit hash key the
// library does not accept (see ParseHashKey) is a *StatusError matching ErrNotAHashKey.
func HashKeyOf(partitionKey, explicitHashKey string) (HashKey, error) {
	c, s := hashKeyOf(partitionKey, explicitHashKey, explicitHashKey != "")
	if err := statusErr(s, -1); err != nil {
		return HashKey{}, err
	}
	return hashKeyOfC(c), nil
}

// ShardRange is the hash keys one open shard owns, both bounds inclusive: a shard's
// HashKeyRange (StartingHashKey, EndingHashKey) from ListShards.
type ShardRange struct {
	Start, End HashKey
}

// ParseShardRange reads a shard's HashKeyRange as ListShards returns it (two decimal
// strings), with ParseHashKey.
func ParseShardRange(startingHashKey, endingHashKey string) (ShardRange, error) {
	start, err := ParseHashKey(startingHashKey)
	if err != nil {
		return ShardRange{}, err
	}
	end, err := ParseHashKey(endingHashKey)
	if err != nil {
		return ShardRange{}, err
	}
	return ShardRange{Start: start, End: end}, nil
}

// ShardMap is the open shards of a stream, checked by the library to tile 0..2^128-1 in
// order, so that every hash key has exactly one shard. Make one with NewShardMap; it is
// immutable and safe for concurrent use.
type ShardMap struct {
	ranges []cShardRange
}

// NewShardMap checks ranges (the open shards, sorted by their start: ListShards with
// ShardFilter AT_LATEST) and copies them. The library refuses, as a *StatusError
// matching ErrInvalidShardMap whose message names the problem: no range; a range that
// ends before it starts, or does not start right after the previous one ends (a gap, an
// overlap, ranges out of order, closed parent shards listed with their children), or a
// first range not starting at 0 (Index names the range); a last range not ending at
// 2^128-1 (Index -1).
func NewShardMap(ranges []ShardRange) (*ShardMap, error) {
	c := make([]cShardRange, len(ranges))
	for i, r := range ranges {
		c[i] = cShardRange{start: r.Start.c(), end: r.End.c()}
	}
	s, bad := shardMapCheck(c)
	switch s {
	case statusOK:
		return &ShardMap{ranges: c}, nil
	case statusShardMapReversed, statusShardMapGap:
		return nil, &StatusError{Status: s, Index: bad}
	default:
		return nil, &StatusError{Status: s, Index: -1}
	}
}

// Len is the number of shards.
func (m *ShardMap) Len() int { return len(m.ranges) }

// Ranges returns a copy of the ranges, in the order given to NewShardMap.
func (m *ShardMap) Ranges() []ShardRange {
	out := make([]ShardRange, len(m.ranges))
	for i, r := range m.ranges {
		out[i] = ShardRange{Start: hashKeyOfC(r.start), End: hashKeyOfC(r.end)}
	}
	return out
}

// ShardOf is the index (into the ranges given to NewShardMap) of the shard that owns k,
// by the library's binary search: one cgo call. It panics on a ShardMap not made by
// NewShardMap (the zero ShardMap has no shard).
func (m *ShardMap) ShardOf(k HashKey) int {
	if m == nil || len(m.ranges) == 0 {
		panic("kinesisbatcher: ShardOf on a ShardMap not made by NewShardMap")
	}
	i, s := shardIndex(m.ranges, k.c())
	if s != statusOK {
		panic(&StatusError{Status: s, Index: -1}) // a checked map always holds k
	}
	return i
}
