//! The two record forms C passes in, and the checks that make them safe to read.

use super::status::*;
use crate::aggregate::AsRecord;
use crate::cost::{
    Measure, REFUSED_WEIGHT, Reason, Record, RecordSize, key_identity_of, measure_parts,
};
use crate::limits::Limits;

/// A record as it lies in the caller's memory: pointers and lengths. Only `data_len` of
/// the data is used, never its bytes (but by kb_aggregate_encode, which copies them);
/// the key and hash key bytes are read to validate them. kb_deaggregate_next writes one
/// as views into a received record. `(NULL, 0)` is an empty field; `hash_key == NULL`
/// means no explicit hash key, while a non-NULL `hash_key` with `hash_key_len == 0` is an
/// empty (invalid) one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_record {
    /// The payload (read only by kb_aggregate_encode).
    pub data: *const u8,
    /// Its length in bytes.
    pub data_len: usize,
    /// The partition key (UTF-8; ignored under limits without partition keys).
    pub key: *const u8,
    /// Its length in bytes.
    pub key_len: usize,
    /// The explicit hash key (decimal digits), or NULL for none.
    pub hash_key: *const u8,
    /// Its length in bytes.
    pub hash_key_len: usize,
}

/// `kb_record_size.flags`: the partition key is not valid UTF-8.
pub const KB_RECORD_KEY_NOT_UTF8: u32 = 1;
/// `kb_record_size.flags`: an explicit hash key is present and invalid.
pub const KB_RECORD_HASH_KEY_INVALID: u32 = 2;

// Literals above, so the header shows numbers; the same as the core's.
const _: () = assert!(
    KB_RECORD_KEY_NOT_UTF8 == RecordSize::KEY_NOT_UTF8
        && KB_RECORD_HASH_KEY_INVALID == RecordSize::HASH_KEY_INVALID
);

impl kb_record {
    /// Whether the record can be turned into key and hash key slices: no NULL field
    /// with a length (data included: such a record is an error, never planned), no key
    /// or hash key longer than an object can be. Without branches.
    #[inline(always)]
    fn sliceable(&self) -> bool {
        let null_field = (self.data.is_null() & (self.data_len != 0))
            | (self.key.is_null() & (self.key_len != 0))
            | (self.hash_key.is_null() & (self.hash_key_len != 0));
        !null_field & ((self.key_len | self.hash_key_len) <= isize::MAX as usize)
    }

    /// Whether [`kb_record::check`] fails, without branches.
    #[inline(always)]
    pub(crate) fn suspect(&self) -> bool {
        let null_field = (self.data.is_null() & (self.data_len != 0))
            | (self.key.is_null() & (self.key_len != 0))
            | (self.hash_key.is_null() & (self.hash_key_len != 0));
        let (sum, carry) = (self.data_len as u64).overflowing_add(self.key_len as u64);
        let (_, carry_too) = sum.overflowing_add(self.hash_key_len as u64);
        let unsliceable = (self.data_len | self.key_len | self.hash_key_len) > isize::MAX as usize;
        null_field | carry | carry_too | unsliceable
    }

    /// `KB_OK` when every pointer is non-NULL or has a zero length, and the lengths can
    /// be summed (in 64 bits) and sliced (each at most `isize::MAX`).
    pub(crate) fn check(&self) -> kb_status {
        let null_field = (self.data.is_null() && self.data_len != 0)
            | (self.key.is_null() && self.key_len != 0)
            | (self.hash_key.is_null() && self.hash_key_len != 0);
        if null_field {
            return KB_NULL_FIELD;
        }
        let fits = (self.data_len as u64)
            .checked_add(self.key_len as u64)
            .and_then(|sum| sum.checked_add(self.hash_key_len as u64))
            .is_some();
        let sliceable = (self.data_len | self.key_len | self.hash_key_len) <= isize::MAX as usize;
        if fits && sliceable {
            KB_OK
        } else {
            KB_LENGTH_OVERFLOW
        }
    }
}

/// Checks `records[from..from + reach]` (clipped to the array), returning the first bad
/// index and its status. A branch-free verdict per block of records keeps this pass at
/// memory speed; the exact record is looked for only in a block that fails.
pub(crate) fn check_records(
    records: &[kb_record],
    from: usize,
    reach: usize,
) -> Result<(), (usize, kb_status)> {
    const BLOCK: usize = 32;
    let end = from.saturating_add(reach).min(records.len());
    let start = from.min(end);
    for (block_index, block) in records[start..end].chunks(BLOCK).enumerate() {
        let suspect = block
            .iter()
            .fold(false, |any, record| any | record.suspect());
        if !suspect {
            continue;
        }
        for (offset, record) in block.iter().enumerate() {
            let status = record.check();
            if status != KB_OK {
                return Err((start + block_index * BLOCK + offset, status));
            }
        }
    }
    Ok(())
}

/// A [`kb_record`] the core may measure: it checks its own pointers before any read.
#[repr(transparent)]
pub(crate) struct Checked(kb_record);

impl Checked {
    /// The key and hash key as slices, or `None` when the record fails
    /// [`kb_record::check`]: the core asks before it reads ([`Measure::readable`] in the
    /// bulk call, the bounded checks of the other calls), and this re-check keeps a
    /// record the core read anyway from being dereferenced.
    #[inline(always)]
    fn keys(&self) -> Option<(&[u8], Option<&[u8]>)> {
        if self.0.suspect() {
            return None;
        }
        // SAFETY: not suspect, checked just above, so sliceable.
        Some(unsafe { self.keys_unchecked() })
    }

    /// The key and hash key as slices.
    ///
    /// # Safety
    /// The record is [`kb_record::sliceable`]: the key and hash key pointers are non-NULL
    /// or have length 0, and their lengths are at most `isize::MAX`.
    #[inline(always)]
    unsafe fn keys_unchecked(&self) -> (&[u8], Option<&[u8]>) {
        let record = &self.0;
        let key = if record.key_len == 0 {
            &[][..]
        } else {
            // SAFETY: non-NULL with a length an object can have (the precondition); the C
            // caller guarantees that a record's non-NULL fields point to their lengths in
            // bytes, valid and unchanged during the call. The slice lives no longer than
            // `self`.
            unsafe { core::slice::from_raw_parts(record.key, record.key_len) }
        };
        let hash_key = if record.hash_key.is_null() {
            None
        } else {
            // SAFETY: as for the key (a non-NULL hash key with length 0 is an empty one).
            Some(unsafe { core::slice::from_raw_parts(record.hash_key, record.hash_key_len) })
        };
        (key, hash_key)
    }
}

impl Measure for Checked {
    #[inline(always)]
    fn readable(&self) -> bool {
        !self.0.suspect()
    }

    #[inline(always)]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        match self.keys() {
            Some((key, hash_key)) => measure_parts(limits, self.0.data_len as u64, key, hash_key),
            // Refused, never read: the fast path then leaves the record to the one-at-a-
            // time path, which asks `readable` and stops before it.
            None => Err(Reason::RecordTooLarge),
        }
    }

    /// The fast path over a few records: one branch-free verdict on all their pointers
    /// first, so that the sizes are then measured without a check per record. Only what
    /// reading needs is checked here; lengths too large to sum make a record too large,
    /// which sends the chunk to the one-at-a-time path, which asks `readable`.
    #[inline(always)]
    fn weigh(records: &[Self], limits: &Limits) -> u64 {
        if records
            .iter()
            .fold(false, |any, record| any | !record.0.sliceable())
        {
            return REFUSED_WEIGHT;
        }
        let mut sum = 0;
        for record in records {
            // SAFETY: every record of the chunk is sliceable, checked just above.
            let (key, hash_key) = unsafe { record.keys_unchecked() };
            sum += match measure_parts(limits, record.0.data_len as u64, key, hash_key) {
                Ok(size) => u64::from(size),
                Err(_) => REFUSED_WEIGHT,
            };
        }
        sum
    }

    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        let (key, hash_key) = self.keys()?;
        key_identity_of(limits, key, hash_key)
    }
}

impl AsRecord for Checked {
    /// The record as slices, data included, or `None` when it fails
    /// [`kb_record::check`] (aggregation then refuses it as too large, so the C ABI
    /// checks a record before a step can start at it).
    #[inline(always)]
    fn as_record(&self) -> Option<Record<'_>> {
        if self.0.suspect() {
            return None;
        }
        // SAFETY: not suspect, checked just above, so sliceable.
        let (key, hash_key) = unsafe { self.keys_unchecked() };
        let data = if self.0.data_len == 0 {
            &[][..]
        } else {
            // SAFETY: not suspect: the data pointer is non-NULL (its length is not 0) and
            // the length at most isize::MAX; the C caller guarantees that a record's
            // non-NULL fields point to their lengths in bytes, valid and unchanged during
            // the call. The slice lives no longer than `self`.
            unsafe { core::slice::from_raw_parts(self.0.data, self.0.data_len) }
        };
        Some(Record {
            data,
            key,
            hash_key,
        })
    }
}

/// The records as the core's input.
pub(crate) fn checked(records: &[kb_record]) -> &[Checked] {
    // SAFETY: `Checked` is `repr(transparent)` over `kb_record`, so the slices have the
    // same layout; `Checked` guards its own reads, so any record may be viewed this way.
    unsafe { core::slice::from_raw_parts(records.as_ptr().cast::<Checked>(), records.len()) }
}

/// One record, checked, as the core's input.
pub(crate) fn checked_one(record: &kb_record) -> Result<&Checked, kb_status> {
    match record.check() {
        // SAFETY: as in `checked`, for one element.
        KB_OK => Ok(unsafe { &*(record as *const kb_record).cast::<Checked>() }),
        status => Err(status),
    }
}
