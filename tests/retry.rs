//! Retry planning ([`kinesis_batcher::retry`]): whole deliveries against a simulated service.
//!
//! The properties drive [`Delivery`] through many rounds of `next_request` and `settle` (or
//! `settle_all`) over small inputs (0..60 records, tiny custom limits, keys from a small
//! pool so they repeat, some records refused), with a service that accepts or fails each
//! entry at random, sometimes answers with the wrong number of entries, and sometimes fails
//! a request as a whole. The checks share no code with the library: the test keeps its own
//! books (who was sent how often and when, who waits for a re-send, who ended how) and
//! derives every expectation from the documented rules:
//!
//! * every input index ends exactly once: accepted (and never sent again), terminal (with
//!   the kind of its last failure; `gave_up` only for retryable kinds), or refused (with
//!   the reason `Record::measure` gives), and nothing is lost;
//! * every request is within the limits, and `Next::bytes` is the sum of its sizes;
//! * re-sent entries come first, in input order, and before any record not sent yet;
//! * the attempt and age limits, by the caller's clock, decide exactly when a record gives up;
//! * with `per_key_order`, a request never holds a key twice and each key's records are
//!   accepted in input order;
//! * the backoff ceiling follows the run of failed requests, and resets.
//!
//! Unit tests cover error-code sorting, settle errors, `InFlight`, `RefusalsFull`, the
//! backoff function at its extremes, and a counting allocator proves a whole delivery loop
//! allocates nothing. Every property runs at least 10,000 cases.

mod support;

#[path = "support/records.rs"]
mod records;
use records::{Rec, views};

use std::collections::{BTreeSet, HashMap};
use support::assert_no_alloc;

use kinesis_batcher::retry::{
    Backoff, Delivery, ErrorKind, Next, NextStatus, Outcome, Pending, RetryPolicy, SettleError,
    Settled, Terminal,
};
use kinesis_batcher::{Limits, Measure, Reason, Record, Refusal};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// The partition keys records draw from: few, so that keys repeat constantly.
const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"user-1",
    b"user-2",
    "ключ".as_bytes(),
    "キー".as_bytes(),
];

/// Valid explicit hash keys (they replace the partition key as the key identity).
const HASH_KEYS: &[&[u8]] = &[b"0", b"42", b"340282366920938463463374607431768211455"];

/// What decides a record's shard, by the documentation: the explicit hash key when there
/// is one, else the partition key. Compared as bytes, not hashed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    Partition(Vec<u8>),
    HashKey(Vec<u8>),
}

fn key_id(record: &Rec) -> KeyId {
    match &record.hash_key {
        Some(hash_key) => KeyId::HashKey(hash_key.clone()),
        None => KeyId::Partition(record.key.clone()),
    }
}

/// The size of a sendable record as the service counts it (the inputs use no hash-key
/// counting and only short keys), or why it is refused, in the documented precedence.
fn model_measure(record: &Rec, limits: &Limits) -> Result<u64, Reason> {
    let key = std::str::from_utf8(&record.key).map_err(|_| Reason::KeyNotUtf8)?;
    if key.is_empty() {
        return Err(Reason::KeyEmpty);
    }
    if key.chars().count() > 256 {
        return Err(Reason::KeyTooLong);
    }
    if let Some(hash_key) = &record.hash_key {
        if !HASH_KEYS.contains(&hash_key.as_slice()) {
            return Err(Reason::HashKeyInvalid);
        }
    }
    let size = (record.data_len + record.key.len()) as u64;
    if size > u64::from(limits.max_record_bytes()) {
        return Err(Reason::RecordTooLarge);
    }
    Ok(size)
}

fn rec() -> impl Strategy<Value = Rec> {
    let key = prop_oneof![
        24 => select(KEYS).prop_map(<[u8]>::to_vec),
        1 => Just(Vec::new()),
        1 => Just(b"\xff\xfe".to_vec()),
    ];
    let hash_key = prop_oneof![
        14 => Just(None),
        2 => select(HASH_KEYS).prop_map(|h| Some(h.to_vec())),
        1 => Just(Some(b"01".to_vec())),
    ];
    let data = prop_oneof![8 => 0usize..30, 1 => 0usize..=260];
    (data, key, hash_key).prop_map(|(data_len, key, hash_key)| Rec {
        data_len,
        key,
        hash_key,
    })
}

/// Tiny custom limits: 1..6 records, 20..200 bytes a request, a record cap up to that.
fn limits() -> impl Strategy<Value = Limits> {
    (1u32..6, 20u32..200)
        .prop_flat_map(|(records, request)| {
            let record = prop_oneof![1 => 1..=request, 3 => request / 4..=request];
            (Just(records), Just(request), record)
        })
        .prop_map(|(records, request, record)| Limits::new(records, request, record).unwrap())
}

/// splitmix64: the simulated service's dice, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Not written next to this file: other people share the tree.
        failure_persistence: None,
        ..ProptestConfig::with_cases(ProptestConfig::default().cases.max(10_000))
    }
}

const MAX_ROUNDS: usize = 10_000;
const RETRYABLE_ENTRY: &[ErrorKind] = &[ErrorKind::ThroughputExceeded, ErrorKind::InternalFailure];
const TERMINAL_ENTRY: &[ErrorKind] = &[
    ErrorKind::Validation,
    ErrorKind::AccessDenied,
    ErrorKind::Kms,
    ErrorKind::InvalidArgument,
];
const WHOLE_REQUEST: &[ErrorKind] = &[
    ErrorKind::ServerError,
    ErrorKind::Transport,
    ErrorKind::Throttling,
];

/// Whether sending again can succeed, by the documentation of the kinds: throughput,
/// internal failures, throttling, server errors, lost connections, bad responses and
/// unknown codes are retried; the rest are terminal.
fn retryable(kind: ErrorKind) -> bool {
    use ErrorKind::*;
    matches!(
        kind,
        ThroughputExceeded
            | InternalFailure
            | Throttling
            | ServerError
            | Transport
            | BadResponse
            | Unknown
    )
}

/// The ceiling of the backoff after `failures` failed requests in a row, straight from
/// the documented formula `min(cap, base * 2^(failures-1))`, in u128 arithmetic.
fn ceiling(backoff: Backoff, failures: u32) -> u64 {
    if failures == 0 || backoff.base_ms == 0 {
        return 0;
    }
    let shift = failures - 1;
    if shift >= 64 {
        // base >= 1, so base * 2^64 and beyond exceeds any u64 cap.
        return backoff.cap_ms;
    }
    let grown = u128::from(backoff.base_ms) << shift;
    grown.min(u128::from(backoff.cap_ms)) as u64
}

// ---------------------------------------------------------------------------------------
// The simulated delivery
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Sim {
    limits: Limits,
    records: Vec<Rec>,
    seed: u64,
    /// Per-mille chance that the service stores an entry.
    accept: u64,
    max_attempts: u32,
    max_age_ms: u64,
    /// Capacity of the caller's request array (500, or smaller than the limits' count);
    /// some calls pass only a front part of it.
    request_len: usize,
    /// Capacity of the caller's refusal array (small ones make `RefusalsFull` common).
    refusals_len: usize,
}

fn sim() -> impl Strategy<Value = Sim> {
    (
        limits(),
        vec(rec(), 0..60),
        any::<u64>(),
        200u64..950,
        prop_oneof![3 => Just(1000u32), 1 => 1u32..6],
        prop_oneof![3 => Just(u64::MAX), 1 => 0u64..300],
        prop_oneof![3 => Just(500usize), 1 => 1usize..8],
        prop_oneof![2 => Just(64usize), 1 => 1usize..4],
    )
        .prop_map(
            |(
                limits,
                records,
                seed,
                accept,
                max_attempts,
                max_age_ms,
                request_len,
                refusals_len,
            )| {
                Sim {
                    limits,
                    records,
                    seed,
                    accept,
                    max_attempts,
                    max_age_ms,
                    request_len,
                    refusals_len,
                }
            },
        )
}

/// How an input index ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Accepted,
    Terminal(ErrorKind, bool),
    Refused(Reason),
}

/// Runs a whole delivery against the simulated service and checks every step.
fn deliver(sim: &Sim, per_key_order: bool) -> Result<(), TestCaseError> {
    let records = &sim.records;
    let input = views(records);
    let n = input.len();
    let limits = sim.limits;
    let backoff = Backoff {
        base_ms: 7,
        cap_ms: 500,
    };
    let policy = RetryPolicy {
        backoff,
        max_attempts: sim.max_attempts,
        max_age_ms: sim.max_age_ms,
        per_key_order,
    };
    for (record, view) in records.iter().zip(&input) {
        // The test's own accounting agrees with the planner's (a cross-check of the inputs).
        prop_assert_eq!(
            model_measure(record, &limits),
            view.measure(&limits).map(u64::from)
        );
    }

    let mut delivery = Delivery::new(limits, policy);
    let mut rng = Rng(sim.seed);
    let mut request = vec![Pending::default(); sim.request_len];
    let mut refusals = vec![Refusal::default(); sim.refusals_len];
    let mut terminal = vec![Terminal::default(); sim.request_len];
    let mut outcomes: Vec<Outcome> = Vec::new();

    let mut fate: Vec<Option<Fate>> = vec![None; n];
    let mut sends = vec![0u32; n];
    let mut first_sent: Vec<Option<u64>> = vec![None; n];
    let mut waiting: BTreeSet<usize> = BTreeSet::new();
    let mut last_accepted: HashMap<KeyId, usize> = HashMap::new();
    let mut failed_run = 0u32;
    let (mut requests, mut accepted, mut retried, mut terminals) = (0u64, 0u64, 0u64, 0u64);
    let mut refused = [0u64; Reason::COUNT];
    let mut now = rng.below(1000);

    for _ in 0..MAX_ROUNDS {
        let position = delivery.position();
        // The caller's request array, sometimes shorter for this one call than the last.
        let capacity = if rng.below(4) == 0 {
            1 + rng.below(request.len() as u64) as usize
        } else {
            request.len()
        };
        let request = &mut request[..capacity];
        let next = delivery.next_request(&input, request, &mut refusals, now);
        let after = delivery.position();
        prop_assert_ne!(next.status, NextStatus::InFlight);
        prop_assert!(next.refusals <= refusals.len());

        // Refusals: in input order, in the stretch just planned, with the planner's reason.
        let mut planned: Vec<usize> = Vec::new();
        for refusal in &refusals[..next.refusals] {
            let i = refusal.index;
            prop_assert!(
                (position..after).contains(&i),
                "refusal {i} outside {position}..{after}"
            );
            prop_assert_eq!(Err(refusal.reason), input[i].measure(&limits));
            prop_assert_eq!(fate[i], None, "index {} refused after another fate", i);
            fate[i] = Some(Fate::Refused(refusal.reason));
            refused[refusal.reason as usize] += 1;
            planned.push(i);
        }
        prop_assert!(planned.windows(2).all(|w| w[0] < w[1]));

        let sent = &request[..next.entries];
        prop_assert!(next.entries <= request.len());
        prop_assert!(next.entries <= limits.max_records() as usize);

        // Re-sent entries first, exactly the front of the waiting set in input order, and
        // all of it before any record sent for the first time.
        let resent = sent.iter().take_while(|p| sends[p.index] > 0).count();
        let (old, new) = sent.split_at(resent);
        prop_assert!(
            new.iter().all(|p| sends[p.index] == 0),
            "a re-sent entry after a new one: {:?}",
            sent
        );
        let front: Vec<usize> = waiting.iter().copied().take(resent).collect();
        prop_assert_eq!(old.iter().map(|p| p.index).collect::<Vec<_>>(), front);
        if !new.is_empty() {
            prop_assert_eq!(resent, waiting.len(), "new records while failures wait");
        }
        for p in old {
            prop_assert_eq!(p.attempts, sends[p.index]);
            prop_assert_eq!(Some(p.first_sent_ms), first_sent[p.index]);
            waiting.remove(&p.index);
        }
        for p in new {
            prop_assert_eq!(p.attempts, 0);
            prop_assert_eq!(p.first_sent_ms, now);
            planned.push(p.index);
        }
        prop_assert!(new.windows(2).all(|w| w[0].index < w[1].index));
        // The stretch of new input planned is exactly the new entries and the refusals.
        planned.sort_unstable();
        prop_assert_eq!(planned, (position..after).collect::<Vec<_>>());

        // Nothing accepted, terminal or refused is ever sent; every request is in limits.
        let mut bytes = 0u64;
        let mut keys: Vec<KeyId> = Vec::new();
        for p in sent {
            prop_assert_eq!(fate[p.index], None, "index {} sent after its end", p.index);
            let size = model_measure(&records[p.index], &limits);
            prop_assert!(size.is_ok(), "refused index {} sent", p.index);
            bytes += size.unwrap();
            let key = key_id(&records[p.index]);
            if per_key_order {
                prop_assert!(!keys.contains(&key), "key {:?} twice in {:?}", key, sent);
            }
            keys.push(key);
        }
        prop_assert!(bytes <= u64::from(limits.max_request_bytes()));
        prop_assert_eq!(bytes, u64::from(next.bytes));

        // Status, and greed: a `Ready` request closed only because the next one could not
        // join it (count, bytes, array capacity, or its key under per-key ordering).
        let left = waiting.iter().next().copied();
        let finished = left.is_none() && after == n;
        match next.status {
            NextStatus::Done => prop_assert!(finished, "Done with work left"),
            NextStatus::Ready => {
                prop_assert!(!finished, "Ready with nothing left");
                prop_assert!(next.entries > 0, "Ready with an empty request");
                let full =
                    sent.len() == request.len() || sent.len() == limits.max_records() as usize;
                if !full {
                    let blocker = left.unwrap_or(after);
                    let size = model_measure(&records[blocker], &limits);
                    prop_assert!(size.is_ok(), "closed before refused index {}", blocker);
                    let over = bytes + size.unwrap() > u64::from(limits.max_request_bytes());
                    let clash = per_key_order && keys.contains(&key_id(&records[blocker]));
                    prop_assert!(over || clash, "closed early before index {}", blocker);
                }
            }
            NextStatus::RefusalsFull => {
                prop_assert_eq!(next.refusals, refusals.len());
                prop_assert!(after < n && input[after].measure(&limits).is_err());
            }
            NextStatus::InFlight => unreachable!(),
        }

        if next.entries == 0 {
            if next.status == NextStatus::Done {
                return finish(
                    &mut delivery,
                    &input,
                    &fate,
                    &waiting,
                    (requests, accepted, retried, terminals, refused),
                );
            }
            continue; // RefusalsFull before any entry: nothing in flight.
        }
        requests += 1;
        for p in new {
            first_sent[p.index] = Some(now);
        }

        // Sometimes: a second call while in flight writes nothing and changes nothing.
        if rng.below(8) == 0 {
            let mut probe = [Pending {
                index: usize::MAX,
                attempts: 7,
                first_sent_ms: 7,
            }; 3];
            let mut probe_refusals = [Refusal::default(); 2];
            let again = delivery.next_request(&input, &mut probe, &mut probe_refusals, now);
            let expected = Next {
                status: NextStatus::InFlight,
                entries: 0,
                bytes: 0,
                refusals: 0,
            };
            prop_assert_eq!(again, expected);
            prop_assert!(probe.iter().all(|p| p.index == usize::MAX));
            prop_assert!(probe_refusals.iter().all(|r| *r == Refusal::default()));
            prop_assert_eq!(delivery.position(), after);
        }

        // The response comes some time later.
        now += rng.below(50);

        // Sometimes: settle calls that must be refused, changing nothing.
        if rng.below(16) == 0 {
            let stats = *delivery.stats();
            let waiting_before = delivery.waiting().to_vec();
            let short = &sent[1..];
            let e = delivery.settle_all(short, ErrorKind::Transport, now, &mut terminal);
            prop_assert_eq!(e, Err(SettleError::NotTheRequestInFlight));
            let (tiny, _) = terminal.split_at_mut(sent.len() - 1);
            let e = delivery.settle_all(sent, ErrorKind::Transport, now, tiny);
            prop_assert_eq!(e, Err(SettleError::TerminalArrayTooSmall));
            prop_assert_eq!(*delivery.stats(), stats);
            prop_assert_eq!(delivery.waiting(), &waiting_before[..]);
        }

        // The service's answer, and what the documentation says each entry becomes.
        let roll = rng.below(1000);
        let mut failure: Vec<Option<ErrorKind>> = Vec::with_capacity(sent.len());
        let terminal_out: &mut [Terminal] = if rng.below(2) == 0 {
            &mut terminal[..sent.len()]
        } else {
            &mut terminal
        };
        let result = if roll < 40 {
            let kind = rng.pick(WHOLE_REQUEST);
            failure.resize(sent.len(), Some(kind));
            delivery.settle_all(sent, kind, now, terminal_out)
        } else {
            outcomes.clear();
            let mut count = sent.len();
            if roll < 70 {
                while count == sent.len() {
                    count = rng.below(sent.len() as u64 + 3) as usize;
                }
            }
            for _ in 0..count {
                let dice = rng.below(1000);
                outcomes.push(if dice < sim.accept {
                    Outcome::Accepted
                } else if dice < sim.accept + 20 {
                    Outcome::Failed(rng.pick(TERMINAL_ENTRY))
                } else {
                    Outcome::Failed(rng.pick(RETRYABLE_ENTRY))
                });
            }
            if count == sent.len() {
                failure.extend(outcomes.iter().map(|o| match o {
                    Outcome::Accepted => None,
                    Outcome::Failed(kind) => Some(*kind),
                }));
            } else {
                failure.resize(sent.len(), Some(ErrorKind::BadResponse));
            }
            delivery.settle(sent, &outcomes, now, terminal_out)
        };
        let settled = result.map_err(|e| TestCaseError::fail(format!("settle: {e}")))?;

        let mut expect = Settled::default();
        let mut expect_terminal: Vec<Terminal> = Vec::new();
        for (p, failed) in sent.iter().zip(&failure) {
            let i = p.index;
            sends[i] += 1;
            let Some(kind) = *failed else {
                expect.accepted += 1;
                fate[i] = Some(Fate::Accepted);
                let previous = last_accepted.insert(key_id(&records[i]), i);
                if let (true, Some(before)) = (per_key_order, previous) {
                    prop_assert!(before < i, "key of {i} accepted after later index {before}");
                }
                continue;
            };
            let age = now - first_sent[i].unwrap();
            if !retryable(kind) {
                expect_terminal.push(Terminal {
                    index: i,
                    kind,
                    gave_up: false,
                });
            } else if sends[i] >= sim.max_attempts || age >= sim.max_age_ms {
                expect_terminal.push(Terminal {
                    index: i,
                    kind,
                    gave_up: true,
                });
            } else {
                expect.retrying += 1;
                waiting.insert(i);
            }
        }
        expect.terminal = expect_terminal.len();
        prop_assert_eq!(settled, expect);
        prop_assert_eq!(&terminal[..settled.terminal], &expect_terminal[..]);
        for t in &expect_terminal {
            fate[t.index] = Some(Fate::Terminal(t.kind, t.gave_up));
        }
        prop_assert_eq!(
            delivery
                .waiting()
                .iter()
                .map(|p| p.index)
                .collect::<Vec<_>>(),
            waiting.iter().copied().collect::<Vec<_>>()
        );
        accepted += expect.accepted as u64;
        retried += expect.retrying as u64;
        terminals += expect.terminal as u64;

        // The backoff follows the run of failed requests.
        let failed = expect.retrying + expect.terminal;
        failed_run = match (failed, expect.accepted) {
            (0, _) => 0,
            (_, 0) => failed_run + 1,
            _ => 1,
        };
        prop_assert_eq!(delivery.backoff_ms(u64::MAX), ceiling(backoff, failed_run));
        prop_assert_eq!(delivery.backoff_ms(0), 0);

        // The caller sleeps a little before the next request.
        now += rng.below(20);
    }
    Err(TestCaseError::fail(format!(
        "not finished after {MAX_ROUNDS} rounds"
    )))
}

/// The checks at the end of a delivery: every index ended exactly once, nothing waits,
/// the counters agree, and the delivery stays done.
fn finish(
    delivery: &mut Delivery,
    input: &[Record<'_>],
    fate: &[Option<Fate>],
    waiting: &BTreeSet<usize>,
    (requests, accepted, retried, terminals, refused): (u64, u64, u64, u64, [u64; Reason::COUNT]),
) -> Result<(), TestCaseError> {
    let limits = *delivery.limits();
    for (i, f) in fate.iter().enumerate() {
        match f {
            None => return Err(TestCaseError::fail(format!("index {i} lost"))),
            Some(Fate::Refused(reason)) => prop_assert_eq!(Err(*reason), input[i].measure(&limits)),
            Some(Fate::Terminal(kind, gave_up)) => {
                prop_assert!(!gave_up || retryable(*kind));
                prop_assert!(input[i].measure(&limits).is_ok());
            }
            Some(Fate::Accepted) => prop_assert!(input[i].measure(&limits).is_ok()),
        }
    }
    prop_assert!(waiting.is_empty());
    prop_assert!(delivery.waiting().is_empty());
    prop_assert_eq!(delivery.position(), input.len());
    let stats = *delivery.stats();
    prop_assert_eq!(stats.requests, requests);
    prop_assert_eq!(stats.accepted, accepted);
    prop_assert_eq!(stats.retried, retried);
    prop_assert_eq!(stats.terminal, terminals);
    prop_assert_eq!(stats.refused, refused);

    let mut request = [Pending::default(); 8];
    let mut refusals = [Refusal::default(); 8];
    let again = delivery.next_request(input, &mut request, &mut refusals, u64::MAX);
    prop_assert_eq!(again.status, NextStatus::Done);
    prop_assert_eq!((again.entries, again.refusals, again.bytes), (0, 0, 0));
    let mut terminal = [Terminal::default(); 8];
    prop_assert_eq!(
        delivery.settle(&[], &[], 0, &mut terminal),
        Err(SettleError::NothingInFlight)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// A whole delivery with per-entry failures, wrong entry counts and whole-request
    /// failures: nothing lost, nothing duplicated, failures re-sent first in input order.
    #[test]
    fn delivery_without_per_key_order(sim in sim()) {
        deliver(&sim, false)?;
    }

    /// The same, with per-key ordering: no key twice in a request, and each key's records
    /// accepted in input order.
    #[test]
    fn delivery_with_per_key_order(sim in sim()) {
        deliver(&sim, true)?;
    }

    /// A service that never stores anything: each sendable record is sent exactly
    /// `max_attempts` times, then comes back terminal with `gave_up` and its last error.
    #[test]
    fn attempt_limit(
        records in vec(rec(), 0..60),
        limits in limits(),
        max_attempts in 1u32..=4,
        per_key_order in any::<bool>(),
        seed in any::<u64>(),
    ) {
        attempts(&records, limits, max_attempts, per_key_order, seed)?;
    }

    /// Always failing, no attempt limit, the caller's clock moving at random: a record
    /// gives up at the first response that comes `max_age_ms` or more after its first send.
    #[test]
    fn age_limit(
        records in vec(rec(), 0..60),
        limits in limits(),
        max_age_ms in 0u64..400,
        per_key_order in any::<bool>(),
        seed in any::<u64>(),
    ) {
        ages(&records, limits, max_age_ms, per_key_order, seed)?;
    }

    /// The delay is never above the documented ceiling, and 0 when there is no failure.
    #[test]
    fn backoff_is_bounded(
        base_ms in prop_oneof![Just(0u64), 0u64..1000, any::<u64>()],
        cap_ms in prop_oneof![Just(0u64), 0u64..100_000, any::<u64>(), Just(u64::MAX)],
        failures in prop_oneof![0u32..70, any::<u32>()],
        random in any::<u64>(),
    ) {
        let backoff = Backoff { base_ms, cap_ms };
        let top = ceiling(backoff, failures);
        let delay = backoff.delay_ms(failures, random);
        prop_assert!(delay <= top, "{delay} > {top}");
        prop_assert!(delay <= cap_ms);
        prop_assert_eq!(backoff.delay_ms(0, random), 0);
        prop_assert_eq!(backoff.delay_ms(failures, 0), 0);
        // Monotone in `random`: full jitter is a scaling of the random number.
        prop_assert!(backoff.delay_ms(failures, random / 2) <= delay);
    }

    /// `random = u64::MAX` draws the ceiling itself.
    #[test]
    fn backoff_reaches_its_ceiling(
        base_ms in prop_oneof![0u64..1000, any::<u64>()],
        cap_ms in prop_oneof![0u64..100_000, any::<u64>()],
        failures in 0u32..64,
    ) {
        let backoff = Backoff { base_ms, cap_ms };
        prop_assert_eq!(backoff.delay_ms(failures, u64::MAX), ceiling(backoff, failures));
    }
}

/// Always-failing responses of every form, chosen at random per request.
fn fail_all(
    delivery: &mut Delivery,
    sent: &[Pending],
    rng: &mut Rng,
    now: u64,
    terminal: &mut [Terminal],
) -> (Settled, ErrorKind) {
    match rng.below(3) {
        0 => {
            let kind = rng.pick(WHOLE_REQUEST);
            (
                delivery.settle_all(sent, kind, now, terminal).unwrap(),
                kind,
            )
        }
        1 => {
            // No entries for a request of at least one: a wrong count.
            let settled = delivery.settle(sent, &[], now, terminal).unwrap();
            (settled, ErrorKind::BadResponse)
        }
        _ => {
            let kind = rng.pick(RETRYABLE_ENTRY);
            let outcomes = vec![Outcome::Failed(kind); sent.len()];
            (
                delivery.settle(sent, &outcomes, now, terminal).unwrap(),
                kind,
            )
        }
    }
}

fn attempts(
    records: &[Rec],
    limits: Limits,
    max_attempts: u32,
    per_key_order: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let input = views(records);
    let policy = RetryPolicy {
        backoff: Backoff::DEFAULT,
        max_attempts,
        max_age_ms: u64::MAX,
        per_key_order,
    };
    let mut delivery = Delivery::new(limits, policy);
    let mut rng = Rng(seed);
    let mut request = [Pending::default(); 8];
    let mut refusals = [Refusal::default(); 64];
    let mut terminal = [Terminal::default(); 8];
    let mut sends = vec![0u32; input.len()];
    let mut ended: Vec<Option<Terminal>> = vec![None; input.len()];
    for _ in 0..MAX_ROUNDS {
        let next = delivery.next_request(&input, &mut request, &mut refusals, 0);
        if next.entries == 0 {
            prop_assert_eq!(next.status, NextStatus::Done);
            for (i, view) in input.iter().enumerate() {
                if view.measure(&limits).is_ok() {
                    prop_assert_eq!(sends[i], max_attempts, "sends of index {}", i);
                    let t = ended[i];
                    prop_assert!(t.is_some_and(|t| t.gave_up), "index {} ended {:?}", i, t);
                } else {
                    prop_assert_eq!(sends[i], 0);
                    prop_assert_eq!(ended[i], None);
                }
            }
            prop_assert_eq!(delivery.stats().accepted, 0);
            return Ok(());
        }
        let sent = &request[..next.entries];
        for p in sent {
            prop_assert!(
                ended[p.index].is_none(),
                "index {} sent after it ended",
                p.index
            );
            prop_assert_eq!(p.attempts, sends[p.index]);
            sends[p.index] += 1;
        }
        let (settled, kind) = fail_all(&mut delivery, sent, &mut rng, 0, &mut terminal);
        prop_assert_eq!(settled.accepted, 0);
        for t in &terminal[..settled.terminal] {
            prop_assert_eq!(sends[t.index], max_attempts);
            prop_assert_eq!(t.kind, kind);
            prop_assert!(t.gave_up);
            ended[t.index] = Some(*t);
        }
        let expected_terminal = sent
            .iter()
            .filter(|p| sends[p.index] >= max_attempts)
            .count();
        prop_assert_eq!(settled.terminal, expected_terminal);
    }
    Err(TestCaseError::fail("not finished"))
}

fn ages(
    records: &[Rec],
    limits: Limits,
    max_age_ms: u64,
    per_key_order: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let input = views(records);
    let policy = RetryPolicy {
        backoff: Backoff::DEFAULT,
        max_attempts: u32::MAX,
        max_age_ms,
        per_key_order,
    };
    let mut delivery = Delivery::new(limits, policy);
    let mut rng = Rng(seed);
    let mut request = [Pending::default(); 500];
    let mut refusals = [Refusal::default(); 64];
    let mut terminal = [Terminal::default(); 500];
    let mut first_sent: Vec<Option<u64>> = vec![None; input.len()];
    let mut ended = vec![false; input.len()];
    let mut now = rng.below(1 << 40);
    for _ in 0..MAX_ROUNDS {
        let next = delivery.next_request(&input, &mut request, &mut refusals, now);
        if next.entries == 0 {
            prop_assert_eq!(next.status, NextStatus::Done);
            for (i, view) in input.iter().enumerate() {
                prop_assert_eq!(ended[i], view.measure(&limits).is_ok(), "index {}", i);
            }
            return Ok(());
        }
        let sent = &request[..next.entries];
        for p in sent {
            prop_assert!(!ended[p.index]);
            let first = *first_sent[p.index].get_or_insert(now);
            prop_assert_eq!(p.first_sent_ms, first, "the first send's time is kept");
        }
        now += 1 + rng.below(100);
        let (settled, kind) = fail_all(&mut delivery, sent, &mut rng, now, &mut terminal);
        let expected: Vec<Terminal> = sent
            .iter()
            .filter(|p| now - first_sent[p.index].unwrap() >= max_age_ms)
            .map(|p| Terminal {
                index: p.index,
                kind,
                gave_up: true,
            })
            .collect();
        prop_assert_eq!(&terminal[..settled.terminal], &expected[..]);
        prop_assert_eq!(settled.retrying, sent.len() - expected.len());
        for t in &expected {
            ended[t.index] = true;
        }
        now += rng.below(100);
    }
    Err(TestCaseError::fail("not finished"))
}

// ---------------------------------------------------------------------------------------
// Unit tests: error kinds
// ---------------------------------------------------------------------------------------

/// Every error code `from_code` documents, with the kind it must give.
const CODES: &[(&str, ErrorKind)] = &[
    (
        "ProvisionedThroughputExceededException",
        ErrorKind::ThroughputExceeded,
    ),
    ("InternalFailure", ErrorKind::InternalFailure),
    ("InternalFailureException", ErrorKind::InternalFailure),
    ("InternalServerError", ErrorKind::InternalFailure),
    ("ThrottlingException", ErrorKind::Throttling),
    ("LimitExceededException", ErrorKind::Throttling),
    ("KMSThrottlingException", ErrorKind::Throttling),
    ("Throttling", ErrorKind::Throttling),
    ("RequestLimitExceeded", ErrorKind::Throttling),
    ("TooManyRequestsException", ErrorKind::Throttling),
    ("ServiceUnavailable", ErrorKind::ServerError),
    ("ServiceUnavailableException", ErrorKind::ServerError),
    ("ValidationException", ErrorKind::Validation),
    ("SerializationException", ErrorKind::Validation),
    ("InvalidArgumentException", ErrorKind::InvalidArgument),
    ("ResourceNotFoundException", ErrorKind::ResourceNotFound),
    ("AccessDeniedException", ErrorKind::AccessDenied),
    ("UnrecognizedClientException", ErrorKind::AccessDenied),
    ("ExpiredTokenException", ErrorKind::AccessDenied),
    ("IncompleteSignatureException", ErrorKind::AccessDenied),
    ("InvalidSignatureException", ErrorKind::AccessDenied),
    (
        "MissingAuthenticationTokenException",
        ErrorKind::AccessDenied,
    ),
    ("MissingAuthenticationToken", ErrorKind::AccessDenied),
    ("SignatureDoesNotMatch", ErrorKind::AccessDenied),
    ("KMSDisabledException", ErrorKind::Kms),
    ("KMSInvalidStateException", ErrorKind::Kms),
    ("KMSAccessDeniedException", ErrorKind::Kms),
    ("KMSNotFoundException", ErrorKind::Kms),
    ("KMSOptInRequired", ErrorKind::Kms),
];

#[test]
fn every_documented_code_with_and_without_namespace() {
    for &(code, kind) in CODES {
        assert_eq!(ErrorKind::from_code(code.as_bytes()), kind, "{code}");
        let namespaced = format!("com.amazonaws.kinesis.v20131202#{code}");
        assert_eq!(
            ErrorKind::from_code(namespaced.as_bytes()),
            kind,
            "{namespaced}"
        );
    }
}

#[test]
fn unknown_codes_are_unknown_and_retried() {
    for code in [
        &b""[..],
        b"#",
        b"com.amazonaws.kinesis.v20131202#",
        b"SomethingNew",
        b"provisionedthroughputexceededexception", // codes are case-sensitive
        b"ProvisionedThroughputExceededException ",
        b" ValidationException",
        b"InternalFailure#",
        b"\xff\xfe",
    ] {
        assert_eq!(
            ErrorKind::from_code(code),
            ErrorKind::Unknown,
            "{}",
            code.escape_ascii()
        );
    }
    assert!(ErrorKind::Unknown.is_retryable());
}

/// Bug: the wire form of an error type may carry a `:url` suffix (the `X-Amzn-ErrorType`
/// header, e.g. `ResourceNotFoundException:http://internal.amazon.com/coral/...`); the AWS
/// SDKs keep only what comes before the first `:`, then after the `#`. `from_code` gives
/// `Unknown` (retryable) for it, so a missing stream or denied access is retried for up to
/// `max_attempts` / `max_age_ms` instead of coming back terminal at once.
#[test]
fn error_type_with_a_url_suffix() {
    let url = ":http://internal.amazon.com/coral/com.amazonaws.kinesis.v20131202/";
    for &(code, kind) in CODES {
        for prefix in ["", "com.amazonaws.kinesis.v20131202#"] {
            let wire = format!("{prefix}{code}{url}");
            assert_eq!(ErrorKind::from_code(wire.as_bytes()), kind, "{wire}");
        }
    }
}

#[test]
fn http_statuses() {
    let cases = [
        (0, None),
        (100, None),
        (200, None),
        (204, None),
        (302, None),
        (399, None),
        (400, Some(ErrorKind::ClientError)),
        (403, Some(ErrorKind::ClientError)),
        (404, Some(ErrorKind::ClientError)),
        (413, Some(ErrorKind::ClientError)),
        (428, Some(ErrorKind::ClientError)),
        (429, Some(ErrorKind::Throttling)),
        (430, Some(ErrorKind::ClientError)),
        (499, Some(ErrorKind::ClientError)),
        (500, Some(ErrorKind::ServerError)),
        (502, Some(ErrorKind::ServerError)),
        (503, Some(ErrorKind::ServerError)),
        (504, Some(ErrorKind::ServerError)),
        (599, Some(ErrorKind::ServerError)),
        (600, None),
        (u16::MAX, None),
    ];
    for (status, kind) in cases {
        assert_eq!(ErrorKind::from_http_status(status), kind, "{status}");
    }
}

#[test]
fn retryable_kinds() {
    use ErrorKind::*;
    let expected = [
        (ThroughputExceeded, true),
        (InternalFailure, true),
        (Throttling, true),
        (ServerError, true),
        (Transport, true),
        (BadResponse, true),
        (Unknown, true),
        (Validation, false),
        (InvalidArgument, false),
        (ResourceNotFound, false),
        (AccessDenied, false),
        (Kms, false),
        (ClientError, false),
    ];
    assert_eq!(ErrorKind::ALL.len(), expected.len());
    for (i, (kind, retryable)) in expected.into_iter().enumerate() {
        assert_eq!(ErrorKind::ALL[i], kind);
        assert_eq!(kind as usize, i);
        assert_eq!(kind.is_retryable(), retryable, "{kind:?}");
        assert_eq!(kind.to_string(), kind.as_str());
    }
    let names: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names.len(),
        ErrorKind::ALL.len(),
        "as_str values are distinct"
    );
}

#[test]
fn settle_error_messages() {
    for e in [
        SettleError::NothingInFlight,
        SettleError::NotTheRequestInFlight,
        SettleError::TerminalArrayTooSmall,
    ] {
        assert_eq!(e.to_string(), e.message());
        assert!(!e.message().is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// Unit tests: the protocol
// ---------------------------------------------------------------------------------------

fn policy(per_key_order: bool) -> RetryPolicy {
    RetryPolicy {
        per_key_order,
        ..RetryPolicy::DEFAULT
    }
}

/// The whole state, for "nothing changed" (the type is `Debug`, not `PartialEq`).
fn snapshot(delivery: &Delivery) -> String {
    format!("{delivery:?}")
}

#[test]
fn empty_input_is_done_at_once() {
    let mut delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let empty: [Record; 0] = [];
    for _ in 0..2 {
        let next = delivery.next_request(&empty, &mut request, &mut refusals, 0);
        assert_eq!(
            next,
            Next {
                status: NextStatus::Done,
                entries: 0,
                bytes: 0,
                refusals: 0
            }
        );
    }
    assert_eq!(delivery.stats().requests, 0);
    let mut terminal = [Terminal::default(); 1];
    assert_eq!(
        delivery.settle(&[], &[], 0, &mut terminal),
        Err(SettleError::NothingInFlight)
    );
}

#[test]
fn settle_errors_change_nothing() {
    let records = [Record::new(b"one", b"k1"), Record::new(b"two", b"k2")];
    let mut delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
    let mut terminal = [Terminal::default(); 4];
    let outcomes = [Outcome::Accepted; 2];

    // Nothing in flight yet.
    let fresh = snapshot(&delivery);
    assert_eq!(
        delivery.settle(&[], &[], 0, &mut terminal),
        Err(SettleError::NothingInFlight)
    );
    let one = [Pending::default()];
    assert_eq!(
        delivery.settle_all(&one, ErrorKind::Transport, 0, &mut terminal),
        Err(SettleError::NothingInFlight)
    );
    assert_eq!(snapshot(&delivery), fresh);

    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let next = delivery.next_request(&records, &mut request, &mut refusals, 5);
    assert_eq!(
        (next.status, next.entries, next.bytes),
        (NextStatus::Done, 2, 10)
    );
    let sent = &request[..2];
    let before = snapshot(&delivery);

    // Not the request in flight: shorter, longer, empty.
    let longer = [sent[0], sent[1], sent[1]];
    for wrong in [&sent[..1], &longer[..], &[]] {
        assert_eq!(
            delivery.settle(wrong, &outcomes, 6, &mut terminal),
            Err(SettleError::NotTheRequestInFlight)
        );
        assert_eq!(
            delivery.settle_all(wrong, ErrorKind::ServerError, 6, &mut terminal),
            Err(SettleError::NotTheRequestInFlight)
        );
    }
    // A terminal array shorter than the request, even when nothing would be terminal.
    for small in [0, 1] {
        assert_eq!(
            delivery.settle(sent, &outcomes, 6, &mut terminal[..small]),
            Err(SettleError::TerminalArrayTooSmall)
        );
        assert_eq!(
            delivery.settle_all(sent, ErrorKind::Kms, 6, &mut terminal[..small]),
            Err(SettleError::TerminalArrayTooSmall)
        );
    }
    assert_eq!(snapshot(&delivery), before);
    assert!(terminal.iter().all(|t| *t == Terminal::default()));

    // And the request in flight still settles normally afterwards.
    let settled = delivery
        .settle(sent, &outcomes, 6, &mut terminal[..2])
        .unwrap();
    assert_eq!(
        settled,
        Settled {
            accepted: 2,
            retrying: 0,
            terminal: 0
        }
    );
    assert_eq!(
        delivery.settle(sent, &outcomes, 6, &mut terminal),
        Err(SettleError::NothingInFlight)
    );
}

#[test]
fn in_flight_until_settled() {
    let records: Vec<Record> = (0..5).map(|_| Record::new(b"x", b"k")).collect();
    let limits = Limits::new(2, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!((next.status, next.entries), (NextStatus::Ready, 2));
    let sent: Vec<Pending> = request[..2].to_vec();
    let before = snapshot(&delivery);

    let mut other = [Pending {
        index: 99,
        attempts: 9,
        first_sent_ms: 9,
    }; 4];
    let mut other_refusals = [Refusal {
        index: 99,
        reason: Reason::KeyEmpty,
    }; 2];
    for _ in 0..3 {
        let again = delivery.next_request(&records, &mut other, &mut other_refusals, 1);
        assert_eq!(
            again,
            Next {
                status: NextStatus::InFlight,
                entries: 0,
                bytes: 0,
                refusals: 0
            }
        );
    }
    assert!(other.iter().all(|p| p.index == 99 && p.attempts == 9));
    assert!(other_refusals.iter().all(|r| r.index == 99));
    assert_eq!(snapshot(&delivery), before);

    let mut terminal = [Terminal::default(); 2];
    delivery
        .settle(&sent, &[Outcome::Accepted; 2], 1, &mut terminal)
        .unwrap();
    let next = delivery.next_request(&records, &mut request, &mut refusals, 2);
    assert_eq!((next.status, next.entries), (NextStatus::Ready, 2));
    assert_eq!(request[0].index, 2);
}

#[test]
fn refusals_full_with_a_one_entry_array() {
    let big = [0u8; 200];
    let ok = Record::new(b"x", b"k");
    let empty_key = Record::new(b"x", b"");
    let too_large = Record::new(&big, b"k");
    let bad_utf8 = Record::new(b"x", b"\xff");
    // 0 ok, 1 refused, 2 refused, 3 ok, 4 refused, 5 refused, 6 refused, 7 ok
    let records = [
        ok, empty_key, too_large, ok, bad_utf8, empty_key, too_large, ok,
    ];
    let limits = Limits::new(10, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 10];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 10];
    let mut refused = Vec::new();
    let mut sent = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
        assert!(next.refusals <= 1);
        refused.extend(
            refusals[..next.refusals]
                .iter()
                .map(|r| (r.index, r.reason)),
        );
        statuses.push((next.status, next.entries, next.refusals));
        if next.status == NextStatus::RefusalsFull {
            assert_eq!(next.refusals, 1, "full means the one slot was used");
        }
        if next.entries > 0 {
            sent.extend(request[..next.entries].iter().map(|p| p.index));
            let outcomes = vec![Outcome::Accepted; next.entries];
            delivery
                .settle(&request[..next.entries], &outcomes, 0, &mut terminal)
                .unwrap();
        } else if next.status == NextStatus::Done {
            break;
        }
    }
    assert_eq!(
        refused,
        [
            (1, Reason::KeyEmpty),
            (2, Reason::RecordTooLarge),
            (4, Reason::KeyNotUtf8),
            (5, Reason::KeyEmpty),
            (6, Reason::RecordTooLarge),
        ]
    );
    assert_eq!(sent, [0, 3, 7]);
    use NextStatus::*;
    assert_eq!(
        statuses,
        [
            (RefusalsFull, 1, 1), // 0 sent, 1 refused, 2 does not fit the array
            (RefusalsFull, 1, 1), // 2 refused, 3 sent, 4 waits
            (RefusalsFull, 0, 1), // 4 refused, 5 waits: nothing to send
            (RefusalsFull, 0, 1), // 5 refused, 6 waits
            (Done, 1, 1),         // 6 refused, 7 sent
            (Done, 0, 0),
        ]
    );
    let stats = delivery.stats();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.refused[Reason::KeyEmpty as usize], 2);
    assert_eq!(stats.refused[Reason::RecordTooLarge as usize], 2);
    assert_eq!(stats.refused[Reason::KeyNotUtf8 as usize], 1);
}

#[test]
fn failures_are_resent_first_in_input_order() {
    let records: Vec<Record> = (0..10).map(|_| Record::new(b"data", b"key")).collect();
    let limits = Limits::new(4, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 8];
    let mut refusals = [Refusal::default(); 8];
    let mut terminal = [Terminal::default(); 8];
    use ErrorKind::*;
    use Outcome::*;

    let next = delivery.next_request(&records, &mut request, &mut refusals, 10);
    assert_eq!(next.entries, 4);
    let settled = delivery
        .settle(
            &request[..4],
            &[
                Failed(InternalFailure),
                Accepted,
                Failed(Validation),
                Failed(ThroughputExceeded),
            ],
            20,
            &mut terminal,
        )
        .unwrap();
    assert_eq!(
        (settled.accepted, settled.retrying, settled.terminal),
        (1, 2, 1)
    );
    assert_eq!(
        terminal[0],
        Terminal {
            index: 2,
            kind: Validation,
            gave_up: false
        }
    );
    let waiting: Vec<(usize, u32, u64)> = delivery
        .waiting()
        .iter()
        .map(|p| (p.index, p.attempts, p.first_sent_ms))
        .collect();
    assert_eq!(waiting, [(0, 1, 10), (3, 1, 10)]);

    let next = delivery.next_request(&records, &mut request, &mut refusals, 30);
    let indices: Vec<usize> = request[..next.entries].iter().map(|p| p.index).collect();
    assert_eq!(indices, [0, 3, 4, 5]);
    assert_eq!(request[2].first_sent_ms, 30);
    assert_eq!(request[2].attempts, 0);
    delivery
        .settle(
            &request[..4],
            &[Accepted, Failed(Unknown), Accepted, Failed(Throttling)],
            40,
            &mut terminal,
        )
        .unwrap();
    let next = delivery.next_request(&records, &mut request, &mut refusals, 50);
    let indices: Vec<usize> = request[..next.entries].iter().map(|p| p.index).collect();
    assert_eq!(indices, [3, 5, 6, 7]);
    assert_eq!(request[0].attempts, 2);
    assert_eq!(request[0].first_sent_ms, 10);
}

/// With a request array shorter than the waiting list, failures of the part sent go back
/// in front of the part still waiting, in input order, and no new record is sent meanwhile.
#[test]
fn a_short_request_array_keeps_failures_in_input_order() {
    let records: Vec<Record> = (0..6).map(|_| Record::new(b"data", b"key")).collect();
    let mut delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 6];
    let fail = Outcome::Failed(ErrorKind::ThroughputExceeded);

    let mut request = [Pending::default(); 4];
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(next.entries, 4);
    delivery
        .settle(
            &request,
            &[Outcome::Accepted, fail, fail, fail],
            0,
            &mut terminal,
        )
        .unwrap();
    let waiting = |d: &Delivery| d.waiting().iter().map(|p| p.index).collect::<Vec<_>>();
    assert_eq!(waiting(&delivery), [1, 2, 3]);

    let mut one = [Pending::default(); 1];
    let next = delivery.next_request(&records, &mut one, &mut refusals, 0);
    assert_eq!((next.status, one[0].index), (NextStatus::Ready, 1));
    delivery.settle(&one, &[fail], 0, &mut terminal).unwrap();
    assert_eq!(
        waiting(&delivery),
        [1, 2, 3],
        "1 goes back in front of 2 and 3"
    );

    let mut two = [Pending::default(); 2];
    let next = delivery.next_request(&records, &mut two, &mut refusals, 0);
    assert_eq!((next.entries, two[0].index, two[1].index), (2, 1, 2));
    assert_eq!(two[0].attempts, 2);
    delivery
        .settle(&two, &[fail, Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    assert_eq!(waiting(&delivery), [1, 3]);

    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    let sent: Vec<usize> = request[..next.entries].iter().map(|p| p.index).collect();
    assert_eq!(sent, [1, 3, 4, 5]);
    assert_eq!(next.status, NextStatus::Done);
}

#[test]
fn per_key_order_holds_back_later_records_of_a_failed_key() {
    let records = [
        Record::new(b"1", b"a"),
        Record::new(b"2", b"b"),
        Record::new(b"3", b"a"),
        Record::new(b"4", b"c"),
        Record::new(b"5", b"zz").with_hash_key(b"7"),
        Record::new(b"6", b"yy").with_hash_key(b"7"), // same shard key as 4
    ];
    let mut delivery = Delivery::new(Limits::KDS, policy(true));
    let mut request = [Pending::default(); 500];
    let mut refusals = [Refusal::default(); 8];
    let mut terminal = [Terminal::default(); 500];
    let indices = |request: &[Pending], next: Next| -> Vec<usize> {
        request[..next.entries].iter().map(|p| p.index).collect()
    };

    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(
        indices(&request, next),
        [0, 1],
        "closes before the second 'a'"
    );
    delivery
        .settle(
            &request[..2],
            &[
                Outcome::Failed(ErrorKind::ThroughputExceeded),
                Outcome::Accepted,
            ],
            0,
            &mut terminal,
        )
        .unwrap();
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(indices(&request, next), [0], "index 2 ('a') waits for 0");
    delivery
        .settle(&request[..1], &[Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(
        indices(&request, next),
        [2, 3, 4],
        "closes before hash key 7 again"
    );
    delivery
        .settle(&request[..3], &[Outcome::Accepted; 3], 0, &mut terminal)
        .unwrap();
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(indices(&request, next), [5]);
    assert_eq!(next.status, NextStatus::Done);

    // Without per-key ordering the same input goes in one request.
    let mut delivery = Delivery::new(Limits::KDS, policy(false));
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    assert_eq!(next.entries, 6);
}

#[test]
fn attempt_limit_exactly() {
    for max_attempts in 1..=4 {
        let records = [Record::new(b"x", b"k")];
        let policy = RetryPolicy {
            max_attempts,
            ..RetryPolicy::DEFAULT
        };
        let mut delivery = Delivery::new(Limits::KDS, policy);
        let mut request = [Pending::default(); 1];
        let mut refusals = [Refusal::default(); 1];
        let mut terminal = [Terminal::default(); 1];
        for attempt in 1..=max_attempts {
            let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
            assert_eq!(next.entries, 1);
            assert_eq!(request[0].attempts, attempt - 1);
            let kind = if attempt % 2 == 0 {
                ErrorKind::Transport
            } else {
                ErrorKind::ThroughputExceeded
            };
            let settled = delivery
                .settle_all(&request[..1], kind, 0, &mut terminal)
                .unwrap();
            if attempt < max_attempts {
                assert_eq!(settled.retrying, 1);
            } else {
                assert_eq!(settled.terminal, 1);
                assert_eq!(
                    terminal[0],
                    Terminal {
                        index: 0,
                        kind,
                        gave_up: true
                    }
                );
            }
        }
        let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
        assert_eq!((next.status, next.entries), (NextStatus::Done, 0));
    }
}

#[test]
fn age_limit_by_the_callers_clock() {
    let records = [Record::new(b"x", b"k")];
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        max_age_ms: 100,
        ..RetryPolicy::DEFAULT
    };
    let mut delivery = Delivery::new(Limits::KDS, policy);
    let mut request = [Pending::default(); 1];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 1];
    let fail = ErrorKind::InternalFailure;
    // First send at 1000; responses at ages 10 and 99 are retried, at 100 it gives up.
    for (send_at, settle_at, gives_up) in
        [(1000, 1010, false), (1050, 1099, false), (1099, 1100, true)]
    {
        let next = delivery.next_request(&records, &mut request, &mut refusals, send_at);
        assert_eq!(next.entries, 1);
        assert_eq!(request[0].first_sent_ms, 1000);
        let settled = delivery
            .settle(
                &request[..1],
                &[Outcome::Failed(fail)],
                settle_at,
                &mut terminal,
            )
            .unwrap();
        assert_eq!(settled.terminal == 1, gives_up, "at {settle_at}");
    }
    assert_eq!(
        terminal[0],
        Terminal {
            index: 0,
            kind: fail,
            gave_up: true
        }
    );
    // A clock that goes backwards counts as age 0, not as an overflow.
    let mut delivery = Delivery::new(Limits::KDS, policy);
    delivery.next_request(&records, &mut request, &mut refusals, 5000);
    let settled = delivery
        .settle(&request[..1], &[Outcome::Failed(fail)], 0, &mut terminal)
        .unwrap();
    assert_eq!(settled.retrying, 1);
}

#[test]
fn terminal_errors_end_at_once_whatever_the_limits() {
    let records = [Record::new(b"x", b"k"), Record::new(b"y", b"k")];
    let mut delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
    let mut request = [Pending::default(); 2];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 2];
    delivery.next_request(&records, &mut request, &mut refusals, 0);
    let settled = delivery
        .settle_all(&request, ErrorKind::ResourceNotFound, 0, &mut terminal)
        .unwrap();
    assert_eq!(settled.terminal, 2);
    for (i, t) in terminal.iter().enumerate() {
        assert_eq!(
            *t,
            Terminal {
                index: i,
                kind: ErrorKind::ResourceNotFound,
                gave_up: false
            }
        );
    }
    // A wrong entry count is a retryable BadResponse for every entry.
    let mut delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
    delivery.next_request(&records, &mut request, &mut refusals, 0);
    let settled = delivery
        .settle(&request, &[Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    assert_eq!((settled.accepted, settled.retrying), (0, 2));
}

// ---------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------

#[test]
fn backoff_extremes() {
    let huge = [0, 1, 2, 100, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    let failures = [0, 1, 2, 63, 64, 65, 66, 100, u32::MAX - 1, u32::MAX];
    for base_ms in huge {
        for cap_ms in huge {
            let backoff = Backoff { base_ms, cap_ms };
            for n in failures {
                for random in [0, 1, u64::MAX / 3, u64::MAX - 1, u64::MAX] {
                    let delay = backoff.delay_ms(n, random);
                    assert!(delay <= cap_ms);
                    assert!(delay <= ceiling(backoff, n), "{backoff:?} {n} {random}");
                    if n == 0 || random == 0 {
                        assert_eq!(delay, 0);
                    }
                }
            }
        }
    }
    let b = Backoff {
        base_ms: 100,
        cap_ms: 1000,
    };
    let ceilings: Vec<u64> = (0..8).map(|n| b.delay_ms(n, u64::MAX)).collect();
    assert_eq!(ceilings, [0, 100, 200, 400, 800, 1000, 1000, 1000]);
    assert_eq!(b.delay_ms(u32::MAX, u64::MAX), 1000);
    // Roughly half the ceiling for a random number in the middle.
    assert_eq!(b.delay_ms(3, u64::MAX / 2), 200);
    assert_eq!(Backoff::DEFAULT.delay_ms(200, u64::MAX), 10_000);
}

/// Bug (minor): with `base_ms = 1` and a cap above 2^63, the ceiling stops growing at
/// 2^63 after 64 failures instead of reaching the cap, because the shift is clamped at 63.
#[test]
fn backoff_ceiling_reaches_a_cap_above_two_to_the_63() {
    let backoff = Backoff {
        base_ms: 1,
        cap_ms: u64::MAX,
    };
    assert_eq!(backoff.delay_ms(64, u64::MAX), 1 << 63);
    for failures in [65, 66, 100, u32::MAX] {
        assert_eq!(backoff.delay_ms(failures, u64::MAX), u64::MAX, "{failures}");
    }
}

#[test]
fn backoff_follows_the_run_of_failed_requests() {
    let records: Vec<Record> = (0..100).map(|_| Record::new(b"x", b"k")).collect();
    let limits = Limits::new(2, 1000, 100).unwrap();
    let policy = RetryPolicy {
        backoff: Backoff {
            base_ms: 100,
            cap_ms: 1000,
        },
        max_attempts: 1000,
        ..RetryPolicy::DEFAULT
    };
    let mut delivery = Delivery::new(limits, policy);
    let mut request = [Pending::default(); 2];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 2];
    let mut round = |delivery: &mut Delivery, outcomes: &[Outcome]| {
        let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
        assert_eq!(next.entries, 2);
        delivery
            .settle(&request[..2], outcomes, 0, &mut terminal)
            .unwrap();
        delivery.backoff_ms(u64::MAX)
    };
    use Outcome::*;
    let fail = Failed(ErrorKind::ThroughputExceeded);
    assert_eq!(
        delivery.backoff_ms(u64::MAX),
        0,
        "no delay before the first request"
    );
    assert_eq!(round(&mut delivery, &[Accepted, Accepted]), 0);
    // Requests with failures and nothing stored: the ceiling doubles up to the cap.
    let grown: Vec<u64> = (0..6)
        .map(|_| round(&mut delivery, &[fail, fail]))
        .collect();
    assert_eq!(grown, [100, 200, 400, 800, 1000, 1000]);
    // Failures with something stored: back to the first step, and growing from there.
    assert_eq!(round(&mut delivery, &[Accepted, fail]), 100);
    assert_eq!(round(&mut delivery, &[fail, fail]), 200);
    assert_eq!(round(&mut delivery, &[fail, Accepted]), 100);
    // A request without failures: no delay at all.
    assert_eq!(round(&mut delivery, &[Accepted, Accepted]), 0);
    assert_eq!(delivery.backoff_ms(12345), 0);
    // Terminal failures count as failures too; a whole failed request as well.
    assert_eq!(
        round(
            &mut delivery,
            &[Failed(ErrorKind::Kms), Failed(ErrorKind::Kms)]
        ),
        100
    );
    let next = delivery.next_request(&records, &mut request, &mut refusals, 0);
    delivery
        .settle_all(
            &request[..next.entries],
            ErrorKind::Transport,
            0,
            &mut terminal,
        )
        .unwrap();
    assert_eq!(delivery.backoff_ms(u64::MAX), 200);
    assert!(delivery.backoff_ms(u64::MAX / 2) <= 100);
}

// ---------------------------------------------------------------------------------------
// Inputs sanity and no allocation
// ---------------------------------------------------------------------------------------

#[test]
fn the_key_pool_has_distinct_identities() {
    // Otherwise a hash collision would close requests the greed check calls early.
    let limits = Limits::KDS;
    let mut seen = HashMap::new();
    for key in KEYS {
        let id = Record::new(b"", key).key_identity(&limits).unwrap();
        assert!(seen.insert(id, key.to_vec()).is_none());
    }
    for hash_key in HASH_KEYS {
        let id = Record::new(b"", b"a")
            .with_hash_key(hash_key)
            .key_identity(&limits)
            .unwrap();
        assert!(seen.insert(id, hash_key.to_vec()).is_none());
    }
}

#[test]
fn a_whole_delivery_loop_does_not_allocate() {
    let big = vec![0u8; 300];
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i:04}")).collect();
    let records: Vec<Record> = (0..5000)
        .map(|i| match i % 53 {
            0 => Record::new(&big, b"too-large"),
            1 => Record::new(b"x", b""),
            2 => Record::new(b"x", b"\xff"),
            3 => Record::new(b"x", b"k").with_hash_key(b"01"),
            4 => Record::new(b"x", b"k").with_hash_key(b"12345"),
            _ => Record::new(&big[..i % 90], keys[i % keys.len()].as_bytes()),
        })
        .collect();
    let limits = Limits::new(50, 2000, 200).unwrap();
    for per_key_order in [false, true] {
        let policy = RetryPolicy {
            max_attempts: 6,
            max_age_ms: 10_000,
            per_key_order,
            ..RetryPolicy::DEFAULT
        };
        let totals = assert_no_alloc("a delivery loop", || {
            let mut delivery = Delivery::new(limits, policy);
            let mut request = [Pending::default(); 500];
            let mut refusals = [Refusal::default(); 3];
            let mut terminal = [Terminal::default(); 500];
            let mut outcomes = [Outcome::Accepted; 500];
            let mut rng = Rng(42);
            let mut now = 0u64;
            let (mut accepted, mut ended, mut refused, mut slept) = (0usize, 0usize, 0usize, 0u64);
            loop {
                let next = delivery.next_request(&records, &mut request, &mut refusals, now);
                refused += next.refusals;
                if next.entries == 0 {
                    if next.status == NextStatus::Done {
                        break;
                    }
                    continue; // The refusal array filled before any entry.
                }
                let sent = &request[..next.entries];
                now += 3;
                let settled = match rng.below(20) {
                    0 => delivery.settle_all(sent, ErrorKind::Transport, now, &mut terminal),
                    1 => delivery.settle(sent, &outcomes[..0], now, &mut terminal),
                    _ => {
                        for o in &mut outcomes[..sent.len()] {
                            *o = match rng.below(10) {
                                0..=6 => Outcome::Accepted,
                                7 => Outcome::Failed(ErrorKind::from_code(
                                    b"ProvisionedThroughputExceededException",
                                )),
                                8 => Outcome::Failed(ErrorKind::from_code(b"InternalFailure")),
                                _ => Outcome::Failed(
                                    ErrorKind::from_http_status(403).unwrap_or(ErrorKind::Kms),
                                ),
                            };
                        }
                        delivery.settle(sent, &outcomes[..sent.len()], now, &mut terminal)
                    }
                }
                .unwrap();
                accepted += settled.accepted;
                ended += settled.terminal;
                let delay = delivery.backoff_ms(rng.next());
                slept += delay;
                now += delay;
            }
            (accepted, ended, refused, slept, *delivery.stats())
        });
        let (accepted, ended, refused, _, stats) = totals;
        assert_eq!(accepted + ended + refused, records.len());
        assert_eq!(stats.accepted as usize, accepted);
    }
}
