//go:build cgo

package kinesisbatcher

import (
	"iter"
	"math"
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
	AccessDenied       ErrorKind = 10 // AccessDeniedException, NotAuthorized: a permission problem
	KMS                ErrorKind = 11 // the KMS errors
	ClientError        ErrorKind = 12 // any other HTTP 4xx
	// Credentials: expired or invalid credentials or a bad signature (ExpiredTokenException,
	// UnrecognizedClientException, InvalidSignatureException, SignatureDoesNotMatch,
	// RequestExpired for clock skew, ...). Refresh the credentials before sending again.
	// Terminal for a Delivery, which reports it as "credentials".
	Credentials ErrorKind = 13
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

// RetryPolicy is how long a record is retried. Every field that is 0, or negative,
// means its default, never "off" or "give up at once": RetryPolicy{MaxAttempts: 20}
// still backs off from 100 ms up to 10 s and retries for up to 5 minutes, and the zero
// RetryPolicy is DefaultRetryPolicy(). To retry as little as possible, set MaxAttempts
// to 1. The library counts in whole milliseconds: a duration is rounded up to the next
// one (so 1 ns is 1 ms, not 0 and the default). Effective gives the policy used.
type RetryPolicy struct {
	// BackoffBase is the delay ceiling after the first failure (0: 100 ms);
	// BackoffCap the highest (0: 10 s).
	BackoffBase, BackoffCap time.Duration
	// MaxAge: a record first sent longer ago than this is not retried (0: 5 minutes).
	MaxAge time.Duration
	// MaxAttempts: sends of one record at most, the first included (0: 10).
	MaxAttempts int
}

// DefaultRetryPolicy is up to 10 attempts over at most 5 minutes, backoff from 100 ms
// doubling up to 10 s.
func DefaultRetryPolicy() RetryPolicy { return policyOf(retryPolicyDefault()) }

// Effective is the policy a Delivery (or BackoffDelay) applies for p: each zero or
// negative field replaced by its default, durations rounded up to whole milliseconds.
func (p RetryPolicy) Effective() RetryPolicy {
	c, d := p.c(), retryPolicyDefault()
	or := func(v, def uint64) uint64 {
		if v == 0 {
			return def
		}
		return v
	}
	c.backoffBaseMs = or(c.backoffBaseMs, d.backoffBaseMs)
	c.backoffCapMs = or(c.backoffCapMs, d.backoffCapMs)
	c.maxAgeMs = or(c.maxAgeMs, d.maxAgeMs)
	if c.maxAttempts == 0 {
		c.maxAttempts = d.maxAttempts
	}
	return policyOf(c)
}

func policyOf(c cRetryPolicy) RetryPolicy {
	dur := func(ms uint64) time.Duration {
		if ms > uint64(math.MaxInt64/int64(time.Millisecond)) {
			return math.MaxInt64
		}
		return time.Duration(ms) * time.Millisecond
	}
	return RetryPolicy{
		BackoffBase: dur(c.backoffBaseMs),
		BackoffCap:  dur(c.backoffCapMs),
		MaxAge:      dur(c.maxAgeMs),
		MaxAttempts: int(min(c.maxAttempts, math.MaxInt32)),
	}
}

// c is the C policy, field by field: a zero or negative field is passed as 0, which the
// library takes as its default (every field on its own, not only an all-zero policy).
func (p RetryPolicy) c() cRetryPolicy {
	ms := func(d time.Duration) uint64 {
		if d <= 0 {
			return 0
		}
		m := uint64(d / time.Millisecond)
		if d%time.Millisecond != 0 {
			m++ // rounded up: a positive duration never becomes 0, the default
		}
		return m
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

	n int // the number of records the Delivery plans, for Runs' check
}

// Runs yields the request's records as sub-slices of records (no copy): each run of
// entries with consecutive indices as records[first:first+len], with first. records
// must be the slice the Delivery plans (given to NewDelivery or Reset); a slice of
// another length panics, as a records slice appended to after NewDelivery would
// otherwise lose the records beyond its planned length without a word.
func (r Request) Runs(records []Record) iter.Seq2[int, []Record] {
	if len(r.Entries) > 0 && len(records) != r.n {
		panic("kinesisbatcher: Request.Runs: the records are not the ones the Delivery plans: " +
			"pass the slice given to NewDelivery or Reset")
	}
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
// request is in flight at a time. The loop to write (Next's done is the only "stop"):
//
//	for {
//		req, done, err := d.Next(time.Now())
//		if err != nil {
//			return err
//		}
//		// report req.Refusals
//		if done {
//			break
//		}
//		// send req.Entries (records[e.Index] each); then, with the response:
//		settled, err := d.Settle(codes, time.Now()) // or SettleAll(kind, now)
//		// report settled.Terminal
//		time.Sleep(d.Backoff(rand.Uint64()))
//	}
//
// Every record ends stored once, refused, or terminal. Next never returns a request
// and done together, and never an empty request: the first request can also be the
// last, and a loop that breaks on done before sending loses nothing.
//
// NewDelivery measures the records (24 bytes each are kept) and keeps the slice: pass
// the same slice to Request.Runs. Each Next measures again the records it may plan
// (those waiting to be sent again, and the next few hundred), so that a record changed
// in place is planned at its new size; one waiting to be sent again that is now refused
// is ErrInputChanged. Planning uses the size form (kb_delivery_next_request_sizes),
// which carries no key bytes, so the library's per-key ordering option is not offered
// here. Clock values are the caller's: times are measured from the first one passed. A
// Delivery is used by one goroutine at a time; Close releases it (the garbage
// collector does otherwise).
type Delivery struct {
	d        *cDelivery
	limits   cLimits
	records  []Record
	sizes    []cRecordSize
	cols     columns
	scratch  []Record      // the records waiting to be sent again, to measure them
	scratchS []cRecordSize // and their sizes
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
// policy (whose zero fields mean their defaults).
func NewDelivery(records []Record, limits Limits, policy RetryPolicy) (*Delivery, error) {
	l := limits.get()
	dv := &Delivery{limits: l}
	if err := dv.measureAll(records); err != nil {
		return nil, err
	}
	d, s := deliveryNew(l, policy.c())
	if err := statusErr(s, -1); err != nil {
		return nil, err
	}
	max := int(l.maxRecords)
	dv.d = d
	dv.request = make([]cPending, max)
	// 64 refusals a call: each Next measures again a request's records plus this many
	// (remeasure), and an input with more refusals than that in a row takes one more
	// crossing per 64.
	dv.refusals = make([]cRefusal, 64)
	dv.terminal = make([]cTerminal, max)
	dv.outcomes = make([]uint8, 0, max)
	dv.cleanup = addCleanup(dv, func(d *cDelivery) { deliveryFree(d) }, d)
	return dv, nil
}

// measureAll keeps records and their sizes.
func (d *Delivery) measureAll(records []Record) error {
	if cap(d.sizes) < len(records) {
		d.sizes = make([]cRecordSize, len(records))
	}
	sizes := d.sizes[:len(records)]
	if err := d.cols.measure(records, &d.limits, sizes); err != nil {
		return err
	}
	d.records, d.sizes = records, sizes
	return nil
}

// Reset starts the Delivery over for records (another slice, or the same one again),
// with the same limits and policy: as one fresh from NewDelivery. Entries waiting to be
// sent again, the request in flight (if any) and the counters are dropped.
func (d *Delivery) Reset(records []Record) error {
	if d.d == nil {
		return ErrClosed
	}
	s := deliveryReset(d.d)
	runtime.KeepAlive(d)
	if err := statusErr(s, -1); err != nil {
		return err
	}
	d.inFlight, d.started = 0, false
	if err := d.measureAll(records); err != nil {
		// Not for a Go slice (a length past its buffer): deliver nothing rather than
		// sizes of two inputs.
		d.records, d.sizes = nil, d.sizes[:0]
		return err
	}
	return nil
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

// remeasure measures again every record the next kb_delivery_next_request_sizes call
// may read: the entries waiting to be sent again, then from the position on at most a
// request's records, a refusal array's refusals and the record that does not fit.
func (d *Delivery) remeasure() error {
	pos := deliveryPosition(d.d)
	end := min(len(d.records), pos+int(d.limits.maxRecords)+len(d.refusals)+1)
	if err := d.cols.measure(d.records[pos:end], &d.limits, d.sizes[pos:end]); err != nil {
		return err
	}
	waiting := deliveryWaiting(d.d)
	if len(waiting) == 0 {
		return nil
	}
	d.scratch = d.scratch[:0]
	for _, p := range waiting {
		d.scratch = append(d.scratch, d.records[p.index])
	}
	if cap(d.scratchS) < len(waiting) {
		d.scratchS = make([]cRecordSize, len(waiting))
	}
	sizes := d.scratchS[:len(waiting)]
	err := d.cols.measure(d.scratch, &d.limits, sizes)
	clear(d.scratch) // keep no reference to the records' bytes
	if err != nil {
		return err
	}
	for i, p := range waiting {
		d.sizes[p.index] = sizes[i]
	}
	return nil
}

// Next plans the next request. It returns a request with at least one entry (done
// false), or done true with no entries when nothing is left to send (every record
// stored, terminal or refused): stop then, after reporting req.Refusals, which either
// may carry. Call Settle or SettleAll for the request before calling Next again, or
// Next fails with ErrInFlight. ErrInputChanged: a record waiting to be sent again was
// changed in place so that it is now refused; nothing changed.
func (d *Delivery) Next(now time.Time) (req Request, done bool, err error) {
	if d.d == nil {
		return Request{}, false, ErrClosed
	}
	t := d.ms(now)
	req.n = len(d.records)
	for {
		if d.inFlight == 0 {
			if err := d.remeasure(); err != nil {
				return Request{Refusals: req.Refusals}, false, err
			}
		}
		s, n, bytes, nr := deliveryNextRequestSizes(d.d, d.sizes, d.request, d.refusals, t)
		runtime.KeepAlive(d)
		if err := statusErr(s, -1); err != nil {
			// Refusals of earlier rounds were reported by the library: hand them on.
			return Request{Refusals: req.Refusals}, false, err
		}
		for _, r := range d.refusals[:nr] {
			req.Refusals = append(req.Refusals, Refusal{Index: int(r.index), Reason: Reason(r.reason)})
		}
		switch {
		case s == statusOK && n > 0:
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
		case s == statusOnlyRefusals && n == 0 && nr > 0:
			// The refusal array filled before any entry: report them all, plan on.
		case s == statusEnd && n == 0 && nr == 0:
			return req, true, nil
		default:
			// Not what the header promises: stop rather than loop.
			return Request{Refusals: req.Refusals}, false, &StatusError{Status: s, Index: -1}
		}
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
	c := policy.Effective().c()
	return time.Duration(backoffDelayMs(c.backoffBaseMs, c.backoffCapMs, clampU32(failures), random)) * time.Millisecond
}
