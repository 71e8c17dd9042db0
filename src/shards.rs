//! Shard prediction: which shard of a stream a record will land in.
//!
//! The service maps a record to a 128-bit hash key: its explicit hash key when it has
//! one, else the MD5 digest of its partition key's UTF-8 bytes read as an unsigned
//! big-endian integer (`PutRecordsRequestEntry`). Each open shard owns a contiguous range
//! of hash keys (`ListShards` with `ShardFilter` `AT_LATEST`), and the open shards' ranges
//! tile `0..=2^128-1` without overlap. [`ShardMap`] takes those ranges from the caller (the
//! core does no I/O) and finds a hash key's shard by binary search.
//!
//! ```
//! use kinesis_batcher::shards::{hash_key_of, parse_hash_key, ShardMap, ShardRange};
//!
//! // Two shards, split at 2^127 (what CreateStream makes with ShardCount 2).
//! let ranges = [
//!     ShardRange { start: 0, end: (1 << 127) - 1 },
//!     ShardRange { start: 1 << 127, end: u128::MAX },
//! ];
//! let map = ShardMap::new(&ranges)?;
//! // MD5("pk1") = f7cfd01ce490fdd421bbdc8d3a35cfd0, above 2^127: the second shard.
//! let pk1 = hash_key_of(b"pk1", None).unwrap();
//! assert_eq!(pk1, 0xf7cf_d01c_e490_fdd4_21bb_dc8d_3a35_cfd0);
//! assert_eq!(map.shard_of(pk1), 1);
//! let explicit = hash_key_of(b"ignored", Some(b"170141183460469231731687303715884105728"));
//! assert_eq!(explicit, Some(1 << 127));
//! assert_eq!(map.shard_of(explicit.unwrap()), 1);
//! assert_eq!(parse_hash_key(b"01"), None);
//! # Ok::<(), kinesis_batcher::shards::ShardMapError>(())
//! ```

use core::fmt;

use md5::{Digest, Md5};

use crate::cost::is_valid_hash_key;

/// The hash key of a record: its explicit hash key when it has one (`None` if that is not
/// a valid one: `0|[1-9][0-9]{0,38}`, at most 2^128-1), else the MD5 digest of the
/// partition key's bytes as an unsigned big-endian 128-bit integer, as the service and
/// the KCL compute it. The key's bytes are hashed as they are; the service hashes UTF-8.
pub fn hash_key_of(partition_key: &[u8], explicit_hash_key: Option<&[u8]>) -> Option<u128> {
    match explicit_hash_key {
        Some(hash_key) => parse_hash_key(hash_key),
        None => Some(partition_key_hash(partition_key)),
    }
}

/// MD5 of `partition_key`, read as an unsigned big-endian 128-bit integer.
pub fn partition_key_hash(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key).into())
}

/// A decimal hash key (`ExplicitHashKey`, or a `HashKeyRange` bound from `ListShards`) as
/// a number, or `None` when it is not `0|[1-9][0-9]{0,38}` at most 2^128-1.
pub fn parse_hash_key(decimal: &[u8]) -> Option<u128> {
    if !is_valid_hash_key(decimal) {
        return None;
    }
    // At most 2^128-1, checked above, so neither step overflows.
    Some(
        decimal
            .iter()
            .fold(0u128, |value, &digit| value * 10 + u128::from(digit - b'0')),
    )
}

/// The hash keys one open shard owns: `start..=end`, both inclusive as `ListShards`
/// reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShardRange {
    /// `HashKeyRange.StartingHashKey`.
    pub start: u128,
    /// `HashKeyRange.EndingHashKey`.
    pub end: u128,
}

/// Why a set of ranges is not a shard map. Each names the first offending range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShardMapError {
    /// No range at all: a stream has at least one open shard.
    Empty,
    /// Range `index` ends before it starts.
    Reversed {
        /// The offending range.
        index: usize,
    },
    /// Range `index` does not start right after the previous one ends (a gap, an
    /// overlap, or ranges out of order: closed parent shards listed with their children,
    /// or ranges not sorted by their start), or the first does not start at 0.
    NotContiguous {
        /// The offending range.
        index: usize,
    },
    /// The last range does not end at 2^128-1.
    Incomplete,
}

impl ShardMapError {
    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            ShardMapError::Empty => "no shard range: a stream has at least one open shard",
            ShardMapError::Reversed { .. } => "a shard range ends before it starts",
            ShardMapError::NotContiguous { .. } => {
                "shard ranges must be the open shards, sorted, each starting right after the previous one ends (the first at 0)"
            }
            ShardMapError::Incomplete => "the last shard range does not end at 2^128-1",
        }
    }
}

impl fmt::Display for ShardMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for ShardMapError {}

/// The open shards of a stream, as the caller listed them: checked once to tile
/// `0..=2^128-1` in order, so that every hash key has exactly one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardMap<'a> {
    ranges: &'a [ShardRange],
}

impl<'a> ShardMap<'a> {
    /// Checks `ranges` (the open shards, sorted by their start) and borrows them.
    pub fn new(ranges: &'a [ShardRange]) -> Result<ShardMap<'a>, ShardMapError> {
        check_ranges_with(ranges.len(), |i| ranges[i])?;
        Ok(ShardMap { ranges })
    }

    /// The ranges, as given.
    pub const fn ranges(&self) -> &'a [ShardRange] {
        self.ranges
    }

    /// The index (into the ranges given) of the shard that owns `hash_key`.
    pub fn shard_of(&self, hash_key: u128) -> usize {
        shard_of_with(self.ranges.len(), |i| self.ranges[i].end, hash_key)
    }
}

/// [`ShardMap::new`]'s check over `n` ranges read through `range(i)`, for callers whose
/// ranges are not a `&[ShardRange]` (the C ABI's): the first range starts at 0, each
/// starts right after the previous one ends, the last ends at 2^128-1.
pub fn check_ranges_with(
    n: usize,
    range: impl Fn(usize) -> ShardRange,
) -> Result<(), ShardMapError> {
    if n == 0 {
        return Err(ShardMapError::Empty);
    }
    let mut next_start = Some(0u128);
    let mut last = ShardRange::default();
    for index in 0..n {
        last = range(index);
        if last.end < last.start {
            return Err(ShardMapError::Reversed { index });
        }
        if next_start != Some(last.start) {
            return Err(ShardMapError::NotContiguous { index });
        }
        next_start = last.end.checked_add(1);
    }
    if last.end != u128::MAX {
        return Err(ShardMapError::Incomplete);
    }
    Ok(())
}

/// [`ShardMap::shard_of`] over `n` ranges whose ends are read through `end(i)`: the first
/// index whose range ends at or after `hash_key`, by binary search (`n` when none does,
/// which a checked map rules out).
pub fn shard_of_with(n: usize, end: impl Fn(usize) -> u128, hash_key: u128) -> usize {
    let (mut low, mut high) = (0, n);
    while low < high {
        let middle = low + (high - low) / 2;
        if end(middle) < hash_key {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// The longest decimal hash key: 2^128-1 has 39 digits.
pub const MAX_HASH_KEY_DIGITS: usize = 39;

/// How many decimal digits `hash_key` has (1 for 0): the length of the
/// `ExplicitHashKey` string that names it.
pub const fn hash_key_digits(hash_key: u128) -> usize {
    // Compared with powers of ten rather than divided by ten: a u128 division is tens
    // of nanoseconds, and aggregation asks this once per aggregate.
    let mut digits = 1;
    while digits < MAX_HASH_KEY_DIGITS && hash_key >= POWERS_OF_TEN[digits] {
        digits += 1;
    }
    digits
}

/// 10^i for i in 0..39 (10^38 < 2^128-1 < 10^39).
const POWERS_OF_TEN: [u128; MAX_HASH_KEY_DIGITS] = {
    let mut powers = [1u128; MAX_HASH_KEY_DIGITS];
    let mut i = 1;
    while i < MAX_HASH_KEY_DIGITS {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// `hash_key` as the decimal `ExplicitHashKey` string the service takes, written into
/// `out`; the digits written are returned (no leading zeros; `"0"` for 0).
///
/// ```
/// use kinesis_batcher::shards::{format_hash_key, parse_hash_key, MAX_HASH_KEY_DIGITS};
///
/// let mut buffer = [0; MAX_HASH_KEY_DIGITS];
/// assert_eq!(format_hash_key(u128::MAX, &mut buffer), b"340282366920938463463374607431768211455");
/// assert_eq!(parse_hash_key(format_hash_key(42, &mut buffer)), Some(42));
/// ```
pub fn format_hash_key(hash_key: u128, out: &mut [u8; MAX_HASH_KEY_DIGITS]) -> &[u8] {
    let digits = hash_key_digits(hash_key);
    let mut rest = hash_key;
    for slot in out[..digits].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    &out[..digits]
}
