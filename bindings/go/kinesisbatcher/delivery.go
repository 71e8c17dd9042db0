//go:build cgo

package kinesisbatcher

import (
	"iter"
	"runtime"
	"time"
)

// ErrorKind says what went wrong with an entry or a whole request, sorted from the
// service's error codes and HTTP statuses.
type ErrorKind uint8

// The error kinds, with the C ABI's values.
const (
	ThroughputExceeded ErrorKind = 0  // ProvisionedThroughputExceededException
	InternalFailure    ErrorKind = 1  // InternalFailure
	Throttling         ErrorKind = 2  // ThrottlingException, LimitExceededException, HTTP 429
	ServerError        ErrorKind = 3  // HTTP 5xx, ServiceUnavailable
	Transport          ErrorKind = 4  // no response: the connection failed or timed out
	BadResponse        ErrorKind = 5  // a response whose entry count differs from the request's
	UnknownError       ErrorKind = 6  // an unknown code (retried)
	Validation         ErrorKind = 7  // ValidationException
	InvalidArgument    ErrorKind = 8  // InvalidArgumentException
	ResourceNotFound   ErrorKind = 9  // ResourceNotFoundException
	AccessDenied       ErrorKind = 10 // AccessDeniedException and the credential errors
	KMS                ErrorKind = 11 // the KMS errors
	ClientError        ErrorKind = 12 // any other HTTP 4xx
)

// String is the kind's short stable identifier, such as "throttling".
func (k ErrorKind) String() string { return errorKindName(uint8(k)) }

// Retryable reports whether entries that failed with k are sent again (within the
// policy's limits).
func (k ErrorKind) Retryable() bool { return errorKindRetryable(uint8(k)) }

// ErrorKindFromCode classifies a service error code (an entry's ErrorCode, or a
// response's __type / X-Amzn-ErrorType; a "namespace#" prefix and ":url" suffix are
// ignored). Unknown codes are UnknownError.
func ErrorKindFromCode(code string) ErrorKind { return ErrorKind(errorKindFromCode(code)) }

// ErrorKindFromHTTPStatus classifies the HTTP status of a request that failed as a
// whole (429 throttling, other 4xx client error, 5xx server error); ok is false for a
// status that is not an error.
func ErrorKindFromHTTPStatus(status int) (kind ErrorKind, ok bool) {
	k := errorKindFromHTTPStatus(clampU32(status))
	return ErrorKind(k), k != errorKindNone
}

// RetryPolicy is how long a record is retried. The zero RetryPolicy is
// DefaultRetryPolicy().
type RetryPolicy struct {
	// BackoffBase is the delay ceiling after the first failure; BackoffCap the highest.
	BackoffBase, BackoffCap time.Duration
	// MaxAge: a record first sent longer ago than this is not retried.
	MaxAge time.Duration
	// MaxAttempts: sends of one record at most, the first included (0 acts as 1).
	MaxAttempts int
}

// DefaultRetryPolicy is up to 10 attempts over at most 5 minutes, backoff from 100 ms
// doubling up to 10 s.
func DefaultRetryPolicy() RetryPolicy {
	c := retryPolicyDefault()
	return RetryPolicy{
		BackoffBase: time.Duration(c.backoffBaseMs) * time.Millisecond,
		BackoffCap:  time.Duration(c.backoffCapMs) * time.Millisecond,
		MaxAge:      time.Duration(c.maxAgeMs) * time.Millisecond,
		MaxAttempts: int(c.maxAttempts),
	}
}

func (p RetryPolicy) c() cRetryPolicy {
	if p == (RetryPolicy{}) {
		p = DefaultRetryPolicy()
	}
	ms := func(d time.Duration) uint64 {
		if d < 0 {
			return 0
		}
		return uint64(d / time.Millisecond)
	}
	return cRetryPolicy{
		backoffBaseMs: ms(p.BackoffBase),
		backoffCapMs:  ms(p.BackoffCap),
		maxAgeMs:      ms(p.MaxAge),
		maxAttempts:   clampU32(p.MaxAttempts),
	}
}

// Pending is an entry of a request, or a record waiting to be sent again.
type Pending struct {
	Index     int // the record's index in the input
	Attempts  int // sends before this one
	FirstSent time.Time
}

// Request is the next PutRecords request of a Delivery.
type Request struct {
	// Entries to send, in this order: records[e.Index] for each. Failed entries
	// come first, in input order, then records not sent yet.
	Entries []Pending
	// Bytes is the request's size as the service counts it.
	Bytes int
	// Refusals are the records met while planning this request that can never be
	// sent. Report them even when Next says done.
	Refusals []Refusal
}

// Runs yields the request's records as sub-slices of records (no copy): each run of
// entries with consecutive indices as records[first:first+len], with first.
func (r Request) Runs(records []Record) iter.Seq2[int, []Record] {
	return func(yield func(int, []Record) bool) {
		for i := 0; i < len(r.Entries); {
			j := i + 1
			for j < len(r.Entries) && r.Entries[j].Index == r.Entries[j-1].Index+1 {
				j++
			}
			first := r.Entries[i].Index
			if !yield(first, records[first:first+(j-i)]) {
				return
			}
			i = j
		}
	}
}

// Terminal is a record that will not be sent again: its index, its last error, and
// whether it gave up on a retryable error because the attempt or age limit ran out.
type Terminal struct {
	Index  int
	Kind   ErrorKind
	GaveUp bool
}

// Settled is what settling a request found.
type Settled struct {
	Accepted int        // entries the service stored
	Retrying int        // entries to be sent again
	Terminal []Terminal // entries that will not be sent again
}

// RetryStats are a delivery's counters.
type RetryStats struct {
	Requests, Accepted, Retried, Terminal int
	Refused                               [5]int // indexed by Reason
}

// Delivery plans the requests for a slice of records and re-plans the failed entries
// of each response: only failed entries with a retryable error are sent again, in input
// order, at the front of the next request, topped up with records not sent yet. One
// request is in flight at a time:
//
//	for {
//		req, done, err := d.Next(time.Now())
//		// report req.Refusals
//		if done { break }
//		// send req.Entries; then, with the response's ErrorCode per entry:
//		settled, err := d.Settle(codes, time.Now())   // or SettleAll(kind, now)
//		// report settled.Terminal
//		time.Sleep(d.Backoff(rand.Uint64()))
//	}
//
// The records are measured once, by NewDelivery (24 bytes each are kept); pass the
// same slice to Request.Runs. Planning uses the size form
// (kb_delivery_next_request_sizes), which carries no key bytes, so the library's
// per-key ordering option is not offered here. Clock values are the caller's: times
// are measured from the first one passed. A Delivery is used by one goroutine at a
// time; Close releases it (the garbage collector does otherwise).
type Delivery struct {
	d        *cDelivery
	limits   cLimits
	sizes    []cRecordSize
	request  []cPending
	inFlight int
	refusals []cRefusal
	terminal []cTerminal
	outcomes []uint8
	epoch    time.Time
	started  bool
	cleanup  cleanupHandle
}

// NewDelivery measures records and returns a Delivery at their start under limits and
// policy (the zero RetryPolicy is the default).
func NewDelivery(records []Record, limits Limits, policy RetryPolicy) (*Delivery, error) {
	l := limits.get()
	sizes := make([]cRecordSize, len(records))
	var cols columns
	if err := cols.measure(records, &l, sizes); err != nil {
		return nil, err
	}
	d, s := deliveryNew(l, policy.c())
	if err := statusErr(s, -1); err != nil {
		return nil, err
	}
	max := int(l.maxRecords)
	dv := &Delivery{
		d: d, limits: l, sizes: sizes,
		request:  make([]cPending, max),
		refusals: make([]cRefusal, 512),
		terminal: make([]cTerminal, max),
		outcomes: make([]uint8, 0, max),
	}
	dv.cleanup = addCleanup(dv, func(d *cDelivery) { deliveryFree(d) }, d)
	return dv, nil
}

// Close releases the Delivery; later calls return ErrClosed. Closing twice is safe.
func (d *Delivery) Close() error {
	if d.d != nil {
		stopCleanup(&d.cleanup, d)
		deliveryFree(d.d)
		d.d = nil
	}
	return nil
}

func (d *Delivery) ms(now time.Time) uint64 {
	if !d.started {
		d.epoch, d.started = now, true
	}
	since := now.Sub(d.epoch)
	if since < 0 {
		return 0
	}
	return uint64(since / time.Millisecond)
}

// Next plans the next request. done is true when nothing is left to send (every record
// stored, terminal or refused): stop then, after reporting req.Refusals. Call Settle
// or SettleAll for the request before calling Next again.
func (d *Delivery) Next(now time.Time) (req Request, done bool, err error) {
	if d.d == nil {
		return Request{}, false, ErrClosed
	}
	if d.inFlight > 0 {
		return Request{}, false, ErrInFlight
	}
	t := d.ms(now)
	for {
		s, n, bytes, nr := deliveryNextRequestSizes(d.d, d.sizes, d.request, d.refusals, t)
		runtime.KeepAlive(d)
		if err := statusErr(s, -1); err != nil {
			return Request{}, false, err
		}
		for _, r := range d.refusals[:nr] {
			req.Refusals = append(req.Refusals, Refusal{Index: int(r.index), Reason: Reason(r.reason)})
		}
		if n > 0 {
			d.inFlight = n
			req.Bytes = bytes
			req.Entries = make([]Pending, n)
			for i, p := range d.request[:n] {
				req.Entries[i] = Pending{
					Index:     int(p.index),
					Attempts:  int(p.attempts),
					FirstSent: d.epoch.Add(time.Duration(p.firstSentMs) * time.Millisecond),
				}
			}
			return req, false, nil
		}
		if s == statusEnd {
			return req, true, nil
		}
		// No entry yet: the refusal array filled first, or a call that only
		// moved on. Go on.
	}
}

// Settle settles the request in flight with its response: codes[i] is the ErrorCode of
// entry i ("" when it was stored, i.e. has a SequenceNumber). Retryable failures wait
// for the next request; the others are returned as terminal. A response whose entry
// count differs from the request's fails every entry (as BadResponse).
func (d *Delivery) Settle(codes []string, now time.Time) (Settled, error) {
	if d.d == nil {
		return Settled{}, ErrClosed
	}
	out := d.outcomes[:0]
	for _, c := range codes {
		if c == "" {
			out = append(out, outcomeAccepted)
		} else {
			out = append(out, errorKindFromCode(c))
		}
	}
	d.outcomes = out[:0]
	s, st, bad := deliverySettle(d.d, d.request[:d.inFlight], out, d.ms(now), d.terminal)
	runtime.KeepAlive(d)
	return d.settled(s, st, bad)
}

// SettleKinds is Settle with the outcomes already classified: ok[i] true when entry i
// was stored, else kinds[i] is its error. Both slices have the response's length.
func (d *Delivery) SettleKinds(ok []bool, kinds []ErrorKind, now time.Time) (Settled, error) {
	if d.d == nil {
		return Settled{}, ErrClosed
	}
	out := d.outcomes[:0]
	for i, k := range kinds {
		if i < len(ok) && ok[i] {
			out = append(out, outcomeAccepted)
		} else {
			out = append(out, uint8(k))
		}
	}
	d.outcomes = out[:0]
	s, st, bad := deliverySettle(d.d, d.request[:d.inFlight], out, d.ms(now), d.terminal)
	runtime.KeepAlive(d)
	return d.settled(s, st, bad)
}

// SettleAll settles the request in flight when it failed as a whole: an error
// response (ErrorKindFromHTTPStatus, ErrorKindFromCode of its __type) or no response
// at all (Transport: the records may have been stored, so sending them again can store
// them twice).
func (d *Delivery) SettleAll(kind ErrorKind, now time.Time) (Settled, error) {
	if d.d == nil {
		return Settled{}, ErrClosed
	}
	s, st := deliverySettleAll(d.d, d.request[:d.inFlight], uint8(kind), d.ms(now), d.terminal)
	runtime.KeepAlive(d)
	return d.settled(s, st, -1)
}

func (d *Delivery) settled(s uint32, st cSettled, bad int) (Settled, error) {
	if err := statusErr(s, bad); err != nil {
		return Settled{}, err
	}
	d.inFlight = 0
	out := Settled{Accepted: int(st.accepted), Retrying: int(st.retrying)}
	if st.terminal > 0 {
		out.Terminal = make([]Terminal, st.terminal)
		for i, t := range d.terminal[:st.terminal] {
			out.Terminal[i] = Terminal{Index: int(t.index), Kind: ErrorKind(t.kind), GaveUp: t.gaveUp}
		}
	}
	return out, nil
}

// Backoff is the delay before the next request after the failures so far: exponential
// with full jitter, drawn with random (any uniformly random number, e.g.
// rand.Uint64()); 0 after a request without failures. Sleep only if another request
// follows.
func (d *Delivery) Backoff(random uint64) time.Duration {
	if d.d == nil {
		return 0
	}
	ms := deliveryBackoffMs(d.d, random)
	runtime.KeepAlive(d)
	return time.Duration(ms) * time.Millisecond
}

// Waiting returns the failed entries waiting to be sent again (a copy).
func (d *Delivery) Waiting() []Pending {
	if d.d == nil {
		return nil
	}
	w := deliveryWaiting(d.d)
	runtime.KeepAlive(d)
	out := make([]Pending, len(w))
	for i, p := range w {
		out[i] = Pending{Index: int(p.index), Attempts: int(p.attempts),
			FirstSent: d.epoch.Add(time.Duration(p.firstSentMs) * time.Millisecond)}
	}
	return out
}

// Position is the index of the next record not planned yet.
func (d *Delivery) Position() int {
	if d.d == nil {
		return 0
	}
	n := deliveryPosition(d.d)
	runtime.KeepAlive(d)
	return n
}

// Stats are the delivery's counters so far.
func (d *Delivery) Stats() RetryStats {
	if d.d == nil {
		return RetryStats{}
	}
	c := deliveryStats(d.d)
	runtime.KeepAlive(d)
	s := RetryStats{Requests: int(c.requests), Accepted: int(c.accepted), Retried: int(c.retried), Terminal: int(c.terminal)}
	for i, n := range c.refused {
		s.Refused[i] = int(n)
	}
	return s
}

// BackoffDelay is the delay after failures failures in a row under policy (0: none),
// uniform in 0..min(cap, base*2^(failures-1)), drawn with random.
func BackoffDelay(policy RetryPolicy, failures int, random uint64) time.Duration {
	c := policy.c()
	return time.Duration(backoffDelayMs(c.backoffBaseMs, c.backoffCapMs, clampU32(failures), random)) * time.Millisecond
}
