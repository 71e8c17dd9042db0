//! Limits, the service's size accounting, and the names of reasons.

use core::ffi::c_char;

use super::records::{Checked, checked_one, kb_record};
use super::status::*;
use super::{check, guard, input, non_null, set};
use crate::cost::{self, Measure, Reason, RecordSize};
use crate::limits::{KeyUnit, Limits};
use crate::plan::Stats;

/// `kb_limits.profile`: Kinesis Data Streams today (500 records, 10 MiB per request,
/// 1 MiB per record by default and up to 10 MiB, partition keys required).
pub const KB_PROFILE_KDS: u32 = 0;
/// `kb_limits.profile`: Kinesis Data Streams before October 2025 (500, 5 MiB, 1 MiB).
pub const KB_PROFILE_KDS_5MIB: u32 = 1;
/// `kb_limits.profile`: Amazon Data Firehose `PutRecordBatch` (500, 4 MiB, 1,024,000
/// bytes, no partition key).
pub const KB_PROFILE_FIREHOSE: u32 = 2;

/// `kb_limits.key_unit`: key length in Unicode code points (the default).
pub const KB_KEY_UNIT_CODE_POINTS: u32 = 0;
/// `kb_limits.key_unit`: key length in UTF-16 code units, as the Java KPL counts.
pub const KB_KEY_UNIT_UTF16_UNITS: u32 = 1;
/// `kb_limits.key_unit`: key length in UTF-8 bytes, the strictest reading.
pub const KB_KEY_UNIT_UTF8_BYTES: u32 = 2;

/// `kb_limits.options`: ignore partition keys (the size of a record is its data, plus
/// its explicit hash key when counted; keys are neither validated nor counted). For
/// KB_PROFILE_KDS and KB_PROFILE_KDS_5MIB only: under KB_PROFILE_FIREHOSE records never
/// have keys, whatever the bits. Without it (the default), Kinesis Data Streams records
/// need a valid partition key, and it counts towards their size.
pub const KB_LIMITS_NO_PARTITION_KEYS: u32 = 1;
/// `kb_limits.options`: explicit hash keys count towards record and request size (the
/// service does not document that it counts them, so off by default).
pub const KB_LIMITS_COUNT_HASH_KEY: u32 = 2;
/// `kb_limits.options`: a batch may span refused records, for the fewest requests. A
/// batch's range `start..end` can then hold refused indices (`end - start - records` of
/// them, each reported as a kb_refusal before or with the batch), which the caller must
/// skip when sending. Without it (the default), a refused record closes the open batch,
/// so every batch is exactly `records[start..end)`: send that as it is.
pub const KB_LIMITS_SPAN_REFUSALS: u32 = 4;

/// Every `kb_limits.options` bit.
const OPTIONS: u32 =
    KB_LIMITS_NO_PARTITION_KEYS | KB_LIMITS_COUNT_HASH_KEY | KB_LIMITS_SPAN_REFUSALS;

/// The limits of one service, as plain numbers. Fill one with `kb_limits_profile` or
/// `kb_limits_for_stream`, or by hand, change any field, and every function that takes
/// it checks it (`kb_limits_check` says what a call would answer): each cap against the
/// service's maximum and the profile's record ceiling, the codes and bits against their
/// values.
///
/// Zero means the default, and the default is the safe choice: `profile`, `key_unit` and
/// `options` 0 are Kinesis Data Streams, key length in code points, partition keys
/// validated and counted, and batches that never hold a refused record. So a struct
/// zeroed with memset and given its three caps is valid. The caps have no default: 0 is
/// KB_LIMITS_ZERO_RECORDS, KB_LIMITS_ZERO_REQUEST_BYTES or KB_LIMITS_ZERO_RECORD_BYTES.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_limits {
    /// A KB_PROFILE_* value (0: KB_PROFILE_KDS): the service, which bounds
    /// `max_record_bytes` and says whether records have partition keys.
    pub profile: u32,
    /// Records per request, 1..=500.
    pub max_records: u32,
    /// Bytes per request (data + keys), 1..=10 MiB.
    pub max_request_bytes: u32,
    /// Bytes per record (data + key), 1..=`max_request_bytes` and the profile's ceiling.
    pub max_record_bytes: u32,
    /// A KB_KEY_UNIT_* value (0: KB_KEY_UNIT_CODE_POINTS): how the 256-unit partition
    /// key limit is counted.
    pub key_unit: u32,
    /// KB_LIMITS_* flags (0: keys validated and counted, hash keys not counted, batches
    /// never spanning a refused record).
    pub options: u32,
}

fn profile(profile: u32) -> Result<Limits, kb_status> {
    match profile {
        KB_PROFILE_KDS => Ok(Limits::KDS),
        KB_PROFILE_KDS_5MIB => Ok(Limits::KDS_5MIB),
        KB_PROFILE_FIREHOSE => Ok(Limits::FIREHOSE),
        _ => Err(KB_LIMITS_BAD_PROFILE),
    }
}

pub(crate) fn key_unit(unit: u32) -> Result<KeyUnit, kb_status> {
    match unit {
        KB_KEY_UNIT_CODE_POINTS => Ok(KeyUnit::CodePoints),
        KB_KEY_UNIT_UTF16_UNITS => Ok(KeyUnit::Utf16Units),
        KB_KEY_UNIT_UTF8_BYTES => Ok(KeyUnit::Utf8Bytes),
        _ => Err(KB_INVALID_ARGUMENT),
    }
}

fn from_core(profile: u32, limits: &Limits) -> kb_limits {
    let mut options = 0;
    // Firehose never has keys: its options stay 0, as the bit would change nothing.
    if !limits.partition_keys() && profile != KB_PROFILE_FIREHOSE {
        options |= KB_LIMITS_NO_PARTITION_KEYS;
    }
    if limits.counts_hash_key() {
        options |= KB_LIMITS_COUNT_HASH_KEY;
    }
    if limits.spans_refusals() {
        options |= KB_LIMITS_SPAN_REFUSALS;
    }
    kb_limits {
        profile,
        max_records: limits.max_records(),
        max_request_bytes: limits.max_request_bytes(),
        max_record_bytes: limits.max_record_bytes(),
        key_unit: match limits.key_unit() {
            KeyUnit::CodePoints => KB_KEY_UNIT_CODE_POINTS,
            KeyUnit::Utf16Units => KB_KEY_UNIT_UTF16_UNITS,
            KeyUnit::Utf8Bytes => KB_KEY_UNIT_UTF8_BYTES,
        },
        options,
    }
}

impl kb_limits {
    /// The core's limits, or the status that says what is wrong.
    pub(crate) fn to_core(self) -> Result<Limits, kb_status> {
        let base = profile(self.profile)?;
        let unit = key_unit(self.key_unit).map_err(|_| KB_LIMITS_BAD_KEY_UNIT)?;
        if self.options & !OPTIONS != 0 {
            return Err(KB_LIMITS_BAD_OPTIONS);
        }
        let limits = base
            .with_caps(
                self.max_records,
                self.max_request_bytes,
                self.max_record_bytes,
            )
            .map_err(limits_status)?
            .with_key_unit(unit)
            .counting_hash_key(self.options & KB_LIMITS_COUNT_HASH_KEY != 0)
            .spanning_refusals(self.options & KB_LIMITS_SPAN_REFUSALS != 0);
        // The profile says whether records have keys (Firehose: never); the bit only
        // turns them off.
        Ok(if self.options & KB_LIMITS_NO_PARTITION_KEYS != 0 {
            limits.without_partition_keys()
        } else {
            limits
        })
    }
}

/// The core's limits behind a pointer C passed.
///
/// # Safety
/// `limits` is NULL or points to a readable `kb_limits`.
pub(crate) unsafe fn core_limits(limits: *const kb_limits) -> Result<Limits, kb_status> {
    if limits.is_null() {
        return Err(KB_NULL_POINTER);
    }
    // SAFETY: non-NULL, and the caller guarantees it points to a `kb_limits`, whose
    // fields are plain integers: any bit pattern is a value.
    unsafe { *limits }.to_core()
}

/// Fills `out` with a profile's limits (`KB_PROFILE_*`).
///
/// Requires: `out` is NULL or valid for writing a `kb_limits`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_limits_profile(profile_id: u32, out: *mut kb_limits) -> kb_status {
    guard!({
        non_null!(out);
        let limits = check!(profile(profile_id));
        // SAFETY: non-NULL, and the caller guarantees it is writable.
        unsafe { set(out, from_core(profile_id, &limits)) };
        KB_OK
    })
}

/// Fills `out` with Kinesis Data Streams limits for a stream whose `MaxRecordSizeInKiB`
/// is `max_record_size_kib` (1024..=10240, as `DescribeStreamSummary` reports it).
///
/// Requires: `out` is NULL or valid for writing a `kb_limits`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_limits_for_stream(
    max_record_size_kib: u32,
    out: *mut kb_limits,
) -> kb_status {
    guard!({
        non_null!(out);
        let limits = check!(Limits::kds_for_stream(max_record_size_kib).map_err(limits_status));
        // SAFETY: non-NULL, and the caller guarantees it is writable.
        unsafe { set(out, from_core(KB_PROFILE_KDS, &limits)) };
        KB_OK
    })
}

/// `KB_OK` when `limits` are valid, else the `KB_LIMITS_*` status every function
/// taking them would return.
///
/// Requires: `limits` is NULL or points to a readable `kb_limits`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_limits_check(limits: *const kb_limits) -> kb_status {
    guard!({
        // SAFETY: the caller's promise above.
        check!(unsafe { core_limits(limits) });
        KB_OK
    })
}

/// Writes the outcome of measuring: the size on `KB_OK`, the reason on `KB_REFUSED`.
///
/// # Safety
/// Both pointers are valid for writes.
unsafe fn measured(result: Result<u32, Reason>, size: *mut u32, reason: *mut Reason) -> kb_status {
    match result {
        Ok(bytes) => {
            // SAFETY: the caller's promise above.
            unsafe { set(size, bytes) };
            KB_OK
        }
        Err(why) => {
            // SAFETY: the caller's promise above.
            unsafe { set(reason, why) };
            KB_REFUSED
        }
    }
}

/// Measures one record as the planner would: `KB_OK` with its size as the service
/// counts it in `*size`, or `KB_REFUSED` with the reason in `*reason`.
///
/// Requires: `limits` and `record` are NULL or readable; `size` and `reason` are NULL or
/// writable; the record's non-NULL fields point to their lengths in bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_record_measure(
    limits: *const kb_limits,
    record: *const kb_record,
    size: *mut u32,
    reason: *mut Reason,
) -> kb_status {
    guard!({
        non_null!(record, size, reason);
        // SAFETY: the caller's promises above.
        let limits = check!(unsafe { super::cost::core_limits(limits) });
        // SAFETY: non-NULL and readable (the caller's promise); plain fields.
        let record: &Checked = check!(checked_one(unsafe { &*record }));
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { measured(record.measure(&limits), size, reason) }
    })
}

/// Measures one size-form record as the planner would (see `kb_record_measure`).
///
/// Requires: `limits` and `record` are NULL or readable; `size` and `reason` are NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_record_size_measure(
    limits: *const kb_limits,
    record: *const RecordSize,
    size: *mut u32,
    reason: *mut Reason,
) -> kb_status {
    guard!({
        non_null!(record, size, reason);
        // SAFETY: the caller's promises above.
        let limits = check!(unsafe { core_limits(limits) });
        // SAFETY: non-NULL and readable; plain integers, any bit pattern is a value.
        let record = unsafe { &*record };
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { measured(record.measure(&limits), size, reason) }
    })
}

/// Fills the size form of `record`, with its key length counted in `key_unit`
/// (`KB_KEY_UNIT_*`), reading the key and hash key bytes to set the flags.
///
/// Requires: `record` is NULL or readable, its non-NULL fields point to their lengths in
/// bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_record_size_of(
    record: *const kb_record,
    key_unit_id: u32,
    out: *mut RecordSize,
) -> kb_status {
    guard!({
        non_null!(record, out);
        let unit = check!(key_unit(key_unit_id));
        // SAFETY: non-NULL and readable (the caller's promise); plain fields.
        let record = unsafe { &*record };
        check!(match record.check() {
            KB_OK => Ok(()),
            status => Err(status),
        });
        // SAFETY: checked above: each pointer is non-NULL or has length 0, each length
        // fits an object, and the caller guarantees the bytes behind them.
        let (key, hash_key) = unsafe {
            (
                input(record.key, record.key_len),
                if record.hash_key.is_null() {
                    Ok(None)
                } else {
                    input(record.hash_key, record.hash_key_len).map(Some)
                },
            )
        };
        let (key, hash_key) = (check!(key), check!(hash_key));
        let view = crate::Record::new(&[], key);
        let view = match hash_key {
            Some(hash_key) => view.with_hash_key(hash_key),
            None => view,
        };
        let mut size = RecordSize::of(&view, unit);
        size.data_len = record.data_len as u64;
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, size) };
        KB_OK
    })
}

/// `kb_record_sizes_fill`'s hash key length for a record without an explicit hash key:
/// `SIZE_MAX`. (Defined in the header by cbindgen.toml, which cannot spell it.)
///
/// cbindgen:ignore
pub const KB_NO_HASH_KEY: usize = usize::MAX;

/// Fills `out[0..n]` with the size forms of `n` records given as columns, for callers
/// that cannot hand over a pointer per record (Go, whose cgo rules forbid C memory
/// holding Go pointers): the data lengths; the partition keys back to back in
/// `keys[0..keys_len]`, record `i`'s being the next `key_lens[i]` bytes; and, if
/// `hash_key_lens` is not NULL, the explicit hash keys back to back in `hash_keys`,
/// `hash_key_lens[i]` bytes each, or `KB_NO_HASH_KEY` for a record without one. Key
/// lengths are counted in `key_unit` (`KB_KEY_UNIT_*`), and the flags are set from the
/// bytes, as `kb_record_size_of` does. One call per array, not per record.
///
/// Key lengths that run past their buffer are `KB_LENGTH_OVERFLOW`, with the record's
/// index in `*bad_index`.
///
/// Requires: `data_lens`, `key_lens` and `hash_key_lens` are NULL or hold `n` entries;
/// `keys` and `hash_keys` are NULL or hold their lengths in bytes; `out` is NULL or holds
/// `n` entries; `bad_index` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_record_sizes_fill(
    n: usize,
    data_lens: *const u64,
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    hash_keys: *const u8,
    hash_keys_len: usize,
    hash_key_lens: *const usize,
    key_unit_id: u32,
    out: *mut RecordSize,
    bad_index: *mut usize,
) -> kb_status {
    guard!({
        let unit = check!(key_unit(key_unit_id));
        // SAFETY: the caller's promises above.
        let (data_lens, keys, key_lens, hash_keys) = unsafe {
            (
                check!(input(data_lens, n)),
                check!(input(keys, keys_len)),
                check!(input(key_lens, n)),
                check!(input(hash_keys, hash_keys_len)),
            )
        };
        let hash_key_lens = if hash_key_lens.is_null() {
            None
        } else {
            // SAFETY: the caller's promise above.
            Some(check!(unsafe { input(hash_key_lens, n) }))
        };
        if n == 0 {
            return KB_OK;
        }
        // SAFETY: the caller's promise above.
        let out = check!(unsafe { super::output(out, n) });
        // First every length, so that an error writes nothing.
        let (mut key_end, mut hash_end) = (0usize, 0usize);
        for i in 0..n {
            let fail = |status| {
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(bad_index, i) };
                status
            };
            key_end = key_end.saturating_add(key_lens[i]);
            if key_end > keys.len() {
                return fail(KB_LENGTH_OVERFLOW);
            }
            if let Some(lens) = hash_key_lens {
                if lens[i] != KB_NO_HASH_KEY {
                    hash_end = hash_end.saturating_add(lens[i]);
                    if hash_end > hash_keys.len() {
                        return fail(KB_LENGTH_OVERFLOW);
                    }
                }
            }
        }
        let (mut key_at, mut hash_at) = (0usize, 0usize);
        for (i, slot) in out.iter_mut().enumerate() {
            let key = &keys[key_at..key_at + key_lens[i]];
            key_at += key.len();
            let view = crate::Record::new(&[], key);
            let view = match hash_key_lens.map(|lens| lens[i]) {
                Some(len) if len != KB_NO_HASH_KEY => {
                    let hash_key = &hash_keys[hash_at..hash_at + len];
                    hash_at += hash_key.len();
                    view.with_hash_key(hash_key)
                }
                _ => view,
            };
            let mut size = RecordSize::of(&view, unit);
            size.data_len = data_lens[i];
            slot.write(size);
        }
        KB_OK
    })
}

/// The size of a record as the service counts it under `limits` (data + key, plus the
/// hash key when counted), saturating at 2^64 - 1; keys are not validated.
///
/// Requires: `limits` is NULL or readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_record_bytes(
    limits: *const kb_limits,
    data_len: u64,
    key_len: u64,
    hash_key_len: u64,
    out: *mut u64,
) -> kb_status {
    guard!({
        non_null!(out);
        // SAFETY: the caller's promise above.
        let limits = check!(unsafe { core_limits(limits) });
        let bytes = cost::record_size(&limits, data_len, key_len, hash_key_len);
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, bytes) };
        KB_OK
    })
}

/// The length of `n` bytes base64-encoded with padding (`4 * ceil(n / 3)`, saturating):
/// what a record's data adds to a JSON request body. It never counts towards limits.
#[unsafe(no_mangle)]
pub extern "C" fn kb_base64_len(n: u64) -> u64 {
    guard!(u64::MAX, { cost::base64_len(n) })
}

/// The length of a partition key in `key_unit` (`KB_KEY_UNIT_*`): `KB_OK`, or
/// `KB_NOT_UTF8`.
///
/// Requires: `key` is NULL or points to `len` readable bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_key_units(
    key: *const u8,
    len: usize,
    key_unit_id: u32,
    out: *mut usize,
) -> kb_status {
    guard!({
        non_null!(out);
        let unit = check!(key_unit(key_unit_id));
        // SAFETY: the caller's promise above.
        let key = check!(unsafe { input(key, len) });
        let Ok(key) = core::str::from_utf8(key) else {
            return KB_NOT_UTF8;
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, cost::key_units(key, unit)) };
        KB_OK
    })
}

/// Whether `hash_key` is a valid explicit hash key: a decimal integer in 0..=2^128-1
/// without leading zeros.
///
/// Requires: `hash_key` is NULL or points to `len` readable bytes; `valid` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_hash_key_is_valid(
    hash_key: *const u8,
    len: usize,
    valid: *mut bool,
) -> kb_status {
    guard!({
        non_null!(valid);
        // SAFETY: the caller's promise above.
        let hash_key = check!(unsafe { input(hash_key, len) });
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(valid, cost::is_valid_hash_key(hash_key)) };
        KB_OK
    })
}

/// The 64-bit FNV-1a hash of `bytes`: what per-key ordering identifies keys by.
///
/// Requires: `bytes` is NULL or points to `len` readable bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_fnv1a(bytes: *const u8, len: usize, out: *mut u64) -> kb_status {
    guard!({
        non_null!(out);
        // SAFETY: the caller's promise above.
        let bytes = check!(unsafe { input(bytes, len) });
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, cost::fnv1a(bytes)) };
        KB_OK
    })
}

fn reason(value: u32) -> Option<Reason> {
    Reason::ALL.get(value as usize).copied()
}

/// A short stable identifier for a kb_reason, such as `"record_too_large"`: static,
/// never NULL; `"unknown"` for other values.
#[unsafe(no_mangle)]
pub extern "C" fn kb_reason_name(reason_id: u32) -> *const c_char {
    guard!(c_message!("unknown").as_ptr().cast(), {
        let name: &'static str = match reason(reason_id) {
            Some(Reason::KeyNotUtf8) => c_message!("key_not_utf8"),
            Some(Reason::KeyEmpty) => c_message!("key_empty"),
            Some(Reason::KeyTooLong) => c_message!("key_too_long"),
            Some(Reason::HashKeyInvalid) => c_message!("hash_key_invalid"),
            Some(Reason::RecordTooLarge) => c_message!("record_too_large"),
            None => c_message!("unknown"),
        };
        name.as_ptr().cast()
    })
}

/// A sentence for a kb_reason: static, never NULL; `"unknown reason"` for other
/// values.
#[unsafe(no_mangle)]
pub extern "C" fn kb_reason_message(reason_id: u32) -> *const c_char {
    guard!(c_message!("unknown reason").as_ptr().cast(), {
        let message: &'static str = match reason(reason_id) {
            Some(Reason::KeyNotUtf8) => c_message!("the partition key is not valid UTF-8"),
            Some(Reason::KeyEmpty) => c_message!("the partition key is empty"),
            Some(Reason::KeyTooLong) => c_message!("the partition key is longer than 256 units"),
            Some(Reason::HashKeyInvalid) => {
                c_message!("the explicit hash key is not a decimal integer in 0..2^128-1")
            }
            Some(Reason::RecordTooLarge) => {
                c_message!("data plus key is larger than the record cap")
            }
            None => c_message!("unknown reason"),
        };
        message.as_ptr().cast()
    })
}

/// How full the batches counted in `stats` are under `limits`, in 0..=1: by bytes
/// (bytes / (batches × request cap)) and by count (records / (batches × record cap));
/// 0 when there is no batch. Either out-pointer may be NULL.
///
/// Requires: `stats` and `limits` are NULL or readable; `byte_fill` and `record_fill` are
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_stats_fill(
    stats: *const Stats,
    limits: *const kb_limits,
    byte_fill: *mut f64,
    record_fill: *mut f64,
) -> kb_status {
    guard!({
        non_null!(stats);
        // SAFETY: the caller's promise above.
        let limits = check!(unsafe { core_limits(limits) });
        // SAFETY: non-NULL and readable; plain integers.
        let stats = unsafe { &*stats };
        // SAFETY: each NULL or writable (the caller's promise).
        unsafe {
            set(byte_fill, stats.byte_fill(&limits));
            set(record_fill, stats.record_fill(&limits));
        }
        KB_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_the_cores() {
        for reason in Reason::ALL {
            // SAFETY: kb_reason_name returns a static NUL-terminated string.
            let name = unsafe { core::ffi::CStr::from_ptr(kb_reason_name(reason as u32)) };
            assert_eq!(name.to_str().unwrap(), reason.as_str());
        }
    }

    #[test]
    fn zero_options_are_the_safe_defaults() {
        let zero = kb_limits {
            max_records: 500,
            max_request_bytes: 10 << 20,
            max_record_bytes: 1 << 20,
            ..kb_limits::default()
        };
        assert_eq!(zero.to_core(), Ok(Limits::KDS));
        assert!(Limits::KDS.partition_keys() && !Limits::KDS.spans_refusals());
        let with = |options| kb_limits { options, ..zero }.to_core();
        assert_eq!(
            with(KB_LIMITS_SPAN_REFUSALS),
            Ok(Limits::KDS.spanning_refusals(true))
        );
        assert_eq!(
            with(KB_LIMITS_NO_PARTITION_KEYS),
            Ok(Limits::KDS.without_partition_keys())
        );
        assert_eq!(with(8), Err(KB_LIMITS_BAD_OPTIONS));
        // Firehose never has keys, whatever the bits.
        let firehose = from_core(KB_PROFILE_FIREHOSE, &Limits::FIREHOSE);
        assert_eq!(firehose.options, 0);
        for options in [0, KB_LIMITS_NO_PARTITION_KEYS] {
            let limits = kb_limits {
                options,
                ..firehose
            }
            .to_core()
            .unwrap();
            assert!(!limits.partition_keys());
        }
        // Every combination of bits on KDS comes back as it went.
        for options in 0..8 {
            let limits = with(options).unwrap();
            assert_eq!(from_core(KB_PROFILE_KDS, &limits).options, options);
        }
    }

    #[test]
    fn profiles_round_trip() {
        for (id, limits) in [
            (KB_PROFILE_KDS, Limits::KDS),
            (KB_PROFILE_KDS_5MIB, Limits::KDS_5MIB),
            (KB_PROFILE_FIREHOSE, Limits::FIREHOSE),
        ] {
            assert_eq!(from_core(id, &limits).to_core(), Ok(limits));
        }
    }
}
