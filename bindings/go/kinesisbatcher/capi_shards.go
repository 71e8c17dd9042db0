//go:build cgo

package kinesisbatcher

// The shard-prediction calls into the C library (capi.go's rules: Go memory handed to C
// holds no Go pointer).

/*
#include <stddef.h>
#include <kinesis_batcher.h>

enum { kbgo_off_shard_range_end = offsetof(kb_shard_range, end) };
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// cHashKey mirrors kb_hash_key128: high, then low.
type cHashKey struct{ high, low uint64 }

// cShardRange mirrors kb_shard_range.
type cShardRange struct{ start, end cHashKey }

var (
	_ = [1]struct{}{}[unsafe.Sizeof(cHashKey{})-C.sizeof_kb_hash_key128]
	_ = [1]struct{}{}[C.sizeof_kb_hash_key128-unsafe.Sizeof(cHashKey{})]
	_ = [1]struct{}{}[unsafe.Sizeof(cShardRange{})-C.sizeof_kb_shard_range]
	_ = [1]struct{}{}[C.sizeof_kb_shard_range-unsafe.Sizeof(cShardRange{})]
)

// The shard statuses, checked against the header through their use.
const (
	statusNotAHashKey      = C.KB_NOT_A_HASH_KEY
	statusShardMapFirst    = C.KB_SHARD_MAP_EMPTY
	statusShardMapLast     = C.KB_SHARD_MAP_INCOMPLETE
	statusShardMapEmpty    = C.KB_SHARD_MAP_EMPTY
	statusShardMapReversed = C.KB_SHARD_MAP_REVERSED
	statusShardMapGap      = C.KB_SHARD_MAP_NOT_CONTIGUOUS
	statusShardMapEnd      = C.KB_SHARD_MAP_INCOMPLETE
)

// shardLayoutChecks are the mirrors' sizes against the C compiler's, for layoutErr:
// {Go, C} pairs.
func shardLayoutChecks() [][2]uintptr {
	return [][2]uintptr{
		{unsafe.Sizeof(cHashKey{}), C.sizeof_kb_hash_key128},
		{unsafe.Sizeof(cShardRange{}), C.sizeof_kb_shard_range},
		{unsafe.Offsetof(cShardRange{}.end), C.kbgo_off_shard_range_end},
	}
}

// hashKeyOf is kb_hash_key_of; hasHashKey false passes KB_NO_HASH_KEY.
func hashKeyOf(key, hashKey string, hasHashKey bool) (cHashKey, uint32) {
	var out cHashKey
	hashLen := C.size_t(len(hashKey))
	if !hasHashKey {
		hashLen = C.KB_NO_HASH_KEY
	}
	s := C.kb_hash_key_of(
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(key))), C.size_t(len(key)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(hashKey))), hashLen,
		(*C.kb_hash_key128)(unsafe.Pointer(&out)))
	runtime.KeepAlive(key)
	runtime.KeepAlive(hashKey)
	return out, uint32(s)
}

// hashKeyParse is kb_hash_key_parse.
func hashKeyParse(decimal string) (cHashKey, uint32) {
	var out cHashKey
	s := C.kb_hash_key_parse((*C.uint8_t)(unsafe.Pointer(unsafe.StringData(decimal))), C.size_t(len(decimal)),
		(*C.kb_hash_key128)(unsafe.Pointer(&out)))
	runtime.KeepAlive(decimal)
	return out, uint32(s)
}

// shardMapCheck is kb_shard_map_check: the status and the range it names.
func shardMapCheck(ranges []cShardRange) (uint32, int) {
	var bad C.size_t
	s := C.kb_shard_map_check((*C.kb_shard_range)(unsafe.Pointer(unsafe.SliceData(ranges))), C.size_t(len(ranges)), &bad)
	runtime.KeepAlive(ranges)
	return uint32(s), int(bad)
}

// shardIndex is kb_shard_index.
func shardIndex(ranges []cShardRange, key cHashKey) (int, uint32) {
	var index, bad C.size_t
	s := C.kb_shard_index((*C.kb_shard_range)(unsafe.Pointer(unsafe.SliceData(ranges))), C.size_t(len(ranges)),
		*(*C.kb_hash_key128)(unsafe.Pointer(&key)), &index, &bad)
	runtime.KeepAlive(ranges)
	return int(index), uint32(s)
}
