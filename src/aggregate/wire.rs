//! The KPL aggregated record format, byte for byte: the constants, the exact size of
//! every part, and the key tables the planner and the encoder both build.
//!
//! An aggregated record's data is `MAGIC`, then a protobuf `AggregatedRecord`, then the
//! MD5 digest of the protobuf bytes (`aggregation-format.md` and `messages.proto` in
//! awslabs/amazon-kinesis-producer):
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;  // tag 0x0A
//!   repeated string explicit_hash_key_table = 2;  // tag 0x12
//!   repeated Record records                 = 3;  // tag 0x1A
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;  // tag 0x08
//!   optional uint64 explicit_hash_key_index = 2;  // tag 0x10
//!   required bytes  data                    = 3;  // tag 0x1A
//!   repeated Tag    tags                    = 4;  // never written
//! }
//! ```

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The length of the MD5 digest that ends every aggregated record.
pub const DIGEST_LEN: usize = 16;

/// What framing adds to the protobuf: the magic and the digest.
pub const FRAMING: usize = MAGIC.len() + DIGEST_LEN;

/// Field tags (field number << 3 | wire type) of `AggregatedRecord`.
pub(crate) const TAG_PARTITION_KEY: u8 = 0x0A;
pub(crate) const TAG_HASH_KEY: u8 = 0x12;
pub(crate) const TAG_RECORD: u8 = 0x1A;
/// Field tags of `Record`.
pub(crate) const TAG_KEY_INDEX: u8 = 0x08;
pub(crate) const TAG_HASH_KEY_INDEX: u8 = 0x10;
pub(crate) const TAG_DATA: u8 = 0x1A;

/// The length of `value` as a protobuf varint: 1 byte per 7 bits, at least 1.
#[inline(always)]
pub(crate) const fn varint_len(value: u64) -> u64 {
    // 7 bits a byte, and at least 1 bit.
    (64 - (value | 1).leading_zeros() as u64).div_ceil(7)
}

/// A length-delimited field of `len` bytes: tag, length, bytes. What a key-table entry
/// costs, and a sub-record's data field.
#[inline(always)]
pub(crate) const fn field_len(len: u64) -> u64 {
    1 + varint_len(len) + len
}

/// The body of a sub-record (`Record`, without its own tag and length) pointing to key
/// `key_index`, to hash key `hash_key_index` when there is one, holding `data_len` bytes.
#[inline(always)]
pub(crate) const fn sub_record_body_len(
    key_index: u32,
    hash_key_index: Option<u32>,
    data_len: u64,
) -> u64 {
    let hash_key = match hash_key_index {
        Some(index) => 1 + varint_len(index as u64),
        None => 0,
    };
    1 + varint_len(key_index as u64) + hash_key + field_len(data_len)
}

/// A whole sub-record: its tag, its length and its body.
#[inline(always)]
pub(crate) const fn sub_record_len(
    key_index: u32,
    hash_key_index: Option<u32>,
    data_len: u64,
) -> u64 {
    field_len(sub_record_body_len(key_index, hash_key_index, data_len))
}

/// Writes `value` as a varint at `out[at..]`, returning the position after it. The
/// caller sized `out` exactly, so indexing cannot fail on a planned aggregate.
#[inline(always)]
pub(crate) fn put_varint(out: &mut [u8], mut at: usize, mut value: u64) -> usize {
    while value >= 0x80 {
        out[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
    at + 1
}

/// Writes a length-delimited field (tag, length, bytes) at `out[at..]`.
#[inline(always)]
pub(crate) fn put_field(out: &mut [u8], at: usize, tag: u8, bytes: &[u8]) -> usize {
    out[at] = tag;
    let at = put_varint(out, at + 1, bytes.len() as u64);
    out[at..at + bytes.len()].copy_from_slice(bytes);
    at + bytes.len()
}

/// How many distinct keys a key table remembers for reuse. A key equal to one of the
/// last `RECENT` distinct keys of the aggregate reuses its entry; an older one gets a new
/// entry (a few bytes more, never wrong). Bounded, so that tables need no allocation and
/// a lookup costs at most this many comparisons.
pub(crate) const RECENT: usize = 8;

/// The key table of one aggregate as it is built: its size and its most recent distinct
/// keys. The planner and the encoder walk the same records through the same table, so
/// they assign the same indices and agree on every byte.
#[derive(Clone, Copy)]
pub(crate) struct KeyTable<'r> {
    /// A cheap fingerprint of each recent key, compared before its bytes are.
    prints: [u64; RECENT],
    recent: [(&'r [u8], u32); RECENT],
    filled: usize,
    oldest: usize,
    entries: u32,
}

impl<'r> KeyTable<'r> {
    pub(crate) const fn new() -> KeyTable<'r> {
        KeyTable {
            prints: [0; RECENT],
            recent: [(&[], 0); RECENT],
            filled: 0,
            oldest: 0,
            entries: 0,
        }
    }

    /// Whether the table has no entry yet.
    #[inline(always)]
    pub(crate) const fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The index `key` would get, and whether that is a new entry. Nothing changes until
    /// [`KeyTable::commit`], so a record that does not fit leaves the table as it was.
    #[inline(always)]
    pub(crate) fn look_up(&self, key: &[u8]) -> (u32, bool) {
        let print = fingerprint(key);
        for slot in 0..self.filled {
            if self.prints[slot] == print && self.recent[slot].0 == key {
                return (self.recent[slot].1, false);
            }
        }
        (self.entries, true)
    }

    /// Takes `key` into the table when [`KeyTable::look_up`] said it is new.
    #[inline(always)]
    pub(crate) fn commit(&mut self, key: &'r [u8], new: bool) {
        if !new {
            return;
        }
        let slot = if self.filled < RECENT {
            self.filled += 1;
            self.filled - 1
        } else {
            let slot = self.oldest;
            self.oldest = (self.oldest + 1) % RECENT;
            slot
        };
        self.prints[slot] = fingerprint(key);
        self.recent[slot] = (key, self.entries);
        self.entries += 1;
    }
}

/// The length and the first and last 8 bytes of `key` in one word: equal keys give equal
/// fingerprints, and keys that differ there (most keys of one length: counters, ids)
/// are told apart without a byte comparison.
#[inline(always)]
fn fingerprint(key: &[u8]) -> u64 {
    let word = |bytes: &[u8]| {
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(padded)
    };
    let head = word(&key[..key.len().min(8)]);
    let tail = word(&key[key.len().saturating_sub(8)..]);
    head ^ tail.rotate_left(29) ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
