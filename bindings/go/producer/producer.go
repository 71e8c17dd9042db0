// Package producer is an asynchronous Kinesis Data Streams producer on the AWS SDK for
// Go v2: Put returns as soon as a record is buffered, requests are sent in the
// background (several at once), and every record ends stored once, refused at Put, or
// reported to a callback.
//
// Every decision a producer makes is the kinesis-batcher engine's (the C library,
// through the kinesisbatcher package): which records form each PutRecords request
// (full, or its oldest record has waited Linger, or Flush), how many requests are in
// flight, each key's order, per-shard rates, which failed entries go again and after
// what backoff, when a record gives up, and a pause when credentials fail. This package
// adds no batching logic: it buffers payloads, sends the requests the engine hands
// out, and reports each response back.
//
//	p, err := producer.New(kinesis.NewFromConfig(cfg), producer.Config{StreamName: "events"})
//	...
//	err = p.Put(ctx, data, partitionKey) // blocks while the buffer is full
//	...
//	err = p.Close(ctx)                   // sends what is buffered, then stops
//
// One goroutine drives the engine; MaxInFlight goroutines call PutRecords. The SDK's
// own retries are turned off for these calls (an SDK retry would re-send a whole
// request, stored entries included, behind the engine's back): the engine retries the
// failed entries only.
package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

// PutRecordsAPI is the one call the producer makes; *kinesis.Client satisfies it.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, params *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Config configures a Producer. Only a stream (StreamName or StreamARN) is required:
// every other field that is zero (or negative) means its default, so Config{StreamName:
// "s"} is the safe default.
type Config struct {
	// StreamName or StreamARN names the stream (one of them is required).
	StreamName, StreamARN string

	// Limits are the service's caps (zero: kinesisbatcher.KDS(): 500 records and 10 MiB
	// a request, 1 MiB a record; kinesisbatcher.ForStream for a stream whose
	// MaxRecordSizeInKiB is larger).
	Limits kb.Limits
	// Retry is how long failed entries are retried (zero fields: their defaults, 10
	// sends over at most 5 minutes, backoff from 100 ms doubling to 10 s).
	Retry kb.RetryPolicy

	// Linger is how long a record may wait for its request to fill (0: 100 ms, the
	// KPL's RecordMaxBufferedTime). Whole milliseconds, rounded up.
	Linger time.Duration
	// MaxInFlight is the most PutRecords calls at once (0: 1; at most 1,024). With
	// per-key order (the default) a key is in one request in flight at most.
	MaxInFlight int
	// MaxBufferedRecords and MaxBufferedBytes bound the buffer, in flight included:
	// Put blocks and TryPut returns ErrBufferFull above them (0: 2 requests' worth of
	// records per request in flight, at least 16,384; 0: 64 MiB, counted as the service
	// counts records: data + partition key).
	MaxBufferedRecords int
	MaxBufferedBytes   int64
	// AllowReordering lets a key's records be stored out of order (false, the default:
	// each key's records are stored in the order Put returned for them).
	AllowReordering bool

	// ShardMap (optional): the stream's open shards, for per-shard rate limits
	// (ShardRecordsPerSec and ShardBytesPerSec, 0: 1,000 records and 1 MiB a second).
	ShardMap                             *kb.ShardMap
	ShardRecordsPerSec, ShardBytesPerSec int

	// RequestTimeout bounds each PutRecords call (0: 30 s). A call that times out is a
	// transport error: its records are sent again, and may then be stored twice.
	RequestTimeout time.Duration

	// OnFailure receives each record that will not be stored: a terminal error, a
	// retryable one that ran out of attempts or age, or (Abandoned) still buffered
	// when Close's context ended. It runs on the producer's own goroutine, one call at
	// a time: it must return promptly and must not call Put, Flush or Close (TryPut is
	// fine). When nil, the failures are counted (Metrics().Terminal) and the next Flush
	// or Close returns a *FailedError saying how many there were.
	OnFailure func(Failure)

	// RefreshCredentials is called when a request fails with expired or invalid
	// credentials (kinesisbatcher.Credentials): the engine then pauses, keeping the
	// records, and resumes after this returns and a backoff passes (an error from it
	// is not reported: the next request tells). nil: invalidate the client's
	// credentials cache (*aws.CredentialsCache, what config.LoadDefaultConfig makes),
	// so that the next request retrieves them again.
	RefreshCredentials func(ctx context.Context) error
}

// Failure is a record that will not be stored: the record as Put gave it, the last
// error it met, and why it stopped.
type Failure struct {
	Record kb.Record
	// Kind is the last error: an entry's ErrorCode, or the whole request's error.
	Kind kb.ErrorKind
	// GaveUp: Kind is retryable, but the record ran out of attempts or age.
	GaveUp bool
	// Abandoned: Close's context ended while the record was still buffered. When Kind
	// is Transport, it was in flight then and may have been stored.
	Abandoned bool
}

// Error describes the failure.
func (f Failure) Error() string {
	switch {
	case f.Abandoned:
		return "kinesis producer: record abandoned at Close (last error: " + f.Kind.String() + ")"
	case f.GaveUp:
		return "kinesis producer: record failed: " + f.Kind.String() + " (gave up: attempt or age limit)"
	}
	return "kinesis producer: record failed: " + f.Kind.String()
}

var (
	// ErrClosed: Put, TryPut or Flush after Close.
	ErrClosed = errors.New("kinesis producer: closed")
	// ErrBufferFull: TryPut with the buffer full (records or bytes). Nothing was
	// buffered.
	ErrBufferFull = errors.New("kinesis producer: buffer full")
	// ErrNoStream: a Config with neither StreamName nor StreamARN.
	ErrNoStream = errors.New("kinesis producer: Config.StreamName or Config.StreamARN is required")
)

// FailedError is returned by Flush or Close, when Config.OnFailure is nil, for the
// records that failed since the previous Flush or Close returned: they are not stored.
type FailedError struct {
	Records uint64
}

func (e *FailedError) Error() string {
	return "kinesis producer: " + strconv.FormatUint(e.Records, 10) +
		" records failed and were not stored (set Config.OnFailure to receive them)"
}

// Metrics are the producer's counters: the engine's (buffered, in flight, sent,
// retried, throttled, refused, terminal), and its state.
type Metrics struct {
	kb.EngineStats
	// Paused: a request failed with expired or invalid credentials; the records wait
	// while the credentials are refreshed.
	Paused bool
	// ShardThrottled: with a shard map, the times each shard was throttled.
	ShardThrottled []uint64
}

// slot is a buffered record's payload, at its handle's slot.
type slot struct {
	rec kb.Record
	seq uint64 // Put order, from 1; 0: free
}

// flushWaiter is a Flush waiting for the records put up to target.
type flushWaiter struct {
	target    uint64
	remaining int
	done      chan struct{}
}

// result is a PutRecords call's outcome, classified by the goroutine that made it.
type result struct {
	id      kb.RequestID
	handles []kb.Handle
	whole   bool           // the request failed as a whole: kind
	kind    kb.ErrorKind   // whole
	ok      []bool         // per entry: stored
	kinds   []kb.ErrorKind // per entry: the error when not stored
}

// Producer sends records to a Kinesis data stream in the background. Its methods are
// safe for concurrent use.
type Producer struct {
	client   PutRecordsAPI
	stream   *string
	arn      *string
	timeout  time.Duration
	policy   kb.RetryPolicy
	onFail   func(Failure)
	refresh  func(context.Context) error
	shards   int
	inFlight int // MaxInFlight, effective

	mu         sync.Mutex
	eng        *kb.Engine
	slots      []slot
	seq        uint64
	live       int
	closed     bool
	space      chan struct{} // closed when room frees up (or at Close), then replaced
	flushes    []*flushWaiter
	flushed    []*flushWaiter // done, to be closed after the failures are reported
	failures   []Failure      // to report, outside mu
	unreported uint64         // failures without OnFailure, for the next Flush or Close
	broken     error          // an engine error: the producer stopped
	final      *Metrics       // the counters at Close

	wake      chan struct{} // Put, Flush, Close -> the driver (capacity 1)
	results   chan result
	abandon   chan struct{} // closed when Close's context ended
	abandonMu sync.Once
	done      chan struct{} // closed when the driver has stopped
	sendCtx   context.Context
	cancel    context.CancelFunc
}

// New starts a producer sending to cfg's stream with client (a *kinesis.Client, or
// anything with its PutRecords). Close it to send what is buffered and stop.
func New(client PutRecordsAPI, cfg Config) (*Producer, error) {
	if client == nil {
		return nil, errors.New("kinesis producer: New: nil client")
	}
	if cfg.StreamName == "" && cfg.StreamARN == "" {
		return nil, ErrNoStream
	}
	ec := kb.EngineConfig{
		Linger:             cfg.Linger,
		MaxInFlight:        cfg.MaxInFlight,
		MaxBufferedRecords: cfg.MaxBufferedRecords,
		MaxBufferedBytes:   cfg.MaxBufferedBytes,
		AllowReordering:    cfg.AllowReordering,
		ShardRecordsPerSec: cfg.ShardRecordsPerSec,
		ShardBytesPerSec:   cfg.ShardBytesPerSec,
	}
	eng, err := kb.NewEngine(cfg.Limits, cfg.Retry, ec, cfg.ShardMap)
	if err != nil {
		return nil, fmt.Errorf("kinesis producer: %w", err)
	}
	eff := ec.Effective(cfg.Limits)
	p := &Producer{
		client:   client,
		timeout:  cfg.RequestTimeout,
		policy:   cfg.Retry,
		onFail:   cfg.OnFailure,
		refresh:  cfg.RefreshCredentials,
		inFlight: eff.MaxInFlight,
		eng:      eng,
		slots:    make([]slot, eng.Capacity()),
		space:    make(chan struct{}),
		wake:     make(chan struct{}, 1),
		results:  make(chan result, eff.MaxInFlight),
		abandon:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if cfg.StreamName != "" {
		p.stream = aws.String(cfg.StreamName)
	}
	if cfg.StreamARN != "" {
		p.arn = aws.String(cfg.StreamARN)
	}
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	if cfg.ShardMap != nil {
		p.shards = cfg.ShardMap.Len()
	}
	if p.refresh == nil {
		p.refresh = invalidateCache(client)
	}
	p.sendCtx, p.cancel = context.WithCancel(context.Background())
	go p.run()
	return p, nil
}

// invalidateCache is the default RefreshCredentials: the client's credentials cache
// forgets its credentials, so that the next request retrieves them again.
func invalidateCache(client PutRecordsAPI) func(context.Context) error {
	return func(context.Context) error {
		c, ok := client.(interface{ Options() kinesis.Options })
		if !ok {
			return nil
		}
		if cache, ok := c.Options().Credentials.(*aws.CredentialsCache); ok {
			cache.Invalidate()
		}
		return nil
	}
}

// Put buffers a record for the stream: data (copied: the slice may be reused at once)
// under partitionKey. It returns once the record is buffered; the record is then
// stored, or reported to Config.OnFailure. While the buffer is full Put waits for
// room, until ctx is done (ctx.Err()). A record that can never be sent (an empty or
// invalid key, too large) is refused at once, never buffered: a
// *kinesisbatcher.RefusedError naming the reason (errors.Is kinesisbatcher.ErrRefused).
// After Close: ErrClosed.
func (p *Producer) Put(ctx context.Context, data []byte, partitionKey string) error {
	return p.PutRecord(ctx, kb.Record{Data: data, PartitionKey: partitionKey})
}

// PutRecord is Put for a record with an ExplicitHashKey ("" for none).
func (p *Producer) PutRecord(ctx context.Context, r kb.Record) error {
	r.Data = append([]byte(nil), r.Data...)
	for {
		space, err := p.push(r)
		if err != ErrBufferFull {
			return err
		}
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TryPut is Put without waiting: ErrBufferFull when the buffer is full.
func (p *Producer) TryPut(data []byte, partitionKey string) error {
	return p.TryPutRecord(kb.Record{Data: data, PartitionKey: partitionKey})
}

// TryPutRecord is TryPut for a record with an ExplicitHashKey ("" for none).
func (p *Producer) TryPutRecord(r kb.Record) error {
	r.Data = append([]byte(nil), r.Data...)
	_, err := p.push(r)
	return err
}

// push buffers r (already copied), or returns ErrBufferFull with the channel closed
// when room frees up.
func (p *Producer) push(r kb.Record) (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.broken != nil:
		return nil, p.broken
	case p.closed:
		return nil, ErrClosed
	}
	h, err := p.eng.Push(r, time.Now())
	switch {
	case err == nil:
	case errors.Is(err, kb.ErrFull):
		return p.space, ErrBufferFull
	default:
		return nil, err
	}
	p.seq++
	p.slots[h.Slot()] = slot{rec: r, seq: p.seq}
	p.live++
	p.poke()
	return nil, nil
}

// poke wakes the driver (without waiting).
func (p *Producer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush sends what is buffered now without waiting for the linger, and waits until
// every record Put before the call is stored or reported to OnFailure (or, without
// OnFailure, counted in the *FailedError it returns), or until ctx is done
// (ctx.Err(); the records are still sent). After Close: ErrClosed.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.broken != nil:
		p.mu.Unlock()
		return p.broken
	case p.closed:
		p.mu.Unlock()
		return ErrClosed
	}
	w := &flushWaiter{target: p.seq, remaining: p.live, done: make(chan struct{})}
	if w.remaining == 0 {
		close(w.done)
	} else {
		p.flushes = append(p.flushes, w)
		if err := p.eng.Flush(); err != nil {
			p.breakLocked(err)
		}
		p.poke()
	}
	p.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.takeFailed()
}

// takeFailed is the FailedError for the failures not reported to a callback yet.
func (p *Producer) takeFailed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	if p.unreported == 0 {
		return nil
	}
	n := p.unreported
	p.unreported = 0
	return &FailedError{Records: n}
}

// Close stops taking records (Put returns ErrClosed from now on), sends everything
// buffered, and stops when every record is stored or reported. If ctx ends first, the
// requests in flight are cancelled, every record still buffered is reported to
// OnFailure as Abandoned, and Close returns ctx.Err(). Closing twice is safe (the
// second returns ErrClosed).
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return ErrClosed
	}
	p.closed = true
	close(p.space) // Puts waiting for room return ErrClosed
	if p.broken == nil {
		if err := p.eng.Flush(); err != nil {
			p.breakLocked(err)
		}
	}
	p.poke()
	p.mu.Unlock()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = ctx.Err()
		p.abandonMu.Do(func() { close(p.abandon) })
		<-p.done
	}
	p.mu.Lock()
	p.final = &Metrics{EngineStats: p.eng.Stats(), Paused: p.eng.Paused(), ShardThrottled: p.shardThrottled()}
	p.eng.Close()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.takeFailed()
}

// Metrics returns the counters now.
func (p *Producer) Metrics() Metrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.final != nil {
		m := *p.final
		m.ShardThrottled = append([]uint64(nil), m.ShardThrottled...)
		return m
	}
	return Metrics{EngineStats: p.eng.Stats(), Paused: p.eng.Paused(), ShardThrottled: p.shardThrottled()}
}

func (p *Producer) shardThrottled() []uint64 {
	if p.shards == 0 {
		return nil
	}
	out := make([]uint64, p.shards)
	for i := range out {
		out[i] = p.eng.ShardThrottled(i)
	}
	return out
}

// breakLocked stops the producer after an engine error (a bug: the engine refused a
// call the producer made): Put, Flush and Close return it; the driver abandons the
// records buffered.
func (p *Producer) breakLocked(err error) {
	if p.broken == nil {
		p.broken = fmt.Errorf("kinesis producer: stopped: %w", err)
		p.abandonMu.Do(func() { close(p.abandon) })
	}
}

// release frees a settled record's slot (and may finish Flushes and wake Puts).
func (p *Producer) release(h kb.Handle) kb.Record {
	s := &p.slots[h.Slot()]
	rec, seq := s.rec, s.seq
	*s = slot{}
	if seq == 0 {
		return rec // not a buffered record (a bug); nothing to count
	}
	p.live--
	kept := p.flushes[:0]
	for _, w := range p.flushes {
		if seq <= w.target {
			w.remaining--
			if w.remaining == 0 {
				// Done once the failures queued so far are reported (by the driver).
				p.flushed = append(p.flushed, w)
				continue
			}
		}
		kept = append(kept, w)
	}
	clear(p.flushes[len(kept):])
	p.flushes = kept
	return rec
}

// roomFreed wakes the Puts waiting for room.
func (p *Producer) roomFreed() {
	if !p.closed {
		close(p.space)
		p.space = make(chan struct{})
	}
}

// fail queues a failure for OnFailure (or counts it).
func (p *Producer) fail(f Failure) {
	if p.onFail == nil {
		p.unreported++
		return
	}
	p.failures = append(p.failures, f)
}

// run drives the engine: it sends the requests the engine hands out, settles the
// responses, sleeps until the engine's next due time or the next event, and handles a
// pause for credentials.
func (p *Producer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		inFlight   int
		pauses     int           // pauses in a row, for the backoff
		refreshing chan struct{} // closed when a refresh and its backoff are over
		abandoning bool
	)
	for {
		p.mu.Lock()
		var wait time.Time
		if !abandoning && p.broken == nil {
			now := time.Now()
		loop:
			for {
				poll, err := p.eng.Next(now)
				if err != nil {
					p.breakLocked(err)
					break
				}
				switch poll.State {
				case kb.EngineReady:
					inFlight++
					go p.send(poll.Request.ID, poll.Request.Handles, p.input(poll.Request.Handles))
				case kb.EngineWait:
					wait = poll.Until
					break loop
				case kb.EnginePaused:
					if refreshing == nil {
						pauses++
						refreshing = make(chan struct{})
						go p.refreshAndWait(refreshing, kb.BackoffDelay(p.policy, pauses, rand.Uint64()))
					}
					break loop
				default: // busy, idle
					break loop
				}
			}
		}
		failures, flushed := p.failures, p.flushed
		p.failures, p.flushed = nil, nil
		stop := p.closed && p.live == 0 && inFlight == 0
		p.mu.Unlock()
		for _, f := range failures {
			p.onFail(f)
		}
		for _, w := range flushed {
			close(w.done)
		}
		if stop {
			p.cancel()
			return
		}
		if abandoning && inFlight == 0 {
			p.abandonAll()
			return
		}
		var timerC <-chan time.Time
		if !wait.IsZero() {
			timer.Reset(max(time.Until(wait), 0))
			timerC = timer.C
		}
		var abandonC <-chan struct{}
		if !abandoning {
			abandonC = p.abandon
		}
		var refreshC <-chan struct{}
		if refreshing != nil {
			refreshC = refreshing
		}
		select {
		case r := <-p.results:
			inFlight--
			if p.settle(r) {
				pauses = 0
			}
		case <-p.wake:
		case <-timerC:
		case <-refreshC:
			refreshing = nil
			p.mu.Lock()
			if err := p.eng.Resume(); err != nil {
				p.breakLocked(err)
			}
			p.mu.Unlock()
		case <-abandonC:
			abandoning = true
			p.cancel() // the calls in flight return, as transport errors
		}
		timer.Stop() // Go 1.23 timers: no stale tick after Stop
	}
}

// abandonAll reports every record still buffered as Abandoned (Close's context ended,
// or the producer broke), after the last call in flight returned.
func (p *Producer) abandonAll() {
	p.mu.Lock()
	var failures []Failure
	for i := range p.slots {
		if p.slots[i].seq == 0 {
			continue
		}
		rec := p.release(kb.Handle(i))
		f := Failure{Record: rec, Kind: kb.Transport, Abandoned: true}
		if p.onFail == nil {
			p.unreported++
		} else {
			failures = append(failures, f)
		}
	}
	flushed := append(p.flushed, p.flushes...)
	p.flushes, p.flushed = nil, nil
	if !p.closed {
		p.closed = true
		close(p.space)
	}
	p.mu.Unlock()
	for _, f := range failures {
		p.onFail(f)
	}
	for _, w := range flushed {
		close(w.done)
	}
}

// refreshAndWait refreshes the credentials, waits delay, and closes done.
func (p *Producer) refreshAndWait(done chan struct{}, delay time.Duration) {
	defer close(done)
	_ = p.refresh(p.sendCtx) // its error is the next request's to tell
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.sendCtx.Done():
	}
}

// input is the PutRecords input for a request's handles (their payloads).
func (p *Producer) input(handles []kb.Handle) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{
		StreamName: p.stream,
		StreamARN:  p.arn,
		Records:    make([]types.PutRecordsRequestEntry, len(handles)),
	}
	for i, h := range handles {
		r := &p.slots[h.Slot()].rec
		e := types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)}
		if r.ExplicitHashKey != "" {
			e.ExplicitHashKey = aws.String(r.ExplicitHashKey)
		}
		in.Records[i] = e
	}
	return in
}

// noSDKRetries turns the SDK's retries off for a call: the engine retries the failed
// entries only.
func noSDKRetries(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }

// send makes one PutRecords call and hands its classified result to the driver.
func (p *Producer) send(id kb.RequestID, handles []kb.Handle, in *kinesis.PutRecordsInput) {
	ctx, cancel := context.WithTimeout(p.sendCtx, p.timeout)
	out, err := p.client.PutRecords(ctx, in, noSDKRetries)
	cancel()
	r := result{id: id, handles: handles}
	switch {
	case err != nil:
		r.whole, r.kind = true, requestKind(err)
	case out == nil || len(out.Records) != len(handles):
		r.whole, r.kind = true, kb.BadResponse // an entry count unlike the request's
	default:
		r.ok = make([]bool, len(handles))
		r.kinds = make([]kb.ErrorKind, len(handles))
		for i, e := range out.Records {
			switch {
			case e.SequenceNumber != nil && (e.ErrorCode == nil || *e.ErrorCode == ""):
				r.ok[i] = true
			case e.ErrorCode != nil && *e.ErrorCode != "":
				r.kinds[i] = kb.ErrorKindFromCode(*e.ErrorCode)
			default:
				r.kinds[i] = kb.BadResponse // neither a sequence number nor an error code
			}
		}
	}
	p.results <- r
}

// settle reports a result to the engine, frees the slots of the records it settled,
// and queues the failures. It reports whether some entry was stored.
func (p *Producer) settle(r result) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return false
	}
	var settled kb.Settled
	var err error
	if r.whole {
		settled, err = p.eng.SettleAll(r.id, r.kind, time.Now(), rand.Uint64())
	} else {
		settled, err = p.eng.SettleKinds(r.id, r.ok, r.kinds, time.Now(), rand.Uint64())
	}
	if err != nil {
		p.breakLocked(err)
		return false
	}
	freed := false
	for i, ok := range r.ok {
		if ok {
			p.release(r.handles[i])
			freed = true
		}
	}
	for _, t := range settled.Terminal {
		rec := p.release(kb.Handle(t.Index))
		p.fail(Failure{Record: rec, Kind: t.Kind, GaveUp: t.GaveUp})
		freed = true
	}
	if freed {
		p.roomFreed()
	}
	return settled.Accepted > 0
}
