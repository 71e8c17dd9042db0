//go:build cgo

package kinesisbatcher

// The producer engine's calls into the C library (kb_engine_*), under capi.go's rules:
// Go memory handed to C holds no Go pointer (the arrays are of fixed-size integer
// mirrors), slices go with unsafe.SliceData and stay alive to the end of the call, and
// the engine keeps no pointer to Go memory past a call (a record's size, key identity
// and shard are taken during kb_engine_push).

/*
#include <stddef.h>
#include <stdint.h>
#include <kinesis_batcher.h>

// One record pushed: the kb_record is built here, on the C stack, from the pointers and
// lengths Go passes as arguments (a Go struct holding them would be Go memory holding
// Go pointers). The bytes are read during the call only. has_hash_key 0: no explicit
// hash key (NULL).
static kb_status kbgo_engine_push(kb_engine *engine, const uint8_t *data, size_t data_len,
                                  const uint8_t *key, size_t key_len,
                                  const uint8_t *hash_key, size_t hash_key_len, int has_hash_key,
                                  uint64_t now_ms, kb_handle *handle, kb_reason *reason) {
	kb_record record;
	record.data = data;
	record.data_len = data_len;
	record.key = key;
	record.key_len = key_len;
	record.hash_key = has_hash_key ? hash_key : NULL;
	record.hash_key_len = has_hash_key ? hash_key_len : 0;
	return kb_engine_push(engine, &record, now_ms, handle, reason);
}

enum {
	kbgo_off_engine_config_max_in_flight = offsetof(kb_engine_config, max_in_flight),
	kbgo_off_engine_config_shard_bytes = offsetof(kb_engine_config, shard_bytes_per_sec),
	kbgo_off_terminal_entry_kind = offsetof(kb_terminal_entry, kind),
	kbgo_off_terminal_entry_gave_up = offsetof(kb_terminal_entry, gave_up),
	kbgo_off_engine_counters_terminal = offsetof(kb_engine_counters, terminal),
	kbgo_off_engine_counters_refused = offsetof(kb_engine_counters, refused),
};
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// cEngineConfig mirrors kb_engine_config.
type cEngineConfig struct {
	lingerMs, maxBufferedBytes                               uint64
	maxInFlight, flags, shardRecordsPerSec, shardBytesPerSec uint32
}

// cTerminalEntry mirrors kb_terminal_entry.
type cTerminalEntry struct {
	handle uint32
	kind   uint8
	gaveUp uint8
}

// cEngineCounters mirrors kb_engine_counters.
type cEngineCounters struct {
	bufferedRecords, bufferedBytes, inFlightRequests, inFlightRecords, requests,
	acceptedRecords, acceptedBytes, retried, throttled, credentialFailures, terminal uint64
	refused [5]uint64
}

var (
	_ = [1]struct{}{}[unsafe.Sizeof(cEngineConfig{})-C.sizeof_kb_engine_config]
	_ = [1]struct{}{}[C.sizeof_kb_engine_config-unsafe.Sizeof(cEngineConfig{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cTerminalEntry{})-C.sizeof_kb_terminal_entry]
	_ = [1]struct{}{}[C.sizeof_kb_terminal_entry-unsafe.Sizeof(cTerminalEntry{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cEngineCounters{})-C.sizeof_kb_engine_counters]
	_ = [1]struct{}{}[C.sizeof_kb_engine_counters-unsafe.Sizeof(cEngineCounters{})]
	_ = [1]struct{}{}[unsafe.Sizeof(uint32(0))-C.sizeof_kb_handle]
	_ = [1]struct{}{}[C.sizeof_kb_handle-unsafe.Sizeof(uint32(0))]
)

// The engine's statuses and constants, checked against the header through their use.
const (
	statusFull                 = C.KB_FULL
	statusWait                 = C.KB_WAIT
	statusBusy                 = C.KB_BUSY
	statusPaused               = C.KB_PAUSED
	statusNotTheRequest        = C.KB_NOT_THE_REQUEST_IN_FLIGHT
	statusZeroCapacity         = C.KB_ZERO_CAPACITY
	engineFlagAllowReordering  = C.KB_ENGINE_ALLOW_REORDERING
	errorKindCredentialsHeader = C.KB_ERROR_KIND_CREDENTIALS
)

// engineLayoutChecks are the engine mirrors' sizes and field offsets with the C
// compiler's, as {Go, C} pairs (TestEngineLayout; test files cannot use cgo).
func engineLayoutChecks() map[string][2]uintptr {
	return map[string][2]uintptr{
		"kb_engine_config":                     {unsafe.Sizeof(cEngineConfig{}), C.sizeof_kb_engine_config},
		"kb_engine_config.max_in_flight":       {unsafe.Offsetof(cEngineConfig{}.maxInFlight), C.kbgo_off_engine_config_max_in_flight},
		"kb_engine_config.shard_bytes_per_sec": {unsafe.Offsetof(cEngineConfig{}.shardBytesPerSec), C.kbgo_off_engine_config_shard_bytes},
		"kb_terminal_entry":                    {unsafe.Sizeof(cTerminalEntry{}), C.sizeof_kb_terminal_entry},
		"kb_terminal_entry.kind":               {unsafe.Offsetof(cTerminalEntry{}.kind), C.kbgo_off_terminal_entry_kind},
		"kb_terminal_entry.gave_up":            {unsafe.Offsetof(cTerminalEntry{}.gaveUp), C.kbgo_off_terminal_entry_gave_up},
		"kb_engine_counters":                   {unsafe.Sizeof(cEngineCounters{}), C.sizeof_kb_engine_counters},
		"kb_engine_counters.terminal":          {unsafe.Offsetof(cEngineCounters{}.terminal), C.kbgo_off_engine_counters_terminal},
		"kb_engine_counters.refused":           {unsafe.Offsetof(cEngineCounters{}.refused), C.kbgo_off_engine_counters_refused},
	}
}

type cEngine = C.kb_engine

// engineNew is kb_engine_new; shards nil is no map. bad is the bad shard range's index.
func engineNew(l cLimits, p cRetryPolicy, cfg cEngineConfig, capacity int, shards []cShardRange) (*cEngine, uint32, int) {
	var e *C.kb_engine
	var bad C.size_t
	s := C.kb_engine_new(cl(&l), (*C.kb_retry_policy)(unsafe.Pointer(&p)),
		(*C.kb_engine_config)(unsafe.Pointer(&cfg)), C.size_t(capacity),
		(*C.kb_shard_range)(unsafe.Pointer(unsafe.SliceData(shards))), C.size_t(len(shards)),
		&e, &bad)
	runtime.KeepAlive(shards)
	return e, uint32(s), int(bad)
}

func engineFree(e *cEngine) { C.kb_engine_free(e) }

func engineReset(e *cEngine) uint32 { return uint32(C.kb_engine_reset(e)) }

func engineCapacity(e *cEngine) int { return int(C.kb_engine_capacity(e)) }

// enginePush pushes one record (read during the call only).
func enginePush(e *cEngine, data []byte, key, hashKey string, nowMs uint64) (status uint32, handle uint32, reason uint8) {
	var h C.kb_handle
	var r C.kb_reason
	has := C.int(0)
	if hashKey != "" {
		has = 1
	}
	s := C.kbgo_engine_push(e,
		(*C.uint8_t)(unsafe.SliceData(data)), C.size_t(len(data)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(hashKey))), C.size_t(len(hashKey)), has,
		C.uint64_t(nowMs), &h, &r)
	runtime.KeepAlive(data)
	runtime.KeepAlive(key)
	runtime.KeepAlive(hashKey)
	return uint32(s), uint32(h), uint8(r)
}

// engineNextRequest is kb_engine_next_request; handles must hold the limits' max
// records.
func engineNextRequest(e *cEngine, nowMs uint64, handles []uint32) (status uint32, id uint64, n int, bytes uint32, untilMs uint64) {
	var cid, cuntil C.uint64_t
	var cn C.size_t
	var cbytes C.uint32_t
	s := C.kb_engine_next_request(e, C.uint64_t(nowMs), &cid,
		(*C.kb_handle)(unsafe.SliceData(handles)), C.size_t(len(handles)), &cn, &cbytes, &cuntil)
	runtime.KeepAlive(handles)
	return uint32(s), uint64(cid), int(cn), uint32(cbytes), uint64(cuntil)
}

func engineSettle(e *cEngine, id uint64, outcomes []uint8, nowMs, random uint64, terminal []cTerminalEntry) (uint32, int) {
	var nt C.size_t
	s := C.kb_engine_settle(e, C.uint64_t(id),
		(*C.uint8_t)(unsafe.SliceData(outcomes)), C.size_t(len(outcomes)),
		C.uint64_t(nowMs), C.uint64_t(random),
		(*C.kb_terminal_entry)(unsafe.Pointer(unsafe.SliceData(terminal))), C.size_t(len(terminal)), &nt)
	runtime.KeepAlive(outcomes)
	runtime.KeepAlive(terminal)
	return uint32(s), int(nt)
}

func engineSettleAll(e *cEngine, id uint64, kind uint8, nowMs, random uint64, terminal []cTerminalEntry) (uint32, int) {
	var nt C.size_t
	s := C.kb_engine_settle_all(e, C.uint64_t(id), C.uint8_t(kind),
		C.uint64_t(nowMs), C.uint64_t(random),
		(*C.kb_terminal_entry)(unsafe.Pointer(unsafe.SliceData(terminal))), C.size_t(len(terminal)), &nt)
	runtime.KeepAlive(terminal)
	return uint32(s), int(nt)
}

func engineFlush(e *cEngine) uint32 { return uint32(C.kb_engine_flush(e)) }

func engineResume(e *cEngine) uint32 { return uint32(C.kb_engine_resume(e)) }

func engineIsPaused(e *cEngine) (bool, uint32) {
	var p C.int
	s := C.kb_engine_is_paused(e, &p)
	return p != 0, uint32(s)
}

func engineStats(e *cEngine) (cEngineCounters, uint32) {
	var c cEngineCounters
	s := C.kb_engine_stats(e, (*C.kb_engine_counters)(unsafe.Pointer(&c)))
	return c, uint32(s)
}

func engineShardThrottled(e *cEngine, shard int) (uint64, uint32) {
	var n C.uint64_t
	s := C.kb_engine_shard_throttled(e, C.size_t(shard), &n)
	return uint64(n), uint32(s)
}
