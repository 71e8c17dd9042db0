//! Aggregation in the KPL's format: planning (`kb_aggregate_plan`), encoding
//! (`kb_aggregate_encode`, `kb_aggregate_keys`) and decoding (`kb_deaggregate`,
//! `kb_deaggregate_next`), none of which allocates.

use super::cost::{core_limits, kb_limits};
use super::records::{Checked, checked, kb_record};
use super::shards::{kb_hash_key128, kb_shard_range, map_status};
use super::status::*;
use super::{check, guard, input, non_null, output, set};
use crate::aggregate::{
    Aggregate, Aggregation, DecodeError, EncodeError, Layout, Mode, State, Step, SubRecord,
    SubRecords, TableCursor, deaggregate, encode, encoded_len,
};
use crate::plan::Refusal;
use crate::shards::{self, MAX_HASH_KEY_DIGITS, ShardMap, ShardRange};

/// `kb_aggregation.mode`: each user record keeps its partition key and all point to one
/// explicit hash key, the aggregate's (its first record's hash key). The default, and the
/// safe choice: no resharding can make a consumer drop such an aggregate, and no shard
/// map is needed. Gives up key-to-shard affinity across aggregates.
pub const KB_AGGREGATE_SHARED_HASH_KEY: u32 = 0;
/// `kb_aggregation.mode`: consecutive records with the same partition key (and explicit
/// hash key) share an aggregate, sent under that key. Keeps everything, packs well only
/// when neighbours share a key.
pub const KB_AGGREGATE_ONE_KEY: u32 = 1;
/// `kb_aggregation.mode`: consecutive records of the same shard (by the caller's map of
/// the open shards) share an aggregate, each keeping its keys. An aggregate planned with
/// a map that has since changed can straddle a new shard boundary, and the KCL then
/// drops it whole: refresh the map (ListShards, ShardFilter AT_LATEST) and plan again.
pub const KB_AGGREGATE_PER_SHARD: u32 = 2;

/// The longest decimal hash key: 2^128-1 has 39 digits. The size of the buffer
/// `kb_aggregate_keys` writes an explicit hash key into.
pub const KB_HASH_KEY_DIGITS_MAX: usize = 39;

// A literal above, so that the header shows the number; the same as the core's.
const _: () = assert!(KB_HASH_KEY_DIGITS_MAX == MAX_HASH_KEY_DIGITS);

/// How a `kb_aggregate`'s data is laid out: one of the `KB_LAYOUT_*` values. (The header's
/// typedef and its documentation are in cbindgen.toml.)
pub type kb_layout = u8;

/// `kb_layout`: not aggregated: the one record, sent as it is with its own keys
/// (`kb_aggregate_encode` copies its data).
pub const KB_LAYOUT_PLAIN: u8 = 0;
/// `kb_layout`: user records with their own partition keys, all pointing to the
/// aggregate's explicit hash key. Outer keys: "a" and that hash key.
pub const KB_LAYOUT_SHARED_HASH_KEY: u8 = 1;
/// `kb_layout`: user records sharing one partition key (and explicit hash key, if they
/// have one). Outer keys: theirs.
pub const KB_LAYOUT_ONE_KEY: u8 = 2;
/// `kb_layout`: user records with their own partition keys and explicit hash keys. Outer
/// keys: "a" and the first record's hash key.
pub const KB_LAYOUT_OWN_KEYS: u8 = 3;

/// The `KB_LAYOUT_*` value of a layout.
const fn layout_code(layout: Layout) -> kb_layout {
    match layout {
        Layout::Plain => KB_LAYOUT_PLAIN,
        Layout::SharedHashKey => KB_LAYOUT_SHARED_HASH_KEY,
        Layout::OneKey => KB_LAYOUT_ONE_KEY,
        Layout::OwnKeys => KB_LAYOUT_OWN_KEYS,
    }
}

/// The layout of a `KB_LAYOUT_*` value.
const fn layout_of(code: kb_layout) -> Option<Layout> {
    match code {
        KB_LAYOUT_PLAIN => Some(Layout::Plain),
        KB_LAYOUT_SHARED_HASH_KEY => Some(Layout::SharedHashKey),
        KB_LAYOUT_ONE_KEY => Some(Layout::OneKey),
        KB_LAYOUT_OWN_KEYS => Some(Layout::OwnKeys),
        _ => None,
    }
}

/// Every layout has a distinct code and reads back as itself (the matches above are
/// exhaustive, so a new layout does not compile without its code).
///
/// cbindgen:ignore
const _: () = {
    const ALL: [Layout; 4] = [
        Layout::Plain,
        Layout::SharedHashKey,
        Layout::OneKey,
        Layout::OwnKeys,
    ];
    let mut i = 0;
    while i < ALL.len() {
        assert!(layout_code(ALL[i]) as usize == i);
        assert!(matches!(layout_of(i as u8), Some(l) if layout_code(l) as usize == i));
        i += 1;
    }
    assert!(layout_of(ALL.len() as u8).is_none());
};

/// How to aggregate. Zero means the default, and the default is the safe choice: a
/// zeroed struct is KB_AGGREGATE_SHARED_HASH_KEY with aggregates up to the limits'
/// record cap.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_aggregation {
    /// A KB_AGGREGATE_* value (0: KB_AGGREGATE_SHARED_HASH_KEY).
    pub mode: u32,
    /// The largest aggregate to make, in bytes as the service counts a record (data plus
    /// outer keys). 0, or more than the limits' record cap, is the record cap; the KPL's
    /// default is 51200, for lower latency.
    pub max_bytes: u32,
    /// KB_AGGREGATE_PER_SHARD only (ignored otherwise): the open shards, sorted, checked
    /// as kb_shard_map_check does.
    pub shards: *const kb_shard_range,
    /// How many ranges `shards` holds.
    pub n_shards: usize,
}

/// One Kinesis record to send: user records `records[start..end)` aggregated, or one
/// plain record (KB_LAYOUT_PLAIN). Written by kb_aggregate_plan; read back by
/// kb_aggregate_encode and kb_aggregate_keys, which check it against the records.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_aggregate {
    /// Index of the first user record.
    pub start: usize,
    /// One past the index of the last user record.
    pub end: usize,
    /// The exact length of the record's data: the buffer kb_aggregate_encode needs.
    pub data_len: u32,
    /// The record's size as the service counts it (data_len plus the outer keys), at most
    /// the limits' record cap: what the kb_record of the encoded data measures.
    pub size: u32,
    /// The hash key that decides the record's shard.
    pub hash_key: kb_hash_key128,
    /// A KB_LAYOUT_* value: how the data is laid out, which says what the outer keys are.
    pub layout: kb_layout,
}

impl Default for kb_aggregation {
    /// The zeroed struct: KB_AGGREGATE_SHARED_HASH_KEY, aggregates up to the record cap.
    fn default() -> Self {
        kb_aggregation {
            mode: KB_AGGREGATE_SHARED_HASH_KEY,
            max_bytes: 0,
            shards: core::ptr::null(),
            n_shards: 0,
        }
    }
}

impl kb_aggregate {
    fn from_core(aggregate: &Aggregate) -> kb_aggregate {
        kb_aggregate {
            start: aggregate.start,
            end: aggregate.end,
            data_len: aggregate.data_len,
            size: aggregate.size,
            hash_key: kb_hash_key128::from_u128(aggregate.hash_key),
            layout: layout_code(aggregate.layout),
        }
    }

    /// The core's aggregate, or `KB_INVALID_ARGUMENT` for a layout that is not a
    /// `KB_LAYOUT_*` value.
    fn to_core(self) -> Result<Aggregate, kb_status> {
        Ok(Aggregate {
            start: self.start,
            end: self.end,
            layout: layout_of(self.layout).ok_or(KB_INVALID_ARGUMENT)?,
            data_len: self.data_len,
            size: self.size,
            hash_key: self.hash_key.to_u128(),
        })
    }
}

/// A shard map of at most three ranges that puts a record in the same shard as the one
/// owning `range` exactly when the caller's map does: `range` itself, and what lies
/// below and above it. `Mode::PerShard` only compares a record's shard with the first
/// record's, so this gives the caller's grouping without copying the caller's map (whose
/// ranges are laid out differently from the core's) into an allocation.
struct ThreeRanges {
    ranges: [ShardRange; 3],
    len: usize,
}

impl ThreeRanges {
    fn around(range: ShardRange) -> ThreeRanges {
        let mut three = ThreeRanges {
            ranges: [ShardRange::default(); 3],
            len: 0,
        };
        if range.start > 0 {
            three.push(ShardRange {
                start: 0,
                end: range.start - 1,
            });
        }
        three.push(range);
        if range.end < u128::MAX {
            three.push(ShardRange {
                start: range.end + 1,
                end: u128::MAX,
            });
        }
        three
    }

    fn push(&mut self, range: ShardRange) {
        self.ranges[self.len] = range;
        self.len += 1;
    }

    fn ranges(&self) -> &[ShardRange] {
        &self.ranges[..self.len]
    }
}

/// The caller's shard map, checked.
struct CallerMap<'a> {
    ranges: &'a [kb_shard_range],
}

impl CallerMap<'_> {
    fn range(&self, index: usize) -> ShardRange {
        ShardRange {
            start: self.ranges[index].start.to_u128(),
            end: self.ranges[index].end.to_u128(),
        }
    }

    /// The range that owns `hash_key` (the map is checked, so there is one).
    fn owner(&self, hash_key: u128) -> ShardRange {
        let index = shards::shard_of_with(
            self.ranges.len(),
            |i| self.ranges[i].end.to_u128(),
            hash_key,
        );
        self.range(index.min(self.ranges.len() - 1))
    }
}

/// The mode of a `kb_aggregation`, with the caller's shard map checked for
/// KB_AGGREGATE_PER_SHARD (`Err` with the status and the culprit's index).
///
/// # Safety
/// `aggregation.shards` is NULL or holds `n_shards` ranges, for `'a`.
unsafe fn caller_map<'a>(
    aggregation: &kb_aggregation,
) -> Result<Option<CallerMap<'a>>, (kb_status, Option<usize>)> {
    match aggregation.mode {
        KB_AGGREGATE_SHARED_HASH_KEY | KB_AGGREGATE_ONE_KEY => Ok(None),
        KB_AGGREGATE_PER_SHARD => {
            // SAFETY: the caller's promise above.
            let ranges = unsafe { input(aggregation.shards, aggregation.n_shards) }
                .map_err(|status| (status, None))?;
            let map = CallerMap { ranges };
            shards::check_ranges_with(ranges.len(), |i| map.range(i)).map_err(|error| {
                let (status, index) = map_status(error);
                (status, Some(index))
            })?;
            Ok(Some(map))
        }
        _ => Err((KB_AGGREGATION_BAD_MODE, None)),
    }
}

/// The step that starts at `from`, under `aggregation` (whose mode is set here).
fn step(
    aggregation: Aggregation<'_>,
    mode: u32,
    map: Option<&CallerMap<'_>>,
    records: &[Checked],
    from: usize,
) -> Option<Step> {
    match (mode, map) {
        (KB_AGGREGATE_ONE_KEY, _) => aggregation.with_mode(Mode::OneKey).next(records, from),
        (_, Some(map)) => {
            // The first record's shard, as the core computes it (a record whose hash key
            // is invalid is refused before its shard matters).
            let first = records.get(from)?;
            let hash_key = crate::aggregate::AsRecord::as_record(first)
                .and_then(|record| shards::hash_key_of(record.key, record.hash_key))
                .unwrap_or_default();
            let three = ThreeRanges::around(map.owner(hash_key));
            // Three contiguous ranges from 0 to 2^128-1: always a valid map.
            let local = ShardMap::new(three.ranges()).ok()?;
            aggregation
                .with_mode(Mode::PerShard(local))
                .next(records, from)
        }
        _ => aggregation.next(records, from),
    }
}

/// Plans the aggregates of `records[from..n_records)`: which consecutive records form
/// each Kinesis record to send. Stateless: each call plans from `from` and sets `*next`
/// to where the next call starts; the plan is the same whatever the capacities (each at
/// least 1) and however it is cut into calls.
///
/// Aggregates and refusals are written in input order, at the front of each array, their
/// counts in `*n_aggregates` and `*n_refusals`. Each aggregate is measured exactly as the
/// service measures the record it becomes (data and outer keys), so none is over the
/// record cap nor over `aggregation->max_bytes`. A group of one record, and a record too
/// large to share an aggregate, stays a plain record (KB_LAYOUT_PLAIN). A record that can
/// never be sent is refused with its reason, as by kb_planner_plan.
///
/// Returns KB_OK when the end is reached (`*next == n_records`), KB_AGGREGATES_FULL or
/// KB_REFUSALS_FULL when an array filled: handle what was written, then call again from
/// `*next`.
///
/// Errors: KB_NULL_POINTER, KB_NULL_ARRAY, KB_ZERO_CAPACITY, the KB_LIMITS_* statuses,
/// KB_AGGREGATION_NEEDS_KEYS (limits without partition keys, such as Firehose's:
/// aggregation is a Kinesis Data Streams format), KB_AGGREGATION_BAD_MODE,
/// KB_INVALID_ARGUMENT (`from > n_records`), KB_SHARD_MAP_* for a bad map under
/// KB_AGGREGATE_PER_SHARD (`*bad_index` names the range). Records are checked as they
/// are read: a NULL field with a non-zero length is KB_NULL_FIELD, lengths that
/// overflow KB_LENGTH_OVERFLOW, with the record's index in `*bad_index`. A call that
/// meets such a record after writing something stops before it and returns what it
/// wrote with KB_AGGREGATES_FULL; the next call, from `*next`, returns the error. On an
/// error `*n_aggregates`, `*n_refusals` and `*next` are 0.
///
/// Then encode each aggregate (kb_aggregate_encode, kb_aggregate_keys) into a kb_record
/// and plan those records into requests with kb_planner_plan, as any records.
///
/// Requires: `limits` and `aggregation` are NULL or readable, `aggregation->shards` NULL
/// or holding `n_shards` ranges; `records` is NULL or points to `n_records` records whose
/// non-NULL fields point to their lengths in bytes; each output array is NULL or holds
/// its capacity; the count pointers and `bad_index` are NULL or writable; nothing
/// overlaps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_aggregate_plan(
    limits: *const kb_limits,
    aggregation: *const kb_aggregation,
    records: *const kb_record,
    n_records: usize,
    from: usize,
    aggregates: *mut kb_aggregate,
    aggregates_cap: usize,
    n_aggregates: *mut usize,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    next: *mut usize,
    bad_index: *mut usize,
) -> kb_status {
    guard!(counts: [n_aggregates, n_refusals, next], {
        non_null!(aggregation, n_aggregates, n_refusals, next);
        // SAFETY: the caller's promise above.
        let limits = check!(unsafe { core_limits(limits) });
        // SAFETY: non-NULL and readable (the caller's promise); plain fields, any bits.
        let settings = unsafe { *aggregation };
        let Ok(base) = Aggregation::new(limits) else {
            return KB_AGGREGATION_NEEDS_KEYS;
        };
        let base = base.with_max_bytes(settings.max_bytes);
        // SAFETY: the caller's promise above.
        let map = match unsafe { caller_map(&settings) } {
            Ok(map) => map,
            Err((status, index)) => {
                if let Some(index) = index {
                    // SAFETY: NULL or writable (the caller's promise).
                    unsafe { set(bad_index, index) };
                }
                return status;
            }
        };
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        // SAFETY: the caller's promise above.
        let aggregates = check!(unsafe { output(aggregates, aggregates_cap) });
        // SAFETY: the caller's promise above.
        let refusals = check!(unsafe { output(refusals, refusals_cap) });
        if from > records.len() {
            return KB_INVALID_ARGUMENT;
        }
        let core_records = checked(records);
        let (mut position, mut written_aggregates, mut written_refusals) = (from, 0, 0);
        let status = loop {
            if position == records.len() {
                break KB_OK;
            }
            // A step reads its first record and refuses it when it cannot read it (as too
            // large): so that record is checked here, and the step never meets a record
            // it cannot read at its start. Any later record it cannot read ends its
            // aggregate (`Checked` reads no pointer it has not checked), and is checked
            // here when the next step starts at it: one check per step, never a pass over
            // the rest of the input.
            let first = records[position].check();
            if first != KB_OK {
                if written_aggregates + written_refusals > 0 {
                    break KB_AGGREGATES_FULL;
                }
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(bad_index, position) };
                return first;
            }
            let Some(step) = step(base, settings.mode, map.as_ref(), core_records, position)
            else {
                break KB_OK;
            };
            match step {
                Step::Aggregate(aggregate) => {
                    let Some(slot) = aggregates.get_mut(written_aggregates) else {
                        break KB_AGGREGATES_FULL;
                    };
                    slot.write(kb_aggregate::from_core(&aggregate));
                    written_aggregates += 1;
                    position = aggregate.end;
                }
                Step::Refused(refusal) => {
                    let Some(slot) = refusals.get_mut(written_refusals) else {
                        break KB_REFUSALS_FULL;
                    };
                    slot.write(refusal);
                    written_refusals += 1;
                    position = refusal.index + 1;
                }
            }
        };
        // SAFETY: non-NULL (checked above) and writable (the caller's promise).
        unsafe {
            set(n_aggregates, written_aggregates);
            set(n_refusals, written_refusals);
            set(next, position);
        }
        status
    })
}

/// The status of an encoding error.
fn encode_status(records: &[kb_record], error: EncodeError) -> kb_status {
    match error {
        EncodeError::OutOfRange => KB_AGGREGATE_OUT_OF_RANGE,
        EncodeError::Unreadable { index } => records.get(index).map_or(KB_PANIC, kb_record::check),
        EncodeError::InputChanged => KB_INPUT_CHANGED,
        EncodeError::TooLarge => KB_LENGTH_OVERFLOW,
        EncodeError::BufferTooSmall { .. } => KB_BUFFER_TOO_SMALL,
    }
}

/// Writes the data of `*aggregate` (planned by kb_aggregate_plan over these records)
/// into `out` and its length, `aggregate->data_len`, into `*written`: the KPL's magic, the
/// protobuf of the user records and its MD5 digest; a plain record's data as it is. The
/// only call that reads records' data bytes: it copies them.
///
/// Send the result as one kb_record: data `out`, `*written` bytes, with the keys from
/// kb_aggregate_keys. Its size as kb_record_measure counts it is `aggregate->size`.
///
/// Everything is checked before anything is written: KB_AGGREGATE_OUT_OF_RANGE (the
/// range is empty, reversed, past `n_records`, or more than one record for
/// KB_LAYOUT_PLAIN), KB_INVALID_ARGUMENT (a layout that is not a KB_LAYOUT_* value),
/// KB_NULL_FIELD or KB_LENGTH_OVERFLOW (a record in the range cannot be read),
/// KB_INPUT_CHANGED (the records do not make this aggregate: not the array it was planned
/// from, or changed since), KB_LENGTH_OVERFLOW (a hand-made aggregate over 4 GiB),
/// KB_BUFFER_TOO_SMALL (`out_cap < aggregate->data_len`). On an error `*written` is 0.
/// `out` may be NULL with `out_cap` 0, for an empty plain record.
///
/// Requires: `records` is NULL or points to `n_records` records whose non-NULL fields
/// point to their lengths in bytes; `aggregate` is NULL or readable; `out` is NULL or
/// holds `out_cap` writable bytes, overlapping no record; `written` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_aggregate_encode(
    records: *const kb_record,
    n_records: usize,
    aggregate: *const kb_aggregate,
    out: *mut u8,
    out_cap: usize,
    written: *mut usize,
) -> kb_status {
    guard!(counts: [written], {
        non_null!(aggregate, written);
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        // SAFETY: non-NULL and readable (the caller's promise); plain fields, any bits.
        let aggregate = check!(unsafe { *aggregate }.to_core());
        if out.is_null() && out_cap != 0 {
            return KB_NULL_ARRAY;
        }
        if out_cap > isize::MAX as usize {
            return KB_LENGTH_OVERFLOW;
        }
        let core_records = checked(records);
        // Every check first, so that nothing is written on an error.
        let len = match encoded_len(core_records, &aggregate) {
            Ok(len) if len == aggregate.data_len => len as usize,
            Ok(_) => return KB_INPUT_CHANGED,
            Err(error) => return encode_status(records, error),
        };
        if len > out_cap {
            return KB_BUFFER_TOO_SMALL;
        }
        let buffer: &mut [u8] = if len == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL (len > 0 and len <= out_cap, so out_cap != 0) and holding
            // out_cap >= len writable bytes that nothing else aliases (the caller's
            // promise). They may be uninitialised, so they are zeroed before a `&mut [u8]`
            // is made of them; every one is then overwritten.
            unsafe {
                core::ptr::write_bytes(out, 0, len);
                core::slice::from_raw_parts_mut(out, len)
            }
        };
        match encode(core_records, &aggregate, buffer) {
            Ok(bytes) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(written, bytes) };
                KB_OK
            }
            // Checked above; only records changed by another thread during the call get
            // here.
            Err(error) => encode_status(records, error),
        }
    })
}

/// The outer keys to send the encoded `*aggregate` with: the partition key in `*key`
/// (`*key_len` bytes: the static "a" for an aggregate whose user records keep their own
/// keys, else a pointer into the first record's key) and the explicit hash key, in
/// decimal, written to `hash_key` (KB_HASH_KEY_DIGITS_MAX bytes) with its length in
/// `*hash_key_len`, 0 meaning: send no ExplicitHashKey.
///
/// Errors: KB_AGGREGATE_OUT_OF_RANGE and KB_INVALID_ARGUMENT as for kb_aggregate_encode;
/// KB_NULL_FIELD or KB_LENGTH_OVERFLOW when the first record cannot be read;
/// KB_INPUT_CHANGED when its explicit hash key is not a valid one (it was not planned
/// from these records). On an error `*key_len` and `*hash_key_len` are 0.
///
/// Requires: `records` is NULL or points to `n_records` records whose non-NULL fields
/// point to their lengths in bytes; `aggregate` is NULL or readable; `key`, `key_len` and
/// `hash_key_len` are NULL or writable; `hash_key` is NULL or holds
/// KB_HASH_KEY_DIGITS_MAX writable bytes, overlapping no record.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_aggregate_keys(
    records: *const kb_record,
    n_records: usize,
    aggregate: *const kb_aggregate,
    key: *mut *const u8,
    key_len: *mut usize,
    hash_key: *mut u8,
    hash_key_len: *mut usize,
) -> kb_status {
    guard!(counts: [key_len, hash_key_len], {
        non_null!(aggregate, key, key_len, hash_key, hash_key_len);
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        // SAFETY: non-NULL and readable (the caller's promise); plain fields, any bits.
        let aggregate = check!(unsafe { *aggregate }.to_core());
        let (start, end) = (aggregate.start, aggregate.end);
        let plain_too_long = aggregate.layout == Layout::Plain && end.wrapping_sub(start) != 1;
        if start >= end || end > records.len() || plain_too_long {
            return KB_AGGREGATE_OUT_OF_RANGE;
        }
        let first = &records[start];
        check!(match first.check() {
            KB_OK => Ok(()),
            status => Err(status),
        });
        let mut digits = [0; MAX_HASH_KEY_DIGITS];
        let explicit = aggregate.explicit_hash_key(checked(records), &mut digits);
        if explicit.is_some_and(|digits| shards::parse_hash_key(digits).is_none()) {
            return KB_INPUT_CHANGED;
        }
        let (key_ptr, key_bytes) = match aggregate.layout {
            Layout::Plain | Layout::OneKey => (first.key, first.key_len),
            Layout::SharedHashKey | Layout::OwnKeys => {
                let shared = crate::aggregate::SHARED_PARTITION_KEY;
                (shared.as_ptr(), shared.len())
            }
        };
        let explicit = explicit.unwrap_or_default();
        // SAFETY: every pointer non-NULL and writable (the caller's promise); a valid hash
        // key has at most KB_HASH_KEY_DIGITS_MAX digits (checked just above), which
        // `hash_key` holds; the digits are in the record (which `hash_key` does not overlap,
        // the caller's promise) or on the stack.
        unsafe {
            core::ptr::copy_nonoverlapping(explicit.as_ptr(), hash_key, explicit.len());
            set(hash_key_len, explicit.len());
            set(key, key_ptr);
            set(key_len, key_bytes);
        }
        KB_OK
    })
}

/// `kb_deaggregator.kind`: nothing to give (a zeroed struct, or iteration is over).
const KIND_NONE: u32 = 0;
/// `kb_deaggregator.kind`: an aggregate's sub-records.
const KIND_AGGREGATE: u32 = 1;
/// `kb_deaggregator.kind`: one plain record.
const KIND_PLAIN: u32 = 2;

/// Iterates over the user records of one received record: set by kb_deaggregate, read
/// by kb_deaggregate_next. The caller owns it (on the stack, say); the library allocates
/// nothing. Its fields are private: do not change them. A zeroed struct is safe:
/// kb_deaggregate_next gives KB_END. It points into the data, key and hash key given to
/// kb_deaggregate, which must stay valid and unchanged while it is used.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_deaggregator {
    /// Private.
    kind: u32,
    /// Private.
    remaining: usize,
    /// Private.
    bytes: *const u8,
    /// Private.
    bytes_len: usize,
    /// Private.
    key: *const u8,
    /// Private.
    key_len: usize,
    /// Private.
    hash_key: *const u8,
    /// Private.
    hash_key_len: usize,
    /// Private.
    at: usize,
    /// Private.
    key_index: u64,
    /// Private.
    key_offset: usize,
    /// Private.
    hash_key_index: u64,
    /// Private.
    hash_key_offset: usize,
    /// Private.
    key_cached: u8,
    /// Private.
    hash_key_cached: u8,
    /// Private.
    key_ring: [usize; 8],
    /// Private.
    hash_key_ring: [usize; 8],
}

impl Default for kb_deaggregator {
    /// The zeroed struct: nothing to give.
    fn default() -> Self {
        kb_deaggregator {
            kind: KIND_NONE,
            remaining: 0,
            bytes: core::ptr::null(),
            bytes_len: 0,
            key: core::ptr::null(),
            key_len: 0,
            hash_key: core::ptr::null(),
            hash_key_len: 0,
            at: 0,
            key_index: 0,
            key_offset: 0,
            hash_key_index: 0,
            hash_key_offset: 0,
            key_cached: 0,
            hash_key_cached: 0,
            key_ring: [0; 8],
            hash_key_ring: [0; 8],
        }
    }
}

impl kb_deaggregator {
    /// Keeps where `sub_records` (over `message`) stands.
    fn save(&mut self, message: &[u8], sub_records: &SubRecords<'_>) {
        let state = sub_records.state();
        self.bytes = message.as_ptr();
        self.bytes_len = message.len();
        self.at = state.at;
        self.remaining = state.remaining;
        self.key_index = state.keys.index;
        self.key_offset = state.keys.offset;
        self.hash_key_index = state.hash_keys.index;
        self.hash_key_offset = state.hash_keys.offset;
        self.key_cached = state.keys.cached;
        self.hash_key_cached = state.hash_keys.cached;
        self.key_ring = state.keys.ring;
        self.hash_key_ring = state.hash_keys.ring;
    }

    /// Where the iteration stands, as `save` kept it.
    fn state(&self) -> State {
        State {
            at: self.at,
            remaining: self.remaining,
            keys: TableCursor {
                index: self.key_index,
                offset: self.key_offset,
                cached: self.key_cached,
                ring: self.key_ring,
            },
            hash_keys: TableCursor {
                index: self.hash_key_index,
                offset: self.hash_key_offset,
                cached: self.hash_key_cached,
                ring: self.hash_key_ring,
            },
        }
    }
}

/// A view as a record: pointers into the received record.
fn view(sub_record: &SubRecord<'_>) -> kb_record {
    let (hash_key, hash_key_len) = match sub_record.explicit_hash_key {
        Some(hash_key) => (hash_key.as_ptr(), hash_key.len()),
        None => (core::ptr::null(), 0),
    };
    kb_record {
        data: sub_record.data.as_ptr(),
        data_len: sub_record.data.len(),
        key: sub_record.partition_key.as_ptr(),
        key_len: sub_record.partition_key.len(),
        hash_key,
        hash_key_len,
    }
}

/// Starts `*it` over a received Kinesis record (its data, partition key and explicit
/// hash key, as GetRecords returns them; `hash_key` NULL for none) and writes how many
/// user records it holds to `*n_records`. Then kb_deaggregate_next gives each in order.
///
/// An aggregate (the KPL's magic, more than 16 bytes after it, and a matching MD5 digest)
/// holds its user records; any other record is one user record, itself, with the keys
/// given: the KCL's rule. Every field, length and table index is checked here, before
/// the first user record is given, so a damaged record is an error, never a partial
/// result. Nothing is copied or allocated.
///
/// Errors: KB_AGGREGATE_DIGEST_MISMATCH (the record starts with the magic but its digest
/// does not match: a damaged aggregate, or a plain record that happens to start with those
/// four bytes; the KCL passes such a record to the application as it is, and to do the
/// same treat `data` as one user record with the keys given), KB_AGGREGATE_MALFORMED (the
/// digest matches but the protobuf is not a valid aggregate; `*bad_offset`, which may be
/// NULL, is where, in bytes from the start of `data`), KB_NULL_POINTER, KB_NULL_ARRAY,
/// KB_LENGTH_OVERFLOW. On an error `*n_records` is 0 and `*it` is zeroed, so that
/// kb_deaggregate_next gives KB_END.
///
/// Requires: `it`, `n_records` and `bad_offset` are NULL or writable; `data`, `key` and
/// `hash_key` are NULL or point to their lengths in readable bytes, which stay valid and
/// unchanged while `*it` is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_deaggregate(
    it: *mut kb_deaggregator,
    data: *const u8,
    data_len: usize,
    key: *const u8,
    key_len: usize,
    hash_key: *const u8,
    hash_key_len: usize,
    n_records: *mut usize,
    bad_offset: *mut usize,
) -> kb_status {
    guard!(counts: [it, n_records], {
        non_null!(it, n_records);
        // SAFETY: the caller's promise above.
        let bytes = check!(unsafe { input(data, data_len) });
        // SAFETY: the caller's promise above.
        let partition_key = check!(unsafe { input(key, key_len) });
        let explicit = if hash_key.is_null() {
            if hash_key_len != 0 {
                return KB_NULL_ARRAY;
            }
            None
        } else {
            // SAFETY: the caller's promise above.
            Some(check!(unsafe { input(hash_key, hash_key_len) }))
        };
        let sub_records = match deaggregate(bytes, partition_key, explicit) {
            Ok(sub_records) => sub_records,
            Err(DecodeError::DigestMismatch) => return KB_AGGREGATE_DIGEST_MISMATCH,
            Err(DecodeError::Malformed { offset }) => {
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(bad_offset, offset) };
                return KB_AGGREGATE_MALFORMED;
            }
        };
        let count = sub_records.len();
        let mut state = kb_deaggregator::default();
        if sub_records.is_aggregated() {
            state.kind = KIND_AGGREGATE;
            // The protobuf, between the magic and the digest: what `SubRecords` reads.
            let message = &bytes[crate::aggregate::wire::MAGIC.len()
                ..bytes.len() - crate::aggregate::wire::DIGEST_LEN];
            state.save(message, &sub_records);
        } else {
            // The caller's own pointers, so that an empty field stays as it was given.
            state = kb_deaggregator {
                kind: KIND_PLAIN,
                remaining: 1,
                bytes: data,
                bytes_len: data_len,
                key,
                key_len,
                hash_key,
                hash_key_len,
                ..state
            };
        }
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe {
            set(it, state);
            set(n_records, count);
        }
        KB_OK
    })
}

/// The next user record of `*it`, in order: KB_OK with views in `*sub_record` (data, key
/// and hash key point into the data, key and hash key given to kb_deaggregate; hash_key
/// NULL when the user record has none), or KB_END when every one was given (then again
/// on every call). KB_NULL_POINTER when a pointer is NULL.
///
/// Requires: `*it` was set by kb_deaggregate (or zeroed) and not changed since, and the
/// data, key and hash key it was given are still valid and unchanged; `sub_record` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_deaggregate_next(
    it: *mut kb_deaggregator,
    sub_record: *mut kb_record,
) -> kb_status {
    guard!({
        non_null!(it, sub_record);
        // SAFETY: non-NULL and writable (the caller's promise); plain fields, any bits.
        let state = unsafe { &mut *it };
        if state.remaining == 0 {
            return KB_END;
        }
        let record = match state.kind {
            KIND_PLAIN => {
                state.remaining = 0;
                kb_record {
                    data: state.bytes,
                    data_len: state.bytes_len,
                    key: state.key,
                    key_len: state.key_len,
                    hash_key: state.hash_key,
                    hash_key_len: state.hash_key_len,
                }
            }
            KIND_AGGREGATE => {
                // SAFETY: set by kb_deaggregate to the protobuf inside the caller's data,
                // still valid (the caller's promise); input() refuses a length no object
                // can have. Every read of the core's iteration is bounds-checked, so any
                // offsets give KB_END or views within these bytes.
                let message = match unsafe { input(state.bytes, state.bytes_len) } {
                    Ok(message) => message,
                    Err(_) => {
                        state.remaining = 0;
                        return KB_END;
                    }
                };
                let mut sub_records = SubRecords::resume(message, state.state());
                let found = sub_records.next();
                state.save(message, &sub_records);
                match found {
                    Some(found) => view(&found),
                    None => return KB_END,
                }
            }
            _ => {
                state.remaining = 0;
                return KB_END;
            }
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(sub_record, record) };
        KB_OK
    })
}
