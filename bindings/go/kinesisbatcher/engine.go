//go:build cgo

package kinesisbatcher

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
)

// EngineConfig tunes an Engine. Every field that is 0 (or negative, or false) means its
// default, so the zero EngineConfig is the safe default: 100 ms linger, one request in
// flight, 64 MiB buffered, each key's records stored in order, and (with a shard map)
// 1,000 records and 1 MiB per second per shard. Effective gives the values applied.
type EngineConfig struct {
	// Linger is how long a record may wait for a request to fill before the request is
	// sent anyway (the KPL's RecordMaxBufferedTime; 0: 100 ms). Counted in whole
	// milliseconds, rounded up: 1 ns is 1 ms, the shortest.
	Linger time.Duration
	// MaxInFlight is the most requests sent and not settled at once (0: 1; at most
	// 1,024, above is ErrInvalidArgument).
	MaxInFlight int
	// MaxBufferedRecords is the most records buffered at once, in flight included: Push
	// answers ErrFull above it (0: 2 requests' worth for each request in flight, at
	// least 16,384).
	MaxBufferedRecords int
	// MaxBufferedBytes is the most bytes buffered, as the service counts records (data
	// + partition key; 0: 64 MiB). Push answers ErrFull above it.
	MaxBufferedBytes int64
	// AllowReordering lets a key's records be stored out of order, for throughput with
	// few keys. false (the default): only a key's oldest unsettled record is ever sent,
	// so a key is in at most one request in flight and its records are stored in the
	// order they were pushed, retries included.
	AllowReordering bool
	// ShardRecordsPerSec and ShardBytesPerSec are each shard's rate, used only with a
	// shard map (0: 1,000 records and 1 MiB a second, the service's limits).
	ShardRecordsPerSec, ShardBytesPerSec int
}

// The engine's defaults (the core's EngineConfig::DEFAULT, and the Go binding's
// capacity rule).
const (
	defaultLingerMs         = 100
	defaultBufferedBytes    = 64 << 20
	defaultShardRecordsPS   = 1000
	defaultShardBytesPS     = 1 << 20
	minDefaultCapacity      = 16384
	maxCapacityFromDefaults = 1 << 24
)

// Effective is the configuration an Engine applies for c under limits: each zero or
// negative field replaced by its default, Linger rounded up to whole milliseconds.
func (c EngineConfig) Effective(limits Limits) EngineConfig {
	cc := c.c()
	if cc.lingerMs == 0 {
		cc.lingerMs = defaultLingerMs
	}
	if cc.maxInFlight == 0 {
		cc.maxInFlight = 1
	}
	if cc.maxBufferedBytes == 0 {
		cc.maxBufferedBytes = defaultBufferedBytes
	}
	if cc.shardRecordsPerSec == 0 {
		cc.shardRecordsPerSec = defaultShardRecordsPS
	}
	if cc.shardBytesPerSec == 0 {
		cc.shardBytesPerSec = defaultShardBytesPS
	}
	return EngineConfig{
		Linger:             time.Duration(cc.lingerMs) * time.Millisecond,
		MaxInFlight:        int(cc.maxInFlight),
		MaxBufferedRecords: c.capacity(limits),
		MaxBufferedBytes:   int64(min(cc.maxBufferedBytes, math.MaxInt64)),
		AllowReordering:    c.AllowReordering,
		ShardRecordsPerSec: int(cc.shardRecordsPerSec),
		ShardBytesPerSec:   int(cc.shardBytesPerSec),
	}
}

// c is the C configuration: zero and negative fields as 0, which the library takes as
// their defaults.
func (c EngineConfig) c() cEngineConfig {
	var linger uint64
	if c.Linger > 0 {
		linger = uint64(c.Linger / time.Millisecond)
		if c.Linger%time.Millisecond != 0 {
			linger++ // a positive duration never becomes 0, the default
		}
	}
	cc := cEngineConfig{
		lingerMs:           linger,
		maxInFlight:        clampU32(c.MaxInFlight),
		shardRecordsPerSec: clampU32(c.ShardRecordsPerSec),
		shardBytesPerSec:   clampU32(c.ShardBytesPerSec),
	}
	if c.MaxBufferedBytes > 0 {
		cc.maxBufferedBytes = uint64(c.MaxBufferedBytes)
	}
	if c.AllowReordering {
		cc.flags |= engineFlagAllowReordering
	}
	return cc
}

// capacity is MaxBufferedRecords, or its default: two requests' worth of records for
// each request in flight, at least 16,384.
func (c EngineConfig) capacity(limits Limits) int {
	if c.MaxBufferedRecords > 0 {
		return c.MaxBufferedRecords
	}
	inFlight := max(1, min(c.MaxInFlight, 1<<20))
	return min(max(minDefaultCapacity, 2*inFlight*limits.MaxRecords()), maxCapacityFromDefaults)
}

// Handle names a record buffered in an Engine from Push until it is settled (stored or
// terminal). Its Slot is an index in 0..Capacity()-1: keep the record's payload in a
// slice of Capacity() elements at that index. A slot is given to another record only
// after its record was settled.
type Handle uint32

// Slot is the handle's index, in 0..Capacity()-1.
func (h Handle) Slot() int { return int(h) }

// RequestID names a request an Engine handed out, until it is settled.
type RequestID uint64

// EngineState is what Engine.Next says to do.
type EngineState uint8

// The states of Engine.Next.
const (
	// EngineReady: send Poll.Request now.
	EngineReady EngineState = iota
	// EngineWait: records are buffered but none is due: call Next again at Poll.Until,
	// or sooner after a Push, a Settle or a Flush.
	EngineWait
	// EngineBusy: MaxInFlight requests are out: settle one, then call Next.
	EngineBusy
	// EnginePaused: a request failed with Credentials: the records wait; refresh the
	// credentials, then Resume.
	EnginePaused
	// EngineIdle: nothing is buffered that is not in flight.
	EngineIdle
)

// String is the state's name, such as "ready".
func (s EngineState) String() string {
	switch s {
	case EngineReady:
		return "ready"
	case EngineWait:
		return "wait"
	case EngineBusy:
		return "busy"
	case EnginePaused:
		return "paused"
	case EngineIdle:
		return "idle"
	}
	return "unknown"
}

// EngineRequest is a PutRecords request to send: Handles are its entries, in this
// order (the payload at each handle's slot), Bytes its size as the service counts it.
type EngineRequest struct {
	ID      RequestID
	Handles []Handle
	Bytes   int
}

// Poll is Engine.Next's answer: the State, with the Request when EngineReady and the
// time to call again (Until) when EngineWait.
type Poll struct {
	State   EngineState
	Request EngineRequest
	Until   time.Time
}

// EngineStats are an Engine's counters.
type EngineStats struct {
	// BufferedRecords and BufferedBytes: records pushed and neither stored nor terminal
	// yet, in flight included; bytes as the service counts them.
	BufferedRecords, BufferedBytes uint64
	// InFlightRequests and InFlightRecords: sent and not settled.
	InFlightRequests, InFlightRecords uint64
	// Requests: requests handed out by Next.
	Requests uint64
	// AcceptedRecords and AcceptedBytes: stored by the service.
	AcceptedRecords, AcceptedBytes uint64
	// Retried: entries that failed and will be (or were) sent again.
	Retried uint64
	// Throttled: entries that failed with ThroughputExceeded or Throttling.
	Throttled uint64
	// CredentialFailures: settles that paused the engine (Credentials).
	CredentialFailures uint64
	// Refused: records Push refused, indexed by Reason.
	Refused [5]uint64
	// Terminal: records that will not be sent again (a terminal error, or a retryable
	// one whose attempts or age ran out).
	Terminal uint64
}

// RefusedTotal is the number of refused records, all reasons together.
func (s EngineStats) RefusedTotal() uint64 {
	var n uint64
	for _, c := range s.Refused {
		n += c
	}
	return n
}

var (
	// ErrFull: Engine.Push with the buffer at its record or byte capacity: settle a
	// request (records stored or terminal free room), then push again. Nothing was
	// buffered and nothing is dropped to make room.
	ErrFull = errors.New("kinesisbatcher: the engine's buffer is full")
	// ErrRefused: a record that can never be sent (a *RefusedError says why). It was
	// not buffered.
	ErrRefused = errors.New("kinesisbatcher: record refused")
)

// RefusedError is a record Engine.Push refused, and why. It matches ErrRefused with
// errors.Is.
type RefusedError struct {
	Reason Reason
}

func (e *RefusedError) Error() string {
	return "kinesisbatcher: record refused: " + e.Reason.String() + ": " + e.Reason.Message()
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// notInFlightError is KB_NOT_THE_REQUEST_IN_FLIGHT from an Engine: a RequestID that is
// not in flight. It matches ErrNothingInFlight, as KB_NOTHING_IN_FLIGHT does.
type notInFlightError struct{ *StatusError }

func (e notInFlightError) Is(target error) bool { return target == ErrNothingInFlight }
func (e notInFlightError) Unwrap() error        { return e.StatusError }

func engineErr(s uint32, index int) error {
	if s == statusNotTheRequest {
		return notInFlightError{&StatusError{Status: s, Index: index}}
	}
	return statusErr(s, index)
}

// Engine is the producer engine of the C library, for records that arrive over time:
// Push buffers a record and gives its Handle; Next says what to do now (send a
// request, wait until a time, settle first, refresh credentials, or nothing); Settle
// reports a response. It decides everything a producer decides: which records form a
// request (full, or its oldest record has lingered, or on Flush), how many requests
// are in flight (MaxInFlight, settled in any order), each key's order (a key in one
// request in flight at most, unless AllowReordering), per-shard rates (with a shard
// map), which failed entries go again and after what backoff, when a record gives up,
// and a pause when credentials fail. It does no I/O and reads no clock: the caller
// sends, and passes the time to each call.
//
// A loop, in one goroutine:
//
//	for {
//		p, err := e.Next(time.Now())
//		switch p.State {
//		case kinesisbatcher.EngineReady:
//			// send p.Request.Handles' payloads (yours, at each handle's slot); later:
//			settled, err := e.Settle(p.Request.ID, codes, time.Now(), rand.Uint64())
//			// free the slots of the stored entries and of settled.Terminal
//		case kinesisbatcher.EngineWait:
//			// sleep until p.Until, a response, or a Push
//		case kinesisbatcher.EngineBusy:
//			// wait for a response
//		case kinesisbatcher.EnginePaused:
//			// refresh the credentials, then e.Resume()
//		case kinesisbatcher.EngineIdle:
//			// wait for a Push (or a response)
//		}
//	}
//
// The engine keeps no pointer to a record: keep its payload under its handle's slot
// until the record is settled. Clock values are the caller's: times are measured from
// the first one passed, in whole milliseconds. An Engine is used by one goroutine at a
// time; Close releases it (the garbage collector does otherwise).
type Engine struct {
	e        *cEngine
	limits   cLimits
	capacity int
	handles  []uint32
	terminal []cTerminalEntry
	outcomes []uint8
	inFlight map[RequestID]int // entries of each request in flight
	epoch    time.Time
	started  bool
	cleanup  cleanupHandle
}

// NewEngine makes an Engine under limits (the zero Limits is KDS), policy (zero
// fields: their defaults) and config (zero fields: their defaults), with shards' rates
// when shards is not nil. A config the library refuses (MaxInFlight above 1,024) is a
// *StatusError matching ErrInvalidArgument.
func NewEngine(limits Limits, policy RetryPolicy, config EngineConfig, shards *ShardMap) (*Engine, error) {
	l := limits.get()
	capacity := config.capacity(limits)
	var ranges []cShardRange
	if shards != nil {
		if len(shards.ranges) == 0 {
			return nil, &StatusError{Status: statusShardMapEmpty, Index: -1}
		}
		ranges = shards.ranges
	}
	e, s, bad := engineNew(l, policy.c(), config.c(), capacity, ranges)
	if err := statusErr(s, -1); err != nil {
		if s == statusShardMapReversed || s == statusShardMapGap {
			err = &StatusError{Status: s, Index: bad}
		}
		return nil, err
	}
	max := int(l.maxRecords)
	en := &Engine{
		e:        e,
		limits:   l,
		capacity: engineCapacity(e),
		handles:  make([]uint32, max),
		terminal: make([]cTerminalEntry, max),
		outcomes: make([]uint8, 0, max),
		inFlight: make(map[RequestID]int),
	}
	en.cleanup = addCleanup(en, func(e *cEngine) { engineFree(e) }, e)
	return en, nil
}

// Close releases the Engine; later calls return ErrClosed (or zero values). Closing
// twice is safe.
func (e *Engine) Close() error {
	if e.e != nil {
		stopCleanup(&e.cleanup, e)
		engineFree(e.e)
		e.e = nil
	}
	return nil
}

// Reset forgets every buffered record and request in flight and the counters: the
// Engine is as new (its clock starts again at the next call).
func (e *Engine) Reset() error {
	if e.e == nil {
		return ErrClosed
	}
	s := engineReset(e.e)
	runtime.KeepAlive(e)
	if err := statusErr(s, -1); err != nil {
		return err
	}
	clear(e.inFlight)
	e.started = false
	return nil
}

// Capacity is the most records buffered at once: handles' slots are 0..Capacity()-1.
func (e *Engine) Capacity() int { return e.capacity }

func (e *Engine) ms(now time.Time) uint64 {
	if !e.started {
		e.epoch, e.started = now, true
	}
	since := now.Sub(e.epoch)
	if since < 0 {
		return 0
	}
	return uint64(since / time.Millisecond)
}

func (e *Engine) at(ms uint64) time.Time {
	if ms > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return e.epoch.Add(math.MaxInt64)
	}
	return e.epoch.Add(time.Duration(ms) * time.Millisecond)
}

// Push buffers r and returns its handle. Only the record's size, key and shard are
// taken: keep r's payload under the handle's slot until the record is settled. ErrFull:
// the buffer is at capacity (records or bytes), nothing buffered; a *RefusedError
// (ErrRefused): r can never be sent (an empty or invalid key, too large), nothing
// buffered.
func (e *Engine) Push(r Record, now time.Time) (Handle, error) {
	if e.e == nil {
		return 0, ErrClosed
	}
	s, h, reason := enginePush(e.e, r.Data, r.PartitionKey, r.ExplicitHashKey, e.ms(now))
	runtime.KeepAlive(e)
	switch s {
	case statusOK:
		return Handle(h), nil
	case statusFull:
		return 0, ErrFull
	case statusRefused:
		return 0, &RefusedError{Reason: Reason(reason)}
	}
	if err := statusErr(s, -1); err != nil {
		return 0, err
	}
	return 0, &StatusError{Status: s, Index: -1}
}

// Next says what to do now: a request to send (EngineReady, with Poll.Request), a time
// to call again (EngineWait, Poll.Until), settle first (EngineBusy), refresh credentials
// and Resume (EnginePaused), or nothing buffered (EngineIdle). A request handed out
// must be settled (Settle, SettleKinds or SettleAll) with its ID.
func (e *Engine) Next(now time.Time) (Poll, error) {
	if e.e == nil {
		return Poll{}, ErrClosed
	}
	s, id, n, bytes, until := engineNextRequest(e.e, e.ms(now), e.handles)
	runtime.KeepAlive(e)
	switch s {
	case statusOK:
		if n == 0 || n > len(e.handles) {
			return Poll{}, fmt.Errorf("%w: kb_engine_next_request gave %d handles", ErrInternal, n)
		}
		hs := make([]Handle, n)
		for i, h := range e.handles[:n] {
			hs[i] = Handle(h)
		}
		e.inFlight[RequestID(id)] = n
		return Poll{State: EngineReady, Request: EngineRequest{ID: RequestID(id), Handles: hs, Bytes: int(bytes)}}, nil
	case statusWait:
		return Poll{State: EngineWait, Until: e.at(until)}, nil
	case statusBusy:
		return Poll{State: EngineBusy}, nil
	case statusPaused:
		return Poll{State: EnginePaused}, nil
	case statusEnd:
		return Poll{State: EngineIdle}, nil
	}
	if err := statusErr(s, -1); err != nil {
		return Poll{}, err
	}
	return Poll{}, &StatusError{Status: s, Index: -1}
}

// Settle settles request id with its response: codes[i] is the ErrorCode of entry i
// ("" when it was stored, i.e. has a SequenceNumber). Retryable failures wait for a
// later request (after the policy's backoff, drawn with random: any uniformly random
// number, e.g. rand.Uint64()); the others are returned as terminal, each Terminal's
// Index being its handle's slot. A response whose entry count differs from the
// request's fails every entry as BadResponse. An id not in flight matches
// ErrNothingInFlight.
func (e *Engine) Settle(id RequestID, codes []string, now time.Time, random uint64) (Settled, error) {
	if e.e == nil {
		return Settled{}, ErrClosed
	}
	n, ok := e.inFlight[id]
	if !ok {
		return e.SettleAll(id, BadResponse, now, random) // the library says it is not in flight
	}
	if len(codes) != n {
		return e.SettleAll(id, BadResponse, now, random)
	}
	out := e.outcomes[:0]
	for _, c := range codes {
		if c == "" {
			out = append(out, outcomeAccepted)
		} else {
			out = append(out, errorKindFromCode(c))
		}
	}
	e.outcomes = out[:0]
	return e.settle(id, out, now, random)
}

// SettleKinds is Settle with the outcomes already classified: ok[i] true when entry i
// was stored, else kinds[i] is its error. A response whose entry count differs from
// the request's (len(ok) or len(kinds)) fails every entry as BadResponse.
func (e *Engine) SettleKinds(id RequestID, ok []bool, kinds []ErrorKind, now time.Time, random uint64) (Settled, error) {
	if e.e == nil {
		return Settled{}, ErrClosed
	}
	n, found := e.inFlight[id]
	if !found || len(ok) != n || len(kinds) != n {
		return e.SettleAll(id, BadResponse, now, random)
	}
	out := e.outcomes[:0]
	for i, k := range kinds {
		if ok[i] {
			out = append(out, outcomeAccepted)
		} else {
			out = append(out, uint8(k))
		}
	}
	e.outcomes = out[:0]
	return e.settle(id, out, now, random)
}

func (e *Engine) settle(id RequestID, out []uint8, now time.Time, random uint64) (Settled, error) {
	s, nt := engineSettle(e.e, uint64(id), out, e.ms(now), random, e.terminal)
	runtime.KeepAlive(e)
	if err := engineErr(s, -1); err != nil {
		return Settled{}, err
	}
	accepted := 0
	for _, o := range out {
		if o == outcomeAccepted {
			accepted++
		}
	}
	return e.settled(id, accepted, nt)
}

// SettleAll settles request id when it failed as a whole: an error response
// (ErrorKindFromCode of its error code, else ErrorKindFromHTTPStatus) or no response
// at all (Transport: the records may have been stored, so sending them again can store
// them twice). Credentials pauses the engine (the records wait for Resume).
func (e *Engine) SettleAll(id RequestID, kind ErrorKind, now time.Time, random uint64) (Settled, error) {
	if e.e == nil {
		return Settled{}, ErrClosed
	}
	s, nt := engineSettleAll(e.e, uint64(id), uint8(kind), e.ms(now), random, e.terminal)
	runtime.KeepAlive(e)
	if err := engineErr(s, -1); err != nil {
		return Settled{}, err
	}
	return e.settled(id, 0, nt)
}

func (e *Engine) settled(id RequestID, accepted, nt int) (Settled, error) {
	n := e.inFlight[id]
	delete(e.inFlight, id)
	if nt > len(e.terminal) {
		return Settled{}, fmt.Errorf("%w: kb_engine_settle gave %d terminal entries", ErrInternal, nt)
	}
	out := Settled{Accepted: accepted, Retrying: n - accepted - nt}
	if nt > 0 {
		out.Terminal = make([]Terminal, nt)
		for i, t := range e.terminal[:nt] {
			out.Terminal[i] = Terminal{Index: int(t.handle), Kind: ErrorKind(t.kind), GaveUp: t.gaveUp != 0}
		}
	}
	return out, nil
}

// Flush makes everything buffered now due without waiting for the linger (records
// pushed later linger as usual; retries still wait their backoff).
func (e *Engine) Flush() error {
	if e.e == nil {
		return ErrClosed
	}
	s := engineFlush(e.e)
	runtime.KeepAlive(e)
	return statusErr(s, -1)
}

// Resume lets a paused engine send again, once the credentials were refreshed.
func (e *Engine) Resume() error {
	if e.e == nil {
		return ErrClosed
	}
	s := engineResume(e.e)
	runtime.KeepAlive(e)
	return statusErr(s, -1)
}

// Paused reports whether the engine waits for Resume (after a Credentials failure).
func (e *Engine) Paused() bool {
	if e.e == nil {
		return false
	}
	p, _ := engineIsPaused(e.e)
	runtime.KeepAlive(e)
	return p
}

// Stats are the engine's counters now.
func (e *Engine) Stats() EngineStats {
	if e.e == nil {
		return EngineStats{}
	}
	c, _ := engineStats(e.e)
	runtime.KeepAlive(e)
	return EngineStats{
		BufferedRecords:    c.bufferedRecords,
		BufferedBytes:      c.bufferedBytes,
		InFlightRequests:   c.inFlightRequests,
		InFlightRecords:    c.inFlightRecords,
		Requests:           c.requests,
		AcceptedRecords:    c.acceptedRecords,
		AcceptedBytes:      c.acceptedBytes,
		Retried:            c.retried,
		Throttled:          c.throttled,
		CredentialFailures: c.credentialFailures,
		Refused:            c.refused,
		Terminal:           c.terminal,
	}
}

// ShardThrottled is how many times shard (an index into the shard map) was throttled
// (ThroughputExceeded); 0 without a shard map or out of range.
func (e *Engine) ShardThrottled(shard int) uint64 {
	if e.e == nil || shard < 0 {
		return 0
	}
	n, _ := engineShardThrottled(e.e, shard)
	runtime.KeepAlive(e)
	return n
}

// Empty reports whether nothing is buffered and nothing is in flight.
func (e *Engine) Empty() bool {
	s := e.Stats()
	return s.BufferedRecords == 0 && s.InFlightRequests == 0
}
