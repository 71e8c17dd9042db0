//go:build cgo

package kinesisbatcher

import (
	"crypto/md5"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func bigOf(k HashKey) *big.Int {
	b := new(big.Int).SetUint64(k.Hi)
	return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(k.Lo))
}

func randHash(rng *rand.Rand) HashKey {
	switch rng.IntN(6) {
	case 0:
		return HashKey{}
	case 1:
		return MaxHashKey
	case 2:
		return HashKey{Lo: rng.Uint64()}
	case 3:
		return HashKey{Hi: rng.Uint64N(2), Lo: rng.Uint64()}
	}
	return HashKey{Hi: rng.Uint64(), Lo: rng.Uint64()}
}

func TestHashKeyStringParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		k := randHash(rng)
		s := k.String()
		if want := bigOf(k).String(); s != want {
			t.Fatalf("%#v: String %s, want %s", k, s, want)
		}
		back, err := ParseHashKey(s)
		if err != nil || back != k {
			t.Fatalf("ParseHashKey(%s) = %#v, %v; want %#v", s, back, err, k)
		}
		o := randHash(rng)
		if got, want := k.Compare(o), bigOf(k).Cmp(bigOf(o)); got != want {
			t.Fatalf("Compare(%v, %v) = %d, want %d", k, o, got, want)
		}
	}
	if MaxHashKey.String() != "340282366920938463463374607431768211455" || (HashKey{}).String() != "0" {
		t.Fatal("bounds")
	}
	for _, bad := range []string{"", "01", "-1", "+1", " 1", "1 ", "1e3", "abc", "340282366920938463463374607431768211456",
		"3402823669209384634633746074317682114550", "٣"} {
		k, err := ParseHashKey(bad)
		var se *StatusError
		if !errors.Is(err, ErrNotAHashKey) || !errors.As(err, &se) || k != (HashKey{}) {
			t.Fatalf("ParseHashKey(%q) = %v, %v", bad, k, err)
		}
		if _, err := HashKeyOf("pk", bad); bad != "" && !errors.Is(err, ErrNotAHashKey) {
			t.Fatalf("HashKeyOf(pk, %q): %v", bad, err)
		}
	}
}

func TestHashKeyOf(t *testing.T) {
	// The Rust core's documented example: MD5("pk1") = f7cfd01ce490fdd421bbdc8d3a35cfd0.
	k, err := HashKeyOf("pk1", "")
	if err != nil || k != (HashKey{Hi: 0xf7cfd01ce490fdd4, Lo: 0x21bbdc8d3a35cfd0}) {
		t.Fatalf("pk1: %#v %v", k, err)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range 2000 {
		key := randKey(rng) // any bytes: the digest of the bytes as they are
		sum := md5.Sum([]byte(key))
		want := HashKey{Hi: beUint64(sum[:8]), Lo: beUint64(sum[8:])}
		if got, err := HashKeyOf(key, ""); err != nil || got != want {
			t.Fatalf("%d: HashKeyOf(%q) = %v, %v; want %v", i, key, got, err, want)
		}
		h := randHash(rng)
		if got, err := HashKeyOf(key, h.String()); err != nil || got != h {
			t.Fatalf("explicit %v: %v %v", h, got, err)
		}
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func TestShardMap(t *testing.T) {
	half := HashKey{Hi: 1 << 63}
	below := HashKey{Hi: 1<<63 - 1, Lo: ^uint64(0)}
	two := []ShardRange{{Start: HashKey{}, End: below}, {Start: half, End: MaxHashKey}}
	m, err := NewShardMap(two)
	if err != nil || m.Len() != 2 || len(m.Ranges()) != 2 || m.Ranges()[1] != two[1] {
		t.Fatalf("two shards: %v %v", m, err)
	}
	pk1, _ := HashKeyOf("pk1", "")
	for _, c := range []struct {
		k    HashKey
		want int
	}{{HashKey{}, 0}, {below, 0}, {half, 1}, {MaxHashKey, 1}, {pk1, 1}} {
		if got := m.ShardOf(c.k); got != c.want {
			t.Fatalf("ShardOf(%v) = %d, want %d", c.k, got, c.want)
		}
	}
	two[0].End = HashKey{} // the map copied the ranges
	if m.ShardOf(below) != 0 {
		t.Fatal("ShardMap kept the caller's slice")
	}

	// ParseShardRange, as ListShards gives the bounds.
	r, err := ParseShardRange("0", "170141183460469231731687303715884105727")
	if err != nil || r != (ShardRange{Start: HashKey{}, End: below}) {
		t.Fatalf("ParseShardRange: %v %v", r, err)
	}
	if _, err := ParseShardRange("0", "x"); !errors.Is(err, ErrNotAHashKey) {
		t.Fatalf("ParseShardRange bad: %v", err)
	}

	one := func(s, e HashKey) ShardRange { return ShardRange{Start: s, End: e} }
	k := func(lo uint64) HashKey { return HashKey{Lo: lo} }
	for _, c := range []struct {
		name   string
		ranges []ShardRange
		index  int
		words  string
	}{
		{"empty", nil, -1, "no range"},
		{"reversed", []ShardRange{one(k(0), k(10)), one(k(11), k(5)), one(k(6), MaxHashKey)}, 1, "ends before it starts"},
		{"gap", []ShardRange{one(k(0), k(10)), one(k(12), MaxHashKey)}, 1, "each starting right after"},
		{"overlap", []ShardRange{one(k(0), k(10)), one(k(10), MaxHashKey)}, 1, "each starting right after"},
		{"not at 0", []ShardRange{one(k(1), MaxHashKey)}, 0, "each starting right after"},
		{"out of order", []ShardRange{one(k(11), MaxHashKey), one(k(0), k(10))}, 0, "each starting right after"},
		{"incomplete", []ShardRange{one(k(0), k(10)), one(k(11), HashKey{Hi: 5})}, -1, "does not end at 2^128-1"},
	} {
		m, err := NewShardMap(c.ranges)
		var se *StatusError
		if m != nil || !errors.Is(err, ErrInvalidShardMap) || !errors.As(err, &se) || se.Index != c.index ||
			!strings.Contains(err.Error(), c.words) {
			t.Errorf("%s: %v, %v (want index %d, %q)", c.name, m, err, c.index, c.words)
		}
	}

	// Random maps: ShardOf against a linear search.
	rng := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		n := 1 + rng.IntN(40)
		cuts := map[HashKey]bool{}
		for len(cuts) < n-1 {
			if c := randHash(rng); c != (HashKey{}) {
				cuts[c] = true
			}
		}
		starts := []HashKey{{}}
		for c := range cuts {
			starts = append(starts, c)
		}
		sortHashKeys(starts)
		ranges := make([]ShardRange, n)
		for i := range ranges {
			ranges[i].Start = starts[i]
			if i+1 < n {
				ranges[i].End = minusOne(starts[i+1])
			} else {
				ranges[i].End = MaxHashKey
			}
		}
		m, err := NewShardMap(ranges)
		if err != nil {
			t.Fatalf("%v: %v", ranges, err)
		}
		for range 50 {
			h := randHash(rng)
			if rng.IntN(3) == 0 {
				h = ranges[rng.IntN(n)].End
			}
			want := -1
			for i, r := range ranges {
				if r.Start.Compare(h) <= 0 && h.Compare(r.End) <= 0 {
					want = i
				}
			}
			if got := m.ShardOf(h); got != want {
				t.Fatalf("ShardOf(%v) = %d, want %d", h, got, want)
			}
		}
	}

	defer func() {
		if recover() == nil {
			t.Fatal("ShardOf on the zero ShardMap did not panic")
		}
	}()
	(&ShardMap{}).ShardOf(HashKey{})
}

func sortHashKeys(s []HashKey) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Compare(s[j-1]) < 0; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func minusOne(k HashKey) HashKey {
	if k.Lo == 0 {
		return HashKey{Hi: k.Hi - 1, Lo: ^uint64(0)}
	}
	return HashKey{Hi: k.Hi, Lo: k.Lo - 1}
}
