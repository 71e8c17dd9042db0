//! The two record forms C passes in, and the checks that make them safe to read.

use super::status::*;
use crate::cost::{Measure, Reason, RecordSize, key_identity_of, measure_parts};
use crate::limits::Limits;

/// A record as it lies in the caller's memory: pointers and lengths. Only `data_len` of
/// the data is used, never its bytes; the key and hash key bytes are read to validate
/// them. `(NULL, 0)` is an empty field; `hash_key == NULL` means no explicit hash key,
/// while a non-NULL `hash_key` with `hash_key_len == 0` is an empty (invalid) one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_record {
    /// The payload (never read).
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
    /// `KB_OK` when every pointer is non-NULL or has a zero length, and the lengths can
    /// be summed and sliced.
    /// Whether [`kb_record::check`] could fail, without branches.
    #[inline(always)]
    fn suspect(&self) -> bool {
        let null_field = (self.data.is_null() & (self.data_len != 0))
            | (self.key.is_null() & (self.key_len != 0))
            | (self.hash_key.is_null() & (self.hash_key_len != 0));
        let (sum, carry) = (self.data_len as u64).overflowing_add(self.key_len as u64);
        let (_, carry_too) = sum.overflowing_add(self.hash_key_len as u64);
        let unsliceable = (self.data_len | self.key_len | self.hash_key_len) > isize::MAX as usize;
        null_field | carry | carry_too | unsliceable
    }

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
        if !(fits && sliceable) {
            return KB_LENGTH_OVERFLOW;
        }
        KB_OK
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

/// A [`kb_record`] the core may measure. Made only from records that passed
/// [`kb_record::check`] (see [`checked`]); its methods still re-check every pointer, so
/// a record the core read beyond what was checked would be refused, never dereferenced.
#[repr(transparent)]
pub(crate) struct Checked(kb_record);

impl Checked {
    /// The key and hash key as slices: read only after [`kb_record::check`] passed for
    /// this record, but re-checked here (two predictable branches) so that a record the
    /// core read past the checked reach would be refused rather than dereferenced.
    #[inline(always)]
    fn keys(&self) -> Option<(&[u8], Option<&[u8]>)> {
        let record = &self.0;
        let bad_key = record.key.is_null() && record.key_len != 0;
        let bad_hash = record.hash_key.is_null() && record.hash_key_len != 0;
        let too_long = (record.key_len | record.hash_key_len) > isize::MAX as usize;
        if bad_key | bad_hash | too_long {
            return None;
        }
        let key = if record.key_len == 0 {
            &[][..]
        } else {
            // SAFETY: non-NULL with a length an object can have; the C caller guarantees
            // that a record's non-NULL fields point to their lengths in bytes, valid and
            // unchanged during the call. The slice lives no longer than `self`.
            unsafe { core::slice::from_raw_parts(record.key, record.key_len) }
        };
        let hash_key = if record.hash_key.is_null() {
            None
        } else {
            // SAFETY: as for the key (a non-NULL hash key with length 0 is an empty one).
            Some(unsafe { core::slice::from_raw_parts(record.hash_key, record.hash_key_len) })
        };
        Some((key, hash_key))
    }
}

impl Measure for Checked {
    #[inline(always)]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        match self.keys() {
            Some((key, hash_key)) => measure_parts(limits, self.0.data_len as u64, key, hash_key),
            // Unreachable when the binding checked what the core reads (the reach
            // bounds); refused rather than read if it ever is.
            None => Err(Reason::RecordTooLarge),
        }
    }

    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        let (key, hash_key) = self.keys()?;
        key_identity_of(limits, key, hash_key)
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
