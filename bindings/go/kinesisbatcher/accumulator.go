//go:build cgo

package kinesisbatcher

import "runtime"

// Accumulator takes records one at a time, for services that receive them so, and says
// when a request is complete. Records are numbered by push order from 0. Each Push is
// one cgo call (measuring and adding the record in one crossing): unavoidable for one
// record at a time, and about the cost of a small function call in C plus the cgo
// transition (tens of nanoseconds). For a slice, Plan and Batches are cheaper.
//
// An Accumulator is used by one goroutine at a time. Close releases it; an unreachable
// Accumulator is released by the garbage collector if it was not closed.
type Accumulator struct {
	p       *cAccumulator
	limits  cLimits
	cleanup cleanupHandle
	n       int // records pushed: the index of the next
}

// Pushed is what Push did with a record.
type Pushed struct {
	// Index is the record's index (push order).
	Index int
	// Send is true when the batch open before this record was complete (the record
	// did not fit): Batch is that batch, send it; the record starts the next one.
	Send  bool
	Batch Batch
	// Refused is true when the record can never be sent, for Reason. It takes an
	// index but joins no batch. It closes the open batch (unless the limits have
	// SpanningRefusals): the next accepted Push returns that batch with Send, or
	// Flush does, so every batch is exactly records[Start:End].
	Refused bool
	Reason  Reason
}

// NewAccumulator returns an empty Accumulator under limits.
func NewAccumulator(limits Limits) (*Accumulator, error) {
	l := limits.get()
	p, s := accumulatorNew(l)
	if err := statusErr(s, -1); err != nil {
		return nil, err
	}
	a := &Accumulator{p: p, limits: l}
	a.cleanup = addCleanup(a, func(p *cAccumulator) { accumulatorFree(p) }, p)
	return a, nil
}

// Close releases the Accumulator; later calls return ErrClosed. Closing twice is safe.
func (a *Accumulator) Close() error {
	if a.p != nil {
		stopCleanup(&a.cleanup, a)
		accumulatorFree(a.p)
		a.p = nil
	}
	return nil
}

// Push adds r (only len(r.Data) is used; the keys are read during the call only).
func (a *Accumulator) Push(r Record) (Pushed, error) {
	if a.p == nil {
		return Pushed{}, ErrClosed
	}
	index := a.n
	hashKeyLen := noHashKey
	if r.ExplicitHashKey != "" {
		hashKeyLen = uintptr(len(r.ExplicitHashKey))
	}
	s, b, reason := accumulatorPush(a.p, len(r.Data), r.PartitionKey, r.ExplicitHashKey, hashKeyLen, a.limits.keyUnit)
	runtime.KeepAlive(a)
	if s == statusOK || s == statusSendFirst || s == statusRefused {
		a.n++
	}
	switch s {
	case statusOK:
		return Pushed{Index: index}, nil
	case statusSendFirst:
		return Pushed{Index: index, Send: true, Batch: batchOf(b, 0)}, nil
	case statusRefused:
		return Pushed{Index: index, Refused: true, Reason: Reason(reason)}, nil
	}
	if err := statusErr(s, index); err != nil {
		return Pushed{}, err
	}
	return Pushed{}, &StatusError{Status: s, Index: index}
}

// Skip takes the next index for a record the caller refused itself (a line that is
// not JSON, say) without measuring it, and returns it. Like a refused Push, it closes
// the open batch unless the limits have SpanningRefusals (then a batch may span the
// skipped index, counted in Batch.Refused, to be left out when sending).
func (a *Accumulator) Skip() (int, error) {
	if a.p == nil {
		return 0, ErrClosed
	}
	i, s := accumulatorSkip(a.p)
	runtime.KeepAlive(a)
	if err := statusErr(s, -1); err != nil {
		return 0, err
	}
	a.n++
	return i, nil
}

// Reset starts the Accumulator over with the same limits, as one fresh from
// NewAccumulator: the next Push gets index 0 and the stats are 0. The open batch, if
// any, is dropped: Flush it first to keep it.
func (a *Accumulator) Reset() error {
	if a.p == nil {
		return ErrClosed
	}
	s := accumulatorReset(a.p)
	runtime.KeepAlive(a)
	if err := statusErr(s, -1); err != nil {
		return err
	}
	a.n = 0
	return nil
}

// Flush closes the open batch and returns it; ok is false when no record is pending.
func (a *Accumulator) Flush() (b Batch, ok bool) {
	if a.p == nil {
		return Batch{}, false
	}
	c, s := accumulatorFlush(a.p)
	runtime.KeepAlive(a)
	return batchOf(c, 0), s == statusOK
}

// Pending returns the batch being filled without closing it; ok is false when no
// record is pending.
func (a *Accumulator) Pending() (b Batch, ok bool) {
	if a.p == nil {
		return Batch{}, false
	}
	c, s := accumulatorPending(a.p)
	runtime.KeepAlive(a)
	return batchOf(c, 0), s == statusOK
}

// Len is the number of records pushed: the index the next Push gets.
func (a *Accumulator) Len() int {
	if a.p == nil {
		return 0
	}
	n := accumulatorPushed(a.p)
	runtime.KeepAlive(a)
	return n
}

// Stats are the counters so far (the open batch counts once it closes).
func (a *Accumulator) Stats() Stats {
	if a.p == nil {
		return Stats{}
	}
	s := accumulatorStats(a.p)
	runtime.KeepAlive(a)
	return statsOf(s, a.limits)
}
