//go:build cgo

package kinesisbatcher

// Every call into the C library goes through this file (shard prediction through
// capi_shards.go, aggregation through capi_aggregate.go). Go memory handed to C holds no
// Go pointer: the arrays are of the mirror types below (fixed-size integers only), the
// key bytes are plain bytes. Slices are passed with unsafe.SliceData (nil for an empty
// slice, which the C ABI takes as the empty array) and kept alive to the end of the call.

/*
#include <stddef.h>
#include <stdlib.h>
#include <kinesis_batcher.h>

// One record measured and pushed in one crossing (kb_record_sizes_fill for one record,
// then kb_accumulator_push_size). The key bytes are read during the call only;
// hash_key_len is KB_NO_HASH_KEY for a record without one.
static kb_status kbgo_push(kb_accumulator *acc, uint64_t data_len,
                           const uint8_t *key, size_t key_len,
                           const uint8_t *hash_key, size_t hash_key_bytes, size_t hash_key_len,
                           uint32_t key_unit, kb_batch *send_first, kb_reason *reason) {
	kb_record_size size;
	kb_status status = kb_record_sizes_fill(1, &data_len, key, key_len, &key_len, hash_key,
	                                        hash_key_bytes, &hash_key_len, key_unit, &size, NULL);
	if (status != KB_OK) return status;
	return kb_accumulator_push_size(acc, &size, send_first, reason);
}

// Measures n records given as columns into sizes[0..n] (kb_record_sizes_fill) and pushes
// each into the accumulator (kb_accumulator_push_size), in one crossing; the open batch
// carries over to the next call. Only a loop: every decision is the library's. A push
// yields at most one batch (KB_SEND_FIRST) or one refusal, so arrays of n entries each
// hold a call's. The refusals are numbered from first; *bad is relative to the call.
static kb_status kbgo_plan_chunk(kb_accumulator *acc, size_t first, size_t n,
                                 const uint64_t *data_lens, const uint8_t *keys, size_t keys_bytes,
                                 const size_t *key_lens, const uint8_t *hash_keys,
                                 size_t hash_keys_bytes, const size_t *hash_key_lens,
                                 uint32_t key_unit, kb_record_size *sizes,
                                 kb_batch *batches, size_t *n_batches,
                                 kb_refusal *refusals, size_t *n_refusals, size_t *bad) {
	size_t nb = 0, nr = 0;
	kb_status status = kb_record_sizes_fill(n, data_lens, keys, keys_bytes, key_lens, hash_keys,
	                                        hash_keys_bytes, hash_key_lens, key_unit, sizes, bad);
	for (size_t i = 0; status == KB_OK && i < n; i++) {
		kb_reason reason;
		status = kb_accumulator_push_size(acc, &sizes[i], &batches[nb], &reason);
		if (status == KB_SEND_FIRST) {
			nb++;
			status = KB_OK;
		} else if (status == KB_REFUSED) {
			refusals[nr].index = first + i;
			refusals[nr].reason = reason;
			nr++;
			status = KB_OK;
		} else if (status != KB_OK) {
			*bad = i;
		}
	}
	*n_batches = nb;
	*n_refusals = nr;
	return status;
}

enum {
	kbgo_off_pending_first_sent = offsetof(kb_pending, first_sent_ms),
	kbgo_off_refusal_reason = offsetof(kb_refusal, reason),
	kbgo_off_terminal_kind = offsetof(kb_terminal, kind),
	kbgo_off_terminal_gave_up = offsetof(kb_terminal, gave_up),
	kbgo_off_batch_records = offsetof(kb_batch, records),
	kbgo_off_size_flags = offsetof(kb_record_size, flags),
};
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Mirrors of the C structs passed as arrays, with fixed-size integers (uintptr for
// size_t) and no Go pointer. layoutErr (and the compile-time checks below) hold them to
// the header's layout.

type cLimits struct {
	profile, maxRecords, maxRequestBytes, maxRecordBytes, keyUnit, options uint32
}

type cRecordSize struct {
	dataLen                          uint64
	keyLen, keyUnits, hashKeyLen, fl uint32
}

type cBatch struct {
	start, end     uintptr
	records, bytes uint32
}

type cRefusal struct {
	index  uintptr
	reason uint8
}

type cPending struct {
	index       uintptr
	attempts    uint32
	firstSentMs uint64
}

type cTerminal struct {
	index  uintptr
	kind   uint8
	gaveUp bool
}

type cStats struct {
	batches, records, bytes uint64
	refused                 [5]uint64
}

type cRetryPolicy struct {
	backoffBaseMs, backoffCapMs, maxAgeMs uint64
	maxAttempts, perKeyOrder              uint32
}

type cSettled struct {
	accepted, retrying, terminal uintptr
}

type cRetryStats struct {
	requests, accepted, retried, terminal uint64
	refused                               [5]uint64
}

// Compile-time size checks: each index is 0 only when the sizes are equal (a
// difference either way overflows or indexes past the array).
var (
	_ = [1]struct{}{}[unsafe.Sizeof(cLimits{})-C.sizeof_kb_limits]
	_ = [1]struct{}{}[C.sizeof_kb_limits-unsafe.Sizeof(cLimits{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cRecordSize{})-C.sizeof_kb_record_size]
	_ = [1]struct{}{}[C.sizeof_kb_record_size-unsafe.Sizeof(cRecordSize{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cBatch{})-C.sizeof_kb_batch]
	_ = [1]struct{}{}[C.sizeof_kb_batch-unsafe.Sizeof(cBatch{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cRefusal{})-C.sizeof_kb_refusal]
	_ = [1]struct{}{}[C.sizeof_kb_refusal-unsafe.Sizeof(cRefusal{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cPending{})-C.sizeof_kb_pending]
	_ = [1]struct{}{}[C.sizeof_kb_pending-unsafe.Sizeof(cPending{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cTerminal{})-C.sizeof_kb_terminal]
	_ = [1]struct{}{}[C.sizeof_kb_terminal-unsafe.Sizeof(cTerminal{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cStats{})-C.sizeof_kb_stats]
	_ = [1]struct{}{}[C.sizeof_kb_stats-unsafe.Sizeof(cStats{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cRetryPolicy{})-C.sizeof_kb_retry_policy]
	_ = [1]struct{}{}[C.sizeof_kb_retry_policy-unsafe.Sizeof(cRetryPolicy{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cSettled{})-C.sizeof_kb_settled]
	_ = [1]struct{}{}[C.sizeof_kb_settled-unsafe.Sizeof(cSettled{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cRetryStats{})-C.sizeof_kb_retry_stats]
	_ = [1]struct{}{}[C.sizeof_kb_retry_stats-unsafe.Sizeof(cRetryStats{})]
	_ = [1]struct{}{}[unsafe.Sizeof(uintptr(0))-C.sizeof_size_t] // []uintptr as size_t arrays
	_ = [1]struct{}{}[C.sizeof_size_t-unsafe.Sizeof(uintptr(0))]
)

// layoutErr compares the mirrors' sizes and field offsets with the C compiler's (the
// tests call it; test files cannot use cgo).
func layoutErr() error {
	type check struct {
		name   string
		goSize uintptr
		cSize  uintptr
	}
	checks := []check{
		{"kb_limits", unsafe.Sizeof(cLimits{}), C.sizeof_kb_limits},
		{"kb_record_size", unsafe.Sizeof(cRecordSize{}), C.sizeof_kb_record_size},
		{"kb_batch", unsafe.Sizeof(cBatch{}), C.sizeof_kb_batch},
		{"kb_refusal", unsafe.Sizeof(cRefusal{}), C.sizeof_kb_refusal},
		{"kb_pending", unsafe.Sizeof(cPending{}), C.sizeof_kb_pending},
		{"kb_terminal", unsafe.Sizeof(cTerminal{}), C.sizeof_kb_terminal},
		{"kb_stats", unsafe.Sizeof(cStats{}), C.sizeof_kb_stats},
		{"kb_retry_policy", unsafe.Sizeof(cRetryPolicy{}), C.sizeof_kb_retry_policy},
		{"kb_settled", unsafe.Sizeof(cSettled{}), C.sizeof_kb_settled},
		{"kb_retry_stats", unsafe.Sizeof(cRetryStats{}), C.sizeof_kb_retry_stats},
		{"kb_pending.first_sent_ms", unsafe.Offsetof(cPending{}.firstSentMs), uintptr(C.kbgo_off_pending_first_sent)},
		{"kb_refusal.reason", unsafe.Offsetof(cRefusal{}.reason), uintptr(C.kbgo_off_refusal_reason)},
		{"kb_terminal.kind", unsafe.Offsetof(cTerminal{}.kind), uintptr(C.kbgo_off_terminal_kind)},
		{"kb_terminal.gave_up", unsafe.Offsetof(cTerminal{}.gaveUp), uintptr(C.kbgo_off_terminal_gave_up)},
		{"kb_batch.records", unsafe.Offsetof(cBatch{}.records), uintptr(C.kbgo_off_batch_records)},
		{"kb_record_size.flags", unsafe.Offsetof(cRecordSize{}.fl), uintptr(C.kbgo_off_size_flags)},
	}
	for _, c := range shardLayoutChecks() {
		checks = append(checks, check{"kb_hash_key128/kb_shard_range", c[0], c[1]})
	}
	for name, c := range aggregateLayoutChecks() {
		checks = append(checks, check{name, c[0], c[1]})
	}
	for _, c := range checks {
		if c.goSize != c.cSize {
			return fmt.Errorf("%s: Go %d bytes, C %d", c.name, c.goSize, c.cSize)
		}
	}
	return nil
}

// Constants of the header, checked against it at compile time through their use.
const (
	statusOK           = C.KB_OK
	statusBatchesFull  = C.KB_BATCHES_FULL
	statusRefusalsFull = C.KB_REFUSALS_FULL
	statusEnd          = C.KB_END
	statusSendFirst    = C.KB_SEND_FIRST
	statusRefused      = C.KB_REFUSED
	statusOnlyRefusals = C.KB_ONLY_REFUSALS

	statusInvalidArgument = C.KB_INVALID_ARGUMENT
	statusNothingInFlight = C.KB_NOTHING_IN_FLIGHT
	statusOutOfMemory     = C.KB_OUT_OF_MEMORY
	statusRequestInFlight = C.KB_REQUEST_IN_FLIGHT
	statusInputChanged    = C.KB_INPUT_CHANGED
	// The KB_LIMITS_* statuses run from the first to the last (checked in TestLimits).
	statusLimitsFirst       = C.KB_LIMITS_BAD_PROFILE
	statusLimitsLast        = C.KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE
	statusRequestBytesAbove = C.KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE

	flagKeyNotUTF8     = C.KB_RECORD_KEY_NOT_UTF8
	flagHashKeyInvalid = C.KB_RECORD_HASH_KEY_INVALID
	optNoPartitionKeys = C.KB_LIMITS_NO_PARTITION_KEYS
	optCountHashKey    = C.KB_LIMITS_COUNT_HASH_KEY
	optSpanRefusals    = C.KB_LIMITS_SPAN_REFUSALS
	outcomeAccepted    = C.KB_OUTCOME_ACCEPTED
	errorKindNone      = C.KB_ERROR_KIND_NONE
)

// noHashKey is KB_NO_HASH_KEY (SIZE_MAX): the hash key length of a record without one.
const noHashKey = ^uintptr(0)

// KB_NO_HASH_KEY checked against noHashKey at compile time (as the sizes above).
var (
	_ = [1]struct{}{}[noHashKey-C.KB_NO_HASH_KEY]
	_ = [1]struct{}{}[C.KB_NO_HASH_KEY-noHashKey]
)

func isError(status uint32) bool { return status >= 100 }

func statusMessage(status uint32) string { return C.GoString(C.kb_status_message(C.kb_status(status))) }
func reasonName(r uint8) string          { return C.GoString(C.kb_reason_name(C.uint32_t(r))) }
func reasonMessage(r uint8) string       { return C.GoString(C.kb_reason_message(C.uint32_t(r))) }
func errorKindName(k uint8) string       { return C.GoString(C.kb_error_kind_name(C.uint32_t(k))) }
func errorKindRetryable(k uint8) bool    { return bool(C.kb_error_kind_is_retryable(C.uint32_t(k))) }
func libraryVersion() string             { return C.GoString(C.kb_version()) }

func cl(l *cLimits) *C.kb_limits { return (*C.kb_limits)(unsafe.Pointer(l)) }

func limitsProfile(profile uint32) (cLimits, uint32) {
	var l cLimits
	s := uint32(C.kb_limits_profile(C.uint32_t(profile), cl(&l)))
	return l, s
}

func limitsForStream(kib uint32) (cLimits, uint32) {
	var l cLimits
	s := uint32(C.kb_limits_for_stream(C.uint32_t(kib), cl(&l)))
	return l, s
}

func limitsCheck(l cLimits) uint32 { return uint32(C.kb_limits_check(cl(&l))) }

func statsFill(s cStats, l cLimits) (byteFill, recordFill float64) {
	var b, r C.double
	C.kb_stats_fill((*C.kb_stats)(unsafe.Pointer(&s)), cl(&l), &b, &r)
	return float64(b), float64(r)
}

// sizesFill is kb_record_sizes_fill over columns: one call for len(out) records. Key
// lengths are size_t (uintptr); hashKeyLens is nil when no record has a hash key, else
// noHashKey for a record without one.
func sizesFill(dataLens []uint64, keys []byte, keyLens []uintptr, hashKeys []byte, hashKeyLens []uintptr,
	keyUnit uint32, out []cRecordSize) (uint32, int) {
	var bad C.size_t
	s := C.kb_record_sizes_fill(C.size_t(len(out)),
		(*C.uint64_t)(unsafe.SliceData(dataLens)),
		(*C.uint8_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
		(*C.size_t)(unsafe.Pointer(unsafe.SliceData(keyLens))),
		(*C.uint8_t)(unsafe.SliceData(hashKeys)), C.size_t(len(hashKeys)),
		(*C.size_t)(unsafe.Pointer(unsafe.SliceData(hashKeyLens))),
		C.uint32_t(keyUnit),
		(*C.kb_record_size)(unsafe.Pointer(unsafe.SliceData(out))), &bad)
	runtime.KeepAlive(dataLens)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(keyLens)
	runtime.KeepAlive(hashKeys)
	runtime.KeepAlive(hashKeyLens)
	runtime.KeepAlive(out)
	return uint32(s), int(bad)
}

// planChunk is kbgo_plan_chunk: measures len(sizes) records from columns (as sizesFill)
// and pushes them into a; the batches and refusals go to the front of batches and
// refusals, which the C side writes up to len(sizes) entries of.
func planChunk(a *cAccumulator, first int, dataLens []uint64, keys []byte, keyLens []uintptr, hashKeys []byte, hashKeyLens []uintptr,
	keyUnit uint32, sizes []cRecordSize, batches []cBatch, refusals []cRefusal) (status uint32, nb, nr, bad int) {
	if len(batches) < len(sizes) || len(refusals) < len(sizes) || len(dataLens) != len(sizes) || len(keyLens) != len(sizes) {
		panic("kinesisbatcher: planChunk: arrays shorter than the chunk")
	}
	var cnb, cnr, cbad C.size_t
	s := C.kbgo_plan_chunk(a, C.size_t(first), C.size_t(len(sizes)),
		(*C.uint64_t)(unsafe.SliceData(dataLens)),
		(*C.uint8_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
		(*C.size_t)(unsafe.Pointer(unsafe.SliceData(keyLens))),
		(*C.uint8_t)(unsafe.SliceData(hashKeys)), C.size_t(len(hashKeys)),
		(*C.size_t)(unsafe.Pointer(unsafe.SliceData(hashKeyLens))),
		C.uint32_t(keyUnit),
		(*C.kb_record_size)(unsafe.Pointer(unsafe.SliceData(sizes))),
		(*C.kb_batch)(unsafe.Pointer(unsafe.SliceData(batches))), &cnb,
		(*C.kb_refusal)(unsafe.Pointer(unsafe.SliceData(refusals))), &cnr, &cbad)
	runtime.KeepAlive(dataLens)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(keyLens)
	runtime.KeepAlive(hashKeys)
	runtime.KeepAlive(hashKeyLens)
	runtime.KeepAlive(sizes)
	runtime.KeepAlive(batches)
	runtime.KeepAlive(refusals)
	return uint32(s), int(cnb), int(cnr), int(cbad)
}

type cAccumulator = C.kb_accumulator

func accumulatorNew(l cLimits) (*cAccumulator, uint32) {
	var a *C.kb_accumulator
	s := uint32(C.kb_accumulator_new(cl(&l), &a))
	return a, s
}

func accumulatorFree(a *cAccumulator) { C.kb_accumulator_free(a) }

func accumulatorReset(a *cAccumulator) uint32 { return uint32(C.kb_accumulator_reset(a)) }

func accumulatorSkip(a *cAccumulator) (int, uint32) {
	var i C.size_t
	s := C.kb_accumulator_skip(a, &i)
	return int(i), uint32(s)
}

// accumulatorPush measures and pushes one record in one crossing. The key strings are
// read during the call only (their bytes hold no Go pointer); hashKeyLen is noHashKey
// for a record without a hash key.
func accumulatorPush(a *cAccumulator, dataLen int, key string, hashKey string, hashKeyLen uintptr, keyUnit uint32) (uint32, cBatch, uint8) {
	var b cBatch
	var reason C.kb_reason
	s := C.kbgo_push(a, C.uint64_t(dataLen),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(hashKey))), C.size_t(len(hashKey)), C.size_t(hashKeyLen),
		C.uint32_t(keyUnit), (*C.kb_batch)(unsafe.Pointer(&b)), &reason)
	runtime.KeepAlive(key)
	runtime.KeepAlive(hashKey)
	return uint32(s), b, uint8(reason)
}

func accumulatorFlush(a *cAccumulator) (cBatch, uint32) {
	var b cBatch
	s := C.kb_accumulator_flush(a, (*C.kb_batch)(unsafe.Pointer(&b)))
	return b, uint32(s)
}

func accumulatorPending(a *cAccumulator) (cBatch, uint32) {
	var b cBatch
	s := C.kb_accumulator_pending(a, (*C.kb_batch)(unsafe.Pointer(&b)))
	return b, uint32(s)
}

func accumulatorPushed(a *cAccumulator) int {
	var n C.size_t
	C.kb_accumulator_pushed(a, &n)
	return int(n)
}

func accumulatorStats(a *cAccumulator) cStats {
	var s cStats
	C.kb_accumulator_stats(a, (*C.kb_stats)(unsafe.Pointer(&s)))
	return s
}

func retryPolicyDefault() cRetryPolicy {
	var p cRetryPolicy
	C.kb_retry_policy_default((*C.kb_retry_policy)(unsafe.Pointer(&p)))
	return p
}

func errorKindFromCode(code string) uint8 {
	var k C.kb_error_kind
	C.kb_error_kind_from_code((*C.uint8_t)(unsafe.Pointer(unsafe.StringData(code))), C.size_t(len(code)), &k)
	runtime.KeepAlive(code)
	return uint8(k)
}

func errorKindFromHTTPStatus(status uint32) uint8 {
	var k C.kb_error_kind
	C.kb_error_kind_from_http_status(C.uint32_t(status), &k)
	return uint8(k)
}

func backoffDelayMs(baseMs, capMs uint64, failures uint32, random uint64) uint64 {
	return uint64(C.kb_backoff_delay_ms(C.uint64_t(baseMs), C.uint64_t(capMs), C.uint32_t(failures), C.uint64_t(random)))
}

type cDelivery = C.kb_delivery

func deliveryNew(l cLimits, p cRetryPolicy) (*cDelivery, uint32) {
	var d *C.kb_delivery
	s := uint32(C.kb_delivery_new(cl(&l), (*C.kb_retry_policy)(unsafe.Pointer(&p)), &d))
	return d, s
}

func deliveryFree(d *cDelivery) { C.kb_delivery_free(d) }

func deliveryReset(d *cDelivery) uint32 { return uint32(C.kb_delivery_reset(d)) }

func deliveryNextRequestSizes(d *cDelivery, sizes []cRecordSize, request []cPending, refusals []cRefusal, nowMs uint64) (status uint32, entries, bytes, nr int) {
	var ne, cnr C.size_t
	var cbytes C.uint32_t
	s := C.kb_delivery_next_request_sizes(d,
		(*C.kb_record_size)(unsafe.Pointer(unsafe.SliceData(sizes))), C.size_t(len(sizes)),
		(*C.kb_pending)(unsafe.Pointer(unsafe.SliceData(request))), C.size_t(len(request)), &ne, &cbytes,
		(*C.kb_refusal)(unsafe.Pointer(unsafe.SliceData(refusals))), C.size_t(len(refusals)), &cnr,
		C.uint64_t(nowMs))
	runtime.KeepAlive(sizes)
	runtime.KeepAlive(request)
	runtime.KeepAlive(refusals)
	return uint32(s), int(ne), int(cbytes), int(cnr)
}

func deliverySettle(d *cDelivery, sent []cPending, outcomes []uint8, nowMs uint64, terminal []cTerminal) (uint32, cSettled, int) {
	var st cSettled
	var bad C.size_t
	s := C.kb_delivery_settle(d,
		(*C.kb_pending)(unsafe.Pointer(unsafe.SliceData(sent))), C.size_t(len(sent)),
		(*C.uint8_t)(unsafe.SliceData(outcomes)), C.size_t(len(outcomes)),
		C.uint64_t(nowMs),
		(*C.kb_terminal)(unsafe.Pointer(unsafe.SliceData(terminal))), C.size_t(len(terminal)),
		(*C.kb_settled)(unsafe.Pointer(&st)), &bad)
	runtime.KeepAlive(sent)
	runtime.KeepAlive(outcomes)
	runtime.KeepAlive(terminal)
	return uint32(s), st, int(bad)
}

func deliverySettleAll(d *cDelivery, sent []cPending, kind uint8, nowMs uint64, terminal []cTerminal) (uint32, cSettled) {
	var st cSettled
	s := C.kb_delivery_settle_all(d,
		(*C.kb_pending)(unsafe.Pointer(unsafe.SliceData(sent))), C.size_t(len(sent)),
		C.uint32_t(kind), C.uint64_t(nowMs),
		(*C.kb_terminal)(unsafe.Pointer(unsafe.SliceData(terminal))), C.size_t(len(terminal)),
		(*C.kb_settled)(unsafe.Pointer(&st)))
	runtime.KeepAlive(sent)
	runtime.KeepAlive(terminal)
	return uint32(s), st
}

func deliveryBackoffMs(d *cDelivery, random uint64) uint64 {
	var out C.uint64_t
	C.kb_delivery_backoff_ms(d, C.uint64_t(random), &out)
	return uint64(out)
}

// deliveryWaiting copies the waiting entries out of the delivery's memory.
func deliveryWaiting(d *cDelivery) []cPending {
	var p *C.kb_pending
	var n C.size_t
	C.kb_delivery_waiting(d, &p, &n)
	if n == 0 || p == nil {
		return nil
	}
	return append([]cPending(nil), unsafe.Slice((*cPending)(unsafe.Pointer(p)), int(n))...)
}

func deliveryPosition(d *cDelivery) int {
	var n C.size_t
	C.kb_delivery_position(d, &n)
	return int(n)
}

func deliveryStats(d *cDelivery) cRetryStats {
	var s cRetryStats
	C.kb_delivery_stats(d, (*C.kb_retry_stats)(unsafe.Pointer(&s)))
	return s
}
