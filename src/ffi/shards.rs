//! Shard prediction: hash keys, and a shard's index among the caller's open shards.

use super::status::*;
use super::{check, guard, input, non_null, set};
use crate::shards::{self, ShardMapError, ShardRange};

/// A 128-bit hash key (0 to 2^128-1) as two 64-bit halves: the value is
/// `high * 2^64 + low`. Compare `high` first, then `low`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_hash_key128 {
    /// The upper 64 bits.
    pub high: u64,
    /// The lower 64 bits.
    pub low: u64,
}

impl kb_hash_key128 {
    pub(crate) const fn from_u128(value: u128) -> kb_hash_key128 {
        kb_hash_key128 {
            high: (value >> 64) as u64,
            low: value as u64,
        }
    }

    pub(crate) const fn to_u128(self) -> u128 {
        ((self.high as u128) << 64) | self.low as u128
    }
}

/// The hash keys one open shard owns, both bounds inclusive: a shard's
/// `HashKeyRange` (StartingHashKey, EndingHashKey) from ListShards, parsed with
/// `kb_hash_key_parse`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_shard_range {
    /// StartingHashKey.
    pub start: kb_hash_key128,
    /// EndingHashKey.
    pub end: kb_hash_key128,
}

/// The hash key the service routes a record by: its explicit hash key when it has one
/// (`hash_key_len` not `KB_NO_HASH_KEY`), else the MD5 digest of the partition key's
/// bytes as an unsigned big-endian 128-bit integer. An explicit hash key that is not a
/// decimal integer in 0 to 2^128-1 without leading zeros is `KB_NOT_A_HASH_KEY`.
///
/// Requires: `key` is NULL or points to `key_len` readable bytes; `hash_key` is NULL or
/// points to `hash_key_len` readable bytes unless that is `KB_NO_HASH_KEY`; `out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_hash_key_of(
    key: *const u8,
    key_len: usize,
    hash_key: *const u8,
    hash_key_len: usize,
    out: *mut kb_hash_key128,
) -> kb_status {
    guard!({
        non_null!(out);
        // SAFETY: the caller's promise above.
        let key = check!(unsafe { input(key, key_len) });
        let explicit = if hash_key_len == super::KB_NO_HASH_KEY {
            None
        } else {
            // SAFETY: the caller's promise above.
            Some(check!(unsafe { input(hash_key, hash_key_len) }))
        };
        let Some(value) = shards::hash_key_of(key, explicit) else {
            return KB_NOT_A_HASH_KEY;
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, kb_hash_key128::from_u128(value)) };
        KB_OK
    })
}

/// A decimal hash key (an ExplicitHashKey, or a StartingHashKey or EndingHashKey from
/// ListShards) as a number; `KB_NOT_A_HASH_KEY` unless it is a decimal integer in 0 to
/// 2^128-1 without leading zeros.
///
/// Requires: `decimal` is NULL or points to `len` readable bytes; `out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_hash_key_parse(
    decimal: *const u8,
    len: usize,
    out: *mut kb_hash_key128,
) -> kb_status {
    guard!({
        non_null!(out);
        // SAFETY: the caller's promise above.
        let decimal = check!(unsafe { input(decimal, len) });
        let Some(value) = shards::parse_hash_key(decimal) else {
            return KB_NOT_A_HASH_KEY;
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, kb_hash_key128::from_u128(value)) };
        KB_OK
    })
}

/// The status and culprit of a refused map.
pub(crate) fn map_status(error: ShardMapError) -> (kb_status, usize) {
    match error {
        ShardMapError::Empty => (KB_SHARD_MAP_EMPTY, 0),
        ShardMapError::Reversed { index } => (KB_SHARD_MAP_REVERSED, index),
        ShardMapError::NotContiguous { index } => (KB_SHARD_MAP_NOT_CONTIGUOUS, index),
        ShardMapError::Incomplete => (KB_SHARD_MAP_INCOMPLETE, 0),
    }
}

/// Checks that `ranges[0..n]` are the open shards of a stream, sorted: the first starts at
/// 0, each starts right after the previous one ends, the last ends at 2^128-1. Errors:
/// `KB_SHARD_MAP_EMPTY`, `KB_SHARD_MAP_REVERSED` (a range ends before it starts),
/// `KB_SHARD_MAP_NOT_CONTIGUOUS` (a gap, an overlap, ranges out of order, or closed parent
/// shards listed with their children: ask ListShards for ShardFilter AT_LATEST),
/// `KB_SHARD_MAP_INCOMPLETE` (the last range does not end at 2^128-1); `*bad_index`
/// (which may be NULL) names the range. Check a map once when you build it;
/// `kb_shard_index` then answers in O(log n).
///
/// Requires: `ranges` is NULL or holds `n` entries; `bad_index` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_shard_map_check(
    ranges: *const kb_shard_range,
    n: usize,
    bad_index: *mut usize,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promise above.
        let ranges = check!(unsafe { input(ranges, n) });
        let range = |i: usize| ShardRange {
            start: ranges[i].start.to_u128(),
            end: ranges[i].end.to_u128(),
        };
        match shards::check_ranges_with(ranges.len(), range) {
            Ok(()) => KB_OK,
            Err(error) => {
                let (status, index) = map_status(error);
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(bad_index, index) };
                status
            }
        }
    })
}

/// The index of the shard in `ranges[0..n]` that owns `key`, by binary search on the
/// ranges' ends: exact for a map that `kb_shard_map_check` accepts. For any other, the
/// range found is checked to hold the key, and `KB_SHARD_MAP_NOT_CONTIGUOUS` (its index in
/// `*bad_index`, which may be NULL) says it does not; `KB_SHARD_MAP_EMPTY` for no range.
///
/// Requires: `ranges` is NULL or holds `n` entries; `index` is NULL or writable;
/// `bad_index` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_shard_index(
    ranges: *const kb_shard_range,
    n: usize,
    key: kb_hash_key128,
    index: *mut usize,
    bad_index: *mut usize,
) -> kb_status {
    guard!({
        non_null!(index);
        // SAFETY: the caller's promise above.
        let ranges = check!(unsafe { input(ranges, n) });
        if ranges.is_empty() {
            return KB_SHARD_MAP_EMPTY;
        }
        let key = key.to_u128();
        let found = shards::shard_of_with(ranges.len(), |i| ranges[i].end.to_u128(), key);
        // Not a check of the whole map (that is O(n)): enough that an unchecked one never
        // gets an index whose range does not hold the key.
        let holds = ranges
            .get(found)
            .is_some_and(|range| range.start.to_u128() <= key && key <= range.end.to_u128());
        if !holds {
            // SAFETY: NULL or writable (the caller's promise).
            unsafe { set(bad_index, found.min(ranges.len() - 1)) };
            return KB_SHARD_MAP_NOT_CONTIGUOUS;
        }
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(index, found) };
        KB_OK
    })
}
