//! Writing one planned aggregate into the caller's buffer.

use core::fmt;

use md5::{Digest, Md5};

use super::wire::{
    DIGEST_LEN, FRAMING, KeyTable, MAGIC, TAG_DATA, TAG_HASH_KEY, TAG_HASH_KEY_INDEX,
    TAG_KEY_INDEX, TAG_PARTITION_KEY, TAG_RECORD, field_len, put_field, put_varint,
    sub_record_body_len,
};
use super::{Aggregate, AsRecord, Layout, place};
use crate::cost::Record;
use crate::shards::{MAX_HASH_KEY_DIGITS, format_hash_key, hash_key_digits, parse_hash_key};

/// Why an aggregate was not encoded. Nothing is written when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// `start..end` is empty, reversed, past the end of the records, or more than one
    /// record for [`Layout::Plain`].
    OutOfRange,
    /// Record `index` cannot be read (a C record with a NULL pointer and a length).
    Unreadable {
        /// The record's index.
        index: usize,
    },
    /// The records do not make this aggregate: they are not the input it was planned
    /// from, or they changed since (its length differs from [`Aggregate::data_len`], or
    /// a record does not share the key its layout requires).
    InputChanged,
    /// The aggregate would be larger than 4 GiB (only a hand-made one can be).
    TooLarge,
    /// The buffer is shorter than the aggregate's `needed` bytes.
    BufferTooSmall {
        /// The aggregate's length: [`Aggregate::data_len`].
        needed: usize,
    },
}

impl EncodeError {
    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            EncodeError::OutOfRange => "the aggregate's range is not within the records",
            EncodeError::Unreadable { .. } => "a record cannot be read (NULL with a length)",
            EncodeError::InputChanged => {
                "the records do not make this aggregate: not the input it was planned from, or changed since"
            }
            EncodeError::TooLarge => "the aggregate would be larger than 4 GiB",
            EncodeError::BufferTooSmall { .. } => "the buffer is shorter than the aggregate",
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for EncodeError {}

/// The records of `aggregate`, checked to be readable and in range.
fn user_records<'r, R: AsRecord>(
    records: &'r [R],
    aggregate: &Aggregate,
) -> Result<impl Iterator<Item = Record<'r>> + Clone + 'r, EncodeError> {
    let (start, end) = (aggregate.start, aggregate.end);
    let plain_too_long = aggregate.layout == Layout::Plain && end.wrapping_sub(start) != 1;
    if start >= end || end > records.len() || plain_too_long {
        return Err(EncodeError::OutOfRange);
    }
    if let Some(index) = (start..end).find(|&index| records[index].as_record().is_none()) {
        return Err(EncodeError::Unreadable { index });
    }
    // Every one readable, checked just above.
    Ok(records[start..end].iter().filter_map(AsRecord::as_record))
}

/// The exact length of `aggregate`'s data, computed from `records` as [`encode`] will
/// write it, with the keys its layout requires checked. For an aggregate made by hand;
/// a planned one already says it in [`Aggregate::data_len`].
pub fn encoded_len<R: AsRecord>(records: &[R], aggregate: &Aggregate) -> Result<u32, EncodeError> {
    let mut users = user_records(records, aggregate)?;
    let first = users.clone().next().ok_or(EncodeError::OutOfRange)?;
    let mut size = match aggregate.layout {
        Layout::Plain => return u32::try_from(first.data.len()).map_err(|_| EncodeError::TooLarge),
        Layout::SharedHashKey => {
            FRAMING as u64 + field_len(hash_key_digits(aggregate.hash_key) as u64)
        }
        Layout::OneKey | Layout::OwnKeys => FRAMING as u64,
    };
    let mut keys = KeyTable::new();
    let mut hash_keys = KeyTable::new();
    users.try_for_each(|record| {
        let fits_layout = match aggregate.layout {
            Layout::OneKey => record.key == first.key && record.hash_key == first.hash_key,
            Layout::SharedHashKey => record
                .hash_key
                .is_none_or(|own| parse_hash_key(own) == Some(aggregate.hash_key)),
            Layout::OwnKeys | Layout::Plain => true,
        };
        if !fits_layout {
            return Err(EncodeError::InputChanged);
        }
        let placement = place(aggregate.layout, &record, &keys, &hash_keys);
        size += placement.added;
        placement.commit(&mut keys, &mut hash_keys, &record);
        Ok(())
    })?;
    u32::try_from(size).map_err(|_| EncodeError::TooLarge)
}

/// Writes `aggregate` (planned over `records`) into `out` and returns the bytes written,
/// [`Aggregate::data_len`]: the KPL's magic, the protobuf (the partition-key table, the
/// explicit-hash-key table, then one sub-record per user record, in input order) and its
/// MD5 digest. A plain record's data is copied as it is.
///
/// Checked first, so that nothing is written on an error: the range, every record's
/// pointers, the keys the layout requires, the length against `data_len` (a changed
/// input), and the buffer's length.
pub fn encode<R: AsRecord>(
    records: &[R],
    aggregate: &Aggregate,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let len = encoded_len(records, aggregate)?;
    if len != aggregate.data_len {
        return Err(EncodeError::InputChanged);
    }
    let len = len as usize;
    let Some(out) = out.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall { needed: len });
    };
    let users = user_records(records, aggregate)?;
    let first = users.clone().next().ok_or(EncodeError::OutOfRange)?;
    if aggregate.layout == Layout::Plain {
        out.copy_from_slice(first.data);
        return Ok(len);
    }

    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    let mut at = MAGIC.len();
    // The partition-key table.
    let mut keys = KeyTable::new();
    for record in users.clone() {
        let (_, new) = keys.look_up(record.key);
        if new {
            at = put_field(out, at, TAG_PARTITION_KEY, record.key);
            keys.commit(record.key, true);
        }
        if aggregate.layout == Layout::OneKey {
            break;
        }
    }
    // The explicit-hash-key table.
    match aggregate.layout {
        Layout::SharedHashKey => {
            let mut digits = [0; MAX_HASH_KEY_DIGITS];
            at = put_field(
                out,
                at,
                TAG_HASH_KEY,
                format_hash_key(aggregate.hash_key, &mut digits),
            );
        }
        Layout::OneKey => {
            if let Some(hash_key) = first.hash_key {
                at = put_field(out, at, TAG_HASH_KEY, hash_key);
            }
        }
        Layout::OwnKeys | Layout::Plain => {
            let mut hash_keys = KeyTable::new();
            for hash_key in users.clone().filter_map(|record| record.hash_key) {
                let (_, new) = hash_keys.look_up(hash_key);
                if new {
                    at = put_field(out, at, TAG_HASH_KEY, hash_key);
                    hash_keys.commit(hash_key, true);
                }
            }
        }
    }
    // The sub-records, with the indices the tables above gave their keys (the same walk
    // through fresh tables gives the same indices).
    let mut keys = KeyTable::new();
    let mut hash_keys = KeyTable::new();
    for record in users {
        let placement = place(aggregate.layout, &record, &keys, &hash_keys);
        placement.commit(&mut keys, &mut hash_keys, &record);
        let data_len = record.data.len() as u64;
        out[at] = TAG_RECORD;
        at = put_varint(
            out,
            at + 1,
            sub_record_body_len(placement.key_index, placement.hash_key_index, data_len),
        );
        out[at] = TAG_KEY_INDEX;
        at = put_varint(out, at + 1, u64::from(placement.key_index));
        if let Some(index) = placement.hash_key_index {
            out[at] = TAG_HASH_KEY_INDEX;
            at = put_varint(out, at + 1, u64::from(index));
        }
        at = put_field(out, at, TAG_DATA, record.data);
    }
    let digest = Md5::digest(&out[MAGIC.len()..at]);
    out[at..at + DIGEST_LEN].copy_from_slice(&digest);
    debug_assert_eq!(at + DIGEST_LEN, len);
    Ok(len)
}
