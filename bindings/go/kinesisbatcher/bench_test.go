//go:build cgo

package kinesisbatcher

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
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

// The plain-Go peers the binding is measured against: what a producer writes by hand
// for KDS limits (data + key bytes per record, partition keys of 1..256 code points of
// valid UTF-8, explicit hash keys checked and not counted), with the same greedy
// batching (a refused record closes the open batch), into the same result shape. They differ only in how they check keys.

const noReason Reason = 255

// keyReasonNaive checks a key the obvious way: validate, then count every key.
func keyReasonNaive(k string) Reason {
	switch {
	case !utf8.ValidString(k):
		return KeyNotUTF8
	case k == "":
		return KeyEmpty
	case utf8.RuneCountInString(k) > 256:
		return KeyTooLong
	}
	return noReason
}

// keyReasonFast is the fastest fair check found: ASCII keys (the common case) are
// recognised 8 bytes at a time (the last word overlapping the one before, so no byte
// loop and one branch for the whole key) and then need no count, one code point a
// byte; other keys are validated by the standard library and counted only when over
// 256 bytes, since a valid key of at most 256 bytes has at most 256 code points.
func keyReasonFast(k string) Reason {
	n := len(k)
	if n == 0 {
		return KeyEmpty
	}
	var high uint64
	if n < 8 {
		for i := 0; i < n; i++ {
			high |= uint64(k[i])
		}
	} else {
		for i := 0; i+8 <= n; i += 8 {
			high |= word(k[i:])
		}
		high |= word(k[n-8:])
	}
	if high&0x8080808080808080 != 0 {
		return keyReasonSlow(k)
	}
	if n > 256 {
		return KeyTooLong
	}
	return noReason
}

// word is the first 8 bytes of s as one integer; the compiler merges the byte loads.
func word(s string) uint64 {
	s = s[:8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func keyReasonSlow(k string) Reason {
	if !utf8.ValidString(k) {
		return KeyNotUTF8
	}
	if len(k) > 256 && utf8.RuneCountInString(k) > 256 {
		return KeyTooLong
	}
	return noReason
}

// keyReasonNone checks nothing: with it the plan is the floor (lengths and batching).
func keyReasonNone(string) Reason { return noReason }

func plainGoPlan(records []Record, keyReason func(string) Reason) ([]Batch, []Refusal) {
	const maxRecords, maxRequest, maxRecord = 500, 10 << 20, 1 << 20
	batches := make([]Batch, 0, len(records)/400+1)
	var refusals []Refusal
	open := Batch{Start: -1}
	for i := range records {
		r := &records[i]
		reason := keyReason(r.PartitionKey)
		if reason == noReason && r.ExplicitHashKey != "" && !refHashValid(r.ExplicitHashKey) {
			reason = HashKeyInvalid
		}
		size := len(r.Data) + len(r.PartitionKey)
		if reason == noReason && size > maxRecord {
			reason = RecordTooLarge
		}
		if reason != noReason {
			refusals = append(refusals, Refusal{i, reason})
			if open.Start >= 0 { // a refused record closes the open batch
				batches = append(batches, open)
				open = Batch{Start: -1}
			}
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

// The peers must plan exactly as the binding does, or the comparison means nothing:
// on the benchmark's records, and on random records with every kind of bad key.
func TestBenchPeersAgree(t *testing.T) {
	check := func(name string, recs []Record) {
		t.Helper()
		res, err := Plan(recs, KDS())
		if err != nil {
			t.Fatal(err)
		}
		for _, peer := range []struct {
			name string
			f    func(string) Reason
		}{{"naive", keyReasonNaive}, {"fast", keyReasonFast}} {
			b, r := plainGoPlan(recs, peer.f)
			if !equal(res.Batches, b) || !equal(res.Refusals, r) {
				t.Fatalf("%s: the binding and the %s plain-Go peer disagree", name, peer.name)
			}
		}
	}
	check("benchmark records", benchRecords()[:200_000])
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		check("random records", randRecords(rng, 1+rng.IntN(2000), KDS()))
	}
	// The floor checks no key, so it refuses only what is too large: here, nothing.
	if b, r := plainGoPlan(benchRecords()[:200_000], keyReasonNone); len(r) != 0 || len(b) == 0 {
		t.Fatalf("the floor refused %d records, planned %d batches", len(r), len(b))
	}
}

// Keys at the edges of keyReasonFast's shortcuts (word boundaries, 256 bytes and code
// points, invalid bytes after a long ASCII run).
func TestKeyReasonFast(t *testing.T) {
	long := strings.Repeat
	for _, k := range []string{"", "a", "abcdefgh", "abcdefghi", "abcdefg\x80", "é", "abcdefghé",
		long("a", 256), long("a", 257), long("é", 128), long("é", 129), long("é", 256), long("é", 257),
		long("😀", 64), long("😀", 257), long("a", 256) + "\xff", "\xc3", long("a", 300) + "\xc3"} {
		if got, want := keyReasonFast(k), keyReasonNaive(k); got != want {
			t.Errorf("key of %d bytes: fast %v, naive %v", len(k), got, want)
		}
	}
}

func nsPerRecord(b *testing.B, d time.Duration, records int) float64 {
	return float64(d.Nanoseconds()) / float64(b.N) / float64(records)
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
	b.ReportMetric(nsPerRecord(b, b.Elapsed(), len(recs)), "ns/record")
}

// BenchmarkPlan1MCold plans after two garbage collections, which empty the binding's
// sync.Pool: what a service sees when it plans now and then, its buffers collected in
// between.
func BenchmarkPlan1MCold(b *testing.B) {
	l := KDS()
	recs := benchRecords()
	var d time.Duration
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		runtime.GC()
		runtime.GC()
		start := time.Now()
		if _, err := Plan(recs, l); err != nil {
			b.Fatal(err)
		}
		d += time.Since(start)
	}
	b.ReportMetric(nsPerRecord(b, d, len(recs)), "ns/record")
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
	b.ReportMetric(nsPerRecord(b, b.Elapsed(), len(recs)), "ns/record")
}

func BenchmarkPlainGoNaive1M(b *testing.B) { benchPlainGo(b, keyReasonNaive) }
func BenchmarkPlainGoFast1M(b *testing.B)  { benchPlainGo(b, keyReasonFast) }
func BenchmarkFloor1M(b *testing.B)        { benchPlainGo(b, keyReasonNone) }

func benchPlainGo(b *testing.B, keyReason func(string) Reason) {
	recs := benchRecords()
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		plainGoPlan(recs, keyReason)
	}
	b.ReportMetric(nsPerRecord(b, b.Elapsed(), len(recs)), "ns/record")
}

// BenchmarkCompare1M runs the binding's Plan, the fast and the naive plain-Go peers and
// the floor one after the other in every iteration, on the same records, so that the
// ratios it reports come from one run under the same conditions (a busy or throttled
// machine slows all four alike).
func BenchmarkCompare1M(b *testing.B) {
	l := KDS()
	recs := benchRecords()
	var binding, fast, naive, floor time.Duration
	timed := func(d *time.Duration, f func()) {
		start := time.Now()
		f()
		*d += time.Since(start)
	}
	b.ResetTimer()
	for range b.N {
		timed(&binding, func() {
			if _, err := Plan(recs, l); err != nil {
				b.Fatal(err)
			}
		})
		timed(&fast, func() { plainGoPlan(recs, keyReasonFast) })
		timed(&naive, func() { plainGoPlan(recs, keyReasonNaive) })
		timed(&floor, func() { plainGoPlan(recs, keyReasonNone) })
	}
	n := len(recs)
	b.ReportMetric(nsPerRecord(b, binding, n), "binding-ns/record")
	b.ReportMetric(nsPerRecord(b, fast, n), "fast-go-ns/record")
	b.ReportMetric(nsPerRecord(b, naive, n), "naive-go-ns/record")
	b.ReportMetric(nsPerRecord(b, floor, n), "floor-ns/record")
	b.ReportMetric(float64(binding)/float64(fast), "binding/fast-go")
	b.ReportMetric(float64(binding)/float64(naive), "binding/naive-go")
	b.ReportMetric(float64(binding)/float64(floor), "binding/floor")
	b.ReportMetric(float64(fast)/float64(floor), "fast-go/floor")
	b.ReportMetric(0, "ns/op") // the total of four plans means nothing
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

// BenchmarkDelivery1M: a whole delivery of the benchmark records with every entry
// stored (no network): NewDelivery's measuring, then Next and Settle per request, each
// Next measuring again the records it may plan.
func BenchmarkDelivery1M(b *testing.B) {
	recs := benchRecords()
	codes := make([]string, 500)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		d, err := NewDelivery(recs, KDS(), RetryPolicy{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			req, done, err := d.Next(start)
			if err != nil {
				b.Fatal(err)
			}
			if done {
				break
			}
			if _, err := d.Settle(codes[:len(req.Entries)], start); err != nil {
				b.Fatal(err)
			}
		}
		d.Close()
	}
	b.ReportMetric(nsPerRecord(b, time.Since(start), len(recs)), "ns/record")
}
