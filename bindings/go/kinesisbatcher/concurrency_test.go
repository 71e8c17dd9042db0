//go:build cgo

package kinesisbatcher

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// sharedInput is one large record slice that many goroutines plan at once: mostly
// small records, some near and over the 1 MiB record cap, keys from randKey (ASCII,
// multi-byte around the 256-unit limit, empty, invalid UTF-8, over 4 KiB) and an
// explicit hash key (valid or not) on some. The payloads all view sharedData.
func sharedInput(n int) []Record {
	rng := rand.New(rand.NewPCG(0x5eed, 0xc0ffee))
	recs := make([]Record, n)
	for i := range recs {
		var dl int
		switch r := rng.IntN(1000); {
		case r < 5: // around the 1 MiB cap
			dl = 1<<20 - 300 + rng.IntN(600)
		case r < 8: // over it
			dl = 1<<20 + rng.IntN(2<<20)
		case r < 40:
			dl = 64<<10 + rng.IntN(236<<10)
		default:
			dl = rng.IntN(2000)
		}
		key := fmt.Sprintf("user-%d", rng.IntN(500))
		if rng.IntN(10) == 0 {
			key = randKey(rng)
		}
		hash := ""
		if rng.IntN(5) == 0 {
			hash = randHashKey(rng)
		}
		recs[i] = Record{Data: sharedData[:dl:dl], PartitionKey: key, ExplicitHashKey: hash}
	}
	return recs
}

// TestConcurrentPlans: 16 goroutines plan one shared, read-only slice at the same time
// (Plan, Batches, an Accumulator each; two limit sets), and every result must equal
// the single-goroutine Plan, itself checked against the plain-Go model. Run under
// -race by test.sh: the binding's pooled engines and per-call C accumulators must not share
// anything writable between goroutines.
func TestConcurrentPlans(t *testing.T) {
	const goroutines = 16
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	recs := sharedInput(n)
	small, err := NewLimits(ProfileKDS, 100, 200_000, 5000, WithKeyUnit(UTF16Units), CountingHashKeys())
	if err != nil {
		t.Fatal(err)
	}
	limitSets := []Limits{KDS(), small}
	want := make([]*Result, len(limitSets))
	for i, l := range limitSets {
		res, err := Plan(recs, l)
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		wantB, wantR := refPlan(recs, refOf(l))
		if !equal(res.Batches, wantB) || !equal(res.Refusals, wantR) {
			t.Fatalf("limits %d: the single-goroutine Plan differs from the model", i)
		}
		if len(res.Batches) < 100 || len(res.Refusals) < 100 {
			t.Fatalf("limits %d: only %d batches and %d refusals", i, len(res.Batches), len(res.Refusals))
		}
		want[i] = res
	}

	// compare reports the first difference between a goroutine's plan and the single
	// one.
	compare := func(g int, what string, set int, batches []Batch, refusals []Refusal) {
		w := want[set]
		if equal(batches, w.Batches) && equal(refusals, w.Refusals) {
			return
		}
		msg := fmt.Sprintf("goroutine %d, %s, limits %d: %d batches and %d refusals, want %d and %d",
			g, what, set, len(batches), len(refusals), len(w.Batches), len(w.Refusals))
		for i := range min(len(batches), len(w.Batches)) {
			if batches[i] != w.Batches[i] {
				msg += fmt.Sprintf("; batch %d is %+v, want %+v", i, batches[i], w.Batches[i])
				break
			}
		}
		for i := range min(len(refusals), len(w.Refusals)) {
			if refusals[i] != w.Refusals[i] {
				msg += fmt.Sprintf("; refusal %d is %+v, want %+v", i, refusals[i], w.Refusals[i])
				break
			}
		}
		t.Error(msg)
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // every goroutine begins at once
			set := (g / 4) % len(limitSets)
			l := limitSets[set]
			switch g % 4 {
			case 0, 1: // Plan, twice in a row: the second reuses a pooled engine
				for range 2 {
					res, err := Plan(recs, l)
					if err != nil {
						t.Errorf("goroutine %d: Plan: %v", g, err)
						return
					}
					compare(g, "Plan", set, res.Batches, res.Refusals)
					if res.Stats != want[set].Stats {
						t.Errorf("goroutine %d: stats %+v, want %+v", g, res.Stats, want[set].Stats)
					}
				}
			case 2: // Batches: sub-slices of the shared slice itself
				var batches []Batch
				var refusals []Refusal
				for sub, b := range Batches(recs, l, func(r Refusal) { refusals = append(refusals, r) }) {
					if len(sub) != b.End-b.Start || &sub[0] != &recs[b.Start] {
						t.Errorf("goroutine %d: the yielded slice is not recs[%d:%d]", g, b.Start, b.End)
						return
					}
					batches = append(batches, b)
				}
				compare(g, "Batches", set, batches, refusals)
			case 3: // an Accumulator, one cgo call per record
				acc, err := NewAccumulator(l)
				if err != nil {
					t.Errorf("goroutine %d: NewAccumulator: %v", g, err)
					return
				}
				defer acc.Close()
				var batches []Batch
				var refusals []Refusal
				for i := range recs {
					p, err := acc.Push(recs[i])
					if err != nil {
						t.Errorf("goroutine %d: Push %d: %v", g, i, err)
						return
					}
					if p.Send {
						batches = append(batches, p.Batch)
					}
					if p.Refused {
						refusals = append(refusals, Refusal{Index: i, Reason: p.Reason})
					}
				}
				if b, ok := acc.Flush(); ok {
					batches = append(batches, b)
				}
				compare(g, "Accumulator", set, batches, refusals)
			}
		}()
	}
	close(start)
	wg.Wait()
}
