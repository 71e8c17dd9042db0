//! Property tests: the planner against a deliberately naive reference model.
//!
//! The model (module [`model`]) re-derives every rule from the service's documentation
//! with the plainest tools there are: `String::from_utf8`, `chars().count()`,
//! `encode_utf16().count()`, `len()`, a checked u128 parse of hash keys, u128 sums, a
//! greedy packer over a `Vec<Vec<usize>>`, and a dynamic program for the fewest batches.
//! It shares no code with the library beyond reading the limits' getters.
//!
//! Inputs are small (0..40 records) under tiny custom limits, so that batch boundaries
//! are hit constantly; some cases use the real profiles with lengths near their caps
//! (payloads are slices of one static zeroed buffer: the planner never reads them), and a
//! few have ~500..1000 tiny records so that the 500-records cap is crossed.
//!
//! Every property runs at least 10,000 cases (more with `PROPTEST_CASES`). Failures are not
//! persisted to a regressions file; proptest prints the minimal failing input instead.

#[path = "support/records.rs"]
mod records;
use records::{Rec, ZEROS, views};

use std::collections::HashSet;

use kinesis_batcher::{
    Accumulator, Batch, Event, KeyUnit, Limits, LimitsError, Measure, Planner, Progress, Push,
    Reason, Record, RecordSize, Refusal, Stats, Status, plan,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{RngAlgorithm, TestCaseError};

const MIB: usize = 1024 * 1024;

fn config() -> ProptestConfig {
    ProptestConfig {
        // Not written next to this file: other people share the tree.
        failure_persistence: None,
        // Several times faster than the default ChaCha in an unoptimized test build,
        // where generating inputs is most of the run time.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::with_cases(ProptestConfig::default().cases.max(10_000))
    }
}

// ---------------------------------------------------------------------------------------
// Test inputs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Case {
    limits: Limits,
    records: Vec<Rec>,
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[path = "support/model.rs"]
mod shared_model;

mod model {
    use super::{LimitsError, MIB, Rec};
    use kinesis_batcher::{Limits, Reason};

    use super::shared_model as shared;
    pub use shared::{hash_key_is_valid, key_units};

    /// A record's size, or the first reason in the documented precedence.
    pub fn measure(record: &Rec, limits: &Limits) -> Result<u128, Reason> {
        shared::measure_parts(
            record.data_len as u128,
            &record.key,
            record.hash_key.as_deref(),
            limits,
        )
    }

    /// The model's plan: each record's measure, and the greedy groups of accepted indices.
    pub struct Plan {
        pub measures: Vec<Result<u128, Reason>>,
        pub batches: Vec<Vec<usize>>,
    }

    impl Plan {
        pub fn refusals(&self) -> Vec<(usize, Reason)> {
            let refused = self.measures.iter().enumerate();
            refused
                .filter_map(|(i, m)| m.err().map(|r| (i, r)))
                .collect()
        }

        /// Sizes of the accepted records, in input order.
        pub fn accepted_sizes(&self) -> Vec<u128> {
            self.measures.iter().filter_map(|m| m.ok()).collect()
        }

        pub fn size(&self, index: usize) -> u128 {
            self.measures[index].unwrap()
        }

        /// The fewest batches any order-keeping plan can make: the dynamic program over
        /// each run of accepted records a batch may cover.
        pub fn fewest_batches(&self, limits: &Limits) -> usize {
            let runs = shared::runs(&self.measures, limits);
            runs.iter()
                .map(|run| shared::fewest_batches(run, limits))
                .sum()
        }
    }

    /// Greedy in order: start a new group when the next accepted record would not fit (or,
    /// unless batches span refusals, after a refused record).
    pub fn plan(records: &[Rec], limits: &Limits) -> Plan {
        let measures: Vec<_> = records.iter().map(|r| measure(r, limits)).collect();
        let batches = shared::greedy(&measures, limits);
        Plan { measures, batches }
    }

    /// The first rule `Limits::new` must refuse, in the documented order.
    pub fn limits_error(records: u32, request: u32, record: u32) -> Option<LimitsError> {
        let ten_mib = 10 * MIB as u32;
        let rules = [
            (records == 0, LimitsError::ZeroRecords),
            (request == 0, LimitsError::ZeroRequestBytes),
            (record == 0, LimitsError::ZeroRecordBytes),
            (records > 500, LimitsError::RecordsAboveService),
            (request > ten_mib, LimitsError::RequestBytesAboveService),
            (record > ten_mib, LimitsError::RecordBytesAboveService),
            (record > request, LimitsError::RecordAboveRequest),
        ];
        rules.iter().find(|(broken, _)| *broken).map(|(_, e)| *e)
    }
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// ASCII, and 2-, 3- and 4-byte UTF-8 characters (the last is 2 UTF-16 units).
const CHARS: &[char] = &['a', 'k', '7', '-', 'é', '€', '😀'];

fn string_of(chars: impl IntoIterator<Item = char>) -> Vec<u8> {
    chars.into_iter().collect::<String>().into_bytes()
}

/// Counts that put a key of one repeated character of [`CHARS`] around 256 units in
/// some unit: 64 four-byte chars are 256 bytes, 85/86 three-byte ones 255/258 bytes,
/// 128 two-byte or 128 emoji 256 bytes or UTF-16 units, 256 chars 256 code points.
fn around_256_units() -> impl Strategy<Value = usize> {
    prop_oneof![62usize..=66, 84usize..=87, 126usize..=130, 250usize..=262]
}

/// Invalid UTF-8: a bad sequence between valid text, sometimes after a long ASCII run so
/// that the key would also be too long (encoding must win).
fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    const BAD: &[&[u8]] = &[
        b"\xff",
        b"\xfe",
        b"\x80",             // lone continuation byte
        b"\xc3",             // truncated 2-byte
        b"\xe2\x82",         // truncated 3-byte
        b"\xf0\x9f\x98",     // truncated 4-byte
        b"\xc0\xaf",         // overlong
        b"\xed\xa0\x80",     // surrogate
        b"\xf4\x90\x80\x80", // above U+10FFFF
    ];
    let pad = prop_oneof![4 => Just(0usize), 1 => 250usize..=300];
    let text = || vec(select(CHARS), 0..4);
    (pad, text(), select(BAD), text()).prop_map(|(pad, before, bad, after)| {
        let mut key = "a".repeat(pad).into_bytes();
        key.extend(string_of(before));
        key.extend_from_slice(bad);
        key.extend(string_of(after));
        key
    })
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    const ASCII: &[u8] = b"abcxyz0129-_";
    prop_oneof![
        5 => vec(select(ASCII), 1..10),
        3 => vec(select(CHARS), 1..10).prop_map(string_of),
        1 => Just(Vec::new()),
        2 => (select(CHARS), around_256_units())
            .prop_map(|(c, n)| string_of(std::iter::repeat_n(c, n))),
        1 => (vec(select(CHARS), 1..4), 60usize..270)
            .prop_map(|(pattern, n)| string_of(pattern.into_iter().cycle().take(n))),
        2 => invalid_utf8(),
        1 => vec(any::<u8>(), 0..8),
    ]
}

fn hash_key() -> impl Strategy<Value = Option<Vec<u8>>> {
    const FIXED: &[&str] = &[
        "0",
        "00",
        "01",
        "0123",
        "",
        "340282366920938463463374607431768211455", // 2^128 - 1
        "340282366920938463463374607431768211456", // 2^128
        "3402823669209384634633746074317682114550", // 40 digits
        "999999999999999999999999999999999999999",
        "100000000000000000000000000000000000000",
        "-1",
        "+1",
        " 1",
        "1 ",
        "12a",
        "1e3",
        "0x10",
        "١٢", // Arabic-Indic digits: not ASCII digits
    ];
    let some = |s: String| Some(s.into_bytes());
    prop_oneof![
        8 => Just(None),
        3 => any::<u128>().prop_map(move |v| some(v.to_string())),
        1 => (0u64..100).prop_map(move |v| some(v.to_string())),
        2 => select(FIXED).prop_map(move |s| some(s.to_owned())),
        // Around 2^128 - 1 = ...211455.
        1 => (400u32..=520).prop_map(move |t| some(format!("340282366920938463463374607431768211{t}"))),
        1 => vec(select(b"0123456789".as_slice()), 0..42).prop_map(Some),
        1 => vec(any::<u8>(), 0..5).prop_map(Some),
    ]
}

/// The same limits with a random key unit, hash-key counting, batches spanning refusals
/// or not, and (sometimes) keys switched on or off.
fn vary(base: Limits) -> impl Strategy<Value = Limits> {
    const UNITS: &[KeyUnit] = &[KeyUnit::CodePoints, KeyUnit::Utf16Units, KeyUnit::Utf8Bytes];
    let keys = prop_oneof![2 => Just(None), 1 => Just(Some(true)), 1 => Just(Some(false))];
    (select(UNITS), any::<bool>(), any::<bool>(), keys).prop_map(
        move |(unit, count, span, keys)| {
            let limits = base
                .with_key_unit(unit)
                .counting_hash_key(count)
                .spanning_refusals(span);
            match keys {
                None => limits,
                Some(true) => limits.with_partition_keys(),
                Some(false) => limits.without_partition_keys(),
            }
        },
    )
}

/// Tiny custom limits: 1..=6 records, 1..=200 bytes per request, record cap <= that.
fn small_limits() -> impl Strategy<Value = Limits> {
    (1u32..=6, 1u32..=200)
        .prop_flat_map(|(r, q)| (Just(r), Just(q), 1..=q))
        .prop_flat_map(|(r, q, c)| vary(Limits::new(r, q, c).unwrap()))
}

/// The shipped profiles, and KDS for a stream with a raised record cap.
fn profile_limits() -> impl Strategy<Value = Limits> {
    let stream = |kib: u32| Limits::kds_for_stream(kib).unwrap();
    prop_oneof![
        Just(Limits::KDS),
        Just(Limits::KDS_5MIB),
        Just(Limits::FIREHOSE),
        (1024u32..=10240).prop_map(stream),
        Just(stream(10240)),
    ]
    .prop_flat_map(vary)
}

/// `x` give or take `d`, within [`ZEROS`].
fn near(x: usize, d: usize) -> std::ops::RangeInclusive<usize> {
    x.saturating_sub(d)..=(x + d).min(ZEROS.len())
}

/// Payload lengths for tiny limits: mostly fitting, some at or past the record cap.
fn small_data(limits: Limits) -> impl Strategy<Value = usize> {
    let cap = limits.max_record_bytes() as usize;
    prop_oneof![3 => 0..=cap / 2, 2 => 0..=cap + 2, 1 => near(cap, 3)]
}

/// Payload lengths for a real profile: tiny, at the record cap (less a key or not), or
/// a k-th of the request cap for the smallest k that makes a k-th fit one record.
fn profile_data(limits: Limits) -> impl Strategy<Value = usize> {
    let cap = limits.max_record_bytes() as usize;
    let request = limits.max_request_bytes() as usize;
    let k = request.div_ceil(cap);
    prop_oneof![
        2 => 0..64usize,
        2 => near(cap, 1100),
        2 => (k..k + 4).prop_flat_map(move |k| near(request / k, 300)),
    ]
}

fn record<D: Strategy<Value = usize>>(data: D) -> impl Strategy<Value = Rec> {
    (data, key(), hash_key()).prop_map(|(data_len, key, hash_key)| Rec {
        data_len,
        key,
        hash_key,
    })
}

/// ~500..1000 small records (one repeated, a few random ones dropped in) under a real
/// profile, so that the 500-records cap splits batches.
fn many_records(limits: Limits) -> impl Strategy<Value = Case> {
    let filler = (0usize..16, vec(select(b"abc".as_slice()), 1..4)).prop_map(|(n, key)| Rec {
        data_len: n,
        key,
        hash_key: None,
    });
    let odd = vec((any::<Index>(), record(0usize..64)), 0..6);
    (495usize..=1005, filler, odd).prop_map(move |(n, filler, odd)| {
        let mut records = vec![filler; n];
        for (at, record) in odd {
            records[at.index(n)] = record;
        }
        Case { limits, records }
    })
}

fn case() -> impl Strategy<Value = Case> {
    let small = small_limits().prop_flat_map(|limits| {
        vec(record(small_data(limits)), 0..40).prop_map(move |records| Case { limits, records })
    });
    let profile = profile_limits().prop_flat_map(|limits| {
        vec(record(profile_data(limits)), 0..40).prop_map(move |records| Case { limits, records })
    });
    prop_oneof![
        12 => small,
        6 => profile,
        1 => profile_limits().prop_flat_map(many_records),
    ]
}

/// Output capacities for resumed bulk calls, cycled through: 1..=4 for each array.
fn capacities() -> impl Strategy<Value = Vec<(usize, usize)>> {
    vec((1usize..=4, 1usize..=4), 1..8)
}

/// Calls for a planner driven both ways: `None` is a cursor call, `Some` a bulk call.
fn mixed_schedule() -> impl Strategy<Value = Vec<Option<(usize, usize)>>> {
    vec(proptest::option::of((1usize..=4, 1usize..=4)), 1..8)
}

// ---------------------------------------------------------------------------------------
// Driving the library
// ---------------------------------------------------------------------------------------

/// Everything a plan reports, in the order reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Outcome {
    batches: Vec<Batch>,
    refusals: Vec<Refusal>,
}

/// A finished plan, with the stats at the end and after each step along the way
/// (batches written so far, refusals written so far, stats then).
#[derive(Debug)]
struct Run {
    out: Outcome,
    stats: Stats,
    checkpoints: Vec<(usize, usize, Stats)>,
}

impl Run {
    fn new(out: Outcome, stats: Stats, checkpoints: Vec<(usize, usize, Stats)>) -> Run {
        Run {
            out,
            stats,
            checkpoints,
        }
    }
}

/// `Planner::plan` once, with room for the worst case.
fn bulk<M: Measure>(input: &[M], limits: Limits) -> Result<Run, TestCaseError> {
    let room = input.len().max(1);
    let mut batches = vec![Batch::default(); room];
    let mut refusals = vec![Refusal::default(); room];
    let mut planner = Planner::new(limits);
    let progress = planner.plan(input, &mut batches, &mut refusals);
    prop_assert_eq!(progress.status, Status::Done);
    prop_assert_eq!(planner.position(), input.len());
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    let stats = *planner.stats();
    let checkpoint = (batches.len(), refusals.len(), stats);
    Ok(Run::new(
        Outcome { batches, refusals },
        stats,
        vec![checkpoint],
    ))
}

/// `Planner::plan` resumed with tiny arrays, drained after every call. Checks each
/// call's status against what it wrote, and that a refusal inside a batch's range is
/// written no later than the call that writes the batch.
fn resumed<M: Measure>(
    input: &[M],
    limits: Limits,
    caps: &[(usize, usize)],
) -> Result<Run, TestCaseError> {
    let mut planner = Planner::new(limits);
    let mut out = Outcome::default();
    let (mut batch_calls, mut refusal_calls) = (Vec::new(), Vec::new());
    let mut checkpoints = Vec::new();
    let mut previous: Option<Status> = None;
    for call in 0.. {
        // Every call but the last writes something, and there are at most 2n things.
        prop_assert!(
            call <= 2 * input.len() + 2,
            "resumed plan makes no progress"
        );
        let (room_b, room_r) = caps[call % caps.len()];
        let mut batches = vec![Batch::default(); room_b];
        let mut refusals = vec![Refusal::default(); room_r];
        let progress = planner.plan(input, &mut batches, &mut refusals);
        prop_assert!(progress.batches <= room_b && progress.refusals <= room_r);
        match previous {
            // "another batch is ready" / "another record is refused"
            Some(Status::BatchesFull) => prop_assert!(progress.batches >= 1),
            Some(Status::RefusalsFull) => prop_assert!(progress.refusals >= 1),
            _ => {}
        }
        match progress.status {
            Status::BatchesFull => prop_assert_eq!(progress.batches, room_b),
            Status::RefusalsFull => prop_assert_eq!(progress.refusals, room_r),
            Status::Done => {}
            Status::Unreadable => prop_assert!(false, "every Record is readable"),
            Status::InputChanged => prop_assert!(false, "the same input every call"),
        }
        out.batches.extend_from_slice(&batches[..progress.batches]);
        out.refusals
            .extend_from_slice(&refusals[..progress.refusals]);
        batch_calls.resize(out.batches.len(), call);
        refusal_calls.resize(out.refusals.len(), call);
        checkpoints.push((out.batches.len(), out.refusals.len(), *planner.stats()));
        if progress.status == Status::Done {
            break;
        }
        previous = Some(progress.status);
    }
    prop_assert_eq!(planner.position(), input.len());
    let again = planner.plan(input, &mut [Batch::default()], &mut [Refusal::default()]);
    let nothing = Progress {
        status: Status::Done,
        batches: 0,
        refusals: 0,
    };
    prop_assert_eq!(again, nothing, "a call after Done wrote something");
    for (batch, &batch_call) in out.batches.iter().zip(&batch_calls) {
        for (refusal, &refusal_call) in out.refusals.iter().zip(&refusal_calls) {
            if batch.range().contains(&refusal.index) {
                prop_assert!(
                    refusal_call <= batch_call,
                    "refusal {:?} written after the batch {:?} that spans it",
                    refusal,
                    batch
                );
            }
        }
    }
    let stats = *planner.stats();
    Ok(Run::new(out, stats, checkpoints))
}

/// The `plan(..)` iterator. Checks that a refusal inside a batch's range comes before
/// the batch, and that the iterator stays done.
fn cursor<M: Measure>(input: &[M], limits: Limits) -> Result<Run, TestCaseError> {
    let mut events = plan(input, limits);
    let mut out = Outcome::default();
    let mut checkpoints = Vec::new();
    while let Some(event) = events.next() {
        match event {
            Event::Batch(batch) => {
                // Every refused index of the range has been reported already, so the
                // accepted records of the batch are known when it arrives.
                let refused = out
                    .refusals
                    .iter()
                    .filter(|r| batch.range().contains(&r.index));
                prop_assert_eq!(
                    refused.count(),
                    batch.refused(),
                    "batch {:?} came before a refusal it spans",
                    batch
                );
                out.batches.push(batch);
            }
            Event::Refused(refusal) => out.refusals.push(refusal),
        }
        checkpoints.push((out.batches.len(), out.refusals.len(), *events.stats()));
        prop_assert!(
            checkpoints.len() <= 2 * input.len(),
            "more events than the input allows"
        );
    }
    prop_assert_eq!(events.next(), None, "the iterator is fused");
    let stats = *events.stats();
    Ok(Run::new(out, stats, checkpoints))
}

/// `Accumulator::push` for every record, then `flush`. Records are numbered by push.
fn accumulate<M: Measure>(input: &[M], limits: Limits) -> Result<Run, TestCaseError> {
    let mut acc = Accumulator::new(limits);
    let mut out = Outcome::default();
    let mut checkpoints = Vec::new();
    for (index, record) in input.iter().enumerate() {
        prop_assert_eq!(acc.pushed(), index);
        match acc.push(record) {
            Push::Added => {}
            Push::SendFirst(batch) => out.batches.push(batch),
            Push::Refused(reason) => out.refusals.push(Refusal { index, reason }),
        }
        if !matches!(out.refusals.last(), Some(r) if r.index == index) {
            // An accepted record is the last of the pending batch.
            prop_assert_eq!(acc.pending().map(|b| b.end), Some(index + 1));
        }
        checkpoints.push((out.batches.len(), out.refusals.len(), *acc.stats()));
    }
    if let Some(batch) = acc.flush() {
        out.batches.push(batch);
    }
    prop_assert_eq!(acc.pending(), None);
    prop_assert_eq!(acc.flush(), None);
    let stats = *acc.stats();
    checkpoints.push((out.batches.len(), out.refusals.len(), stats));
    Ok(Run::new(out, stats, checkpoints))
}

/// A planner driven by cursor and bulk calls in turn, as `schedule` says.
fn mixed<M: Measure>(
    input: &[M],
    limits: Limits,
    schedule: &[Option<(usize, usize)>],
) -> Result<Outcome, TestCaseError> {
    let mut planner = Planner::new(limits);
    let mut out = Outcome::default();
    for call in 0.. {
        prop_assert!(call <= 2 * input.len() + 2, "mixed plan makes no progress");
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
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------

/// The accepted indices of each batch: its range less the refused indices.
fn groups(out: &Outcome) -> Vec<Vec<usize>> {
    let refused: HashSet<usize> = out.refusals.iter().map(|r| r.index).collect();
    let accepted = |b: &Batch| b.range().filter(|i| !refused.contains(i)).collect();
    out.batches.iter().map(accepted).collect()
}

fn pairs(refusals: &[Refusal]) -> Vec<(usize, Reason)> {
    refusals.iter().map(|r| (r.index, r.reason)).collect()
}

/// The stats a plan's output implies.
fn tally(batches: &[Batch], refusals: &[Refusal]) -> Stats {
    let mut stats = Stats {
        batches: batches.len() as u64,
        records: batches.iter().map(|b| u64::from(b.records)).sum(),
        bytes: batches.iter().map(|b| u64::from(b.bytes)).sum(),
        ..Stats::default()
    };
    for refusal in refusals {
        stats.refused[refusal.reason as usize] += 1;
    }
    stats
}

/// The stats the model's plan implies.
fn model_stats(model: &model::Plan) -> Stats {
    let accepted = model.accepted_sizes();
    let mut stats = Stats {
        batches: model.batches.len() as u64,
        records: accepted.len() as u64,
        bytes: u64::try_from(accepted.iter().sum::<u128>()).unwrap(),
        ..Stats::default()
    };
    for (_, reason) in model.refusals() {
        stats.refused[reason as usize] += 1;
    }
    stats
}

/// Every combination of key unit, hash-key counting and partition keys on `base`.
fn variants(base: Limits) -> Vec<Limits> {
    let mut all = Vec::new();
    for unit in [KeyUnit::CodePoints, KeyUnit::Utf16Units, KeyUnit::Utf8Bytes] {
        for count in [false, true] {
            let limits = base.with_key_unit(unit).counting_hash_key(count);
            all.push(limits.with_partition_keys());
            all.push(limits.without_partition_keys());
        }
    }
    all
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// 1. Conservation: every input index is reported exactly once, as an accepted record
    /// of exactly one batch or as exactly one refusal, and every refusal has the model's
    /// reason (so the accepted records are exactly the model's).
    #[test]
    fn p1_every_record_reported_once_with_the_models_reason(case in case()) {
        let input = views(&case.records);
        let run = bulk(&input, case.limits)?;
        let model = model::plan(&case.records, &case.limits);

        let refused: HashSet<usize> = run.out.refusals.iter().map(|r| r.index).collect();
        let mut reported = vec![0usize; input.len()];
        for refusal in &run.out.refusals {
            prop_assert!(refusal.index < input.len(), "refusal {:?} out of input", refusal);
            reported[refusal.index] += 1;
        }
        for batch in &run.out.batches {
            prop_assert!(batch.end <= input.len(), "batch {:?} out of input", batch);
            for index in batch.range().filter(|i| !refused.contains(i)) {
                reported[index] += 1;
            }
        }
        for (index, &times) in reported.iter().enumerate() {
            prop_assert_eq!(times, 1, "index {} reported {} times", index, times);
        }
        prop_assert_eq!(pairs(&run.out.refusals), model.refusals());
    }

    /// 2. Order: batches and refusals come in increasing index order; batch ranges are
    /// non-empty, disjoint and increasing; a batch starts and ends on accepted records;
    /// `refused()` counts exactly the refused indices inside the range.
    #[test]
    fn p2_batches_and_refusals_in_input_order(case in case()) {
        let input = views(&case.records);
        let out = bulk(&input, case.limits)?.out;

        let refused: HashSet<usize> = out.refusals.iter().map(|r| r.index).collect();
        for pair in out.refusals.windows(2) {
            prop_assert!(pair[0].index < pair[1].index, "refusals out of order: {:?}", pair);
        }
        for pair in out.batches.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "batches overlap or out of order: {:?}", pair);
        }
        for batch in &out.batches {
            prop_assert!(batch.start < batch.end && batch.end <= input.len(), "bad range {:?}", batch);
            prop_assert!(!refused.contains(&batch.start), "batch {:?} starts on a refusal", batch);
            prop_assert!(!refused.contains(&(batch.end - 1)), "batch {:?} ends on a refusal", batch);
            let inside = batch.range().filter(|i| refused.contains(i)).count();
            prop_assert_eq!(batch.refused(), inside, "batch {:?}", batch);
            // The default: `records[batch.range()]` is the request as it stands.
            if !case.limits.spans_refusals() {
                prop_assert_eq!(inside, 0, "batch {:?} holds a refused record", batch);
            }
        }
    }

    /// 3. Limits: every batch holds 1..=max_records accepted records (exactly the
    /// accepted indices of its range) and at most max_request_bytes, and its `bytes` is
    /// the model's sum of the sizes of those records.
    #[test]
    fn p3_every_batch_within_limits_with_the_models_bytes(case in case()) {
        let input = views(&case.records);
        let out = bulk(&input, case.limits)?.out;
        let model = model::plan(&case.records, &case.limits);
        let limits = case.limits;

        for (batch, group) in out.batches.iter().zip(groups(&out)) {
            prop_assert!(batch.records >= 1 && batch.records <= limits.max_records(), "{:?}", batch);
            prop_assert_eq!(batch.records as usize, group.len(), "batch {:?}", batch);
            prop_assert!(batch.bytes <= limits.max_request_bytes(), "{:?}", batch);
            let bytes: u128 = group.iter().map(|&i| model.size(i)).sum();
            prop_assert_eq!(u128::from(batch.bytes), bytes, "batch {:?}", batch);
        }
    }

    /// 4. Optimality: as many batches as the fewest any order-keeping plan can make
    /// (one that, by default, also closes a batch at each refused record)
    /// (dynamic program over the accepted records), and exactly the model's greedy groups.
    #[test]
    fn p4_fewest_batches_and_the_greedy_plan(case in case()) {
        let input = views(&case.records);
        let out = bulk(&input, case.limits)?.out;
        let model = model::plan(&case.records, &case.limits);

        let fewest = model.fewest_batches(&case.limits);
        prop_assert_eq!(out.batches.len(), fewest);
        prop_assert_eq!(model.batches.len(), fewest, "the model's greedy is not optimal");
        prop_assert_eq!(groups(&out), model.batches.clone());
    }

    /// 5. The call styles agree: bulk in one call, bulk resumed through tiny arrays,
    /// the `plan(..)` cursor, cursor and bulk calls mixed on one planner, and the
    /// accumulator all report identical batches and refusals.
    #[test]
    fn p5_call_styles_agree(
        case in case(),
        caps in capacities(),
        schedule in mixed_schedule(),
    ) {
        let input = views(&case.records);
        let limits = case.limits;
        let expected = bulk(&input, limits)?.out;
        prop_assert_eq!(&resumed(&input, limits, &caps)?.out, &expected, "resumed bulk");
        prop_assert_eq!(&cursor(&input, limits)?.out, &expected, "cursor");
        prop_assert_eq!(&mixed(&input, limits, &schedule)?, &expected, "mixed cursor and bulk");
        prop_assert_eq!(&accumulate(&input, limits)?.out, &expected, "accumulator");
    }

    /// 6. The input forms agree: under every key unit, with and without hash-key
    /// counting, with and without partition keys, `Record`, `&Record` and
    /// `RecordSize::of` measure alike and give the model's plan; `RecordSize::of` fills
    /// its fields as documented.
    #[test]
    fn p6_record_views_and_sizes_agree(case in case()) {
        let records = views(&case.records);
        let refs: Vec<&Record> = records.iter().collect();
        for limits in variants(case.limits) {
            let unit = limits.key_unit();
            let sizes: Vec<RecordSize> = records.iter().map(|r| RecordSize::of(r, unit)).collect();
            for (i, rec) in case.records.iter().enumerate() {
                let expected = model::measure(rec, &limits).map(|s| u32::try_from(s).unwrap());
                prop_assert_eq!(records[i].measure(&limits), expected, "Record {} {:?}", i, limits);
                prop_assert_eq!(sizes[i].measure(&limits), expected, "RecordSize {} {:?}", i, limits);

                let size = sizes[i];
                prop_assert_eq!(size.data_len, rec.data_len as u64);
                prop_assert_eq!(size.key_len as usize, rec.key.len());
                let hash_len = rec.hash_key.as_ref().map_or(0, Vec::len);
                prop_assert_eq!(size.hash_key_len as usize, hash_len);
                let mut flags = 0;
                match std::str::from_utf8(&rec.key) {
                    Ok(key) => prop_assert_eq!(size.key_units as usize, model::key_units(key, unit)),
                    Err(_) => flags |= RecordSize::KEY_NOT_UTF8,
                }
                if rec.hash_key.as_deref().is_some_and(|h| !model::hash_key_is_valid(h)) {
                    flags |= RecordSize::HASH_KEY_INVALID;
                }
                prop_assert_eq!(size.flags, flags, "flags of {:?}", rec);
            }
            let from_records = bulk(&records, limits)?.out;
            prop_assert_eq!(&bulk(&sizes, limits)?.out, &from_records, "RecordSize {:?}", limits);
            prop_assert_eq!(&bulk(&refs, limits)?.out, &from_records, "&Record {:?}", limits);
            prop_assert_eq!(&cursor(&sizes, limits)?.out, &from_records, "RecordSize cursor");
            let model = model::plan(&case.records, &limits);
            prop_assert_eq!(&groups(&from_records), &model.batches, "{:?}", limits);
            prop_assert_eq!(pairs(&from_records.refusals), model.refusals(), "{:?}", limits);
        }
    }

    /// 7. Stats agree with the plan: in every call style the final stats count the
    /// model's batches, records, bytes and refusals by reason, and after every step
    /// they count exactly what has been reported so far.
    #[test]
    fn p7_stats_agree_with_the_plan(case in case(), caps in capacities()) {
        let input = views(&case.records);
        let limits = case.limits;
        let model = model::plan(&case.records, &limits);
        let expected = model_stats(&model);
        let runs = [
            ("bulk", bulk(&input, limits)?),
            ("resumed", resumed(&input, limits, &caps)?),
            ("cursor", cursor(&input, limits)?),
            ("accumulator", accumulate(&input, limits)?),
        ];
        for (style, run) in &runs {
            prop_assert_eq!(&run.stats, &expected, "{} final stats", style);
            prop_assert_eq!(&tally(&run.out.batches, &run.out.refusals), &expected, "{} output", style);
            for &(batches, refusals, stats) in &run.checkpoints {
                let so_far = tally(&run.out.batches[..batches], &run.out.refusals[..refusals]);
                prop_assert_eq!(stats, so_far, "{} stats mid-plan", style);
            }
            let stats = run.stats;
            prop_assert_eq!(stats.refused_total(), model.refusals().len() as u64);
            for reason in Reason::ALL {
                prop_assert_eq!(stats.refused_for(reason), stats.refused[reason as usize]);
            }
            for fill in [stats.byte_fill(&limits), stats.record_fill(&limits)] {
                prop_assert!((0.0..=1.0).contains(&fill), "{} fill {}", style, fill);
                prop_assert!(stats.batches > 0 || fill == 0.0);
            }
        }
    }

    /// 8. Custom limits: `Limits::new(r, q, c)` is Ok exactly when all three are nonzero,
    /// r <= 500, q <= 10 MiB, c <= 10 MiB and c <= q; otherwise the error is the first
    /// rule broken in the documented order. An Ok value keeps the numbers and defaults.
    #[test]
    fn p8_custom_limits_validated_in_order(
        r in limit_value(500),
        q in limit_value(10 * MIB as u32),
        c in limit_value(10 * MIB as u32),
    ) {
        match (Limits::new(r, q, c), model::limits_error(r, q, c)) {
            (Ok(limits), None) => {
                prop_assert_eq!(
                    (limits.max_records(), limits.max_request_bytes(), limits.max_record_bytes()),
                    (r, q, c)
                );
                prop_assert!(limits.partition_keys());
                prop_assert_eq!(limits.key_unit(), KeyUnit::CodePoints);
                prop_assert!(!limits.counts_hash_key());
            }
            (Err(error), Some(expected)) => prop_assert_eq!(error, expected),
            (got, expected) => prop_assert!(false, "Limits::new({}, {}, {}) = {:?}, model {:?}", r, q, c, got, expected),
        }
    }
}

/// Limit values at and around the interesting points: 0, 1, the service maximum.
fn limit_value(max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(max - 1),
        Just(max),
        Just(max + 1),
        Just(u32::MAX),
        0..=3u32,
        0..=max + 2,
        any::<u32>(),
    ]
}
