//! Reading a received Kinesis record back into its user records, as views into it.

use core::fmt;

use md5::{Digest, Md5};

use super::wire::{DIGEST_LEN, FRAMING, MAGIC};

/// Why a record that claims to be an aggregate cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// It starts with the KPL's magic but its digest does not match its protobuf: a
    /// damaged aggregate, or a plain record that happens to start with those four bytes.
    /// (The KCL hands such a record to the application as it is;
    /// [`SubRecords::plain`] does the same.)
    DigestMismatch,
    /// The digest matches but the protobuf is not a valid `AggregatedRecord`: a
    /// truncated or unknown field, a missing required field, or a table index out of
    /// range. `offset` is where, in bytes from the start of the record.
    Malformed {
        /// The offending byte's position in the record.
        offset: usize,
    },
}

impl DecodeError {
    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            DecodeError::DigestMismatch => {
                "the record starts with the aggregation magic but its MD5 digest does not match"
            }
            DecodeError::Malformed { .. } => {
                "the aggregated record's protobuf is malformed or refers to a missing key"
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for DecodeError {}

/// One user record, as views into the received record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubRecord<'a> {
    /// Its data.
    pub data: &'a [u8],
    /// Its partition key (UTF-8 bytes, as the producer wrote them).
    pub partition_key: &'a [u8],
    /// Its explicit hash key (decimal digits), when it has one.
    pub explicit_hash_key: Option<&'a [u8]>,
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// One field read from a protobuf message.
#[derive(Clone, Copy)]
struct Field<'a> {
    number: u64,
    wire_type: u8,
    /// The value of a varint field.
    varint: u64,
    /// The bytes of a length-delimited field.
    bytes: &'a [u8],
    /// Where the field starts, and where the next one starts.
    start: usize,
    next: usize,
}

/// Reads a varint at `at`: its value and the position after it. At most 10 bytes, and
/// the tenth may only hold the 64th bit.
#[inline(always)]
fn varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(at + i)?;
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte < 0x80 {
            return Some((value, at + i + 1));
        }
    }
    None
}

/// Reads the field at `at` in `message`, or `None` when it is not a well-formed field of
/// a wire type this format can hold (groups are not).
#[inline(always)]
fn field(message: &[u8], at: usize) -> Option<Field<'_>> {
    let (key, mut next) = varint(message, at)?;
    let (number, wire_type) = (key >> 3, (key & 7) as u8);
    if number == 0 {
        return None;
    }
    let mut varint_value = 0;
    let mut bytes: &[u8] = &[];
    match wire_type {
        VARINT => (varint_value, next) = varint(message, next)?,
        FIXED64 => next = next.checked_add(8).filter(|&end| end <= message.len())?,
        FIXED32 => next = next.checked_add(4).filter(|&end| end <= message.len())?,
        LEN => {
            let (len, start) = varint(message, next)?;
            let end = usize::try_from(len).ok()?.checked_add(start)?;
            bytes = message.get(start..end)?;
            next = end;
        }
        _ => return None,
    }
    Some(Field {
        number,
        wire_type,
        varint: varint_value,
        bytes,
        start: at,
        next,
    })
}

/// What a sub-record (`Record`) holds, or the offset (in the sub-record) of its fault.
struct Parsed<'a> {
    key_index: u64,
    hash_key_index: Option<u64>,
    data: &'a [u8],
}

fn sub_record(message: &[u8]) -> Result<Parsed<'_>, usize> {
    let (mut key_index, mut hash_key_index, mut data) = (None, None, None);
    let mut at = 0;
    while at < message.len() {
        let f = field(message, at).ok_or(at)?;
        match (f.number, f.wire_type) {
            (1, VARINT) => key_index = Some(f.varint),
            (2, VARINT) => hash_key_index = Some(f.varint),
            (3, LEN) => data = Some(f.bytes),
            (1..=3, _) => return Err(at),
            // Tags (4) and fields this format does not have are skipped, as protobuf does.
            _ => {}
        }
        at = f.next;
    }
    match (key_index, data) {
        (Some(key_index), Some(data)) => Ok(Parsed {
            key_index,
            hash_key_index,
            data,
        }),
        _ => Err(0),
    }
}

/// How many of a table's latest entries a cursor remembers the offsets of: the same
/// window as the encoder's key tables, so every entry our own aggregates point back to
/// is found without a scan.
const REMEMBERED: usize = crate::aggregate::wire::RECENT;

/// Where a scan of one key table stands: the furthest entry found, `index`, starts at
/// `offset`, and the offsets of the `cached` entries up to it (`index + 1 - cached
/// ..= index`) are in `ring`, entry `i` at `ring[i % REMEMBERED]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableCursor {
    pub(crate) index: u64,
    pub(crate) offset: usize,
    pub(crate) cached: u8,
    pub(crate) ring: [usize; REMEMBERED],
}

impl TableCursor {
    /// At the start of the message, remembering nothing.
    pub(crate) const START: TableCursor = TableCursor {
        index: 0,
        offset: 0,
        cached: 0,
        ring: [0; REMEMBERED],
    };
}

/// The bytes of the table entry (field `number`) at `at`, if one starts there.
fn entry_at(message: &[u8], number: u64, at: usize) -> Option<&[u8]> {
    field(message, at)
        .filter(|f| f.number == number && f.wire_type == LEN)
        .map(|f| f.bytes)
}

/// Entry `index` of the table in field `number` of `message`: from the cursor's
/// remembered entries, else by scanning forward from its furthest entry, else (an entry
/// before those, which other encoders' tables can ask for) from the start. Encoders
/// write each table in order and name new entries in order, so lookups are O(1) apart
/// from the scan over entries never seen before.
fn table_entry<'a>(
    message: &'a [u8],
    number: u64,
    cursor: &mut TableCursor,
    index: u64,
) -> Option<&'a [u8]> {
    let behind = cursor.index.checked_sub(index);
    if let Some(behind) = behind {
        if behind < u64::from(cursor.cached) {
            return entry_at(
                message,
                number,
                cursor.ring[(index % REMEMBERED as u64) as usize],
            );
        }
        if behind > 0 {
            // Older than what is remembered: scan from the start, leaving the cursor.
            let mut scan = TableCursor::START;
            return table_entry(message, number, &mut scan, index);
        }
    }
    let (lead, mut seen, mut at) = (cursor.index, cursor.index, cursor.offset);
    while at < message.len() {
        let f = field(message, at)?;
        if f.number == number && f.wire_type == LEN {
            cursor.ring[(seen % REMEMBERED as u64) as usize] = at;
            if seen == index {
                // Every entry from the old furthest one to this one was just passed.
                let known = u64::from(cursor.cached.max(1)) + (index - lead);
                cursor.cached = known.min(REMEMBERED as u64) as u8;
                cursor.index = index;
                cursor.offset = at;
                return Some(f.bytes);
            }
            seen += 1;
        }
        at = f.next;
    }
    None
}

/// Where an iteration stands, with nothing borrowed: what the C ABI keeps between calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// The next top-level field to read.
    pub(crate) at: usize,
    /// Sub-records not yet returned.
    pub(crate) remaining: usize,
    pub(crate) keys: TableCursor,
    pub(crate) hash_keys: TableCursor,
}

/// The user records of one received record, in order. Made by [`deaggregate`], which
/// checked every byte, so iterating cannot fail.
#[derive(Clone, Debug)]
pub struct SubRecords<'a> {
    /// The protobuf of an aggregate; empty for a plain record.
    message: &'a [u8],
    /// The record itself, when it is not an aggregate.
    plain: Option<SubRecord<'a>>,
    state: State,
}

#[cfg_attr(not(feature = "ffi"), allow(dead_code))] // `state` and `resume` serve the C ABI.
impl<'a> SubRecords<'a> {
    /// A record taken as it is, one user record with the record's own keys, without
    /// looking at its bytes: what the KCL does with a record [`deaggregate`] finds
    /// damaged ([`DecodeError::DigestMismatch`]), for a consumer that wants the same.
    pub const fn plain(
        data: &'a [u8],
        partition_key: &'a [u8],
        explicit_hash_key: Option<&'a [u8]>,
    ) -> SubRecords<'a> {
        SubRecords {
            message: &[],
            plain: Some(SubRecord {
                data,
                partition_key,
                explicit_hash_key,
            }),
            state: State {
                at: 0,
                remaining: 1,
                keys: TableCursor::START,
                hash_keys: TableCursor::START,
            },
        }
    }

    /// Whether the record was an aggregate (else it is one plain user record).
    pub const fn is_aggregated(&self) -> bool {
        self.plain.is_none()
    }

    /// The protobuf of an aggregate (empty for a plain record), and where iteration
    /// stands: what the C ABI keeps between calls.
    pub(crate) const fn state(&self) -> State {
        self.state
    }

    /// Iteration over `message` resumed from `state`, as [`SubRecords::state`] left it.
    /// Every read is checked, so any state gives `None` or views into `message`.
    pub(crate) const fn resume(message: &'a [u8], state: State) -> SubRecords<'a> {
        SubRecords {
            message,
            plain: None,
            state,
        }
    }
}

impl<'a> Iterator for SubRecords<'a> {
    type Item = SubRecord<'a>;

    fn next(&mut self) -> Option<SubRecord<'a>> {
        if self.state.remaining == 0 {
            return None;
        }
        if let Some(plain) = self.plain {
            self.state.remaining = 0;
            return Some(plain);
        }
        let message = self.message;
        loop {
            let f = field(message, self.state.at);
            let Some(f) = f else {
                self.state.remaining = 0;
                return None;
            };
            self.state.at = f.next;
            if f.number != 3 || f.wire_type != LEN {
                continue;
            }
            let found = sub_record(f.bytes).ok().and_then(|parsed| {
                let partition_key =
                    table_entry(message, 1, &mut self.state.keys, parsed.key_index)?;
                let explicit_hash_key = match parsed.hash_key_index {
                    Some(index) => Some(table_entry(message, 2, &mut self.state.hash_keys, index)?),
                    None => None,
                };
                Some(SubRecord {
                    data: parsed.data,
                    partition_key,
                    explicit_hash_key,
                })
            });
            self.state.remaining = if found.is_some() {
                self.state.remaining - 1
            } else {
                0
            };
            return found;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.state.remaining, Some(self.state.remaining))
    }
}

impl ExactSizeIterator for SubRecords<'_> {}

impl core::iter::FusedIterator for SubRecords<'_> {}

/// The user records of a received Kinesis record, given with its partition key and
/// explicit hash key (as `GetRecords` returns them).
///
/// An aggregate (the KPL's magic, more than 16 bytes after it, and a matching MD5
/// digest) yields its user records; any other record yields itself, once, with the keys
/// given: the KCL's rule. Every field, length and table index is checked here, before
/// the first user record is returned, so a damaged record gives an error and never a
/// partial result. Nothing is copied or allocated.
pub fn deaggregate<'a>(
    data: &'a [u8],
    partition_key: &'a [u8],
    explicit_hash_key: Option<&'a [u8]>,
) -> Result<SubRecords<'a>, DecodeError> {
    if data.len() <= FRAMING || data[..MAGIC.len()] != MAGIC {
        return Ok(SubRecords::plain(data, partition_key, explicit_hash_key));
    }
    let message = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    if Md5::digest(message)[..] != data[data.len() - DIGEST_LEN..] {
        return Err(DecodeError::DigestMismatch);
    }
    let malformed = |at: usize| DecodeError::Malformed {
        offset: MAGIC.len() + at,
    };
    let (mut keys, mut hash_keys, mut records) = (0u64, 0u64, 0usize);
    let (mut top_key, mut top_hash_key) = (None, None);
    let mut at = 0;
    while at < message.len() {
        let f = field(message, at).ok_or(malformed(at))?;
        match (f.number, f.wire_type) {
            (1, LEN) => keys += 1,
            (2, LEN) => hash_keys += 1,
            (3, LEN) => {
                let start = f.next - f.bytes.len();
                let parsed = sub_record(f.bytes).map_err(|offset| malformed(start + offset))?;
                top_key = top_key.max(Some((parsed.key_index, f.start)));
                if let Some(index) = parsed.hash_key_index {
                    top_hash_key = top_hash_key.max(Some((index, f.start)));
                }
                records += 1;
            }
            (1..=3, _) => return Err(malformed(at)),
            _ => {}
        }
        at = f.next;
    }
    // The highest index each table is asked for must be in it.
    if let Some((_, at)) = top_key.filter(|&(index, _)| index >= keys) {
        return Err(malformed(at));
    }
    if let Some((_, at)) = top_hash_key.filter(|&(index, _)| index >= hash_keys) {
        return Err(malformed(at));
    }
    Ok(SubRecords {
        message,
        plain: None,
        state: State {
            at: 0,
            remaining: records,
            keys: TableCursor::default(),
            hash_keys: TableCursor::default(),
        },
    })
}
