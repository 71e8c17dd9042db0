//go:build cgo

package kinesisbatcher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestEngineLayout(t *testing.T) {
	for name, c := range engineLayoutChecks() {
		if c[0] != c[1] {
			t.Errorf("%s: Go %d, C %d", name, c[0], c[1])
		}
	}
	if ErrorKind(errorKindCredentialsHeader) != Credentials {
		t.Errorf("Credentials is %d, KB_ERROR_KIND_CREDENTIALS %d", Credentials, errorKindCredentialsHeader)
	}
}

// The zero EngineConfig is the documented default, field by field, and so is an
// Engine made with it.
func TestEngineConfigDefaults(t *testing.T) {
	want := EngineConfig{
		Linger: 100 * time.Millisecond, MaxInFlight: 1, MaxBufferedRecords: 16384,
		MaxBufferedBytes: 64 << 20, ShardRecordsPerSec: 1000, ShardBytesPerSec: 1 << 20,
	}
	if got := (EngineConfig{}).Effective(Limits{}); got != want {
		t.Fatalf("EngineConfig{}.Effective() = %+v, want %+v", got, want)
	}
	neg := EngineConfig{Linger: -time.Second, MaxInFlight: -3, MaxBufferedRecords: -1, MaxBufferedBytes: -5,
		ShardRecordsPerSec: -1, ShardBytesPerSec: -1}
	if got := neg.Effective(Limits{}); got != want {
		t.Fatalf("negative fields: %+v, want the defaults", got)
	}
	if got := (EngineConfig{Linger: time.Nanosecond}).Effective(Limits{}).Linger; got != time.Millisecond {
		t.Fatalf("Linger 1 ns: %v, want 1 ms", got)
	}
	if got := (EngineConfig{MaxInFlight: 64}).Effective(Limits{}).MaxBufferedRecords; got != 64*2*500 {
		t.Fatalf("default capacity with 64 in flight: %d", got)
	}
	e, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Capacity() != 16384 {
		t.Fatalf("capacity %d", e.Capacity())
	}
	// The linger: one record waits 100 ms, not less.
	t0 := timeZero
	if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: "k"}, t0); err != nil {
		t.Fatal(err)
	}
	p, err := e.Next(t0.Add(99 * time.Millisecond))
	if err != nil || p.State != EngineWait || !p.Until.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("Next at 99 ms: %+v, %v; want wait until 100 ms", p, err)
	}
	p, err = e.Next(t0.Add(100 * time.Millisecond))
	if err != nil || p.State != EngineReady || len(p.Request.Handles) != 1 || p.Request.Bytes != 2 {
		t.Fatalf("Next at 100 ms: %+v, %v", p, err)
	}
	// One in flight by default.
	if _, err := e.Push(Record{Data: []byte("y"), PartitionKey: "k2"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if p2, _ := e.Next(t0.Add(100 * time.Millisecond)); p2.State != EngineBusy {
		t.Fatalf("second request with one in flight: %v", p2.State)
	}
	if _, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{MaxInFlight: 1025}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("MaxInFlight 1025: %v", err)
	}
}

func TestEnginePushFullRefused(t *testing.T) {
	e, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{MaxBufferedRecords: 3, MaxBufferedBytes: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var re *RefusedError
	if _, err := e.Push(Record{Data: []byte("x")}, timeZero); !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.Reason != KeyEmpty {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := e.Push(Record{Data: make([]byte, 1<<20), PartitionKey: "k"}, timeZero); !errors.As(err, &re) || re.Reason != RecordTooLarge {
		t.Fatalf("too large: %v", err)
	}
	seen := map[Handle]bool{}
	for i := range 3 {
		h, err := e.Push(Record{Data: []byte("x"), PartitionKey: fmt.Sprint(i)}, timeZero)
		if err != nil || h.Slot() < 0 || h.Slot() >= e.Capacity() || seen[h] {
			t.Fatalf("push %d: %v, %v", i, h, err)
		}
		seen[h] = true
	}
	if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: "k"}, timeZero); !errors.Is(err, ErrFull) {
		t.Fatalf("4th record, capacity 3: %v", err)
	}
	s := e.Stats()
	if s.BufferedRecords != 3 || s.BufferedBytes != 6 || s.Refused[KeyEmpty] != 1 || s.Refused[RecordTooLarge] != 1 || s.RefusedTotal() != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Bytes: 1000 at most.
	e2, _ := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{MaxBufferedBytes: 1000}, nil)
	defer e2.Close()
	if _, err := e2.Push(Record{Data: make([]byte, 990), PartitionKey: "k"}, timeZero); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.Push(Record{Data: make([]byte, 10), PartitionKey: "k"}, timeZero); !errors.Is(err, ErrFull) {
		t.Fatalf("over the bytes: %v", err)
	}
}

func TestEngineSettleErrorsAndClose(t *testing.T) {
	e, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{Linger: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Settle(42, nil, timeZero, 0); !errors.Is(err, ErrNothingInFlight) {
		t.Fatalf("settling an unknown request: %v", err)
	}
	for i := range 3 {
		if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: fmt.Sprint(i)}, timeZero); err != nil {
			t.Fatal(err)
		}
	}
	p, err := e.Next(timeZero.Add(time.Second))
	if err != nil || p.State != EngineReady || len(p.Request.Handles) != 3 {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := e.Settle(p.Request.ID+1, []string{"", "", ""}, timeZero, 0); !errors.Is(err, ErrNothingInFlight) {
		t.Fatalf("settling another id: %v", err)
	}
	// A response with another entry count fails every entry as a bad response (retried).
	st, err := e.Settle(p.Request.ID, []string{""}, timeZero.Add(time.Second), 0)
	if err != nil || st.Accepted != 0 || st.Retrying != 3 || len(st.Terminal) != 0 {
		t.Fatalf("short response: %+v, %v", st, err)
	}
	if s := e.Stats(); s.Retried != 3 || s.AcceptedRecords != 0 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := e.Settle(p.Request.ID, []string{"", "", ""}, timeZero, 0); !errors.Is(err, ErrNothingInFlight) {
		t.Fatalf("settling twice: %v", err)
	}
	if err := e.Reset(); err != nil || !e.Empty() {
		t.Fatalf("Reset: %v, empty %v", err, e.Empty())
	}
	e.Close()
	e.Close()
	if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: "k"}, timeZero); !errors.Is(err, ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if _, err := e.Next(timeZero); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if e.Stats() != (EngineStats{}) || e.Paused() || e.Resume() != ErrClosed || e.Flush() != ErrClosed {
		t.Fatal("a closed engine")
	}
}

// Expired credentials pause the engine: the records wait (no attempt counted, nothing
// terminal) until Resume.
func TestEngineCredentialsPause(t *testing.T) {
	e, err := NewEngine(Limits{}, RetryPolicy{MaxAttempts: 1}, EngineConfig{Linger: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 5 {
		if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: fmt.Sprint(i)}, timeZero); err != nil {
			t.Fatal(err)
		}
	}
	now := timeZero.Add(time.Second)
	p, _ := e.Next(now)
	if p.State != EngineReady {
		t.Fatal(p.State)
	}
	st, err := e.SettleAll(p.Request.ID, Credentials, now, 0)
	if err != nil || len(st.Terminal) != 0 {
		t.Fatalf("credentials with MaxAttempts 1: %+v, %v (want nothing terminal)", st, err)
	}
	if !e.Paused() {
		t.Fatal("not paused")
	}
	if p, _ := e.Next(now.Add(time.Minute)); p.State != EnginePaused {
		t.Fatalf("Next while paused: %v", p.State)
	}
	if err := e.Resume(); err != nil || e.Paused() {
		t.Fatal("Resume", err)
	}
	p, _ = e.Next(now.Add(time.Minute))
	if p.State != EngineReady || len(p.Request.Handles) != 5 {
		t.Fatalf("after Resume: %+v", p)
	}
	codes := make([]string, 5)
	if st, err := e.Settle(p.Request.ID, codes, now.Add(time.Minute), 0); err != nil || st.Accepted != 5 {
		t.Fatalf("%+v %v", st, err)
	}
	if s := e.Stats(); s.CredentialFailures != 1 || s.Terminal != 0 || s.AcceptedRecords != 5 || !e.Empty() {
		t.Fatalf("stats %+v", s)
	}
}

// The engine against a simulated service on a simulated clock: records pushed over
// time, up to MaxInFlight requests out, settled in random order after random
// latencies, with per-entry failures, throttling, whole-request errors and credential
// pauses. Every record is accepted exactly once or terminal, each key's records are
// accepted in push order (per-key order on), requests respect the limits, and no
// more than MaxInFlight are out.
func TestEngineSimulated(t *testing.T) {
	type flight struct {
		req EngineRequest
		due time.Time
	}
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 0xe17))
		inFlight := 1 + rng.IntN(12)
		cfg := EngineConfig{
			Linger:             time.Duration(1+rng.IntN(200)) * time.Millisecond,
			MaxInFlight:        inFlight,
			MaxBufferedRecords: 50 + rng.IntN(3000),
		}
		limits, err := NewLimits(ProfileKDS, 1+rng.IntN(500), 10<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEngine(limits, RetryPolicy{MaxAttempts: 3 + rng.IntN(10), BackoffBase: time.Millisecond, BackoffCap: 50 * time.Millisecond}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		const n = 4000
		keys := 1 + rng.IntN(300)
		now := timeZero
		next := 0                          // the next record to push
		slots := make([]int, e.Capacity()) // record number + 1 at each slot
		keyOf := func(i int) string { return fmt.Sprint("k", i%keys) }
		accepted := make([]int, n)
		terminal := make([]int, n)
		lastAccepted := map[string]int{}
		var out []flight
		paused := false
		for steps := 0; ; steps++ {
			if steps > 2_000_000 {
				t.Fatalf("seed %d: no end", seed)
			}
			// Push a burst of records.
			for b := rng.IntN(40); b > 0 && next < n; b-- {
				h, err := e.Push(Record{Data: make([]byte, rng.IntN(3000)), PartitionKey: keyOf(next)}, now)
				if errors.Is(err, ErrFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if slots[h.Slot()] != 0 {
					t.Fatalf("seed %d: slot %d reused while record %d is buffered", seed, h.Slot(), slots[h.Slot()]-1)
				}
				slots[h.Slot()] = next + 1
				next++
			}
			var wake time.Time
			for {
				p, err := e.Next(now)
				if err != nil {
					t.Fatal(err)
				}
				if p.State == EngineReady {
					r := p.Request
					if len(r.Handles) > limits.MaxRecords() || r.Bytes > limits.MaxRequestBytes() {
						t.Fatalf("seed %d: request over the limits: %d records, %d bytes", seed, len(r.Handles), r.Bytes)
					}
					seenKey := map[string]bool{}
					for _, h := range r.Handles {
						k := keyOf(slots[h.Slot()] - 1)
						if seenKey[k] {
							t.Fatalf("seed %d: key %s twice in one request", seed, k)
						}
						seenKey[k] = true
					}
					out = append(out, flight{r, now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)})
					if len(out) > inFlight {
						t.Fatalf("seed %d: %d requests out, MaxInFlight %d", seed, len(out), inFlight)
					}
					continue
				}
				if p.State == EngineWait {
					wake = p.Until
					if !p.Until.After(now) {
						t.Fatalf("seed %d: wait until %v at %v", seed, p.Until, now)
					}
				}
				if p.State == EnginePaused && !paused {
					paused = true
				}
				if p.State == EngineIdle && next == n && len(out) == 0 {
					goto done
				}
				break
			}
			if paused && rng.IntN(3) == 0 {
				paused = false
				if err := e.Resume(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// Settle one request that is due (in random order), or move the clock.
			if len(out) > 0 && rng.IntN(2) == 0 {
				i := rng.IntN(len(out))
				f := out[i]
				out = append(out[:i], out[i+1:]...)
				now = maxTime(now, f.due)
				var st Settled
				switch r := rng.IntN(20); {
				case r == 0:
					st, err = e.SettleAll(f.req.ID, Transport, now, rng.Uint64())
				case r == 1:
					st, err = e.SettleAll(f.req.ID, Throttling, now, rng.Uint64())
				case r == 2 && rng.IntN(4) == 0:
					st, err = e.SettleAll(f.req.ID, Credentials, now, rng.Uint64())
				default:
					codes := make([]string, len(f.req.Handles))
					for j := range codes {
						switch x := rng.IntN(100); {
						case x < 8:
							codes[j] = "ProvisionedThroughputExceededException"
						case x < 10:
							codes[j] = "InternalFailure"
						case x < 11:
							codes[j] = "KMSDisabledException"
						}
					}
					st, err = e.Settle(f.req.ID, codes, now, rng.Uint64())
					if err == nil {
						for j, c := range codes {
							if c != "" {
								continue
							}
							rec := slots[f.req.Handles[j].Slot()] - 1
							accepted[rec]++
							k := keyOf(rec)
							if last, ok := lastAccepted[k]; ok && last > rec {
								t.Fatalf("seed %d: key %s: record %d accepted after %d", seed, k, rec, last)
							}
							lastAccepted[k] = rec
							slots[f.req.Handles[j].Slot()] = 0
						}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range st.Terminal {
					rec := slots[x.Index] - 1
					if rec < 0 {
						t.Fatalf("seed %d: terminal slot %d holds no record", seed, x.Index)
					}
					terminal[rec]++
					slots[x.Index] = 0
				}
				continue
			}
			switch {
			case !wake.IsZero() && (len(out) == 0 || rng.IntN(2) == 0):
				now = wake
			default:
				now = now.Add(time.Duration(1+rng.IntN(20)) * time.Millisecond)
			}
		}
	done:
		for i := range n {
			if accepted[i]+terminal[i] != 1 {
				t.Fatalf("seed %d: record %d accepted %d times, terminal %d times", seed, i, accepted[i], terminal[i])
			}
		}
		s := e.Stats()
		acc, term := 0, 0
		for i := range n {
			acc += accepted[i]
			term += terminal[i]
		}
		if s.AcceptedRecords != uint64(acc) || s.Terminal != uint64(term) || s.BufferedRecords != 0 || !e.Empty() {
			t.Fatalf("seed %d: stats %+v, counted %d accepted, %d terminal", seed, s, acc, term)
		}
		e.Close()
	}
}

// With a shard map, no shard gets more than its rate in any one-second window.
func TestEngineShardRates(t *testing.T) {
	half := HashKey{Hi: 1 << 63}
	m, err := NewShardMap([]ShardRange{{Start: HashKey{}, End: HashKey{Hi: half.Hi - 1, Lo: ^uint64(0)}}, {Start: half, End: MaxHashKey}})
	if err != nil {
		t.Fatal(err)
	}
	const rate = 50
	e, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{Linger: time.Millisecond, MaxInFlight: 4, ShardRecordsPerSec: rate}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	shardOf := map[Handle]int{}
	type sent struct {
		at    time.Time
		shard int
	}
	var log []sent
	now := timeZero
	for i := range 400 {
		r := Record{Data: []byte("x"), PartitionKey: fmt.Sprint("key-", i)}
		k, _ := HashKeyOf(r.PartitionKey, "")
		h, err := e.Push(r, now)
		if err != nil {
			t.Fatal(err)
		}
		shardOf[h] = m.ShardOf(k)
	}
	for steps := 0; !e.Empty(); steps++ {
		if steps > 100000 {
			t.Fatal("no end")
		}
		p, err := e.Next(now)
		if err != nil {
			t.Fatal(err)
		}
		switch p.State {
		case EngineReady:
			for _, h := range p.Request.Handles {
				log = append(log, sent{now, shardOf[h]})
			}
			if _, err := e.Settle(p.Request.ID, make([]string, len(p.Request.Handles)), now, 0); err != nil {
				t.Fatal(err)
			}
		case EngineWait:
			now = p.Until
		default:
			t.Fatalf("state %v", p.State)
		}
	}
	for i, s := range log {
		n := 0
		for _, o := range log[i:] {
			if o.shard == s.shard && o.at.Sub(s.at) < time.Second {
				n++
			}
		}
		if n > rate {
			t.Fatalf("shard %d: %d records in the second from %v", s.shard, n, s.at.Sub(timeZero))
		}
	}
	if took := now.Sub(timeZero); took < 3*time.Second {
		t.Fatalf("400 records over 2 shards at %d a second took %v", rate, took)
	}
}

// An Engine dropped without Close is freed by the garbage collector (no crash, no
// leak the race detector or ASan would see).
func TestEngineCleanup(t *testing.T) {
	for range 100 {
		e, err := NewEngine(Limits{}, RetryPolicy{}, EngineConfig{MaxBufferedRecords: 1000}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: "k"}, timeZero); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Every record buffered up front, a few keys with many records each, several requests
// out, some failing as a whole: the engine never answers Busy (or Idle) with nothing in
// flight and records buffered, and never waits when nothing is in flight without a
// time to wake. (A cursor over the queue not moved back for retried records once left
// them unseen: Busy with 0 in flight, for ever.)
func TestEngineNeverStuck(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		n, keys, inFlight := 100+rng.IntN(5000), 1+rng.IntN(200), 1+rng.IntN(8)
		e, err := NewEngine(Limits{}, RetryPolicy{MaxAttempts: 40, BackoffBase: 20 * time.Millisecond},
			EngineConfig{MaxInFlight: inFlight}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := timeZero
		for i := range n {
			if _, err := e.Push(Record{Data: []byte("x"), PartitionKey: fmt.Sprint("k", i%keys)}, now); err != nil {
				t.Fatal(err)
			}
		}
		type out struct {
			id RequestID
			n  int
		}
		var flying []out
		for step := 0; !e.Empty(); step++ {
			if step > 1_000_000 {
				t.Fatalf("seed %d: no end", seed)
			}
			p, err := e.Next(now)
			if err != nil {
				t.Fatal(err)
			}
			if p.State == EngineReady {
				flying = append(flying, out{p.Request.ID, len(p.Request.Handles)})
				continue
			}
			if len(flying) == 0 {
				if p.State != EngineWait {
					t.Fatalf("seed %d (%d records, %d keys, %d in flight): %v with nothing in flight at step %d: %+v",
						seed, n, keys, inFlight, p.State, step, e.Stats())
				}
				now = p.Until
				continue
			}
			i := rng.IntN(len(flying))
			f := flying[i]
			flying = append(flying[:i], flying[i+1:]...)
			now = now.Add(time.Duration(rng.IntN(30)) * time.Millisecond)
			if rng.IntN(10) == 0 {
				_, err = e.SettleAll(f.id, Transport, now, rng.Uint64())
			} else {
				_, err = e.Settle(f.id, make([]string, f.n), now, rng.Uint64())
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if s := e.Stats(); s.AcceptedRecords != uint64(n) {
			t.Fatalf("seed %d: %d accepted of %d", seed, s.AcceptedRecords, n)
		}
		e.Close()
	}
}
