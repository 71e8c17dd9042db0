//! Shared pieces of the fuzz targets: input shapes (derived with `arbitrary`), a naive
//! reference model (as in `tests/properties.rs`), the call styles, and the invariant
//! checks. Every check panics with a message, which libFuzzer reports as a crash.

use std::collections::HashSet;

use arbitrary::Arbitrary;
use kinesis_batcher::{
    plan, Accumulator, Batch, Event, KeyUnit, Limits, Measure, Planner, Progress, Push, Reason,
    Record, Refusal, Stats, Status,
};

pub const MIB: usize = 1024 * 1024;

/// Payload bytes for every record view (never read by the core; zeroed, so in `.bss`).
pub static ZEROS: [u8; 10 * MIB + 4096] = [0; 10 * MIB + 4096];

/// Characters of 1 to 4 UTF-8 bytes (the last is 2 UTF-16 units).
pub const CHARS: [char; 7] = ['a', 'k', '7', '-', 'é', '€', '😀'];

// ---------------------------------------------------------------------------------------
// Input shapes
// ---------------------------------------------------------------------------------------

/// Limits: small custom ones (mostly), or a real profile.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct LimitsSpec {
    pub kind: u8,
    pub records: u8,
    pub request: u16,
    pub record: u16,
    pub unit: u8,
    pub count_hash_key: bool,
    pub keys: u8,
}

impl LimitsSpec {
    /// The limits, or `None` when `Limits::new` refuses the numbers (the input is skipped).
    pub fn limits(&self) -> Option<Limits> {
        let base = match self.kind % 8 {
            0 => Limits::KDS,
            1 => Limits::KDS_5MIB,
            2 => Limits::FIREHOSE,
            3 => Limits::kds_for_stream(1024 + u32::from(self.request) % 9217).ok()?,
            _ => {
                let records = u32::from(self.records % 9);
                let request = u32::from(self.request % 400);
                let record = u32::from(self.record) % (request + 2);
                Limits::new(records, request, record).ok()?
            }
        };
        let unit = match self.unit % 3 {
            0 => KeyUnit::CodePoints,
            1 => KeyUnit::Utf16Units,
            _ => KeyUnit::Utf8Bytes,
        };
        // Bit 2 of `keys` picks the range form, so existing corpus entries still parse.
        let limits = base
            .with_key_unit(unit)
            .counting_hash_key(self.count_hash_key)
            .spanning_refusals(self.keys & 4 != 0);
        Some(match self.keys % 4 {
            0 => limits.with_partition_keys(),
            1 => limits.without_partition_keys(),
            _ => limits,
        })
    }
}

/// A partition key: arbitrary bytes (invalid UTF-8 included), or one character repeated
/// around the 256-unit limit.
#[derive(Arbitrary, Debug, Clone)]
pub enum KeySpec {
    Bytes(Vec<u8>),
    Ascii(u8),
    Repeat { ch: u8, n: u16 },
}

impl KeySpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            KeySpec::Bytes(bytes) => bytes.iter().take(300).copied().collect(),
            KeySpec::Ascii(n) => "key-0123456789"
                .bytes()
                .cycle()
                .take(usize::from(*n % 16))
                .collect(),
            KeySpec::Repeat { ch, n } => {
                let ch = CHARS[usize::from(*ch) % CHARS.len()];
                std::iter::repeat_n(ch, usize::from(*n % 300))
                    .collect::<String>()
                    .into_bytes()
            }
        }
    }
}

/// An explicit hash key.
#[derive(Arbitrary, Debug, Clone)]
pub enum HashSpec {
    Bytes(Vec<u8>),
    Number(u128),
    Digits(u8),
    /// Around 2^128 - 1 = ...211455.
    Edge(u8),
}

impl HashSpec {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            HashSpec::Bytes(bytes) => bytes.iter().take(45).copied().collect(),
            HashSpec::Number(n) => n.to_string().into_bytes(),
            HashSpec::Digits(n) => "1234567890"
                .bytes()
                .cycle()
                .take(usize::from(*n % 42))
                .collect(),
            HashSpec::Edge(t) => format!(
                "340282366920938463463374607431768211{}",
                400 + u32::from(*t % 120)
            )
            .into_bytes(),
        }
    }
}

/// A record: its payload length (relative to the record cap), key and hash key.
#[derive(Arbitrary, Debug, Clone)]
pub struct RecSpec {
    pub near_cap: bool,
    pub len: u16,
    pub key: KeySpec,
    pub hash_key: Option<HashSpec>,
}

/// An owned record: the payload is a length, sliced from [`ZEROS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub data_len: usize,
    pub key: Vec<u8>,
    pub hash_key: Option<Vec<u8>>,
}

impl RecSpec {
    pub fn rec(&self, limits: &Limits) -> Rec {
        let cap = limits.max_record_bytes() as usize;
        let data_len = if self.near_cap {
            // cap - 63 ..= cap + 4
            (cap + 4).saturating_sub(usize::from(self.len % 68))
        } else {
            usize::from(self.len) % (cap.min(2048) + 3)
        };
        Rec {
            data_len: data_len.min(ZEROS.len()),
            key: self.key.bytes(),
            hash_key: self.hash_key.as_ref().map(HashSpec::bytes),
        }
    }
}

pub fn views(records: &[Rec]) -> Vec<Record<'_>> {
    records
        .iter()
        .map(|r| Record {
            data: &ZEROS[..r.data_len],
            key: &r.key,
            hash_key: r.hash_key.as_deref(),
        })
        .collect()
}

/// Output capacities, 1..=4 each, cycled through.
pub fn caps(raw: &[(u8, u8)]) -> Vec<(usize, usize)> {
    let caps: Vec<_> = raw
        .iter()
        .take(16)
        .map(|&(b, r)| (usize::from(b % 4) + 1, usize::from(r % 4) + 1))
        .collect();
    if caps.is_empty() {
        vec![(1, 1)]
    } else {
        caps
    }
}

// ---------------------------------------------------------------------------------------
// The reference model (no code shared with the library)
// ---------------------------------------------------------------------------------------

/// The reference model the property tests use too (tests/support/model.rs).
#[path = "../../tests/support/model.rs"]
mod shared_model;

pub mod model {
    use super::Rec;
    use kinesis_batcher::{Limits, Reason};

    pub use super::shared_model::{
        fewest_batches, greedy, hash_key_is_valid, key_units, measure_parts, runs,
    };

    pub fn measure(record: &Rec, limits: &Limits) -> Result<u128, Reason> {
        measure_parts(
            record.data_len as u128,
            &record.key,
            record.hash_key.as_deref(),
            limits,
        )
    }
}

// ---------------------------------------------------------------------------------------
// The call styles
// ---------------------------------------------------------------------------------------

/// Everything a plan reports, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub batches: Vec<Batch>,
    pub refusals: Vec<Refusal>,
}

/// The stats a plan's output implies.
pub fn tally(out: &Outcome) -> Stats {
    let mut stats = Stats {
        batches: out.batches.len() as u64,
        records: out.batches.iter().map(|b| u64::from(b.records)).sum(),
        bytes: out.batches.iter().map(|b| u64::from(b.bytes)).sum(),
        ..Stats::default()
    };
    for refusal in &out.refusals {
        stats.refused[refusal.reason as usize] += 1;
    }
    stats
}

/// `Planner::plan` in one call with room for the worst case.
pub fn bulk<M: Measure>(input: &[M], limits: Limits) -> Outcome {
    let room = input.len().max(1);
    let mut batches = vec![Batch::default(); room];
    let mut refusals = vec![Refusal::default(); room];
    let mut planner = Planner::new(limits);
    let progress = planner.plan(input, &mut batches, &mut refusals);
    assert_eq!(progress.status, Status::Done, "one big call");
    assert_eq!(planner.position(), input.len());
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    let out = Outcome { batches, refusals };
    assert_eq!(*planner.stats(), tally(&out), "bulk stats");
    out
}

/// `Planner::plan` resumed through tiny arrays, checking each call's status, and that a
/// refusal inside a batch's range is written no later than the call writing the batch.
pub fn resumed<M: Measure>(input: &[M], limits: Limits, caps: &[(usize, usize)]) -> Outcome {
    let mut planner = Planner::new(limits);
    let mut out = Outcome::default();
    let (mut batch_calls, mut refusal_calls) = (Vec::new(), Vec::new());
    let mut previous = None;
    for call in 0.. {
        assert!(
            call <= 2 * input.len() + 2,
            "resumed plan makes no progress"
        );
        let (room_b, room_r) = caps[call % caps.len()];
        // Sentinels: entries past the counts must be left as they were.
        let sentinel_b = Batch {
            start: usize::MAX,
            end: 7,
            records: 3,
            bytes: 9,
        };
        let sentinel_r = Refusal {
            index: usize::MAX,
            reason: Reason::KeyEmpty,
        };
        let mut batches = vec![sentinel_b; room_b];
        let mut refusals = vec![sentinel_r; room_r];
        let progress = planner.plan(input, &mut batches, &mut refusals);
        assert!(progress.batches <= room_b && progress.refusals <= room_r);
        assert!(batches[progress.batches..].iter().all(|b| *b == sentinel_b));
        assert!(refusals[progress.refusals..]
            .iter()
            .all(|r| *r == sentinel_r));
        match previous {
            Some(Status::BatchesFull) => {
                assert!(progress.batches >= 1, "BatchesFull, then no batch")
            }
            Some(Status::RefusalsFull) => {
                assert!(progress.refusals >= 1, "RefusalsFull, then no refusal")
            }
            _ => {}
        }
        match progress.status {
            Status::BatchesFull => assert_eq!(progress.batches, room_b),
            Status::RefusalsFull => assert_eq!(progress.refusals, room_r),
            Status::Done => {}
            Status::Unreadable => panic!("every Record is readable"),
            Status::InputChanged => panic!("the same input every call"),
        }
        out.batches.extend_from_slice(&batches[..progress.batches]);
        out.refusals
            .extend_from_slice(&refusals[..progress.refusals]);
        batch_calls.resize(out.batches.len(), call);
        refusal_calls.resize(out.refusals.len(), call);
        assert_eq!(*planner.stats(), tally(&out), "resumed stats mid-plan");
        if progress.status == Status::Done {
            break;
        }
        previous = Some(progress.status);
    }
    assert_eq!(planner.position(), input.len());
    let again = planner.plan(input, &mut [Batch::default()], &mut [Refusal::default()]);
    assert_eq!(
        again,
        Progress {
            status: Status::Done,
            batches: 0,
            refusals: 0
        },
        "a call after Done wrote something"
    );
    for (batch, &bc) in out.batches.iter().zip(&batch_calls) {
        for (refusal, &rc) in out.refusals.iter().zip(&refusal_calls) {
            if batch.range().contains(&refusal.index) {
                assert!(
                    rc <= bc,
                    "refusal {refusal:?} written after the batch {batch:?} spanning it"
                );
            }
        }
    }
    out
}

/// The `plan(..)` iterator, checking refusals come before the batch spanning them.
pub fn cursor<M: Measure>(input: &[M], limits: Limits) -> Outcome {
    let mut events = plan(input, limits);
    let mut out = Outcome::default();
    let mut steps = 0;
    while let Some(event) = events.next() {
        steps += 1;
        assert!(
            steps <= 2 * input.len(),
            "more events than the input allows"
        );
        match event {
            Event::Batch(batch) => {
                let refused = out
                    .refusals
                    .iter()
                    .filter(|r| batch.range().contains(&r.index))
                    .count();
                assert_eq!(
                    refused,
                    batch.refused(),
                    "batch {batch:?} came before a refusal it spans"
                );
                out.batches.push(batch);
            }
            Event::Refused(refusal) => out.refusals.push(refusal),
        }
        assert_eq!(*events.stats(), tally(&out), "cursor stats");
    }
    assert_eq!(events.next(), None, "the iterator is fused");
    out
}

/// Cursor and bulk calls mixed on one planner.
pub fn mixed<M: Measure>(
    input: &[M],
    limits: Limits,
    schedule: &[Option<(usize, usize)>],
) -> Outcome {
    let mut planner = Planner::new(limits);
    let mut out = Outcome::default();
    for call in 0.. {
        assert!(call <= 2 * input.len() + 2, "mixed plan makes no progress");
        match schedule[call % schedule.len()] {
            None => match planner.next_event(input) {
                None => break,
                Some(Event::Batch(batch)) => out.batches.push(batch),
                Some(Event::Refused(refusal)) => out.refusals.push(refusal),
            },
            Some((room_b, room_r)) => {
                let mut batches = vec![Batch::default(); room_b];
                let mut refusals = vec![Refusal::default(); room_r];
                let progress = planner.plan(input, &mut batches, &mut refusals);
                out.batches.extend_from_slice(&batches[..progress.batches]);
                out.refusals
                    .extend_from_slice(&refusals[..progress.refusals]);
                if progress.status == Status::Done {
                    break;
                }
            }
        }
    }
    out
}

/// `Accumulator::push` for every record, then `flush`.
pub fn accumulate<M: Measure>(input: &[M], limits: Limits) -> Outcome {
    let mut acc = Accumulator::new(limits);
    let mut out = Outcome::default();
    for (index, record) in input.iter().enumerate() {
        assert_eq!(acc.pushed(), index);
        match acc.push(record) {
            Push::Added => {}
            Push::SendFirst(batch) => out.batches.push(batch),
            Push::Refused(reason) => out.refusals.push(Refusal { index, reason }),
        }
        if !matches!(out.refusals.last(), Some(r) if r.index == index) {
            assert_eq!(acc.pending().map(|b| b.end), Some(index + 1));
        }
        assert_eq!(*acc.stats(), tally(&out), "accumulator stats");
    }
    if let Some(batch) = acc.flush() {
        out.batches.push(batch);
    }
    assert_eq!(acc.pending(), None);
    assert_eq!(acc.flush(), None);
    assert_eq!(*acc.stats(), tally(&out));
    out
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

/// The accepted indices of each batch: its range less the refused indices.
pub fn groups(out: &Outcome) -> Vec<Vec<usize>> {
    let refused: HashSet<usize> = out.refusals.iter().map(|r| r.index).collect();
    out.batches
        .iter()
        .map(|b| b.range().filter(|i| !refused.contains(i)).collect())
        .collect()
}

/// Conservation, order, limits, reasons, greedy and minimal: `out` is the plan of
/// records whose measures (by the library) are `measures` and by the model `model`.
pub fn check_plan(
    out: &Outcome,
    measures: &[Result<u32, Reason>],
    model: &[Result<u128, Reason>],
    limits: &Limits,
) {
    let n = measures.len();
    // Reasons: the library's own measure, and the model's.
    for (i, (m, r)) in measures.iter().zip(model).enumerate() {
        assert_eq!(
            m.map(u128::from),
            *r,
            "measure of record {i} differs from the model under {limits:?}"
        );
        if let Ok(size) = m {
            assert!(*size <= limits.max_record_bytes());
        }
    }
    let expected_refusals: Vec<Refusal> = measures
        .iter()
        .enumerate()
        .filter_map(|(index, m)| m.err().map(|reason| Refusal { index, reason }))
        .collect();
    assert_eq!(
        out.refusals, expected_refusals,
        "refusals (in order, with Measure::measure's reasons)"
    );
    // Conservation.
    let refused: HashSet<usize> = out.refusals.iter().map(|r| r.index).collect();
    let mut reported = vec![0usize; n];
    for r in &out.refusals {
        reported[r.index] += 1;
    }
    for b in &out.batches {
        assert!(b.start < b.end && b.end <= n, "bad range {b:?}");
        assert!(
            !refused.contains(&b.start) && !refused.contains(&(b.end - 1)),
            "batch {b:?} starts or ends on a refusal"
        );
        for i in b.range().filter(|i| !refused.contains(i)) {
            reported[i] += 1;
        }
    }
    for (i, times) in reported.iter().enumerate() {
        assert_eq!(*times, 1, "index {i} reported {times} times");
    }
    // Order.
    for pair in out.batches.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "batches overlap or out of order: {pair:?}"
        );
    }
    // Limits and bytes.
    let groups = groups(out);
    for (b, group) in out.batches.iter().zip(&groups) {
        assert!(b.records >= 1 && b.records <= limits.max_records(), "{b:?}");
        assert_eq!(b.records as usize, group.len());
        assert_eq!(b.refused(), b.end - b.start - group.len());
        if !limits.spans_refusals() {
            assert_eq!(b.refused(), 0, "{b:?} holds a refused record");
        }
        assert!(b.bytes <= limits.max_request_bytes(), "{b:?}");
        let bytes: u64 = group.iter().map(|&i| u64::from(measures[i].unwrap())).sum();
        assert_eq!(u64::from(b.bytes), bytes, "{b:?}");
    }
    // Greedy and minimal.
    assert_eq!(groups, model::greedy(model, limits), "not the greedy plan");
    let fewest: usize = model::runs(model, limits)
        .iter()
        .map(|run| model::fewest_batches(run, limits))
        .sum();
    assert_eq!(out.batches.len(), fewest, "not the fewest batches");
}
