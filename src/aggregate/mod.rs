//! Aggregation: many user records in one Kinesis record, in the KPL's format, so that a
//! shard's 1,000 records a second carry many more user records.
//!
//! Three steps, none of which allocates:
//!
//! 1. **Planning** ([`Aggregation::next`], [`Aggregation::plan`]): which consecutive
//!    records form each Kinesis record. Each [`Aggregate`] is measured exactly as the
//!    service measures the record it becomes (the framed data *and* its outer partition
//!    key, with the explicit hash key too when the limits count it), so none is ever over
//!    the stream's record cap. A group of one record, and a record too large to share an
//!    aggregate, stays a plain record ([`Layout::Plain`]); a record that can never be
//!    sent is refused, as by the planner. Aggregates are planned into requests like any
//!    record: [`Aggregate`] implements [`Measure`], so `plan(&aggregates, limits)` works.
//! 2. **Encoding** ([`encode`]) one aggregate into a caller buffer of exactly
//!    [`Aggregate::data_len`] bytes: the only copy this library makes, because the format
//!    requires one.
//! 3. **Decoding** ([`deaggregate`]) a received record into views of its user records,
//!    every byte checked first.
//!
//! # Modes: what each keeps and what each gives up
//!
//! The KCL drops a *whole* aggregate when one of its user records hashes outside the
//! shard the aggregate was read from (`AggregatorUtil.java`, `deaggregate`), which
//! happens when a stream is resharded under a producer. Every mode here makes aggregates
//! the KCL keeps:
//!
//! * [`Mode::SharedHashKey`] (the default): each user record keeps its partition key,
//!   and every one points to a single explicit hash key, the aggregate's own (its first
//!   record's hash key). An aggregate lands in one shard and all its user records hash to
//!   that very point, so no resharding can split them: never dropped, no shard map
//!   needed, the best packing. Given up: a key's records may land in different shards
//!   (key-to-shard affinity), so per-key order holds within an aggregate but not across
//!   aggregates; consumers see the aggregate's explicit hash key on each user record. A
//!   record with an explicit hash key of its own only shares an aggregate whose hash key
//!   is that one, so an explicit hash key is always honoured.
//! * [`Mode::OneKey`]: consecutive records with the same partition key (and explicit
//!   hash key) share an aggregate, sent under that key. Keeps everything: key-to-shard
//!   affinity, per-key order, each record's keys. Gives up packing when keys vary:
//!   records whose key differs from their neighbour's end the aggregate.
//! * [`Mode::PerShard`]: consecutive records that the caller's shard map puts in the same
//!   shard share an aggregate, each keeping its keys. Keeps key-to-shard affinity and
//!   per-key order while the map is current. Gives up: safety under resharding (an
//!   aggregate planned with a map that has since changed can straddle a new shard
//!   boundary, and the KCL then drops it whole: refresh the map with `ListShards`
//!   `AT_LATEST` and re-plan), and packing when neighbours belong to different shards
//!   (group records by shard first to pack them).
//!
//! ```
//! use kinesis_batcher::aggregate::{Aggregation, Step, deaggregate, encode};
//! use kinesis_batcher::{Event, Limits, Record, plan};
//!
//! let records: Vec<Record> = (0..10_000).map(|_| Record::new(b"a small log line", b"host-1")).collect();
//! let aggregation = Aggregation::default(); // KDS limits, shared hash key
//! let aggregates: Vec<_> = aggregation
//!     .plan(&records)
//!     .map(|step| match step {
//!         Step::Aggregate(aggregate) => aggregate,
//!         Step::Refused(refusal) => panic!("record {} refused", refusal.index),
//!     })
//!     .collect();
//! assert_eq!(aggregates.len(), 1); // 10,000 user records, one Kinesis record
//!
//! let mut data = vec![0; aggregates[0].data_len as usize];
//! encode(&records, &aggregates[0], &mut data)?;
//! let key = aggregates[0].partition_key(&records);
//! let mut digits = [0; 39];
//! let hash_key = aggregates[0].explicit_hash_key(&records, &mut digits);
//! // Send `data` with `key` and `hash_key` as one PutRecords entry; the requests:
//! for event in plan(&aggregates, Limits::KDS) {
//!     assert!(matches!(event, Event::Batch(batch) if batch.records == 1));
//! }
//! // A consumer gets every user record back, as views into `data`.
//! let received = deaggregate(&data, key, hash_key)?;
//! assert_eq!(received.len(), 10_000);
//! assert!(received.into_iter().all(|r| r.data == b"a small log line" && r.partition_key == b"host-1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod encode;
pub mod wire;

pub use decode::{DecodeError, SubRecord, SubRecords, deaggregate};
#[cfg(feature = "ffi")]
pub(crate) use decode::{State, TableCursor};
pub use encode::{EncodeError, encode, encoded_len};

use core::fmt;

use crate::cost::{Measure, Reason, Record, measure_parts};
use crate::limits::Limits;
use crate::plan::Refusal;
use crate::shards::{ShardMap, hash_key_digits, hash_key_of, parse_hash_key};
use wire::{FRAMING, KeyTable, field_len, sub_record_len};

/// The outer partition key of an aggregate whose user records keep their own keys. One
/// byte, as the KPL sends: the explicit hash key decides the shard, not this key.
pub const SHARED_PARTITION_KEY: &[u8] = b"a";

/// Anything that can be read as a [`Record`]: the input of aggregation and encoding,
/// which need the key bytes (and, to encode, the data).
pub trait AsRecord {
    /// The record as slices; `None` when it cannot be read (a C record with a NULL
    /// pointer and a length), which planning refuses as too large.
    fn as_record(&self) -> Option<Record<'_>>;
}

impl AsRecord for Record<'_> {
    #[inline(always)]
    fn as_record(&self) -> Option<Record<'_>> {
        Some(*self)
    }
}

impl<T: AsRecord + ?Sized> AsRecord for &T {
    #[inline(always)]
    fn as_record(&self) -> Option<Record<'_>> {
        (**self).as_record()
    }
}

/// How user records are grouped into aggregates. See the [module](self) for what each
/// keeps and gives up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode<'m> {
    /// Each record keeps its partition key; all point to the aggregate's hash key. The
    /// default: no consumer can drop a record, whatever the resharding.
    #[default]
    SharedHashKey,
    /// Consecutive records with the same partition key and explicit hash key.
    OneKey,
    /// Consecutive records of the same shard, as the caller's map predicts it.
    PerShard(ShardMap<'m>),
}

/// How an [`Aggregate`]'s data is laid out, which says what its outer keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Not aggregated: the one record, sent as it is, with its own keys.
    Plain,
    /// User records with their own partition keys, each pointing to one explicit hash key
    /// (the aggregate's). Outer keys: [`SHARED_PARTITION_KEY`] and that hash key.
    SharedHashKey,
    /// User records sharing one partition key (and explicit hash key, if they have one).
    /// Outer keys: theirs.
    OneKey,
    /// User records with their own partition keys and explicit hash keys (those that have
    /// one). Outer keys: [`SHARED_PARTITION_KEY`] and the first record's hash key.
    OwnKeys,
}

/// One Kinesis record to send: user records `start..end` aggregated (or one plain record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregate {
    /// Index of the first user record.
    pub start: usize,
    /// One past the index of the last user record.
    pub end: usize,
    /// How the data is laid out.
    pub layout: Layout,
    /// The exact length of the Kinesis record's data: the framed aggregate that
    /// [`encode`] writes, or the plain record's data.
    pub data_len: u32,
    /// The Kinesis record's size as the service counts it: `data_len` plus the outer
    /// partition key's bytes (plus the outer explicit hash key's, when the limits count
    /// it). At most the limits' record cap.
    pub size: u32,
    /// The outer record's hash key, which decides its shard.
    pub hash_key: u128,
}

impl Aggregate {
    /// How many user records it holds.
    pub const fn records(&self) -> usize {
        self.end - self.start
    }

    /// The user records it holds, as input indices.
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }

    /// The partition key to send it with: [`SHARED_PARTITION_KEY`] for an aggregate whose
    /// records keep their own keys, else the (first) record's. Empty when `records` is
    /// not the input it was planned from and the record cannot be read.
    pub fn partition_key<'r, R: AsRecord>(&self, records: &'r [R]) -> &'r [u8] {
        match self.layout {
            Layout::SharedHashKey | Layout::OwnKeys => SHARED_PARTITION_KEY,
            Layout::Plain | Layout::OneKey => records
                .get(self.start)
                .and_then(AsRecord::as_record)
                .map_or(&[], |record| record.key),
        }
    }

    /// The explicit hash key to send it with, if any: the aggregate's hash key in decimal
    /// (written into `digits`) for an aggregate whose records keep their own keys, else
    /// the (first) record's own explicit hash key.
    pub fn explicit_hash_key<'r, R: AsRecord>(
        &self,
        records: &'r [R],
        digits: &'r mut [u8; crate::shards::MAX_HASH_KEY_DIGITS],
    ) -> Option<&'r [u8]> {
        match self.layout {
            Layout::SharedHashKey | Layout::OwnKeys => {
                Some(crate::shards::format_hash_key(self.hash_key, digits))
            }
            Layout::Plain | Layout::OneKey => records
                .get(self.start)
                .and_then(AsRecord::as_record)
                .and_then(|record| record.hash_key),
        }
    }
}

impl Measure for Aggregate {
    /// [`Aggregate::size`]: the planner checks it against the limits' record cap again.
    #[inline]
    fn measure(&self, _limits: &Limits) -> Result<u32, Reason> {
        Ok(self.size)
    }
}

/// One step of an aggregation plan, in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// A Kinesis record to send.
    Aggregate(Aggregate),
    /// A user record that can never be sent.
    Refused(Refusal),
}

/// Why an [`Aggregation`] cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregationError {
    /// The limits have no partition keys (Firehose): aggregation is a Kinesis Data
    /// Streams format, and Firehose deaggregates only what it reads from a stream.
    NoPartitionKeys,
}

impl AggregationError {
    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            AggregationError::NoPartitionKeys => {
                "aggregation needs limits with partition keys (Kinesis Data Streams)"
            }
        }
    }
}

impl fmt::Display for AggregationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for AggregationError {}

/// How to aggregate: the limits, a [`Mode`], and the largest Kinesis record to make.
///
/// Planning is a pure function of the input and a start index ([`Aggregation::next`]),
/// so there is no planner state to keep, resume or reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aggregation<'m> {
    limits: Limits,
    mode: Mode<'m>,
    max_bytes: u32,
}

impl Default for Aggregation<'_> {
    /// Kinesis Data Streams limits, [`Mode::SharedHashKey`], aggregates up to the record
    /// cap.
    fn default() -> Self {
        Aggregation {
            limits: Limits::KDS,
            mode: Mode::SharedHashKey,
            max_bytes: Limits::KDS.max_record_bytes(),
        }
    }
}

impl<'m> Aggregation<'m> {
    /// Aggregation under `limits` (whose record cap is the stream's), in
    /// [`Mode::SharedHashKey`].
    pub const fn new(limits: Limits) -> Result<Aggregation<'m>, AggregationError> {
        if !limits.partition_keys() {
            return Err(AggregationError::NoPartitionKeys);
        }
        Ok(Aggregation {
            limits,
            mode: Mode::SharedHashKey,
            max_bytes: limits.max_record_bytes(),
        })
    }

    /// The same, in `mode`.
    #[must_use]
    pub const fn with_mode<'n>(self, mode: Mode<'n>) -> Aggregation<'n> {
        Aggregation {
            limits: self.limits,
            mode,
            max_bytes: self.max_bytes,
        }
    }

    /// The same, with aggregates of at most `max_bytes` as the service counts them (data
    /// and outer keys): smaller aggregates fill sooner, for a producer that cares about
    /// latency (the KPL's default is 51,200). 0, or more than the record cap, means the
    /// record cap.
    #[must_use]
    pub const fn with_max_bytes(self, max_bytes: u32) -> Aggregation<'m> {
        let cap = self.limits.max_record_bytes();
        Aggregation {
            max_bytes: if max_bytes == 0 || max_bytes > cap {
                cap
            } else {
                max_bytes
            },
            ..self
        }
    }

    /// The limits in force.
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The mode in force.
    pub const fn mode(&self) -> &Mode<'m> {
        &self.mode
    }

    /// The largest aggregate made, as the service counts it.
    pub const fn max_bytes(&self) -> u32 {
        self.max_bytes
    }

    /// The plan, step by step, as an iterator.
    pub fn plan<'r, R: AsRecord>(&self, records: &'r [R]) -> Steps<'r, 'm, R> {
        Steps {
            aggregation: *self,
            records,
            from: 0,
        }
    }

    /// The step that starts at input index `from`: the refusal of record `from`, or the
    /// Kinesis record that starts with it. The next step starts at the end of this one
    /// (the aggregate's `end`, or the refused index + 1). `None` at the end of the input.
    ///
    /// Greedy and in order: an aggregate takes records until the next one is refused,
    /// belongs elsewhere (another key or shard, by the mode), or would take it over
    /// [`Aggregation::max_bytes`].
    pub fn next<R: AsRecord>(&self, records: &[R], from: usize) -> Option<Step> {
        let first_record = records.get(from)?;
        let refuse = |reason| {
            Some(Step::Refused(Refusal {
                index: from,
                reason,
            }))
        };
        let Some(first) = first_record.as_record() else {
            return refuse(Reason::RecordTooLarge);
        };
        let limits = &self.limits;
        let plain_size =
            match measure_parts(limits, first.data.len() as u64, first.key, first.hash_key) {
                Ok(size) => size,
                Err(reason) => return refuse(reason),
            };
        // Measured, so the hash key is valid.
        let hash_key = hash_key_of(first.key, first.hash_key).unwrap_or_default();
        let plain = Aggregate {
            start: from,
            end: from + 1,
            layout: Layout::Plain,
            data_len: first.data.len() as u32,
            size: plain_size,
            hash_key,
        };

        let (layout, shard) = match self.mode {
            Mode::SharedHashKey => (Layout::SharedHashKey, 0),
            Mode::OneKey => (Layout::OneKey, 0),
            Mode::PerShard(map) => (Layout::OwnKeys, map.shard_of(hash_key)),
        };
        // The outer record's keys, and what framing costs before any user record.
        let (outer_key, outer_hash_key) = match layout {
            Layout::OneKey => (first.key.len(), first.hash_key.map_or(0, <[u8]>::len)),
            _ => (SHARED_PARTITION_KEY.len(), hash_key_digits(hash_key)),
        };
        let counted_hash_key = if limits.counts_hash_key() {
            outer_hash_key
        } else {
            0
        };
        let mut size = (FRAMING + outer_key + counted_hash_key) as u64;
        if layout == Layout::SharedHashKey {
            size += field_len(hash_key_digits(hash_key) as u64);
        }
        let cap = u64::from(self.max_bytes);

        let mut keys = KeyTable::new();
        let mut hash_keys = KeyTable::new();
        let mut end = from;
        for (index, item) in records.iter().enumerate().skip(from) {
            let Some(record) = item.as_record() else {
                break;
            };
            if index > from {
                if measure_parts(
                    limits,
                    record.data.len() as u64,
                    record.key,
                    record.hash_key,
                )
                .is_err()
                {
                    break;
                }
                let belongs = match self.mode {
                    Mode::SharedHashKey => record
                        .hash_key
                        .is_none_or(|own| parse_hash_key(own) == Some(hash_key)),
                    Mode::OneKey => record.key == first.key && record.hash_key == first.hash_key,
                    Mode::PerShard(map) => {
                        let own = hash_key_of(record.key, record.hash_key).unwrap_or_default();
                        map.shard_of(own) == shard
                    }
                };
                if !belongs {
                    break;
                }
            }
            let placement = place(layout, &record, &keys, &hash_keys);
            if size + placement.added > cap {
                break;
            }
            size += placement.added;
            placement.commit(&mut keys, &mut hash_keys, &record);
            end = index + 1;
        }
        if end - from < 2 {
            // One record (or one too large to share an aggregate) is sent as it is.
            return Some(Step::Aggregate(plain));
        }
        let framed = size - (outer_key + counted_hash_key) as u64;
        Some(Step::Aggregate(Aggregate {
            start: from,
            end,
            layout,
            data_len: framed as u32,
            size: size as u32,
            hash_key,
        }))
    }
}

/// Where a user record goes in an aggregate: its table indices, whether it creates
/// their entries, and the bytes it adds (its sub-record and any new entries).
#[derive(Clone, Copy)]
pub(crate) struct Placement {
    pub(crate) key_index: u32,
    pub(crate) hash_key_index: Option<u32>,
    key_new: bool,
    hash_key_new: bool,
    pub(crate) added: u64,
}

impl Placement {
    /// Takes the record's new entries into the tables, once it is known to fit.
    #[inline(always)]
    pub(crate) fn commit<'r>(
        self,
        keys: &mut KeyTable<'r>,
        hash_keys: &mut KeyTable<'r>,
        record: &Record<'r>,
    ) {
        keys.commit(record.key, self.key_new);
        if let Some(hash_key) = record.hash_key {
            hash_keys.commit(hash_key, self.hash_key_new);
        }
    }
}

/// Where `record` goes in an aggregate of `layout` whose tables are `keys` and
/// `hash_keys`. The one place sizes are decided: the planner adds them up and the
/// encoder writes exactly them.
#[inline(always)]
pub(crate) fn place(
    layout: Layout,
    record: &Record<'_>,
    keys: &KeyTable<'_>,
    hash_keys: &KeyTable<'_>,
) -> Placement {
    let data_len = record.data.len() as u64;
    let (key_index, key_new, hash_key_index, hash_key_new) = match layout {
        // Every record points to entry 0 of each table; the first one creates them.
        Layout::OneKey => {
            let first = keys.is_empty();
            (0, first, record.hash_key.map(|_| 0), first)
        }
        // The hash-key table holds the aggregate's one entry, counted up front.
        Layout::SharedHashKey => {
            let (key_index, key_new) = keys.look_up(record.key);
            (key_index, key_new, Some(0), false)
        }
        Layout::OwnKeys | Layout::Plain => {
            let (key_index, key_new) = keys.look_up(record.key);
            let (hash_key_index, hash_key_new) = match record.hash_key {
                Some(hash_key) => {
                    let (index, new) = hash_keys.look_up(hash_key);
                    (Some(index), new)
                }
                None => (None, false),
            };
            (key_index, key_new, hash_key_index, hash_key_new)
        }
    };
    let mut added = sub_record_len(key_index, hash_key_index, data_len);
    if key_new {
        added += field_len(record.key.len() as u64);
    }
    if let (true, Some(hash_key)) = (hash_key_new, record.hash_key) {
        added += field_len(hash_key.len() as u64);
    }
    Placement {
        key_index,
        hash_key_index,
        key_new,
        hash_key_new,
        added,
    }
}

/// [`Aggregation::plan`]'s iterator: one [`Step`] per item.
#[derive(Clone, Debug)]
pub struct Steps<'r, 'm, R> {
    aggregation: Aggregation<'m>,
    records: &'r [R],
    from: usize,
}

impl<R> Steps<'_, '_, R> {
    /// The input index the next step starts at.
    pub const fn position(&self) -> usize {
        self.from
    }
}

impl<R: AsRecord> Iterator for Steps<'_, '_, R> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let step = self.aggregation.next(self.records, self.from)?;
        self.from = match step {
            Step::Aggregate(aggregate) => aggregate.end,
            Step::Refused(refusal) => refusal.index + 1,
        };
        Some(step)
    }
}

impl<R: AsRecord> core::iter::FusedIterator for Steps<'_, '_, R> {}
