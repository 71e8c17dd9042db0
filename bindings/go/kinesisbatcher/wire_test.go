//go:build cgo

package kinesisbatcher

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// kplDecode is an independent reader of the KPL aggregated format, written from its
// description (the magic F3 89 9A C2, a protobuf AggregatedRecord, its MD5 digest) as
// the awslabs deaggregators read it:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// It checks the binding against the format, not against the library's own decoder.
func kplDecode(data []byte) ([]UserRecord, error) {
	magic := []byte{0xf3, 0x89, 0x9a, 0xc2}
	if len(data) <= len(magic)+md5.Size || !bytes.HasPrefix(data, magic) {
		return nil, fmt.Errorf("not an aggregate")
	}
	msg := data[len(magic) : len(data)-md5.Size]
	if sum := md5.Sum(msg); !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, fmt.Errorf("digest")
	}
	type rec struct {
		key, hash uint64
		hasHash   bool
		data      []byte
	}
	var keys, hashes []string
	var recs []rec
	err := pbFields(msg, func(num uint64, v uint64, b []byte) error {
		switch num {
		case 1:
			keys = append(keys, string(b))
		case 2:
			hashes = append(hashes, string(b))
		case 3:
			var r rec
			if err := pbFields(b, func(num uint64, v uint64, b []byte) error {
				switch num {
				case 1:
					r.key = v
				case 2:
					r.hash, r.hasHash = v, true
				case 3:
					r.data = b
				}
				return nil
			}); err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]UserRecord, len(recs))
	for i, r := range recs {
		if r.key >= uint64(len(keys)) || r.hasHash && r.hash >= uint64(len(hashes)) {
			return nil, fmt.Errorf("index")
		}
		out[i] = UserRecord{Data: r.data, PartitionKey: keys[r.key]}
		if r.hasHash {
			out[i].ExplicitHashKey = hashes[r.hash]
		}
	}
	return out, nil
}

// pbFields calls f with each field of a protobuf message: its number, and its value
// (varint) or bytes (length-delimited).
func pbFields(msg []byte, f func(num, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 {
			return fmt.Errorf("tag")
		}
		msg = msg[n:]
		var v uint64
		var b []byte
		switch tag & 7 {
		case 0:
			v, n = binary.Uvarint(msg)
			if n <= 0 {
				return fmt.Errorf("varint")
			}
			msg = msg[n:]
		case 2:
			l, n := binary.Uvarint(msg)
			if n <= 0 || l > uint64(len(msg)-n) {
				return fmt.Errorf("length")
			}
			b, msg = msg[n:n+int(l)], msg[n+int(l):]
		default:
			return fmt.Errorf("wire type %d", tag&7)
		}
		if err := f(tag>>3, v, b); err != nil {
			return err
		}
	}
	return nil
}

// Every aggregate Aggregate makes reads back, with an independent reader of the format,
// as the input (with the aggregate's hash key on each user record in the shared hash key
// layout).
func TestAggregateWireFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	recs := make([]Record, 3000)
	for i := range recs {
		recs[i] = Record{Data: dataAt(rng, rng.IntN(200)), PartitionKey: fmt.Sprintf("k%d", rng.IntN(4)/3)}
		if rng.IntN(20) == 0 {
			recs[i].ExplicitHashKey = randHash(rng).String()
		}
	}
	aggregates := 0
	for _, opts := range allModes(t) {
		opts.MaxBytes = 20000
		agg := mustAggregate(t, recs, KDS(), opts)
		for _, k := range agg.Kinesis {
			if k.Layout == LayoutPlain {
				continue
			}
			aggregates++
			users, err := kplDecode(k.Data)
			if err != nil || len(users) != k.End-k.Start {
				t.Fatalf("%v: %v, %d user records", k.Layout, err, len(users))
			}
			for j, u := range users {
				in := recs[k.Start+j]
				want := in.ExplicitHashKey
				if k.Layout == LayoutSharedHashKey {
					want = k.ExplicitHashKey
				}
				if !bytes.Equal(u.Data, in.Data) || u.PartitionKey != in.PartitionKey || u.ExplicitHashKey != want {
					t.Fatalf("%v, record %d: %q %q, want %q %q", k.Layout, k.Start+j, u.PartitionKey, u.ExplicitHashKey, in.PartitionKey, want)
				}
			}
		}
	}
	if aggregates < 10 {
		t.Fatalf("only %d aggregates", aggregates)
	}
}
