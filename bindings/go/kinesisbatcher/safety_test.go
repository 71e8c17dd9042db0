//go:build cgo

package kinesisbatcher

// The shortest correct-looking use of each door never loses, resends or mis-sizes a
// record (issue 11). Each test models a piece of user code written the obvious way and
// fails if that code would go wrong.

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A policy literal that sets only the field the user cares about: the other fields
// are zero and must mean their defaults, not "no backoff" and "give up at once". The
// issue's repro: 200,000 records, RetryPolicy{MaxAttempts: 20}, retryable failures on
// some entries; 25,480 records gave up on their first failure and none was retried.
func TestRetryPolicyOneFieldSet(t *testing.T) {
	recs := make([]Record, 200_000)
	for i := range recs {
		recs[i] = Record{Data: sharedData[:10+i%1000], PartitionKey: "user-" + string(rune('a'+i%26))}
	}
	d, err := NewDelivery(recs, KDS(), RetryPolicy{MaxAttempts: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(11, 11))
	stored := make([]int, len(recs))
	now := timeZero
	failedEntries, backoffs := 0, 0
	for {
		req, done, err := d.Next(now)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		codes := make([]string, len(req.Entries))
		failed := false
		for i := range codes {
			// About one entry in eight throttled, on any attempt.
			if rng.IntN(8) == 0 {
				codes[i] = "ProvisionedThroughputExceededException"
				failedEntries++
				failed = true
			}
		}
		settled, err := d.Settle(codes, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(settled.Terminal) > 0 {
			t.Fatalf("%d records gave up (first: %+v): MaxAge 0 must mean 5 minutes, not 0",
				len(settled.Terminal), settled.Terminal[0])
		}
		for i, c := range codes {
			if c == "" {
				stored[req.Entries[i].Index]++
			}
		}
		wait := d.Backoff(rng.Uint64())
		if failed {
			// BackoffBase 0 must mean 100 ms: the ceiling after the first failure in a
			// row is 100 ms, and it doubles from there.
			if ceiling := d.Backoff(^uint64(0)); ceiling < 100*time.Millisecond || ceiling > 10*time.Second {
				t.Fatalf("backoff ceiling %v after a failure, want 100 ms to 10 s", ceiling)
			}
			backoffs++
		} else if wait != 0 {
			t.Fatalf("backoff %v after a request without failures", wait)
		}
		now = now.Add(wait)
	}
	st := d.Stats()
	if st.Retried == 0 || st.Retried != failedEntries || st.Terminal != 0 || backoffs == 0 {
		t.Fatalf("stats %+v: %d entries failed, %d backoffs", st, failedEntries, backoffs)
	}
	for i, n := range stored {
		if n != 1 {
			t.Fatalf("record %d stored %d times", i, n)
		}
	}
	t.Logf("200,000 records: %d requests, %d retried, 0 gave up", st.Requests, st.Retried)
}

// What a Delivery actually applies for policies with zero, negative and sub-millisecond
// fields, observed through the library (the backoff ceiling after one failure, when a
// record gives up): the Go conversion must hand zeros through field by field.
func TestRetryPolicyZeroFields(t *testing.T) {
	def := DefaultRetryPolicy()
	if def != (RetryPolicy{100 * time.Millisecond, 10 * time.Second, 5 * time.Minute, 10}) {
		t.Fatalf("default %+v", def)
	}
	for _, c := range []struct {
		p, want RetryPolicy
	}{
		{RetryPolicy{}, def},
		{RetryPolicy{MaxAttempts: 20}, RetryPolicy{100 * time.Millisecond, 10 * time.Second, 5 * time.Minute, 20}},
		{RetryPolicy{BackoffBase: -time.Second, BackoffCap: -1, MaxAge: -time.Hour, MaxAttempts: -3}, def},
		{RetryPolicy{BackoffBase: time.Nanosecond, MaxAge: 1500 * time.Microsecond}, RetryPolicy{time.Millisecond, 10 * time.Second, 2 * time.Millisecond, 10}},
		{RetryPolicy{BackoffCap: time.Minute}, RetryPolicy{100 * time.Millisecond, time.Minute, 5 * time.Minute, 10}},
	} {
		if got := c.p.Effective(); got != c.want {
			t.Errorf("%+v.Effective() = %+v, want %+v", c.p, got, c.want)
		}
		// The library's own view: the backoff ceiling after one failure is the base.
		d, err := NewDelivery([]Record{{Data: []byte("x"), PartitionKey: "k"}}, KDS(), c.p)
		if err != nil {
			t.Fatal(err)
		}
		d.Next(timeZero)
		if _, err := d.Settle([]string{"InternalFailure"}, timeZero); err != nil {
			t.Fatal(err)
		}
		if got := d.Backoff(^uint64(0)); got != c.want.BackoffBase {
			t.Errorf("%+v: backoff ceiling after one failure %v, want %v", c.p, got, c.want.BackoffBase)
		}
		if got := BackoffDelay(c.p, 1, ^uint64(0)); got != c.want.BackoffBase {
			t.Errorf("%+v: BackoffDelay %v, want %v", c.p, got, c.want.BackoffBase)
		}
		d.Close()
	}

	// MaxAge 0 is 5 minutes: a record failing for 4 minutes is still retried, one
	// failing after 6 minutes gives up. MaxAttempts 0 is 10 sends.
	for _, c := range []struct {
		step     time.Duration
		sends    int
		policy   RetryPolicy
		whatFor  string
		attempts int
	}{
		{2 * time.Minute, 4, RetryPolicy{MaxAttempts: 20}, "MaxAge 0 is 5 minutes", 0},
		{time.Millisecond, 10, RetryPolicy{MaxAge: time.Hour}, "MaxAttempts 0 is 10", 0},
		{time.Millisecond, 1, RetryPolicy{MaxAttempts: 1}, "MaxAttempts 1 is no retry", 0},
	} {
		d, _ := NewDelivery([]Record{{Data: []byte("x"), PartitionKey: "k"}}, KDS(), c.policy)
		now, sends := timeZero, 0
		for {
			_, done, err := d.Next(now)
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
			sends++
			st, err := d.Settle([]string{"InternalFailure"}, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Terminal) == 1 && !st.Terminal[0].GaveUp {
				t.Fatal("a retryable failure was terminal without giving up")
			}
			now = now.Add(c.step)
		}
		if sends != c.sends {
			t.Errorf("%s: %d sends, want %d", c.whatFor, sends, c.sends)
		}
		d.Close()
	}
}

// A user who ranges over Batches and sends each yielded sub-slice as it is, the
// shortest code the iterator invites:
//
//	for recs, b := range kinesisbatcher.Batches(records, kinesisbatcher.KDS(), onRefusal) {
//		send(recs)
//	}
//
// With 0.1% refused records, the issue measured 774 of 1,999 batches holding a refused
// record, which this loop would have sent. By default none may: every accepted record
// sent exactly once, no refused one sent. Under SpanningRefusals batches do hold them
// (and this loop would be wrong), which the test also checks, so that it can fail.
func TestBatchesNeverHandOverRefused(t *testing.T) {
	records := benchRecords() // 1,000,000 records, 0.1% refused
	refused := make([]bool, len(records))
	onRefusal := func(r Refusal) { refused[r.Index] = true }
	sent := make([]int, len(records))
	batches, holding := 0, 0
	for recs, b := range Batches(records, KDS(), onRefusal) {
		batches++
		if b.Refused() > 0 {
			holding++
		}
		for i := range recs { // send(recs)
			sent[b.Start+i]++
		}
	}
	nRefused := 0
	for i := range records {
		switch {
		case refused[i] && sent[i] != 0:
			t.Fatalf("refused record %d sent", i)
		case !refused[i] && sent[i] != 1:
			t.Fatalf("record %d sent %d times", i, sent[i])
		}
		if refused[i] {
			nRefused++
		}
	}
	if holding != 0 || nRefused < 900 || nRefused > 1100 {
		t.Fatalf("%d of %d batches hold a refused record; %d refused", holding, batches, nRefused)
	}

	span, _ := KDS().With(SpanningRefusals())
	spanBatches, spanHolding := 0, 0
	for _, b := range Batches(records, span, nil) {
		spanBatches++
		if b.Refused() > 0 {
			spanHolding++
		}
	}
	if spanHolding == 0 || spanBatches >= batches {
		t.Fatalf("SpanningRefusals: %d of %d batches hold a refused record", spanHolding, spanBatches)
	}
	t.Logf("default: %d batches, none holding a refused record; SpanningRefusals: %d of %d hold one",
		batches, spanHolding, spanBatches)
}

// The Delivery loop as the README writes it, with nothing extra: no refusal report, no
// backoff sleep, no look at Settled:
//
//	for {
//		req, done, err := d.Next(time.Now())
//		if err != nil { ... }
//		if done { break }
//		// send req.Entries
//		d.Settle(codes, time.Now())
//	}
//
// Every sendable record must be stored exactly once under random per-entry failures,
// including an input sent in a single request (the first request is also the last:
// a loop that stopped on "nothing left to plan" would drop it).
func TestDeliveryNaiveLoop(t *testing.T) {
	run := func(t *testing.T, recs []Record, l Limits, rng *rand.Rand) (stored []int, requests int) {
		t.Helper()
		d, err := NewDelivery(recs, l, RetryPolicy{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		stored = make([]int, len(recs))
		for {
			req, done, err := d.Next(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
			requests++
			codes := make([]string, len(req.Entries))
			for i, e := range req.Entries {
				// Random retryable failures, never more than 5 in a row for a record,
				// so the default 10 attempts always suffice.
				if e.Attempts < 5 && rng.IntN(3) == 0 {
					codes[i] = [...]string{"ProvisionedThroughputExceededException", "InternalFailure"}[rng.IntN(2)]
				}
			}
			if _, err := d.Settle(codes, time.Now()); err != nil {
				t.Fatal(err)
			}
			for i, c := range codes {
				if c == "" {
					stored[req.Entries[i].Index]++
				}
			}
		}
		return stored, requests
	}

	// Ten records, one request: the first is also the last.
	ten := make([]Record, 10)
	for i := range ten {
		ten[i] = Record{Data: []byte("event"), PartitionKey: "k"}
	}
	d, _ := NewDelivery(ten, KDS(), RetryPolicy{})
	req, done, err := d.Next(time.Now())
	if err != nil || done || len(req.Entries) != 10 {
		t.Fatalf("first Next of 10 records: %d entries, done %v, %v", len(req.Entries), done, err)
	}
	d.Settle(make([]string, 10), time.Now())
	if req, done, err := d.Next(time.Now()); err != nil || !done || len(req.Entries) != 0 {
		t.Fatalf("after the only request: %d entries, done %v, %v", len(req.Entries), done, err)
	}
	d.Close()
	rng := rand.New(rand.NewPCG(4, 4))
	stored, requests := run(t, ten, KDS(), rand.New(rand.NewPCG(0, 0)))
	for i, n := range stored {
		if n != 1 {
			t.Fatalf("10 records: record %d stored %d times (%d requests)", i, n, requests)
		}
	}

	for seed := range uint64(60) {
		rng = rand.New(rand.NewPCG(seed, 4))
		l := randLimits(rng)
		recs := randRecords(rng, []int{1, 10, 499, 500, 501, 3000}[seed%6], l)
		_, wantR := refPlan(recs, refOf(l))
		isRefused := map[int]bool{}
		for _, r := range wantR {
			isRefused[r.Index] = true
		}
		stored, _ := run(t, recs, l, rng)
		for i, n := range stored {
			if want := map[bool]int{false: 1, true: 0}[isRefused[i]]; n != want {
				t.Fatalf("seed %d, %d records: record %d stored %d times, want %d", seed, len(recs), i, n, want)
			}
		}
	}
}

// Next with a request in flight is ErrInFlight and changes nothing; a record waiting to
// be sent again that the user changed in place into a refused one is ErrInputChanged
// and changes nothing; one changed before it is planned is planned at its new size.
func TestDeliveryBadInput(t *testing.T) {
	recs := make([]Record, 5)
	for i := range recs {
		recs[i] = Record{Data: sharedData[:100], PartitionKey: "k"}
	}
	recs[0].Data = sharedData[:200] // changed after NewDelivery, before any Next: sized anew
	d, err := NewDelivery(recs[:5:5], KDS(), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recs[0].Data = sharedData[:300]
	req, _, err := d.Next(timeZero)
	if err != nil || len(req.Entries) != 5 || req.Bytes != 300+4*100+5 {
		t.Fatalf("first request: %+v, %v (want 705 bytes: record 0 as it is now)", req, err)
	}
	_, _, err = d.Next(timeZero)
	var se *StatusError
	if !errors.Is(err, ErrInFlight) || !errors.As(err, &se) || se.Status != statusRequestInFlight {
		t.Fatalf("Next with a request in flight: %v", err)
	}
	codes := []string{"", "InternalFailure", "", "", ""}
	if _, err := d.Settle(codes, timeZero); err != nil {
		t.Fatal(err)
	}
	recs[1].PartitionKey = "" // record 1 waits to be sent again: now refused
	if _, _, err := d.Next(timeZero); !errors.Is(err, ErrInputChanged) {
		t.Fatalf("a waiting record made refused: %v", err)
	}
	if w := d.Waiting(); len(w) != 1 || w[0].Index != 1 {
		t.Fatalf("ErrInputChanged changed the delivery: waiting %+v", w)
	}
	recs[1] = Record{Data: sharedData[:50], PartitionKey: "kk"} // still sendable, smaller
	req, done, err := d.Next(timeZero)
	if err != nil || done || len(req.Entries) != 1 || req.Entries[0].Index != 1 || req.Bytes != 52 {
		t.Fatalf("retry after the record was fixed: %+v %v %v", req, done, err)
	}
	d.Settle([]string{""}, timeZero)
	if _, done, _ := d.Next(timeZero); !done {
		t.Fatal("not done")
	}

	// Request.Runs with a slice the Delivery does not plan (appended to after
	// NewDelivery: the new records would never be sent) panics.
	d2, _ := NewDelivery(recs, KDS(), RetryPolicy{})
	defer d2.Close()
	req, _, _ = d2.Next(timeZero)
	more := append(recs, Record{Data: []byte("late"), PartitionKey: "k"})
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "NewDelivery or Reset") {
				t.Fatalf("Runs over an appended slice: recovered %v", r)
			}
		}()
		for range req.Runs(more) {
		}
	}()
	n := 0
	for _, run := range req.Runs(recs) {
		n += len(run)
	}
	if n != 5 {
		t.Fatalf("Runs: %d records", n)
	}
}

// Reset delivers another slice with the same object, dropping what was in flight or
// waiting: the records of the first slice are never sent after it.
func TestDeliveryReset(t *testing.T) {
	a := []Record{{Data: []byte("a"), PartitionKey: "k"}, {Data: []byte("b"), PartitionKey: "k"}}
	b := make([]Record, 700)
	for i := range b {
		b[i] = Record{Data: []byte("bb"), PartitionKey: "k"}
	}
	b[3].PartitionKey = ""
	d, err := NewDelivery(a, KDS(), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, _, err := d.Next(timeZero); err != nil { // in flight, never settled
		t.Fatal(err)
	}
	if err := d.Reset(b); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Requests != 0 || d.Position() != 0 || len(d.Waiting()) != 0 {
		t.Fatalf("after Reset: %+v, position %d", st, d.Position())
	}
	stored := make([]int, len(b))
	refused, first := 0, -1
	for {
		req, done, err := d.Next(timeZero.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		refused += len(req.Refusals)
		if done {
			break
		}
		if first < 0 {
			first = len(req.Entries)
		}
		for _, e := range req.Entries {
			stored[e.Index]++
		}
		if _, err := d.Settle(make([]string, len(req.Entries)), timeZero.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range stored {
		if want := map[bool]int{true: 0, false: 1}[i == 3]; n != want {
			t.Fatalf("record %d stored %d times", i, n)
		}
	}
	if refused != 1 || d.Stats().Requests < 2 {
		t.Fatalf("%d refused, %+v", refused, d.Stats())
	}
	// The same slice again: the same first request.
	if err := d.Reset(b); err != nil {
		t.Fatal(err)
	}
	if req, _, err := d.Next(timeZero); err != nil || len(req.Entries) != first || req.Entries[0].Attempts != 0 {
		t.Fatalf("after a second Reset: %d entries (want %d), %v", len(req.Entries), first, err)
	}
}

// Long runs of refused records fill the library's refusal array before any entry
// (KB_ONLY_REFUSALS, several times in a row): Next must go on to the request behind
// them, and report every refusal once, rather than stop as a loop reading "no entries"
// as "done" would, with records left. The runs here are many times the 64 refusals
// Next takes per call.
func TestDeliveryLongRunsOfRefusals(t *testing.T) {
	recs := make([]Record, 1000)
	for i := range recs {
		recs[i] = Record{Data: []byte("d"), PartitionKey: "k"}
		if i < 300 || (i >= 310 && i < 800) || i >= 990 {
			recs[i].PartitionKey = "" // refused: empty key
		}
	}
	d, err := NewDelivery(recs, KDS(), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	refused := map[int]int{}
	var requests [][]int
	for {
		req, done, err := d.Next(timeZero)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range req.Refusals {
			refused[r.Index]++
		}
		if done {
			if len(req.Entries) != 0 {
				t.Fatal("done with entries")
			}
			break
		}
		var idx []int
		for _, e := range req.Entries {
			idx = append(idx, e.Index)
		}
		requests = append(requests, idx)
		d.Settle(make([]string, len(req.Entries)), timeZero)
	}
	sent := 0
	for _, r := range requests {
		sent += len(r)
	}
	if sent != 200 || len(refused) != 800 {
		t.Fatalf("%d records sent in %d requests, %d refused; want 200 and 800", sent, len(requests), len(refused))
	}
	for i, n := range refused {
		if n != 1 || recs[i].PartitionKey != "" {
			t.Fatalf("record %d refused %d times", i, n)
		}
	}
}
