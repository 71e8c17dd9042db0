//go:build cgo

package kinesisbatcher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// ---- A deliberately naive reference model, in plain Go. ----

type refLimits struct {
	maxRecords, maxRequest, maxRecord int
	unit                              KeyUnit
	keys, countHash, span             bool
}

func refOf(l Limits) refLimits {
	return refLimits{l.MaxRecords(), l.MaxRequestBytes(), l.MaxRecordBytes(), l.KeyUnit(),
		l.PartitionKeys(), l.CountsHashKeys(), l.SpansRefusals()}
}

func refHashValid(h string) bool {
	const max = "340282366920938463463374607431768211455"
	if h == "0" {
		return true
	}
	if h == "" || h[0] == '0' || len(h) > len(max) {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] < '0' || h[i] > '9' {
			return false
		}
	}
	return len(h) < len(max) || h <= max
}

func refMeasure(r Record, l refLimits) (int, Reason, bool) {
	size := len(r.Data)
	if l.keys {
		k := r.PartitionKey
		if !utf8.ValidString(k) {
			return 0, KeyNotUTF8, false
		}
		if k == "" {
			return 0, KeyEmpty, false
		}
		units := 0
		switch l.unit {
		case CodePoints:
			units = utf8.RuneCountInString(k)
		case UTF16Units:
			units = len(utf16.Encode([]rune(k)))
		case UTF8Bytes:
			units = len(k)
		}
		if units > 256 {
			return 0, KeyTooLong, false
		}
		size += len(k)
		if h := r.ExplicitHashKey; h != "" {
			if !refHashValid(h) {
				return 0, HashKeyInvalid, false
			}
			if l.countHash {
				size += len(h)
			}
		}
	}
	if size > l.maxRecord {
		return 0, RecordTooLarge, false
	}
	return size, 0, true
}

func refPlan(records []Record, l refLimits) ([]Batch, []Refusal) {
	var batches []Batch
	var refusals []Refusal
	var open *Batch
	for i, r := range records {
		size, reason, ok := refMeasure(r, l)
		if !ok {
			refusals = append(refusals, Refusal{i, reason})
			if !l.span && open != nil {
				// By default a refused record closes the open batch: no batch holds one.
				batches = append(batches, *open)
				open = nil
			}
			continue
		}
		if open != nil && (open.Records+1 > l.maxRecords || open.Bytes+size > l.maxRequest) {
			batches = append(batches, *open)
			open = nil
		}
		if open == nil {
			open = &Batch{Start: i}
		}
		open.End = i + 1
		open.Records++
		open.Bytes += size
	}
	if open != nil {
		batches = append(batches, *open)
	}
	return batches, refusals
}

// ---- Random inputs. ----

func randKey(rng *rand.Rand) string {
	switch rng.IntN(10) {
	case 0:
		return ""
	case 1: // invalid UTF-8
		return "k\xff" + strings.Repeat("a", rng.IntN(4))
	case 2: // multi-byte, around 256 code points / 256 UTF-16 units
		n := 250 + rng.IntN(10)
		var b strings.Builder
		for range n {
			switch rng.IntN(3) {
			case 0:
				b.WriteRune('é')
			case 1:
				b.WriteRune('😀')
			default:
				b.WriteRune('x')
			}
		}
		return b.String()
	case 3: // over 256 runes
		return strings.Repeat("ü", 257+rng.IntN(3))
	case 4: // very long (over 4 KiB), sometimes ending in invalid UTF-8
		if rng.IntN(4) == 0 {
			s := strings.Repeat("z", 4097+rng.IntN(10))
			if rng.IntN(2) == 0 {
				s += "\xc3"
			}
			return s
		}
		return "a"
	default:
		return fmt.Sprintf("user-%d", rng.IntN(1000))
	}
}

func randHashKey(rng *rand.Rand) string {
	switch rng.IntN(12) {
	case 0:
		return "0"
	case 1:
		return "340282366920938463463374607431768211455"
	case 2:
		return "340282366920938463463374607431768211456" // 2^128: invalid
	case 3:
		return "0123" // leading zero: invalid
	case 4:
		return "12a"
	case 5:
		return fmt.Sprint(rng.Uint64())
	default:
		return ""
	}
}

func randLimits(rng *rand.Rand) Limits {
	if rng.IntN(4) == 0 {
		l := [...]Limits{KDS(), KDS5MiB(), Firehose(), {}}[rng.IntN(4)]
		if rng.IntN(2) == 0 {
			l, _ = l.With(SpanningRefusals())
		}
		return l
	}
	for {
		profile := Profile(rng.IntN(3))
		maxRecords := 1 + rng.IntN(8)
		if rng.IntN(4) == 0 {
			maxRecords = 500
		}
		maxRequest := 1 + rng.IntN(3000)
		maxRecord := 1 + rng.IntN(maxRequest)
		var opts []LimitOption
		opts = append(opts, WithKeyUnit(KeyUnit(rng.IntN(3))))
		switch rng.IntN(4) {
		case 0:
			opts = append(opts, WithoutPartitionKeys())
		case 1:
			opts = append(opts, WithPartitionKeys())
		}
		if rng.IntN(3) == 0 {
			opts = append(opts, CountingHashKeys())
		}
		if rng.IntN(3) == 0 {
			opts = append(opts, SpanningRefusals())
		}
		l, err := NewLimits(profile, maxRecords, maxRequest, maxRecord, opts...)
		if err == nil {
			return l
		}
	}
}

var sharedData = make([]byte, 4<<20)

func randRecords(rng *rand.Rand, n int, l Limits) []Record {
	recs := make([]Record, n)
	for i := range recs {
		cap := l.MaxRecordBytes()
		var dl int
		switch rng.IntN(4) {
		case 0: // near the cap
			dl = max(0, cap-20+rng.IntN(40))
		case 1:
			dl = rng.IntN(cap + 1)
		default:
			dl = rng.IntN(cap/4 + 2)
		}
		dl = min(dl, len(sharedData))
		recs[i] = Record{Data: sharedData[:dl:dl], PartitionKey: randKey(rng), ExplicitHashKey: randHashKey(rng)}
	}
	return recs
}

// checkPlan compares the binding's three styles with the model, and checks conservation
// and the limits directly.
func checkPlan(t testing.TB, recs []Record, l Limits) {
	t.Helper()
	rl := refOf(l)
	wantB, wantR := refPlan(recs, rl)
	got, err := Plan(recs, l)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if !equal(got.Batches, wantB) || !equal(got.Refusals, wantR) {
		t.Fatalf("limits %+v, %d records:\n got %v %v\nwant %v %v", rl, len(recs), got.Batches, got.Refusals, wantB, wantR)
	}
	// Conservation: every index exactly once.
	seen := make([]int, len(recs))
	for _, r := range got.Refusals {
		seen[r.Index]++
	}
	for _, b := range got.Batches {
		if b.Records < 1 || b.Records > rl.maxRecords || b.Bytes > rl.maxRequest {
			t.Fatalf("batch %+v breaks limits %+v", b, rl)
		}
		acc := 0
		for i := b.Start; i < b.End; i++ {
			if seen[i] == 0 {
				seen[i]++
				acc++
			}
		}
		if acc != b.Records || len(got.RefusedIn(b)) != b.Refused() {
			t.Fatalf("batch %+v: %d accepted", b, acc)
		}
		if !rl.span && b.Refused() != 0 {
			t.Fatalf("batch %+v holds a refused record without SpanningRefusals", b)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("index %d reported %d times", i, n)
		}
	}
	wantRecords, wantBytes := 0, 0
	for _, b := range wantB {
		wantRecords += b.Records
		wantBytes += b.Bytes
	}
	if got.Stats.Batches != len(wantB) || got.Stats.RefusedTotal() != len(wantR) ||
		got.Stats.Records != wantRecords || got.Stats.Bytes != wantBytes {
		t.Fatalf("stats %+v", got.Stats)
	}
	// The iterator, with refusals before the batches that span them.
	var itB []Batch
	var itR []Refusal
	for sub, b := range Batches(recs, l, func(r Refusal) { itR = append(itR, r) }) {
		if len(sub) != b.End-b.Start || (len(sub) > 0 && &sub[0] != &recs[b.Start]) {
			t.Fatalf("sub-slice is not records[%d:%d]", b.Start, b.End)
		}
		for _, r := range got.RefusedIn(b) {
			if len(itR) == 0 || itR[len(itR)-1].Index < r.Index {
				t.Fatalf("refusal %v not reported before batch %v", r, b)
			}
		}
		itB = append(itB, b)
	}
	if !equal(itB, wantB) || !equal(itR, wantR) {
		t.Fatalf("Batches differs from the model")
	}
	// The accumulator.
	acc, err := NewAccumulator(l)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	var acB []Batch
	var acR []Refusal
	for i, r := range recs {
		p, err := acc.Push(r)
		if err != nil || p.Index != i {
			t.Fatalf("Push %d: %v %+v", i, err, p)
		}
		if p.Send {
			acB = append(acB, p.Batch)
		}
		if p.Refused {
			acR = append(acR, Refusal{i, p.Reason})
		}
	}
	if b, ok := acc.Flush(); ok {
		acB = append(acB, b)
	}
	if !equal(acB, wantB) || !equal(acR, wantR) {
		t.Fatalf("Accumulator differs from the model:\n got %v %v\nwant %v %v", acB, acR, wantB, wantR)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLayout(t *testing.T) {
	if err := layoutErr(); err != nil {
		t.Fatal(err)
	}
}

func TestPropertyAgainstModel(t *testing.T) {
	cases := 4000
	if testing.Short() {
		cases = 500
	}
	for seed := range uint64(cases) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		l := randLimits(rng)
		n := rng.IntN(60)
		checkPlan(t, randRecords(rng, n, l), l)
	}
}

// Inputs of several chunks (the open batch carried from one to the next, long runs of
// refusals inside one batch) against the model.
func TestPropertyLargeInputs(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 77))
		l := randLimits(rng)
		n := chunkRecords*2 + rng.IntN(chunkRecords)
		recs := randRecords(rng, n, l)
		if seed%2 == 1 { // long runs of refusals between accepted records
			for i := range recs {
				if i%(chunkRecords+3) != 0 {
					recs[i].PartitionKey = ""
					recs[i].Data = nil
					if !l.PartitionKeys() {
						recs[i].Data = sharedData[:l.MaxRecordBytes()+1]
					}
				}
			}
		}
		checkPlan(t, recs, l)
	}
}

// Chunks at their fullest (one batch, or one refusal, for every record of a chunk), a
// batch whose range spans chunk boundaries and refusals, long keys and hash keys
// (copied like any other), and an early break out of Batches, which stops planning.
func TestPlanChunks(t *testing.T) {
	one, err := NewLimits(ProfileKDS, 1, 10<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]Record, 2*chunkRecords+5)
	for i := range recs {
		recs[i] = Record{Data: sharedData[:i%100], PartitionKey: "k"}
	}
	checkPlan(t, recs, one) // every record a batch of its own
	for i := range recs {
		recs[i].PartitionKey = ""
	}
	checkPlan(t, recs, one) // every record refused

	l, err := NewLimits(ProfileKDS, 2, 10<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i] = Record{Data: sharedData[:i%100], PartitionKey: fmt.Sprintf("k%d", i)}
		switch i % 7 {
		case 0:
			recs[i].PartitionKey = ""
		case 3:
			recs[i].PartitionKey = strings.Repeat("z", 5000)
		case 5:
			recs[i].ExplicitHashKey = strings.Repeat("9", 5000)
		}
	}
	recs[1].PartitionKey = strings.Repeat("z", 5000) + "\xff"
	checkPlan(t, recs, l)
	res, _ := Plan(recs, l)
	if res.Refusals[0] != (Refusal{0, KeyEmpty}) || res.Refusals[1] != (Refusal{1, KeyNotUTF8}) ||
		res.Refusals[2] != (Refusal{3, KeyTooLong}) || res.Refusals[3] != (Refusal{5, HashKeyInvalid}) {
		t.Fatalf("refusals %v", res.Refusals[:4])
	}

	// 200-record batches, the first starting after r refused records so that one starts
	// 100 records before the first chunk boundary and, spanning refusals, spans it with
	// the 3 refused records just after the boundary inside; by default it ends there
	// instead, its last record before the refused ones (a batch closed in one chunk and
	// handed out in the next).
	l200, err := NewLimits(ProfileKDS, 200, 10<<20, 1<<20, SpanningRefusals())
	if err != nil {
		t.Fatal(err)
	}
	l200safe, err := NewLimits(ProfileKDS, 200, 10<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r := (chunkRecords - 100) % 200
	spanning := make([]Record, chunkRecords+1000)
	for i := range spanning {
		spanning[i] = Record{Data: sharedData[:10], PartitionKey: "k"}
		if i < r || (i >= chunkRecords && i < chunkRecords+3) {
			spanning[i].PartitionKey = ""
		}
	}
	checkPlan(t, spanning, l200)
	sres, _ := Plan(spanning, l200)
	want := Batch{Start: chunkRecords - 100, End: chunkRecords + 103, Records: 200, Bytes: 200 * 11}
	if i := (chunkRecords - 100 - r) / 200; sres.Batches[i] != want {
		t.Fatalf("batch %d is %+v, not %+v", i, sres.Batches[i], want)
	}
	checkPlan(t, spanning, l200safe)
	sres, _ = Plan(spanning, l200safe)
	i := (chunkRecords - 100 - r) / 200
	wantSafe := []Batch{
		{Start: chunkRecords - 100, End: chunkRecords, Records: 100, Bytes: 100 * 11},
		{Start: chunkRecords + 3, End: chunkRecords + 203, Records: 200, Bytes: 200 * 11},
	}
	if !equal(sres.Batches[i:i+2], wantSafe) {
		t.Fatalf("batches %d and %d are %+v, not %+v", i, i+1, sres.Batches[i:i+2], wantSafe)
	}

	var got []Batch
	maxRefused := -1
	for _, b := range Batches(recs, l, func(r Refusal) { maxRefused = max(maxRefused, r.Index) }) {
		got = append(got, b)
		if len(got) == 1100 {
			break
		}
	}
	if !equal(got, res.Batches[:1100]) {
		t.Fatalf("Batches with a break differs from Plan: %d, %v %v", len(got), got[len(got)-1], res.Batches[len(got)-1])
	}
	if maxRefused >= chunkRecords {
		t.Fatalf("after a break in the first chunk, planning went on to record %d", maxRefused)
	}
}

func FuzzPlan(f *testing.F) {
	f.Add(uint64(1), uint8(10), []byte("user-1"), uint16(100))
	f.Add(uint64(2), uint8(0), []byte{}, uint16(0))
	f.Add(uint64(3), uint8(200), []byte("\xff\xfe"), uint16(1000))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, key []byte, dataLen uint16) {
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		l := randLimits(rng)
		recs := randRecords(rng, int(n), l)
		if len(recs) > 0 {
			recs[0] = Record{Data: sharedData[:dataLen], PartitionKey: string(key)}
		}
		checkPlan(t, recs, l)
	})
}

func TestBoundaries(t *testing.T) {
	l := KDS()
	capB := l.MaxRecordBytes()
	key := "k1"
	exact := Record{Data: make([]byte, capB-len(key)), PartitionKey: key}
	over := Record{Data: make([]byte, capB-len(key)+1), PartitionKey: key}
	res, err := Plan([]Record{exact, over}, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Batches) != 1 || res.Batches[0].Bytes != capB || len(res.Refusals) != 1 ||
		res.Refusals[0] != (Refusal{1, RecordTooLarge}) {
		t.Fatalf("cap: %+v", res)
	}

	small := func(n int) []Record {
		r := make([]Record, n)
		for i := range r {
			r[i] = Record{Data: []byte("x"), PartitionKey: "k"}
		}
		return r
	}
	if res, _ := Plan(small(500), l); len(res.Batches) != 1 || res.Batches[0].Records != 500 {
		t.Fatalf("500: %+v", res.Batches)
	}
	if res, _ := Plan(small(501), l); len(res.Batches) != 2 || res.Batches[1] != (Batch{500, 501, 1, 2}) {
		t.Fatalf("501: %+v", res.Batches)
	}

	k256 := strings.Repeat("é", 256) // 256 code points, 512 bytes
	k257 := k256 + "é"
	res, _ = Plan([]Record{{Data: []byte("d"), PartitionKey: k256}, {Data: []byte("d"), PartitionKey: k257}}, l)
	if len(res.Batches) != 1 || res.Batches[0].Bytes != 1+512 || len(res.Refusals) != 1 || res.Refusals[0].Reason != KeyTooLong {
		t.Fatalf("256 runes: %+v", res)
	}
	lb, _ := l.With(WithKeyUnit(UTF8Bytes))
	if res, _ := Plan([]Record{{Data: []byte("d"), PartitionKey: k256}}, lb); len(res.Refusals) != 1 {
		t.Fatalf("utf8 bytes unit: %+v", res)
	}
	res, _ = Plan([]Record{
		{Data: []byte("d"), PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211455"},
		{Data: []byte("d"), PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"},
	}, l)
	if len(res.Batches) != 1 || len(res.Refusals) != 1 || res.Refusals[0] != (Refusal{1, HashKeyInvalid}) {
		t.Fatalf("hash keys: %+v", res)
	}
	if res, err := Plan(nil, l); err != nil || len(res.Batches)+len(res.Refusals) != 0 {
		t.Fatalf("empty: %+v %v", res, err)
	}
}

func TestLimits(t *testing.T) {
	if KDS().MaxRecords() != 500 || KDS().MaxRequestBytes() != 10<<20 || KDS().MaxRecordBytes() != 1<<20 {
		t.Fatal("KDS")
	}
	if (Limits{}).MaxRequestBytes() != 10<<20 {
		t.Fatal("zero Limits is not KDS")
	}
	if Firehose().PartitionKeys() || KDS5MiB().MaxRequestBytes() != 5<<20 {
		t.Fatal("profiles")
	}
	l, err := ForStream(10240)
	if err != nil || l.MaxRecordBytes() != 10<<20 {
		t.Fatal(l, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := ForStream(1023); return err },
		func() error { _, err := NewLimits(ProfileKDS, 0, 10, 10); return err },
		func() error { _, err := NewLimits(ProfileKDS, 501, 10, 10); return err },
		func() error { _, err := NewLimits(ProfileKDS, 10, 10, 11); return err },
		func() error { _, err := NewLimits(ProfileKDS, 10, 11<<20, 1); return err },
		func() error { _, err := NewLimits(ProfileFirehose, 10, 2<<20, 2<<20); return err },
		func() error { _, err := NewLimits(Profile(9), 10, 10, 10); return err },
		func() error { _, err := NewLimits(ProfileKDS, 10, 10, 10, WithKeyUnit(7)); return err },
	} {
		err := bad()
		var se *StatusError
		if !errors.Is(err, ErrInvalidLimits) || !errors.As(err, &se) || se.Status < 120 {
			t.Fatalf("want ErrInvalidLimits, got %v", err)
		}
		if !strings.HasPrefix(err.Error(), "kinesisbatcher: ") || errors.Is(err, ErrOutOfMemory) {
			t.Fatalf("message %q", err)
		}
	}
	if RecordTooLarge.String() != "record_too_large" || Throttling.String() != "throttling" {
		t.Fatal("names")
	}
}

// The options of issue 11: zero options are the safe ones, each option does one thing,
// and what the library refuses is ErrInvalidLimits.
func TestLimitOptions(t *testing.T) {
	// A user who writes Limits{} (a struct field never set) gets KDS, keys required,
	// batches that never hold a refused record: as KDS(), option by option and plan by
	// plan.
	zero := Limits{}
	if zero.Profile() != ProfileKDS || !zero.PartitionKeys() || zero.CountsHashKeys() ||
		zero.SpansRefusals() || zero.KeyUnit() != CodePoints || zero.MaxRecordBytes() != 1<<20 {
		t.Fatalf("the zero Limits is not KDS: %+v", zero.get())
	}
	if zero.get() != KDS().get() {
		t.Fatal("Limits{} and KDS() differ")
	}
	recs := []Record{{Data: []byte("a"), PartitionKey: "k"}, {Data: []byte("b")}, {Data: []byte("c"), PartitionKey: "k"}}
	for _, l := range []Limits{zero, KDS()} {
		res, _ := Plan(recs, l)
		if want := []Batch{{0, 1, 1, 2}, {2, 3, 1, 2}}; !equal(res.Batches, want) {
			t.Fatalf("default limits: %v, want %v (a refused record closes the batch)", res.Batches, want)
		}
	}

	span, err := KDS().With(SpanningRefusals())
	if err != nil || !span.SpansRefusals() {
		t.Fatal(span, err)
	}
	if res, _ := Plan(recs, span); !equal(res.Batches, []Batch{{0, 3, 2, 4}}) {
		t.Fatalf("SpanningRefusals: %v", res.Batches)
	}

	noKeys, err := KDS().With(WithoutPartitionKeys())
	if err != nil || noKeys.PartitionKeys() {
		t.Fatal(noKeys, err)
	}
	if res, _ := Plan(recs, noKeys); len(res.Refusals) != 0 || !equal(res.Batches, []Batch{{0, 3, 3, 3}}) {
		t.Fatalf("WithoutPartitionKeys: %+v", res)
	}
	keys, err := noKeys.With(WithPartitionKeys())
	if err != nil || !keys.PartitionKeys() || keys.get() != KDS().get() {
		t.Fatal("WithPartitionKeys does not undo WithoutPartitionKeys", err)
	}

	// Firehose has no keys: WithoutPartitionKeys changes nothing, WithPartitionKeys is
	// refused (it used to count keys that PutRecordBatch never carries).
	fh, err := Firehose().With(WithoutPartitionKeys())
	if err != nil || fh.get() != Firehose().get() || fh.PartitionKeys() {
		t.Fatal("WithoutPartitionKeys changed Firehose", err)
	}
	for _, f := range []func() error{
		func() error { _, err := Firehose().With(WithPartitionKeys()); return err },
		func() error { _, err := NewLimits(ProfileFirehose, 500, 4<<20, 1000, WithPartitionKeys()); return err },
	} {
		err := f()
		var se *StatusError
		if !errors.Is(err, ErrInvalidLimits) || errors.As(err, &se) || !strings.Contains(err.Error(), "Firehose") {
			t.Fatalf("WithPartitionKeys on Firehose: %v", err)
		}
	}
	if _, err := NewLimits(ProfileFirehose, 500, 4<<20, 1000); err != nil {
		t.Fatal(err)
	}

	// A request cap above the profile's: KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE (132).
	for _, c := range []struct {
		p       Profile
		request int
	}{{ProfileKDS5MiB, 5<<20 + 1}, {ProfileFirehose, 4<<20 + 1}} {
		_, err := NewLimits(c.p, 500, c.request, 1000)
		var se *StatusError
		if !errors.Is(err, ErrInvalidLimits) || !errors.As(err, &se) || se.Status != statusRequestBytesAbove {
			t.Fatalf("profile %d, request cap %d: %v", c.p, c.request, err)
		}
	}
	// Every KB_LIMITS_* status, and only those, is ErrInvalidLimits.
	for s := uint32(statusLimitsFirst) - 1; s <= statusLimitsLast+1; s++ {
		in := s >= statusLimitsFirst && s <= statusLimitsLast
		if errors.Is(&StatusError{Status: s, Index: -1}, ErrInvalidLimits) != in {
			t.Fatalf("status %d: ErrInvalidLimits %v", s, !in)
		}
	}
	// The zero LimitOption changes nothing.
	if l, err := KDS().With(LimitOption{}); err != nil || l.get() != KDS().get() {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	a, _ := NewAccumulator(KDS())
	a.Close()
	a.Close()
	if _, err := a.Push(Record{}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := a.Skip(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := a.Reset(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	d, _ := NewDelivery(nil, KDS(), RetryPolicy{})
	d.Close()
	if _, _, err := d.Next(timeZero); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := d.Reset(nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// Reset and Skip on an Accumulator: a reset one numbers from 0 again, drops the open
// batch and its counters, and plans as a fresh one; a skip takes an index and closes
// the open batch (models a caller who refuses lines itself and pushes the rest).
func TestAccumulatorResetSkip(t *testing.T) {
	a, err := NewAccumulator(KDS())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	r := Record{Data: []byte("x"), PartitionKey: "k"}
	a.Push(r)
	a.Push(r)
	if i, err := a.Skip(); err != nil || i != 2 || a.Len() != 3 {
		t.Fatal(i, err, a.Len())
	}
	p, _ := a.Push(r)
	if p.Index != 3 || !p.Send || p.Batch != (Batch{0, 2, 2, 4}) {
		t.Fatalf("after a skip the open batch is closed: %+v", p)
	}
	if err := a.Reset(); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 0 || a.Stats().Batches != 0 {
		t.Fatal("Reset kept state", a.Len(), a.Stats())
	}
	if _, ok := a.Pending(); ok {
		t.Fatal("Reset kept the open batch")
	}
	p, _ = a.Push(r)
	if p.Index != 0 || p.Send {
		t.Fatalf("after Reset: %+v", p)
	}
	if b, ok := a.Flush(); !ok || b != (Batch{0, 1, 1, 2}) {
		t.Fatal(b, ok)
	}
	// With SpanningRefusals a skip does not close the batch, and is counted in it.
	sp, _ := KDS().With(SpanningRefusals())
	a2, _ := NewAccumulator(sp)
	defer a2.Close()
	a2.Push(r)
	a2.Skip()
	if p, _ := a2.Push(r); p.Send {
		t.Fatal("a skip closed a spanning batch")
	}
	if b, _ := a2.Flush(); b != (Batch{0, 3, 2, 4}) || b.Refused() != 1 {
		t.Fatal(b)
	}
}
