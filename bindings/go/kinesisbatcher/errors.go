//go:build cgo

package kinesisbatcher

import (
	"errors"
	"strconv"
)

// Sentinel errors: a *StatusError matches one of them with errors.Is.
var (
	// ErrInvalidLimits: limits the library refuses (a zero or over-the-service cap, a
	// record or request cap above the profile's, a record cap above the request cap, a
	// stream record size outside 1024..10240 KiB, an unknown profile, key unit or
	// option; every KB_LIMITS_* status), WithPartitionKeys on Firehose limits, or
	// Aggregate under limits without partition keys (KB_AGGREGATION_NEEDS_KEYS).
	ErrInvalidLimits = errors.New("kinesisbatcher: invalid limits")
	// ErrInvalidArgument: an integer code out of range (an error kind, an outcome, an
	// AggregationMode).
	ErrInvalidArgument = errors.New("kinesisbatcher: invalid argument")
	// ErrOutOfMemory: the library could not allocate an object.
	ErrOutOfMemory = errors.New("kinesisbatcher: out of memory")
	// ErrNothingInFlight: settling a Delivery with no request in flight.
	ErrNothingInFlight = errors.New("kinesisbatcher: no request in flight")
	// ErrInFlight: Delivery.Next before the request in flight was settled
	// (KB_REQUEST_IN_FLIGHT). Nothing changed: settle the request, then call Next.
	ErrInFlight = errors.New("kinesisbatcher: the request in flight is not settled")
	// ErrInputChanged: the records a Delivery plans changed under it
	// (KB_INPUT_CHANGED): a record waiting to be sent again is now refused (its key
	// made invalid, its data grown over the record cap). Nothing changed; Reset the
	// Delivery to deliver the records as they are now.
	ErrInputChanged = errors.New("kinesisbatcher: the records changed under the delivery")
	// ErrNotAHashKey: a hash key that is not a decimal integer in 0 to 2^128-1 without
	// leading zeros (KB_NOT_A_HASH_KEY): ParseHashKey, HashKeyOf.
	ErrNotAHashKey = errors.New("kinesisbatcher: not a hash key")
	// ErrInvalidShardMap: shard ranges that do not tile 0 to 2^128-1 in order (every
	// KB_SHARD_MAP_* status): NewShardMap; Aggregate in PerShard mode without Shards.
	ErrInvalidShardMap = errors.New("kinesisbatcher: invalid shard map")
	// ErrDigestMismatch: a record that starts with the KPL aggregation magic but whose
	// MD5 digest does not match (KB_AGGREGATE_DIGEST_MISMATCH): a damaged aggregate, or
	// a plain record that happens to start with those four bytes (the KCL hands such a
	// record to the application as it is).
	ErrDigestMismatch = errors.New("kinesisbatcher: aggregated record digest mismatch")
	// ErrMalformedAggregate: an aggregate whose digest matches but whose protobuf is
	// not a valid AggregatedRecord (KB_AGGREGATE_MALFORMED); the *StatusError's Index is
	// the offending byte's offset in the record.
	ErrMalformedAggregate = errors.New("kinesisbatcher: malformed aggregated record")
	// ErrClosed: the object was closed.
	ErrClosed = errors.New("kinesisbatcher: use after Close")
	// ErrInternal: a status the binding does not expect (a bug, here or in the library).
	ErrInternal = errors.New("kinesisbatcher: internal error")
)

// StatusError is an error status of the C library: Status is the kb_status value and
// Index the record or entry it names (-1 when none). Its message is kb_status_message's.
type StatusError struct {
	Status uint32
	Index  int
}

// Error is kb_status_message's sentence, with the index when there is one.
func (e *StatusError) Error() string {
	msg := "kinesisbatcher: " + statusMessage(e.Status)
	if e.Index >= 0 {
		msg += " (index " + strconv.Itoa(e.Index) + ")"
	}
	return msg
}

// Is reports whether target is the sentinel for e's status.
func (e *StatusError) Is(target error) bool {
	switch {
	case e.Status >= statusLimitsFirst && e.Status <= statusLimitsLast, e.Status == statusAggregationKeys:
		return target == ErrInvalidLimits
	case e.Status == statusInvalidArgument, e.Status == statusAggregationMode:
		return target == ErrInvalidArgument
	case e.Status == statusOutOfMemory:
		return target == ErrOutOfMemory
	case e.Status == statusNothingInFlight:
		return target == ErrNothingInFlight
	case e.Status == statusRequestInFlight:
		return target == ErrInFlight
	case e.Status == statusInputChanged:
		return target == ErrInputChanged
	case e.Status == statusNotAHashKey:
		return target == ErrNotAHashKey
	case e.Status >= statusShardMapFirst && e.Status <= statusShardMapLast:
		return target == ErrInvalidShardMap
	case e.Status == statusDigestMismatch:
		return target == ErrDigestMismatch
	case e.Status == statusMalformed:
		return target == ErrMalformedAggregate
	default:
		return target == ErrInternal
	}
}

// statusErr is nil for a status that is not an error.
func statusErr(status uint32, index int) error {
	if !isError(status) {
		return nil
	}
	return &StatusError{Status: status, Index: index}
}
