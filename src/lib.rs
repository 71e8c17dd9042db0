//! Cuts records into AWS Kinesis `PutRecords` (or Firehose `PutRecordBatch`) requests.
//!
//! The core answers one question for an array of records the caller owns: which records
//! go together into which request, and which can never be sent and why. It reads record
//! lengths and partition-key bytes, never payloads; it never copies and never allocates
//! (`#![no_std]`, no `alloc`). Its answers are index ranges over the caller's array.
//!
//! * [`limits`]: the service's limits as data, three profiles and validated custom sets;
//! * [`cost`]: the service's size accounting and the reasons a record is refused;
//! * [`plan`](mod@plan): the greedy in-order planner, in three call styles over one engine;
//! * [`lines`]: newline-delimited buffers split with memchr and planned in the same pass;
//! * [`retry`]: partial failures re-planned without loss, duplicates or reordering;
//! * [`shards`]: partition key to hash key to shard, over the caller's shard ranges;
//! * [`aggregate`]: many user records in one Kinesis record (the KPL's format), planned,
//!   encoded into the caller's buffer and decoded, safe from the KCL's drops;
//! * [`engine`]: a sans-IO producer over time: linger, many requests in flight, per-shard
//!   rate limits, credentials pauses; the caller owns the clock, sockets and memory;
//! * `ffi` (feature `ffi`): the C ABI, `include/kinesis_batcher.h`.
//!
//! ```
//! use kinesis_batcher::{plan, Event, Limits, Record};
//!
//! let records: Vec<Record> = (0..1200).map(|_| Record::new(b"payload", b"user-42")).collect();
//! let mut sent = 0;
//! for event in plan(&records, Limits::KDS) {
//!     match event {
//!         Event::Batch(batch) => {
//!             assert!(batch.records <= 500);
//!             sent += batch.records; // send &records[batch.range()] here
//!         }
//!         Event::Refused(refusal) => eprintln!("record {}: {}", refusal.index, refusal.reason),
//!     }
//! }
//! assert_eq!(sent, 1200);
//! ```
//!
//! Every call is re-entrant: there is no global state, and planners are plain values.

#![no_std]
#![deny(missing_docs, unsafe_code, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "ffi")]
extern crate std;

pub mod aggregate;
pub mod cost;
pub mod engine;
#[cfg(feature = "ffi")]
pub mod ffi;
pub mod limits;
pub mod lines;
mod output;
pub mod plan;
pub mod retry;
pub mod shards;

pub use cost::{Measure, Reason, Record, RecordSize};
pub use limits::{KeyUnit, Limits, LimitsError};
pub use plan::{
    Accumulator, Batch, Event, Plan, Planner, Progress, Push, Refusal, Stats, Status, plan,
};

/// The README's Rust examples, compiled and run as doc tests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
