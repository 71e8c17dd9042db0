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
    pub(crate) fn check(&self) -> kb_status {
        let fields = [
            (self.data, self.data_len),
            (self.key, self.key_len),
            (self.hash_key, self.hash_key_len),
        ];
        let mut total = 0u64;
        for (ptr, len) in fields {
            if ptr.is_null() && len != 0 {
                return KB_NULL_FIELD;
            }
            if len > isize::MAX as usize {
                return KB_LENGTH_OVERFLOW;
            }
            total = match total.checked_add(len as u64) {
                Some(total) => total,
                None => return KB_LENGTH_OVERFLOW,
            };
        }
        KB_OK
    }
}

/// Checks `records[range]` (clipped to the array), returning the first bad index and its
/// status.
pub(crate) fn check_records(
    records: &[kb_record],
    from: usize,
    reach: usize,
) -> Result<(), (usize, kb_status)> {
    let end = from.saturating_add(reach).min(records.len());
    let start = from.min(end);
    for (offset, record) in records[start..end].iter().enumerate() {
        let status = record.check();
        if status != KB_OK {
            return Err((start + offset, status));
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
    /// The bytes of one field, borrowed for as long as the record is.
    fn bytes(&self, ptr: *const u8, len: usize) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        if ptr.is_null() || len > isize::MAX as usize {
            return None;
        }
        // SAFETY: non-NULL with a sliceable length; the C caller guarantees that a
        // record's non-NULL fields point to their lengths in bytes, valid and unchanged
        // for the duration of the call that passed the record. The slice does not
        // outlive that call: the core only reads it within `measure`/`key_identity`.
        Some(unsafe { core::slice::from_raw_parts(ptr, len) })
    }

    fn parts(&self) -> Option<(&[u8], Option<&[u8]>)> {
        let record = &self.0;
        let key = self.bytes(record.key, record.key_len)?;
        let hash_key = if record.hash_key.is_null() {
            if record.hash_key_len != 0 {
                return None;
            }
            None
        } else {
            Some(self.bytes(record.hash_key, record.hash_key_len)?)
        };
        if record.data.is_null() && record.data_len != 0 {
            return None;
        }
        Some((key, hash_key))
    }
}

impl Measure for Checked {
    #[inline(always)]
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        match self.parts() {
            Some((key, hash_key)) => measure_parts(limits, self.0.data_len as u64, key, hash_key),
            // Unreachable when the binding checked what the core reads (the reach
            // bounds); refused rather than read if it ever is.
            None => Err(Reason::RecordTooLarge),
        }
    }

    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        let (key, hash_key) = self.parts()?;
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
