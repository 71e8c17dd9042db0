package producer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

const terminalMark = 'T'

// putAll puts records 1..n from `writers` goroutines, each the records of its own keys
// (key n%keys) in increasing n, so each key's records are Put in order. Every second
// record of key 0 carries the terminal mark when marked is true.
func putAll(t *testing.T, p *Producer, n, keys, writers int, marked bool) (terminal map[uint64]bool) {
	t.Helper()
	terminal = map[uint64]bool{}
	for i := 1; i <= n; i++ {
		if marked && i%(2*keys) == 0 {
			terminal[uint64(i)] = true
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				if (i%keys)%writers != w {
					continue
				}
				var mark byte
				if terminal[uint64(i)] {
					mark = terminalMark
				}
				if err := p.Put(context.Background(), record(uint64(i), 20+i%200, mark), "key-"+strconv.Itoa(i%keys)); err != nil {
					errs <- fmt.Errorf("Put %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return terminal
}

// checkExactlyOnce: every record 1..n stored exactly once or reported failed (never
// both), and each key's records stored in increasing order.
func checkExactlyOnce(t *testing.T, f *fakeKinesis, fs *failures, n int, wantFailed map[uint64]bool) {
	t.Helper()
	counts := f.storedCounts()
	failed := map[uint64]Failure{}
	for _, x := range fs.get() {
		k := number(x.Record.Data)
		if _, dup := failed[k]; dup {
			t.Errorf("record %d reported twice", k)
		}
		failed[k] = x
	}
	for i := uint64(1); i <= uint64(n); i++ {
		c, fail := counts[i], failed[i]
		_, isFailed := failed[i]
		switch {
		case c > 1:
			t.Errorf("record %d stored %d times", i, c)
		case c == 1 && isFailed:
			t.Errorf("record %d stored and reported failed (%v)", i, fail)
		case c == 0 && !isFailed:
			t.Errorf("record %d neither stored nor reported", i)
		}
		if wantFailed != nil && isFailed != wantFailed[i] {
			t.Errorf("record %d: failed %v, want %v (%v)", i, isFailed, wantFailed[i], fail)
		}
	}
	if len(counts) > n {
		t.Errorf("%d distinct records stored, only %d put", len(counts), n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, ns := range f.byKey {
		for j := 1; j < len(ns); j++ {
			if ns[j] <= ns[j-1] {
				t.Errorf("key %s: record %d stored after %d", key, ns[j], ns[j-1])
				break
			}
		}
	}
}

// Many goroutines Put; responses come back out of order, with per-entry failures,
// throttled and failed calls, and lost connections (before storing): every record is
// stored exactly once or reported, each key in order, and the counters agree.
func TestExactlyOnceUnderFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight int
		fake     func(*fakeKinesis)
	}{
		{"clean-1", 1, func(f *fakeKinesis) {}},
		{"clean-8", 8, func(f *fakeKinesis) {}},
		{"faults-8", 8, func(f *fakeKinesis) {
			f.entryFail, f.throttle, f.serverError, f.transport = 0.1, 0.05, 0.05, 0.05
		}},
		{"faults-32", 32, func(f *fakeKinesis) {
			f.entryFail, f.throttle, f.serverError, f.transport = 0.2, 0.05, 0.05, 0.05
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(uint64(len(tc.name)))
			f.maxLatency = 3 * time.Millisecond
			f.terminalMark = terminalMark
			f.overlap = tc.inFlight > 1
			tc.fake(f)
			fs := &failures{}
			p, err := New(f, Config{
				StreamName:  "s",
				MaxInFlight: tc.inFlight,
				Linger:      2 * time.Millisecond,
				Retry:       kb.RetryPolicy{MaxAttempts: 60, BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond},
				OnFailure:   fs.add,
			})
			if err != nil {
				t.Fatal(err)
			}
			// More keys than a request holds: with per-key order a key is in one request
			// in flight at most, so with fewer keys than 500 a request could take them
			// all and nothing would be left for a second one.
			const n, keys = 12000, 601
			terminal := putAll(t, p, n, keys, 6, true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, f, fs, n, terminal)
			for _, x := range fs.get() {
				if x.Kind != kb.KMS || x.GaveUp || x.Abandoned {
					t.Errorf("failure %v: want a terminal kms", x)
				}
			}
			m := p.Metrics()
			if m.AcceptedRecords != uint64(n-len(terminal)) || m.Terminal != uint64(len(terminal)) ||
				m.BufferedRecords != 0 || m.InFlightRequests != 0 {
				t.Errorf("metrics %+v: want %d accepted, %d terminal, none buffered", m.EngineStats, n-len(terminal), len(terminal))
			}
			if f.maxFlight > tc.inFlight {
				t.Errorf("%d calls at once, MaxInFlight %d", f.maxFlight, tc.inFlight)
			}
			if tc.inFlight > 1 && f.maxFlight < 2 {
				t.Errorf("never more than one call at once with MaxInFlight %d", tc.inFlight)
			}
			if tc.name[:6] == "faults" && (m.Retried == 0 || m.Throttled == 0) {
				t.Errorf("faults injected but retried %d, throttled %d", m.Retried, m.Throttled)
			}
			t.Logf("%d calls, %d at once at most, metrics %+v", f.calls, f.maxFlight, m.EngineStats)
		})
	}
}

// Credentials expire in the middle: the engine pauses, the hook refreshes them, and
// nothing is lost or duplicated.
func TestCredentialsRefresh(t *testing.T) {
	f := newFake(3)
	f.maxLatency = 2 * time.Millisecond
	f.expireAfter = 5
	fs := &failures{}
	p, err := New(f, Config{
		StreamName:         "s",
		MaxInFlight:        4,
		Linger:             time.Millisecond,
		Retry:              kb.RetryPolicy{MaxAttempts: 2, BackoffBase: time.Millisecond},
		OnFailure:          fs.add,
		RefreshCredentials: f.refresh,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	putAll(t, p, n, 50, 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, f, fs, n, map[uint64]bool{})
	m := p.Metrics()
	if m.CredentialFailures == 0 || f.refreshes == 0 {
		t.Errorf("credentials expired but %d credential failures, %d refreshes", m.CredentialFailures, f.refreshes)
	}
	if m.Paused {
		t.Error("still paused")
	}
}

// A credentials failure with nothing refreshed keeps the records (never terminal) until
// Close's context ends; then they are reported as abandoned.
func TestCredentialsNeverRefreshed(t *testing.T) {
	f := newFake(4)
	f.expireAfter = 1
	fs := &failures{}
	p, err := New(f, Config{StreamName: "s", Linger: time.Millisecond, OnFailure: fs.add,
		RefreshCredentials: func(context.Context) error { return errors.New("no") }})
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, p, 10, 3, 1, false)
	time.Sleep(50 * time.Millisecond)
	if m := p.Metrics(); !m.Paused || m.CredentialFailures == 0 || m.Terminal != 0 || m.BufferedRecords != 10 {
		t.Errorf("metrics %+v, paused %v: want paused, 10 buffered, none terminal", m.EngineStats, m.Paused)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	got := fs.get()
	if len(got) != 10 {
		t.Fatalf("%d failures reported, want 10 abandoned", len(got))
	}
	for _, x := range got {
		if !x.Abandoned {
			t.Errorf("%v: not abandoned", x)
		}
	}
}

// Put blocks while the buffer is full, until its context ends; TryPut says
// ErrBufferFull; room frees up when requests settle.
func TestBackpressure(t *testing.T) {
	for _, byBytes := range []bool{false, true} {
		t.Run(fmt.Sprintf("bytes=%v", byBytes), func(t *testing.T) {
			f := newFake(5)
			f.gate = make(chan struct{})
			cfg := Config{StreamName: "s", Linger: time.Millisecond}
			if byBytes {
				cfg.MaxBufferedBytes = 10 * (100 + 5) // ten records of 100 bytes and a 5-byte key
			} else {
				cfg.MaxBufferedRecords = 10
			}
			p, err := New(f, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 10; i++ {
				if err := p.TryPut(record(uint64(i), 100, 0), "key-1"); err != nil {
					t.Fatalf("TryPut %d: %v", i, err)
				}
			}
			if err := p.TryPut(record(11, 100, 0), "key-1"); !errors.Is(err, ErrBufferFull) {
				t.Fatalf("TryPut on a full buffer: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			start := time.Now()
			err = p.Put(ctx, record(11, 100, 0), "key-1")
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 40*time.Millisecond {
				t.Fatalf("Put on a full buffer: %v after %v, want the deadline after 50 ms", err, time.Since(start))
			}
			// A Put waiting for room goes through once a request settles.
			done := make(chan error, 1)
			go func() { done <- p.Put(context.Background(), record(11, 100, 0), "key-1") }()
			select {
			case err := <-done:
				t.Fatalf("Put returned %v with the buffer full", err)
			case <-time.After(20 * time.Millisecond):
			}
			close(f.gate) // every call answers now
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := f.storedLen(); got != 11 {
				t.Fatalf("%d stored, want 11", got)
			}
		})
	}
}

// A record that can never be sent is refused at Put, with its reason, and never queued.
func TestRefusedAtPut(t *testing.T) {
	f := newFake(6)
	p, err := New(f, Config{StreamName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var re *kb.RefusedError
	err = p.Put(context.Background(), []byte("x"), "")
	if !errors.Is(err, kb.ErrRefused) || !errors.As(err, &re) || re.Reason != kb.KeyEmpty {
		t.Fatalf("empty key: %v", err)
	}
	err = p.TryPut(make([]byte, 1<<20), "k")
	if !errors.As(err, &re) || re.Reason != kb.RecordTooLarge {
		t.Fatalf("record over 1 MiB with its key: %v", err)
	}
	err = p.PutRecord(context.Background(), kb.Record{Data: []byte("x"), PartitionKey: "k", ExplicitHashKey: "01"})
	if !errors.As(err, &re) || re.Reason != kb.HashKeyInvalid {
		t.Fatalf("bad hash key: %v", err)
	}
	m := p.Metrics()
	if m.RefusedTotal() != 3 || m.BufferedRecords != 0 || m.Refused[kb.KeyEmpty] != 1 {
		t.Fatalf("metrics %+v", m.EngineStats)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.calls != 0 {
		t.Fatalf("%d calls for refused records", f.calls)
	}
}

// Flush sends at once (not after the linger) and returns when the records put before
// it are stored or reported; the failures are reported before Flush returns.
func TestFlush(t *testing.T) {
	f := newFake(7)
	f.terminalMark = terminalMark
	var mu sync.Mutex
	var reported []uint64
	p, err := New(f, Config{StreamName: "s", Linger: time.Hour, MaxInFlight: 2,
		OnFailure: func(x Failure) {
			mu.Lock()
			reported = append(reported, number(x.Record.Data))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		var mark byte
		if i == 3 {
			mark = terminalMark
		}
		if err := p.Put(context.Background(), record(uint64(i), 50, mark), "k"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if f.storedLen() != 0 {
		t.Fatal("sent before the linger or a Flush")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]uint64(nil), reported...)
	mu.Unlock()
	if f.storedLen() != 4 || len(got) != 1 || got[0] != 3 {
		t.Fatalf("after Flush: %d stored, reported %v; want 4 stored and record 3 reported", f.storedLen(), got)
	}
	// A Flush whose context ends first says so; the records are still sent.
	f.gate = make(chan struct{})
	if err := p.Put(context.Background(), record(6, 50, 0), "k6"); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := p.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with the call stuck: %v", err)
	}
	close(f.gate)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f.storedLen() != 5 {
		t.Fatalf("%d stored, want 5", f.storedLen())
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// Close sends what is buffered; Put after Close is ErrClosed; a Close whose context
// ends abandons the records still buffered, reporting each; closing twice is safe.
func TestClose(t *testing.T) {
	f := newFake(8)
	p, err := New(f, Config{StreamName: "s", Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 700; i++ {
		if err := p.Put(context.Background(), record(uint64(i), 10, 0), "k"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.storedLen() != 700 {
		t.Fatalf("Close stored %d of 700", f.storedLen())
	}
	if err := p.Put(context.Background(), []byte("x"), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := p.TryPut([]byte("x"), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryPut after Close: %v", err)
	}
	if err := p.Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if m := p.Metrics(); m.AcceptedRecords != 700 {
		t.Fatalf("metrics after Close: %+v", m.EngineStats)
	}

	// Abandoned: the calls never answer.
	f2 := newFake(9)
	f2.gate = make(chan struct{})
	fs := &failures{}
	p2, err := New(f2, Config{StreamName: "s", Linger: time.Millisecond, MaxBufferedRecords: 20, OnFailure: fs.add})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if err := p2.Put(context.Background(), record(uint64(i), 10, 0), "k"); err != nil {
			t.Fatal(err)
		}
	}
	// A Put waiting for room is released by Close, with ErrClosed.
	blocked := make(chan error, 1)
	go func() { blocked <- p2.Put(context.Background(), record(21, 10, 0), "k") }()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p2.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with calls stuck: %v", err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("a Put waiting for room at Close: %v", err)
	}
	got := fs.get()
	if len(got) != 20 {
		t.Fatalf("%d reported, want 20 abandoned", len(got))
	}
	inFlight := 0
	for _, x := range got {
		if !x.Abandoned {
			t.Fatalf("%v not abandoned", x)
		}
		if x.Kind == kb.Transport {
			inFlight++
		}
	}
	if inFlight == 0 {
		t.Error("no abandoned record was in flight")
	}
	if f2.storedLen() != 0 {
		t.Fatal("stored through a closed gate")
	}
}

// Without OnFailure, Flush and Close say how many records failed.
func TestFailuresWithoutCallback(t *testing.T) {
	f := newFake(10)
	f.terminalMark = terminalMark
	p, err := New(f, Config{StreamName: "s", Linger: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		var mark byte
		if i%5 == 0 {
			mark = terminalMark
		}
		if err := p.Put(context.Background(), record(uint64(i), 10, mark), "k"); err != nil {
			t.Fatal(err)
		}
	}
	var fe *FailedError
	if err := p.Flush(context.Background()); !errors.As(err, &fe) || fe.Records != 2 {
		t.Fatalf("Flush: %v, want 2 failed", err)
	}
	if err := p.Put(context.Background(), record(11, 10, terminalMark), "k"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); !errors.As(err, &fe) || fe.Records != 1 {
		t.Fatalf("Close: %v, want 1 failed", err)
	}
}

// The zero Config (but the stream) is the safe default: 100 ms linger, one call at a
// time, each key in order; a Config without a stream is refused.
func TestZeroConfig(t *testing.T) {
	if _, err := New(newFake(1), Config{}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Config{}: %v", err)
	}
	if _, err := New(newFake(1), Config{StreamName: "s", MaxInFlight: 5000}); !errors.Is(err, kb.ErrInvalidArgument) {
		t.Fatalf("MaxInFlight 5000: %v", err)
	}
	f := newFake(11)
	p, err := New(f, Config{StreamName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Put(context.Background(), record(1, 10, 0), "k"); err != nil {
		t.Fatal(err)
	}
	for f.storedLen() == 0 && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < 95*time.Millisecond || d > 2*time.Second {
		t.Errorf("one record sent after %v, want the 100 ms linger", d)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.maxFlight != 1 {
		t.Errorf("%d calls at once", f.maxFlight)
	}
}
