//! The service's accounting: what a record costs, and why a record is refused.
//!
//! A record's size is its data bytes plus its partition key's UTF-8 bytes (plus the
//! explicit hash key's bytes only when [`Limits::counting_hash_key`] asks for it), raw,
//! before base64. A request's size is the sum of its records' sizes. Both are compared
//! inclusively with the limits.
//!
//! Two input forms are measured by the same rules and give the same plans:
//! [`Record`], a view into the caller's memory whose key bytes are read to validate them
//! (data bytes never are), and [`RecordSize`], a pointer-free description for callers that
//! cannot hand pointers across (Go through cgo, for one).

use core::fmt;

use crate::limits::{KeyUnit, Limits, MAX_KEY_UNITS};

/// Why a record was refused. Every refused record is reported with its index and one of
/// these; nothing is truncated or dropped silently.
///
/// When several apply, the first in this order is reported: key not UTF-8, key empty,
/// key too long, hash key invalid, record too large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reason {
    /// The partition key is not valid UTF-8.
    KeyNotUtf8 = 0,
    /// The partition key is empty (the service requires 1..256 characters).
    KeyEmpty = 1,
    /// The partition key is longer than 256 units of the chosen key unit.
    KeyTooLong = 2,
    /// The explicit hash key is not a decimal integer in 0..=2^128-1.
    HashKeyInvalid = 3,
    /// Data plus key (plus hash key, when counted) is larger than the record cap.
    RecordTooLarge = 4,
}

impl Reason {
    /// How many reasons there are: the length of [`Reason::ALL`], and of the `refused`
    /// counters in [`Stats`](crate::Stats) (spelled `5` there, for the C header).
    ///
    /// cbindgen:ignore
    pub const COUNT: usize = 5;

    /// Every reason, in the order of their values.
    ///
    /// cbindgen:ignore
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::KeyNotUtf8,
        Reason::KeyEmpty,
        Reason::KeyTooLong,
        Reason::HashKeyInvalid,
        Reason::RecordTooLarge,
    ];

    /// A short stable identifier, such as `record_too_large`, for reports and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::KeyNotUtf8 => "key_not_utf8",
            Reason::KeyEmpty => "key_empty",
            Reason::KeyTooLong => "key_too_long",
            Reason::HashKeyInvalid => "hash_key_invalid",
            Reason::RecordTooLarge => "record_too_large",
        }
    }

    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            Reason::KeyNotUtf8 => "partition key is not valid UTF-8",
            Reason::KeyEmpty => "partition key is empty",
            Reason::KeyTooLong => "partition key is longer than 256 characters",
            Reason::HashKeyInvalid => "explicit hash key is not a decimal integer in 0..=2^128-1",
            Reason::RecordTooLarge => "data plus partition key is larger than the record cap",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Anything the planner can measure: a record's cost under some limits, or the reason
/// it must be refused. Implemented by both input forms; a binding can implement it for
/// its own record type to plan over its array without converting it.
pub trait Measure {
    /// The record's size in bytes as the service counts it, or why it must be refused.
    /// On `Ok`, the size is at most `limits.max_record_bytes()`.
    fn measure(&self, limits: &Limits) -> Result<u32, Reason>;

    /// A 64-bit identity of the record's key, for per-key ordering: equal keys give equal
    /// identities (different keys rarely do, which only costs a smaller request). `None`
    /// when the record carries no key bytes to identify, as for [`RecordSize`].
    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        let _ = limits;
        None
    }

    /// Whether the record can be read at all. A bulk [`Planner::plan`](crate::Planner::plan)
    /// call stops before a record that cannot, with [`Status::Unreadable`](crate::Status),
    /// having written what came before it. Every record of this crate's types can; the C
    /// ABI's records cannot when a pointer is NULL with a non-zero length, so the check
    /// happens in the same pass as planning. An unreadable record must also fail
    /// [`Measure::weigh`] (answer above any cap), as it does when `measure` refuses it.
    #[doc(hidden)]
    #[inline(always)]
    fn readable(&self) -> bool {
        true
    }

    /// The sum of the sizes of `records` when [`Measure::measure`] accepts every one of
    /// them, or a value above any request cap ([`REFUSED_WEIGHT`] or more) otherwise: the
    /// planner's fast path over a few records at a time (at most 64). An override may
    /// answer "above the cap" for accepted records too, at a cost in speed only.
    #[doc(hidden)]
    #[inline(always)]
    fn weigh(records: &[Self], limits: &Limits) -> u64
    where
        Self: Sized,
    {
        weigh_one_by_one(records, limits)
    }
}

/// [`Measure::weigh`] by measuring each record: the default, and the fallback of faster
/// overrides for the limits they do not specialise.
#[inline(always)]
fn weigh_one_by_one<M: Measure>(records: &[M], limits: &Limits) -> u64 {
    let mut sum = 0;
    for record in records {
        sum += match measure_within(record, limits) {
            Ok(size) => u64::from(size),
            Err(_) => REFUSED_WEIGHT,
        };
    }
    sum
}

/// `record.measure(limits)`, with a size above the record cap refused as too large: every
/// planning path measures through this, so a [`Measure`] implementation that breaks its
/// contract can never put a batch over the limits (or overflow a sum).
#[inline(always)]
pub(crate) fn measure_within<M: Measure + ?Sized>(
    record: &M,
    limits: &Limits,
) -> Result<u32, Reason> {
    match record.measure(limits) {
        Ok(size) if size > limits.max_record_bytes() => Err(Reason::RecordTooLarge),
        measured => measured,
    }
}

/// What [`Measure::weigh`] counts for a refused record: more than any request holds,
/// and small enough that 64 of them cannot overflow a `u64` sum.
#[doc(hidden)]
pub const REFUSED_WEIGHT: u64 = 1 << 40;

impl<M: Measure + ?Sized> Measure for &M {
    #[inline]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        (**self).measure(limits)
    }

    #[inline]
    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        (**self).key_identity(limits)
    }
}

/// A record as it lies in the caller's memory. Only `data.len()` is used; the key and
/// hash key bytes are read to validate them. Nothing is copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Record<'a> {
    /// The payload. Its bytes are never read, only its length.
    pub data: &'a [u8],
    /// The partition key, which must be 1..256 characters of valid UTF-8 when the limits
    /// require keys; ignored when they do not.
    pub key: &'a [u8],
    /// An optional explicit hash key: a decimal integer in 0..=2^128-1.
    pub hash_key: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// A record with a partition key and no explicit hash key.
    pub const fn new(data: &'a [u8], key: &'a [u8]) -> Record<'a> {
        Record {
            data,
            key,
            hash_key: None,
        }
    }

    /// The same record with an explicit hash key.
    #[must_use]
    pub const fn with_hash_key(self, hash_key: &'a [u8]) -> Record<'a> {
        Record {
            hash_key: Some(hash_key),
            ..self
        }
    }
}

impl Measure for Record<'_> {
    #[inline(always)]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        measure_parts(limits, self.data.len() as u64, self.key, self.hash_key)
    }

    /// The explicit hash key when there is one (it decides the shard), else the partition
    /// key, hashed eight bytes at a time; `None` under limits without partition keys.
    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        key_identity_of(limits, self.key, self.hash_key)
    }
}

/// What [`Record`]'s [`Measure::measure`] answers, for a record whose data is known only
/// by its length (the C ABI's records, whose data is never turned into a slice).
///
/// ```
/// use kinesis_batcher::cost::measure_parts;
/// use kinesis_batcher::{Limits, Reason};
///
/// assert_eq!(measure_parts(&Limits::KDS, 1000, b"key", None), Ok(1003));
/// assert_eq!(measure_parts(&Limits::KDS, 1 << 20, b"key", None), Err(Reason::RecordTooLarge));
/// assert_eq!(measure_parts(&Limits::KDS, 10, b"key", Some(b"01")), Err(Reason::HashKeyInvalid));
/// ```
#[inline(always)]
pub fn measure_parts(
    limits: &Limits,
    data_len: u64,
    key: &[u8],
    hash_key: Option<&[u8]>,
) -> Result<u32, Reason> {
    if !limits.partition_keys() {
        return fit(limits, data_len);
    }
    check_key(key, limits.key_unit())?;
    let mut size = data_len.saturating_add(key.len() as u64);
    if let Some(hash_key) = hash_key {
        if !is_valid_hash_key(hash_key) {
            return Err(Reason::HashKeyInvalid);
        }
        if limits.counts_hash_key() {
            size = size.saturating_add(hash_key.len() as u64);
        }
    }
    fit(limits, size)
}

/// What [`Record`]'s [`Measure::key_identity`] answers, from the key bytes alone.
pub fn key_identity_of(limits: &Limits, key: &[u8], hash_key: Option<&[u8]>) -> Option<u64> {
    if !limits.partition_keys() {
        return None;
    }
    Some(match hash_key {
        // Tagged so that a hash key and an equal partition key differ.
        Some(hash_key) => identity_hash(hash_key) | 1,
        None => identity_hash(key) & !1,
    })
}

/// A key's identity for per-key order: a multiply-rotate over eight bytes at a time, the
/// length mixed in. Only equality matters (a collision merely holds a record back a
/// request), so this trades FNV-1a's byte-at-a-time chain, a multiply per byte, for a
/// multiply per word: about 4 times fewer on typical 16-36 byte keys.
fn identity_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |hash: u64, word: u64| (hash ^ word).wrapping_mul(K).rotate_left(29);
    let mut hash = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        hash = mix(hash, u64::from_le_bytes(w));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0; 8];
        w[..rest.len()].copy_from_slice(rest);
        hash = mix(hash, u64::from_le_bytes(w));
    }
    hash ^ (hash >> 32)
}

/// FNV-1a, 64 bits: a fast, well-spread hash of short keys, stable across platforms.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A record described by sizes alone, with no pointer in it: for callers that must not
/// hand pointers to the library (Go through cgo) or that only know lengths. 24 bytes,
/// with no padding and no pointer, so an array of them can cross any language boundary.
///
/// The caller attests to the key's validity through `flags`, or has the library fill
/// every field from the record's bytes. Any values at all are valid: the record they
/// describe is accepted or refused (with the reason its sizes or flags give), never an
/// error.
#[cfg_attr(doc, doc = "")]
#[cfg_attr(
    doc,
    doc = "[`RecordSize::of`] fills every field from a [`Record`]. The layout is C's \
           (`kb_record_size`)."
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct RecordSize {
    /// Length of the data in bytes.
    pub data_len: u64,
    /// Length of the partition key in UTF-8 bytes (this is what counts towards size).
    pub key_len: u32,
    /// Length of the partition key in the limits' key unit (checked against 256).
    pub key_units: u32,
    /// Length of the explicit hash key in bytes; 0 when there is none.
    pub hash_key_len: u32,
    /// Bits: 1, the partition key is not valid UTF-8; 2, an explicit hash key is present
    /// and invalid (an empty one is invalid too). 0 for a record whose keys are valid.
    /// Other bits are ignored.
    #[cfg_attr(
        doc,
        doc = "The bits are [`RecordSize::KEY_NOT_UTF8`] and [`RecordSize::HASH_KEY_INVALID`]."
    )]
    pub flags: u32,
}

impl RecordSize {
    /// Flag: the partition key is not valid UTF-8.
    ///
    /// cbindgen:ignore
    pub const KEY_NOT_UTF8: u32 = 1;
    /// Flag: an explicit hash key is present and invalid (an empty one is invalid too).
    ///
    /// cbindgen:ignore
    pub const HASH_KEY_INVALID: u32 = 2;

    /// The size form of `record`, with key units counted in `unit`.
    ///
    /// ```
    /// use kinesis_batcher::{KeyUnit, Limits, Measure, Record, RecordSize};
    ///
    /// let record = Record::new(b"payload", "clé".as_bytes());
    /// let size = RecordSize::of(&record, KeyUnit::CodePoints);
    /// assert_eq!((size.key_len, size.key_units), (4, 3));
    /// assert_eq!(size.measure(&Limits::KDS), record.measure(&Limits::KDS));
    /// ```
    #[inline]
    pub fn of(record: &Record<'_>, unit: KeyUnit) -> RecordSize {
        // An ASCII key, the usual case, has as many units as bytes in every unit.
        let (key_units, key_flag) = if is_ascii_short(record.key) || record.key.is_ascii() {
            (saturate(record.key.len()), 0)
        } else {
            match core::str::from_utf8(record.key) {
                Ok(key) => (saturate(key_units(key, unit)), 0),
                Err(_) => (saturate(record.key.len()), RecordSize::KEY_NOT_UTF8),
            }
        };
        let (hash_key_len, hash_flag) = match record.hash_key {
            None => (0, 0),
            Some(hash_key) if is_valid_hash_key(hash_key) => (saturate(hash_key.len()), 0),
            Some(hash_key) => (saturate(hash_key.len()), RecordSize::HASH_KEY_INVALID),
        };
        RecordSize {
            data_len: record.data.len() as u64,
            key_len: saturate(record.key.len()),
            key_units,
            hash_key_len,
            flags: key_flag | hash_flag,
        }
    }
}

impl Measure for RecordSize {
    /// Branch-free: reductions over the records, one verdict at the end. Conservative
    /// where that is cheaper: a key of exactly 256 units, or (under a cap that is not a
    /// power of two) a record above the largest power of two within the cap, makes the
    /// chunk take the one-at-a-time path, which decides exactly.
    #[inline(always)]
    fn weigh(records: &[Self], limits: &Limits) -> u64 {
        if !limits.partition_keys() || limits.counts_hash_key() {
            return weigh_one_by_one(records, limits);
        }
        let (mut sum, mut size_bits, mut data_bits, mut unit_bits, mut flags) =
            (0u64, 0u64, 0u64, 0u32, 0u32);
        let mut empty = false;
        for record in records {
            // Wraps only for a data length of 2^64 - 2^32 or more, caught by `data_bits`.
            let size = record.data_len.wrapping_add(u64::from(record.key_len));
            sum = sum.wrapping_add(size);
            size_bits |= size;
            data_bits |= record.data_len;
            unit_bits |= record.key_units;
            flags |= record.flags;
            empty |= record.key_len == 0;
        }
        let accepted = data_bits >> 32 == 0
            && unit_bits < MAX_KEY_UNITS
            && flags & (RecordSize::KEY_NOT_UTF8 | RecordSize::HASH_KEY_INVALID) == 0
            && !empty
            // Every size below the largest power of two not above cap + 1: all of them
            // within the cap (exactly so for the usual power-of-two caps).
            && size_bits < 1 << (63 - (u64::from(limits.max_record_bytes()) + 1).leading_zeros());
        if accepted { sum } else { REFUSED_WEIGHT }
    }

    #[inline]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        if !limits.partition_keys() {
            return fit(limits, self.data_len);
        }
        if self.flags & RecordSize::KEY_NOT_UTF8 != 0 {
            return Err(Reason::KeyNotUtf8);
        }
        if self.key_len == 0 {
            return Err(Reason::KeyEmpty);
        }
        if self.key_units > MAX_KEY_UNITS {
            return Err(Reason::KeyTooLong);
        }
        if self.flags & RecordSize::HASH_KEY_INVALID != 0 {
            return Err(Reason::HashKeyInvalid);
        }
        let mut size = self.data_len.saturating_add(u64::from(self.key_len));
        if limits.counts_hash_key() {
            size = size.saturating_add(u64::from(self.hash_key_len));
        }
        fit(limits, size)
    }
}

/// The size of a record as the service counts it: data + key + (hash key, when
/// `limits` count it), saturating instead of overflowing. Keys are not validated here;
/// this is for sizing, [`Measure::measure`] for deciding.
///
/// ```
/// use kinesis_batcher::{cost::record_size, Limits};
///
/// assert_eq!(record_size(&Limits::KDS, 1000, 10, 39), 1010);
/// assert_eq!(record_size(&Limits::KDS.counting_hash_key(true), 1000, 10, 39), 1049);
/// assert_eq!(record_size(&Limits::FIREHOSE, 1000, 10, 39), 1000);
/// ```
pub const fn record_size(limits: &Limits, data_len: u64, key_len: u64, hash_key_len: u64) -> u64 {
    if !limits.partition_keys() {
        return data_len;
    }
    let size = data_len.saturating_add(key_len);
    if limits.counts_hash_key() {
        size.saturating_add(hash_key_len)
    } else {
        size
    }
}

/// The length of `n` bytes once base64-encoded with padding: `4 * ceil(n / 3)`. This is
/// what a record's data adds to a JSON request body; it never counts towards limits.
///
/// ```
/// assert_eq!(kinesis_batcher::cost::base64_len(0), 0);
/// assert_eq!(kinesis_batcher::cost::base64_len(1), 4);
/// assert_eq!(kinesis_batcher::cost::base64_len(3), 4);
/// assert_eq!(kinesis_batcher::cost::base64_len(4), 8);
/// ```
pub const fn base64_len(n: u64) -> u64 {
    n.div_ceil(3).saturating_mul(4)
}

/// The length of a partition key in `unit`.
pub fn key_units(key: &str, unit: KeyUnit) -> usize {
    match unit {
        KeyUnit::Utf8Bytes => key.len(),
        KeyUnit::CodePoints => key.chars().count(),
        KeyUnit::Utf16Units => key.chars().map(char::len_utf16).sum(),
    }
}

/// Whether `hash_key` is a valid explicit hash key: the service's pattern
/// `0|([1-9]\d{0,38})` and a value of at most 2^128-1.
///
/// ```
/// use kinesis_batcher::cost::is_valid_hash_key;
///
/// assert!(is_valid_hash_key(b"340282366920938463463374607431768211455")); // 2^128-1
/// assert!(!is_valid_hash_key(b"340282366920938463463374607431768211456")); // 2^128
/// assert!(!is_valid_hash_key(b"01"));
/// ```
pub fn is_valid_hash_key(hash_key: &[u8]) -> bool {
    // 2^128 - 1 has 39 digits; a 39-digit key is in range when it does not sort after it,
    // since equal-length decimal strings compare like their values.
    const MAX: &[u8] = b"340282366920938463463374607431768211455";
    match hash_key {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => {
            hash_key.len() <= MAX.len()
                && hash_key.iter().all(u8::is_ascii_digit)
                && (hash_key.len() < MAX.len() || hash_key <= MAX)
        }
    }
}

/// Checks a partition key: valid UTF-8, not empty, at most 256 units.
#[inline]
fn check_key(key: &[u8], unit: KeyUnit) -> Result<(), Reason> {
    // Each unit is at most 4 UTF-8 bytes, and each byte is at most one unit, so a key of
    // at most 256 bytes can only fail on encoding, and one of over 1024 bytes that is
    // valid UTF-8 is always too long. Counting is needed only in between.
    const SHORT: usize = MAX_KEY_UNITS as usize;
    if is_ascii_short(key) {
        return if key.is_empty() {
            Err(Reason::KeyEmpty)
        } else {
            Ok(())
        };
    }
    let Ok(key) = core::str::from_utf8(key) else {
        return Err(Reason::KeyNotUtf8);
    };
    if key.len() > SHORT && key_units(key, unit) > SHORT {
        return Err(Reason::KeyTooLong);
    }
    Ok(())
}

/// `key.len() <= 256 && key.is_ascii()`. Keys of 8 to 48 bytes, the usual ids and UUIDs,
/// are tested with a fixed number of overlapping word reads instead of `is_ascii`'s loop,
/// whose trip count, and so whose mispredicted exit, depends on the length and alignment.
#[inline(always)]
fn is_ascii_short(key: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn word(bytes: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    }
    let n = key.len();
    if (16..=48).contains(&n) {
        // Three 16-byte windows, at the start, the middle and the end, cover 16..=48 bytes.
        let mid = n / 2 - 8;
        let all = word(key, 0)
            | word(key, 8)
            | word(key, mid)
            | word(key, mid + 8)
            | word(key, n - 16)
            | word(key, n - 8);
        all & HIGH == 0
    } else if (8..16).contains(&n) {
        (word(key, 0) | word(key, n - 8)) & HIGH == 0
    } else if n <= MAX_KEY_UNITS as usize {
        key.is_ascii()
    } else {
        false
    }
}

#[inline]
fn fit(limits: &Limits, size: u64) -> Result<u32, Reason> {
    if size <= u64::from(limits.max_record_bytes()) {
        // Lossless: the record cap is a u32.
        Ok(size as u32)
    } else {
        Err(Reason::RecordTooLarge)
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
