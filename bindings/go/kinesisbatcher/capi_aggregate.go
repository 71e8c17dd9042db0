//go:build cgo

package kinesisbatcher

// The aggregation calls into the C library. Unlike planning, aggregation reads the
// records' bytes (it copies them into the Kinesis records it makes), and its C ABI takes
// kb_record, whose fields are pointers: the caller copies every record's data and keys
// into one C buffer and describes them with cRecord, whose pointer fields are uintptr
// (C addresses, never Go pointers), so the array is Go memory that holds no Go pointer.
// Everything else handed to C is a pointer-free mirror or a byte slice, as in capi.go.

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <kinesis_batcher.h>

// kb_aggregate_plan with a kb_aggregation built here, so that the shard ranges (Go
// memory, a pointer-free array) are passed as an argument and not stored in Go memory.
static kb_status kbgo_aggregate_plan(const kb_limits *limits, uint32_t mode, uint32_t max_bytes,
                                     const kb_shard_range *shards, size_t n_shards,
                                     const kb_record *records, size_t n_records, size_t from,
                                     kb_aggregate *aggregates, size_t aggregates_cap, size_t *n_aggregates,
                                     kb_refusal *refusals, size_t refusals_cap, size_t *n_refusals,
                                     size_t *next, size_t *bad_index) {
	kb_aggregation aggregation = {0};
	aggregation.mode = mode;
	aggregation.max_bytes = max_bytes;
	aggregation.shards = shards;
	aggregation.n_shards = n_shards;
	return kb_aggregate_plan(limits, &aggregation, records, n_records, from, aggregates, aggregates_cap,
	                         n_aggregates, refusals, refusals_cap, n_refusals, next, bad_index);
}

// Encodes aggregates[0..n] back to back into out (kb_aggregate_encode: each takes
// exactly its data_len bytes) and gets each one's outer keys (kb_aggregate_keys: the
// partition key's address and length, the explicit hash key's digits at
// hash_keys + i * KB_HASH_KEY_DIGITS_MAX), in one crossing. Only a loop: the encoding is
// the library's. *bad is the aggregate an error names.
static kb_status kbgo_aggregate_encode_all(const kb_record *records, size_t n_records,
                                           const kb_aggregate *aggregates, size_t n,
                                           uint8_t *out, size_t out_cap,
                                           const uint8_t **keys, size_t *key_lens,
                                           uint8_t *hash_keys, size_t *hash_key_lens, size_t *bad) {
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		size_t written = 0;
		kb_status status = kb_aggregate_encode(records, n_records, &aggregates[i],
		                                       out_cap == at ? NULL : out + at, out_cap - at, &written);
		if (status == KB_OK && written != aggregates[i].data_len) status = KB_INPUT_CHANGED;
		if (status == KB_OK)
			status = kb_aggregate_keys(records, n_records, &aggregates[i], &keys[i], &key_lens[i],
			                           hash_keys + i * KB_HASH_KEY_DIGITS_MAX, &hash_key_lens[i]);
		if (status != KB_OK) {
			*bad = i;
			return status;
		}
		at += written;
	}
	return KB_OK;
}

// One user record of a received record, as offsets into its data; hash_len is
// KB_NO_HASH_KEY when it has no explicit hash key.
typedef struct kbgo_sub_record {
	size_t data_off, data_len, key_off, key_len, hash_off, hash_len;
} kbgo_sub_record;

static size_t kbgo_offset(const uint8_t *p, size_t len, const uint8_t *base) {
	return len == 0 ? 0 : (size_t)((uintptr_t)p - (uintptr_t)base);
}

// kb_deaggregate and every kb_deaggregate_next in one crossing, so that no pointer into
// Go memory outlives the call. *plain is 1 when the record is not an aggregate (its one
// user record is itself, with the keys given); else *subs is a malloc'ed array of *n
// user records as offsets into data, for the caller to free.
static kb_status kbgo_deaggregate(const uint8_t *data, size_t data_len, const uint8_t *key, size_t key_len,
                                  const uint8_t *hash_key, size_t hash_key_len,
                                  kbgo_sub_record **subs, size_t *n, int *plain, size_t *bad_offset) {
	kb_deaggregator it;
	size_t count = 0;
	*subs = NULL;
	*n = 0;
	*plain = 0;
	kb_status status = kb_deaggregate(&it, data, data_len, key, key_len, hash_key, hash_key_len, &count, bad_offset);
	if (status != KB_OK) return status;
	kb_record r;
	if (count == 1) {
		status = kb_deaggregate_next(&it, &r);
		if (status != KB_OK) return status == KB_END ? KB_PANIC : status;
		if (r.data == data && r.data_len == data_len) {
			*plain = 1;
			*n = 1;
			return KB_OK;
		}
	}
	kbgo_sub_record *out = malloc(count == 0 ? 1 : count * sizeof *out);
	if (out == NULL) return KB_OUT_OF_MEMORY;
	for (size_t i = 0; i < count; i++) {
		if (i > 0 || count != 1) {
			status = kb_deaggregate_next(&it, &r);
			if (status != KB_OK) {
				free(out);
				return status == KB_END ? KB_PANIC : status;
			}
		}
		out[i].data_off = kbgo_offset(r.data, r.data_len, data);
		out[i].data_len = r.data_len;
		out[i].key_off = kbgo_offset(r.key, r.key_len, data);
		out[i].key_len = r.key_len;
		out[i].hash_off = r.hash_key == NULL ? 0 : kbgo_offset(r.hash_key, r.hash_key_len, data);
		out[i].hash_len = r.hash_key == NULL ? KB_NO_HASH_KEY : r.hash_key_len;
	}
	*subs = out;
	*n = count;
	return KB_OK;
}

enum {
	kbgo_off_aggregate_layout = offsetof(kb_aggregate, layout),
	kbgo_off_aggregate_hash_key = offsetof(kb_aggregate, hash_key),
	kbgo_off_record_hash_key_len = offsetof(kb_record, hash_key_len),
};
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// cRecord mirrors kb_record, its pointers as C addresses.
type cRecord struct {
	data, dataLen, key, keyLen, hashKey, hashKeyLen uintptr
}

// cAggregate mirrors kb_aggregate.
type cAggregate struct {
	start, end    uintptr
	dataLen, size uint32
	hashKey       cHashKey
	layout        uint8
}

// cSubRecord mirrors kbgo_sub_record.
type cSubRecord struct {
	dataOff, dataLen, keyOff, keyLen, hashOff, hashLen uintptr
}

var (
	_ = [1]struct{}{}[unsafe.Sizeof(cRecord{})-C.sizeof_kb_record]
	_ = [1]struct{}{}[C.sizeof_kb_record-unsafe.Sizeof(cRecord{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cAggregate{})-C.sizeof_kb_aggregate]
	_ = [1]struct{}{}[C.sizeof_kb_aggregate-unsafe.Sizeof(cAggregate{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cSubRecord{})-C.sizeof_kbgo_sub_record]
	_ = [1]struct{}{}[C.sizeof_kbgo_sub_record-unsafe.Sizeof(cSubRecord{})]
)

// The aggregation constants and statuses, checked against the header through their use.
const (
	modeSharedHashKey = C.KB_AGGREGATE_SHARED_HASH_KEY
	modeOneKey        = C.KB_AGGREGATE_ONE_KEY
	modePerShard      = C.KB_AGGREGATE_PER_SHARD

	layoutPlain         = C.KB_LAYOUT_PLAIN
	layoutSharedHashKey = C.KB_LAYOUT_SHARED_HASH_KEY
	layoutOneKey        = C.KB_LAYOUT_ONE_KEY
	layoutOwnKeys       = C.KB_LAYOUT_OWN_KEYS

	hashKeyDigitsMax = C.KB_HASH_KEY_DIGITS_MAX

	statusAggregatesFull   = C.KB_AGGREGATES_FULL
	statusAggregationMode  = C.KB_AGGREGATION_BAD_MODE
	statusAggregationKeys  = C.KB_AGGREGATION_NEEDS_KEYS
	statusDigestMismatch   = C.KB_AGGREGATE_DIGEST_MISMATCH
	statusMalformed        = C.KB_AGGREGATE_MALFORMED
	statusAggregateOutside = C.KB_AGGREGATE_OUT_OF_RANGE
	statusNullField        = C.KB_NULL_FIELD
	statusLengthOverflow   = C.KB_LENGTH_OVERFLOW
	statusPanic            = C.KB_PANIC
)

// aggregateLayoutChecks are the mirrors' sizes and offsets against the C compiler's, for
// layoutErr: {Go, C} pairs.
func aggregateLayoutChecks() map[string][2]uintptr {
	return map[string][2]uintptr{
		"kb_record":              {unsafe.Sizeof(cRecord{}), C.sizeof_kb_record},
		"kb_record.hash_key_len": {unsafe.Offsetof(cRecord{}.hashKeyLen), C.kbgo_off_record_hash_key_len},
		"kb_aggregate":           {unsafe.Sizeof(cAggregate{}), C.sizeof_kb_aggregate},
		"kb_aggregate.hash_key":  {unsafe.Offsetof(cAggregate{}.hashKey), C.kbgo_off_aggregate_hash_key},
		"kb_aggregate.layout":    {unsafe.Offsetof(cAggregate{}.layout), C.kbgo_off_aggregate_layout},
		"kbgo_sub_record":        {unsafe.Sizeof(cSubRecord{}), C.sizeof_kbgo_sub_record},
	}
}

// cBuffer is C memory: the bytes the records of one Aggregate call are copied into.
type cBuffer struct {
	p unsafe.Pointer
	n int
}

// newCBuffer allocates n bytes of C memory (at least one, so that the address is never
// NULL); ok is false when malloc fails.
func newCBuffer(n int) (cBuffer, bool) {
	p := C.malloc(C.size_t(max(n, 1)))
	return cBuffer{p: p, n: n}, p != nil
}

// bytes is the buffer as a byte slice (Go code writes C memory through it).
func (b cBuffer) bytes() []byte { return unsafe.Slice((*byte)(b.p), b.n) }

// addr is the C address of byte i.
func (b cBuffer) addr(i int) uintptr { return uintptr(b.p) + uintptr(i) }

func (b cBuffer) free() { C.free(b.p) }

func crecs(r []cRecord) *C.kb_record { return (*C.kb_record)(unsafe.Pointer(unsafe.SliceData(r))) }

// aggregatePlan is kbgo_aggregate_plan: the aggregates and refusals from `from`, at the
// front of aggs and refusals.
func aggregatePlan(l *cLimits, mode, maxBytes uint32, shards []cShardRange, records []cRecord, from int,
	aggs []cAggregate, refusals []cRefusal) (status uint32, na, nr, next, bad int) {
	var cna, cnr, cnext, cbad C.size_t
	s := C.kbgo_aggregate_plan(cl(l), C.uint32_t(mode), C.uint32_t(maxBytes),
		(*C.kb_shard_range)(unsafe.Pointer(unsafe.SliceData(shards))), C.size_t(len(shards)),
		crecs(records), C.size_t(len(records)), C.size_t(from),
		(*C.kb_aggregate)(unsafe.Pointer(unsafe.SliceData(aggs))), C.size_t(len(aggs)), &cna,
		(*C.kb_refusal)(unsafe.Pointer(unsafe.SliceData(refusals))), C.size_t(len(refusals)), &cnr,
		&cnext, &cbad)
	runtime.KeepAlive(l)
	runtime.KeepAlive(shards)
	runtime.KeepAlive(records)
	runtime.KeepAlive(aggs)
	runtime.KeepAlive(refusals)
	return uint32(s), int(cna), int(cnr), int(cnext), int(cbad)
}

// aggregateKeys are the outer keys of encoded aggregates: keys[i] (keyLens[i] bytes, C
// memory: a record's key in the C buffer, or the library's static shared key) and the
// digits of the explicit hash key at hashKeys[i*hashKeyDigitsMax:] (hashLens[i] of
// them, 0 for none).
type aggregateKeys struct {
	keys     []*C.uint8_t
	keyLens  []uintptr
	hashKeys []byte
	hashLens []uintptr
}

func (k *aggregateKeys) resize(n int) {
	if cap(k.keys) < n {
		k.keys = make([]*C.uint8_t, n)
		k.keyLens = make([]uintptr, n)
		k.hashKeys = make([]byte, n*hashKeyDigitsMax)
		k.hashLens = make([]uintptr, n)
	}
	k.keys, k.keyLens, k.hashKeys, k.hashLens = k.keys[:n], k.keyLens[:n], k.hashKeys[:n*hashKeyDigitsMax], k.hashLens[:n]
}

// keyAddr is the C address of aggregate i's partition key.
func (k *aggregateKeys) keyAddr(i int) uintptr { return uintptr(unsafe.Pointer(k.keys[i])) }

// keyString copies aggregate i's partition key out of C memory.
func (k *aggregateKeys) keyString(i int) string {
	return C.GoStringN((*C.char)(unsafe.Pointer(k.keys[i])), C.int(k.keyLens[i]))
}

// hashKey is aggregate i's explicit hash key digits (empty for none).
func (k *aggregateKeys) hashKey(i int) []byte {
	return k.hashKeys[i*hashKeyDigitsMax : i*hashKeyDigitsMax+int(k.hashLens[i])]
}

// aggregateEncodeAll is kbgo_aggregate_encode_all: aggs encoded back to back into out
// (whose length is the sum of their dataLen), their keys into keys (resized to
// len(aggs)).
func aggregateEncodeAll(records []cRecord, aggs []cAggregate, out []byte, keys *aggregateKeys) (uint32, int) {
	keys.resize(len(aggs))
	var bad C.size_t
	s := C.kbgo_aggregate_encode_all(crecs(records), C.size_t(len(records)),
		(*C.kb_aggregate)(unsafe.Pointer(unsafe.SliceData(aggs))), C.size_t(len(aggs)),
		(*C.uint8_t)(unsafe.SliceData(out)), C.size_t(len(out)),
		(**C.uint8_t)(unsafe.SliceData(keys.keys)), (*C.size_t)(unsafe.Pointer(unsafe.SliceData(keys.keyLens))),
		(*C.uint8_t)(unsafe.SliceData(keys.hashKeys)), (*C.size_t)(unsafe.Pointer(unsafe.SliceData(keys.hashLens))),
		&bad)
	runtime.KeepAlive(records)
	runtime.KeepAlive(aggs)
	runtime.KeepAlive(out)
	runtime.KeepAlive(keys)
	return uint32(s), int(bad)
}

// deaggregate is kbgo_deaggregate: plain, or the user records as offsets into data, a
// view of C memory valid until release is called (release is never nil).
// hasHashKey false passes no hash key (NULL).
func deaggregate(data []byte, key, hashKey string, hasHashKey bool) (status uint32, subs []cSubRecord, release func(), plain bool, badOffset int) {
	var hk *C.uint8_t
	if hasHashKey {
		hk = (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(hashKey)))
	}
	var csubs *C.kbgo_sub_record
	var n, bad C.size_t
	var cplain C.int
	s := C.kbgo_deaggregate((*C.uint8_t)(unsafe.SliceData(data)), C.size_t(len(data)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		hk, C.size_t(len(hashKey)), &csubs, &n, &cplain, &bad)
	runtime.KeepAlive(data)
	runtime.KeepAlive(key)
	runtime.KeepAlive(hashKey)
	release = func() {}
	if csubs != nil {
		subs = unsafe.Slice((*cSubRecord)(unsafe.Pointer(csubs)), int(n))
		release = func() { C.free(unsafe.Pointer(csubs)) }
	}
	return uint32(s), subs, release, cplain != 0, int(bad)
}
