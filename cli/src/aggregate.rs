//! `--aggregate`: user records aggregated by the core (the KPL's format) before the
//! aggregates are planned into requests.
//!
//! The core plans aggregation over a slice of records, greedily and in order: an
//! aggregate ends where the next record does not fit or belongs elsewhere, which depends
//! only on the records up to it. So the tool keeps a window of the records read and not
//! yet aggregated, asks the core for the plan of the window when it holds enough bytes
//! for at least one aggregate, takes every aggregate that ends before the window's last
//! record (those are final: a later record cannot change them), and keeps the rest. At
//! the end of the input the rest is planned too. Memory stays about twice the largest
//! aggregate, whatever the input.
//!
//! Records the core refuses (and the tool's own refusals) are reported as they are read
//! and never enter the window, so the aggregates are exactly the core's plan of the
//! records that can be sent.

use std::fs;
use std::io;
use std::path::Path;

use kinesis_batcher::aggregate::{Aggregate, Aggregation, Mode, Step};
use kinesis_batcher::shards::{ShardMap, ShardMapError, ShardRange, parse_hash_key};
use kinesis_batcher::{Limits, Record};
use serde_json::Value;

use crate::args::{AggregateMode, AggregateOptions};
use crate::report::Location;

/// One open shard from a `ListShards` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// `ShardId`.
    pub id: String,
    /// `HashKeyRange`.
    pub range: ShardRange,
}

/// Why a `--shards` file cannot be used.
#[derive(Debug)]
pub enum ShardsError {
    /// It cannot be read (exit 3).
    Io(io::Error),
    /// It is not a shard map (exit 2): what is wrong.
    Bad(String),
}

/// Reads a `ListShards` output (`{"Shards":[{"ShardId", "HashKeyRange":
/// {"StartingHashKey", "EndingHashKey"}}, ...]}`), sorts the shards by their start and
/// checks with the core that they tile the hash-key space.
pub fn load_shards(path: &Path) -> Result<Vec<Shard>, ShardsError> {
    let text = fs::read(path).map_err(ShardsError::Io)?;
    parse_shards(&text).map_err(ShardsError::Bad)
}

/// [`load_shards`] on the file's bytes.
pub fn parse_shards(text: &[u8]) -> Result<Vec<Shard>, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(list) = value.get("Shards").and_then(Value::as_array) else {
        return Err("no \"Shards\" array (expected the output of aws kinesis list-shards)".into());
    };
    let mut shards = Vec::with_capacity(list.len());
    for (index, shard) in list.iter().enumerate() {
        let id = shard
            .get("ShardId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("shard {index}: no \"ShardId\" string"))?;
        let closed = shard
            .get("SequenceNumberRange")
            .and_then(|range| range.get("EndingSequenceNumber"))
            .is_some_and(|end| !end.is_null());
        if closed {
            return Err(format!(
                "{id} is closed (it has an EndingSequenceNumber): list only the open shards, \
                 with --shard-filter Type=AT_LATEST"
            ));
        }
        let bound = |name: &str| -> Result<u128, String> {
            let text = shard
                .get("HashKeyRange")
                .and_then(|range| range.get(name))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{id}: no HashKeyRange.{name} string"))?;
            parse_hash_key(text.as_bytes()).ok_or_else(|| {
                format!("{id}: HashKeyRange.{name} {text:?} is not a hash key (0 to 2^128-1)")
            })
        };
        let range = ShardRange {
            start: bound("StartingHashKey")?,
            end: bound("EndingHashKey")?,
        };
        shards.push(Shard { id, range });
    }
    shards.sort_by_key(|shard| shard.range.start);
    let ranges: Vec<ShardRange> = shards.iter().map(|shard| shard.range).collect();
    ShardMap::new(&ranges).map_err(|error| match error {
        ShardMapError::Empty => format!("{error}"),
        ShardMapError::Reversed { index } => format!("{}: {error}", shards[index].id),
        ShardMapError::NotContiguous { index: 0 } => format!(
            "{error}: the first shard, {}, starts at {}",
            shards[0].id, shards[0].range.start
        ),
        ShardMapError::NotContiguous { index } => format!(
            "{error}: {} starts at {}, {} ends at {}",
            shards[index].id,
            shards[index].range.start,
            shards[index - 1].id,
            shards[index - 1].range.end
        ),
        ShardMapError::Incomplete => {
            let last = &shards[shards.len() - 1];
            format!(
                "{error}: the last shard, {}, ends at {}",
                last.id, last.range.end
            )
        }
    })?;
    Ok(shards)
}

/// A user record in the window: where its data and key are in the window's bytes, and
/// where it was read.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    data: usize,
    data_len: usize,
    key_len: usize,
    /// Its (first) line.
    pub at: Location,
    /// Its last line (a packed record spans several).
    pub last_line: u64,
    /// Lines refused before it was read, to count those inside a request.
    pub refused_before: u64,
}

/// Counters of what was aggregated.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// User records in the Kinesis records made.
    pub user_records: u64,
    /// Kinesis records made.
    pub kinesis_records: u64,
    /// Of those, aggregates (the others are plain records: alone, or too large to share).
    pub aggregates: u64,
}

/// The records read and not yet aggregated, and how to aggregate them.
pub struct Window {
    limits: Limits,
    mode: AggregateMode,
    ranges: Vec<ShardRange>,
    max_bytes: u32,
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// An estimate of what the items cost in an aggregate.
    cost: u64,
    /// The cost at which the window is planned next.
    threshold: u64,
    /// What was aggregated so far.
    pub counts: Counts,
}

impl Window {
    /// A window aggregating as `options` say under `limits` (checked to have partition
    /// keys), over the shards given for `per-shard`.
    pub fn new(limits: Limits, options: &AggregateOptions, shards: &[Shard]) -> Window {
        Window {
            limits,
            mode: options.mode,
            ranges: shards.iter().map(|shard| shard.range).collect(),
            max_bytes: options.max_bytes,
            bytes: Vec::new(),
            items: Vec::new(),
            cost: 0,
            threshold: Self::first_threshold(options.max_bytes),
            counts: Counts::default(),
        }
    }

    fn first_threshold(max_bytes: u32) -> u64 {
        2 * u64::from(max_bytes) + 64
    }

    /// The largest aggregate made.
    pub fn max_bytes(&self) -> u32 {
        self.max_bytes
    }

    /// The shards of `per-shard`.
    pub fn shard_count(&self) -> usize {
        self.ranges.len()
    }

    /// Adds a record the core measured as one that can be sent. True when the window
    /// holds enough to be planned.
    pub fn push(&mut self, data: &[u8], key: &[u8], item: Item) -> bool {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.bytes.extend_from_slice(key);
        self.items.push(Item {
            data: start,
            data_len: data.len(),
            key_len: key.len(),
            ..item
        });
        // A sub-record costs its data, a few bytes of framing, and its key once.
        self.cost += (data.len() + key.len() + 8) as u64;
        self.cost >= self.threshold
    }

    /// A placeholder item for [`Window::push`], which fills in where the bytes are.
    pub fn item(at: Location, last_line: u64, refused_before: u64) -> Item {
        Item {
            data: 0,
            data_len: 0,
            key_len: 0,
            at,
            last_line,
            refused_before,
        }
    }

    /// Plans the window with the core and hands each final aggregate to `each`, with the
    /// window's records and items (which its range indexes). `last`: the input has
    /// ended, so the last aggregate is final too. The aggregates handed out leave the
    /// window. A refusal by the core is an internal error here (`refused`'s item): every
    /// record was measured before it entered.
    pub fn plan<E>(
        &mut self,
        last: bool,
        mut each: impl FnMut(&Aggregate, &[Record<'_>], &[Item]) -> Result<(), E>,
        refused: impl Fn(&Item) -> E,
    ) -> Result<(), E> {
        if self.items.is_empty() {
            return Ok(());
        }
        let map;
        let mode = match self.mode {
            AggregateMode::SharedHashKey => Mode::SharedHashKey,
            AggregateMode::OneKey => Mode::OneKey,
            AggregateMode::PerShard => {
                // Checked when the file was read.
                map = ShardMap::new(&self.ranges).ok();
                map.map_or(Mode::SharedHashKey, Mode::PerShard)
            }
        };
        let Ok(aggregation) = Aggregation::new(self.limits) else {
            // Checked with the options: the limits have partition keys.
            return Ok(());
        };
        let aggregation = aggregation.with_mode(mode).with_max_bytes(self.max_bytes);
        let bytes = &self.bytes;
        let records: Vec<Record<'_>> = self
            .items
            .iter()
            .map(|item| {
                let key = item.data + item.data_len;
                Record::new(&bytes[item.data..key], &bytes[key..key + item.key_len])
            })
            .collect();
        let mut done = 0;
        let mut outcome = Ok(());
        for step in aggregation.plan(&records) {
            match step {
                Step::Aggregate(aggregate) => {
                    if !last && aggregate.end == records.len() {
                        break;
                    }
                    outcome = each(&aggregate, &records, &self.items);
                    done = aggregate.end;
                    self.counts.user_records += aggregate.records() as u64;
                    self.counts.kinesis_records += 1;
                    if aggregate.records() > 1 {
                        self.counts.aggregates += 1;
                    }
                }
                Step::Refused(refusal) => outcome = Err(refused(&self.items[refusal.index])),
            }
            if outcome.is_err() {
                break;
            }
        }
        drop(records);
        // The rest moves to the front.
        let cut = self
            .items
            .get(done)
            .map_or(self.bytes.len(), |item| item.data);
        self.bytes.drain(..cut);
        self.items.drain(..done);
        self.cost = 0;
        for item in &mut self.items {
            item.data -= cut;
            self.cost += (item.data_len + item.key_len + 8) as u64;
        }
        // Twice what is left, at least a whole aggregate more: each record is planned a
        // bounded number of times on average.
        self.threshold = (2 * self.cost)
            .max(self.cost + u64::from(self.max_bytes) + 64)
            .max(Self::first_threshold(self.max_bytes));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(ranges: &[(&str, &str)]) -> String {
        let list: Vec<String> = ranges
            .iter()
            .enumerate()
            .map(|(i, (start, end))| {
                format!(
                    "{{\"ShardId\":\"shardId-{i:012}\",\"HashKeyRange\":{{\"StartingHashKey\":\"{start}\",\"EndingHashKey\":\"{end}\"}}}}"
                )
            })
            .collect();
        format!("{{\"Shards\":[{}]}}", list.join(","))
    }

    const MAX: &str = "340282366920938463463374607431768211455";
    const HALF: &str = "170141183460469231731687303715884105728";
    const HALF_1: &str = "170141183460469231731687303715884105727";

    #[test]
    fn shard_files_are_sorted_and_checked() {
        // Out of order in the file: sorted by start.
        let parsed = parse_shards(shards(&[(HALF, MAX), ("0", HALF_1)]).as_bytes());
        let parsed = parsed.expect("a valid map");
        assert_eq!(parsed[0].id, "shardId-000000000001");
        assert_eq!(parsed[1].range.end, u128::MAX);

        let error = |text: String| parse_shards(text.as_bytes()).err().unwrap_or_default();
        assert!(error("[]".into()).contains("no \"Shards\" array"));
        assert!(error("{".into()).starts_with("not JSON"));
        assert!(error(shards(&[])).contains("no shard range"));
        assert!(error(shards(&[("0", "5")])).contains("ends at 5"));
        assert!(error(shards(&[("1", MAX)])).contains("starts at 1"));
        let gap = error(shards(&[("0", "5"), ("7", MAX)]));
        assert!(
            gap.contains("shardId-000000000001 starts at 7, shardId-000000000000 ends at 5"),
            "{gap}"
        );
        assert!(error(shards(&[("0", "x")])).contains("\"x\" is not a hash key"));
        let closed = r#"{"Shards":[{"ShardId":"s","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"},"SequenceNumberRange":{"StartingSequenceNumber":"1","EndingSequenceNumber":"2"}}]}"#;
        assert!(error(closed.into()).contains("s is closed"));
    }
}
