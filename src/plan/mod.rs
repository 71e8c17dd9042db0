//! The planner: records in, batches (index ranges) and refusals out, in input order.
//!
//! One engine (the private `Packer`) decides every boundary: it fills the open batch greedily and
//! closes it when the next accepted record would break a limit. Greedy in-order filling
//! gives the fewest requests any order-keeping plan can. Three call styles drive it and
//! therefore produce identical plans:
//!
//! * [`Planner::plan`] (bulk): caller-provided output arrays, resumable when they fill;
//! * [`Planner::next_event`] and [`Plan`] (cursor): one event per call, O(1) state;
//! * [`Accumulator::push`]: one record at a time, for agents that receive a stream.
//!
//! # Batches and the refused records inside them
//!
//! A [`Batch`] is the range `start..end` of input indices from its first accepted record
//! to its last. By default a refused record closes the open batch, so a batch never holds
//! one: `start..end` is the request as it stands, whatever the input. With
//! [`Limits::spanning_refusals`] a refused record does not split a batch (the fewest
//! requests), so the range can hold refused indices; [`Batch::refused`] says how many
//! (`end - start - records`). When it is zero the range is the request; when it is not, the refused
//! indices in the range are exactly those reported as [`Refusal`]s with an index in the
//! range, and they are always reported *before* (or in the same bulk call as) the batch
//! that spans them, so a caller can mark them as they arrive and skip them when sending.
//! Every input index is reported exactly once: as an accepted record of one batch, or as
//! one refusal.

mod accumulator;
mod planner;

pub use accumulator::{Accumulator, Push};
pub use planner::{Plan, Planner, Progress, Status, plan};

use crate::cost::{Measure, Reason};
use crate::limits::Limits;

/// One request: the input indices from `start` up to `end` (excluded), of which `records`
/// are accepted. By default a refused record closes the open batch, so every index in
/// the range is accepted (`records == end - start`) and the range is the request as it
/// stands. When the limits let batches span refused records, the other
/// `end - start - records` indices in the range are refused records, each reported as a
/// refusal before or with the batch: skip them when sending.
#[cfg_attr(doc, doc = "")]
#[cfg_attr(
    doc,
    doc = "[`Batch::range`] is the range and [`Batch::refused`] counts the refused indices \
           in it; [`Limits::spanning_refusals`] lets batches span refused records. The \
           layout is C's (`kb_batch`), so the C ABI writes batches straight into the \
           caller's array."
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Batch {
    /// Index of the first accepted record.
    pub start: usize,
    /// One past the index of the last accepted record.
    pub end: usize,
    /// Accepted records in the batch: at least 1, at most the limits' `max_records`.
    pub records: u32,
    /// Sum of the accepted records' sizes, as the service counts them: at most the
    /// limits' `max_request_bytes`.
    pub bytes: u32,
}

impl Batch {
    /// The input indices the batch spans.
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }

    /// How many refused records lie inside the range; 0 means every index in
    /// [`Batch::range`] belongs to the request.
    pub const fn refused(&self) -> usize {
        // Saturating, so a hand-made inconsistent batch gives 0 rather than a panic.
        self.end
            .saturating_sub(self.start)
            .saturating_sub(self.records as usize)
    }
}

/// A refused record: its index in the input and why it can never be sent.
#[cfg_attr(doc, doc = "")]
#[cfg_attr(doc, doc = "The layout is C's (`kb_refusal`, its reason a `uint8_t`).")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Refusal {
    /// The record's index in the input.
    pub index: usize,
    /// Why it can never be sent.
    pub reason: Reason,
}

impl Default for Refusal {
    fn default() -> Self {
        Refusal {
            index: 0,
            reason: Reason::RecordTooLarge,
        }
    }
}

/// One step of a plan, in input order: a batch closed, or a record refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A batch is complete: send it.
    Batch(Batch),
    /// A record can never be sent.
    Refused(Refusal),
}

/// Counters of a plan so far. Batches count once they are closed.
#[cfg_attr(doc, doc = "")]
#[cfg_attr(doc, doc = "The layout is C's (`kb_stats`).")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Stats {
    /// Batches closed.
    pub batches: u64,
    /// Records in closed batches.
    pub records: u64,
    /// Bytes (as the service counts them) in closed batches.
    pub bytes: u64,
    /// Refused records, indexed by the reason's value.
    #[cfg_attr(
        doc,
        doc = "[`Stats::refused_for`] reads one. The length is [`Reason::COUNT`], spelled \
               `5` for cbindgen."
    )]
    pub refused: [u64; 5],
}

impl Stats {
    /// Refused records for one reason.
    pub const fn refused_for(&self, reason: Reason) -> u64 {
        self.refused[reason as usize]
    }

    /// Refused records for every reason.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().fold(0, |sum, &n| sum.saturating_add(n))
    }

    /// How full the batches are by bytes: bytes / (batches × request cap), in 0..=1;
    /// 0 when there is no batch.
    pub fn byte_fill(&self, limits: &Limits) -> f64 {
        ratio(
            self.bytes,
            self.batches
                .saturating_mul(u64::from(limits.max_request_bytes())),
        )
    }

    /// How full the batches are by count: records / (batches × record count cap).
    pub fn record_fill(&self, limits: &Limits) -> f64 {
        ratio(
            self.records,
            self.batches.saturating_mul(u64::from(limits.max_records())),
        )
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// How many records the bulk planner tries to add to the open batch at once.
pub(crate) const CHUNK: usize = 8;

/// The engine every call style shares: the open batch and the counters. It knows
/// nothing of where records come from; callers measure, ask [`Packer::fits`], then
/// [`Packer::add`] (after [`Packer::close`] when the record does not fit).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packer {
    limits: Limits,
    open: Batch,
    /// Records the open batch may hold: the limits' `max_records`, or 0 once a refusal
    /// has sealed it (unless batches span refusals), so that the next accepted record
    /// closes it through the same comparison every record already makes.
    room: u32,
    stats: Stats,
}

impl Packer {
    pub(crate) const fn new(limits: Limits) -> Packer {
        Packer {
            limits,
            open: Batch {
                start: 0,
                end: 0,
                records: 0,
                bytes: 0,
            },
            room: limits.max_records(),
            stats: Stats {
                batches: 0,
                records: 0,
                bytes: 0,
                refused: [0; Reason::COUNT],
            },
        }
    }

    pub(crate) const fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The batch being filled, if it holds a record.
    pub(crate) const fn open(&self) -> Option<&Batch> {
        if self.open.records == 0 {
            None
        } else {
            Some(&self.open)
        }
    }

    /// Whether an accepted record of `size` bytes can join the open batch. Always true
    /// when no batch is open: a measured record is never above the record cap, and the
    /// record cap is never above the request cap.
    #[inline(always)]
    pub(crate) fn fits(&self, size: u32) -> bool {
        self.open.records == 0
            || (self.open.records < self.room
                && self.open.bytes + size <= self.limits.max_request_bytes())
    }

    /// Adds the accepted record `index`; the caller has checked [`Packer::fits`].
    #[inline(always)]
    pub(crate) fn add(&mut self, index: usize, size: u32) {
        debug_assert!(self.fits(size));
        if self.open.records == 0 {
            self.open.start = index;
        }
        self.open.end = index + 1;
        self.open.records += 1;
        self.open.bytes += size;
    }

    /// Adds `chunk`, the records from input index `index` on, as a whole when every one
    /// is accepted and all fit in the open batch, which is then exactly what adding them
    /// one by one would do; otherwise changes nothing and returns `false`.
    #[inline(always)]
    pub(crate) fn add_chunk<M: Measure>(&mut self, chunk: &[M], index: usize) -> bool {
        // A refused record weighs more than any request may hold, so one comparison of the
        // sum says both "all accepted" and "all fit".
        debug_assert!(chunk.len() <= 64);
        let records = self.open.records as usize + chunk.len();
        if records > self.room as usize {
            return false;
        }
        // A copy, for the reason given in `Accumulator::push`.
        let limits = self.limits;
        let sum = M::weigh(chunk, &limits);
        if sum > u64::from(self.limits.max_request_bytes() - self.open.bytes) {
            return false;
        }
        if self.open.records == 0 {
            self.open.start = index;
        }
        self.open.end = index + chunk.len();
        // Lossless: at most max_records and max_request_bytes, both u32.
        self.open.records = records as u32;
        self.open.bytes += sum as u32;
        true
    }

    /// Counts a refused record, and seals the open batch unless batches span refusals.
    ///
    /// Every counter is written at a fixed offset: an index known only at run time would
    /// keep the whole packer in memory (LLVM's SROA gives up on the aggregate), so that
    /// each record of a planning loop would store and reload the open batch.
    #[inline]
    pub(crate) fn refuse(&mut self, reason: Reason) {
        let r = reason as usize;
        let [a, b, c, d, e] = &mut self.stats.refused;
        *a += u64::from(r == 0);
        *b += u64::from(r == 1);
        *c += u64::from(r == 2);
        *d += u64::from(r == 3);
        *e += u64::from(r == 4);
        self.seal();
    }

    /// After a refused record: closes the open batch at the next accepted record, unless
    /// batches span refusals.
    #[inline]
    pub(crate) fn seal(&mut self) {
        if !self.limits.spans_refusals() && self.open.records != 0 {
            self.room = 0;
        }
    }

    /// Closes the open batch, if it holds a record.
    #[inline]
    pub(crate) fn close(&mut self) -> Option<Batch> {
        if self.open.records == 0 {
            return None;
        }
        let batch = self.open;
        self.room = self.limits.max_records();
        self.open.records = 0;
        self.open.bytes = 0;
        self.stats.batches += 1;
        self.stats.records += u64::from(batch.records);
        self.stats.bytes += u64::from(batch.bytes);
        Some(batch)
    }
}
