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
//! More properties run the loops callers actually write: the "naive" one that stops at
//! the first `Done` or `Err`, and one that checks `Done` never comes with work.
//!
//! Unit tests cover error-code sorting, every [`DeliveryError`] (a `sent` that is not the
//! request in flight, a changed input, a second request while one is in flight, a
//! zero-capacity array), `OnlyRefusals`, `reset`, zero fields of a [`RetryPolicy`], the
//! backoff function at its extremes, and a counting allocator proves a whole delivery loop
//! allocates nothing. Every property runs at least 10,000 cases.

mod support;

#[path = "support/records.rs"]
mod records;
use records::{Rec, views};

use std::collections::{BTreeSet, HashMap};
use support::assert_no_alloc;

use kinesis_batcher::retry::{
    Backoff, Delivery, DeliveryError, ErrorKind, Next, NextStatus, Outcome, Pending, RetryPolicy,
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
    ErrorKind::Credentials,
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
    /// Capacity of the caller's refusal array (small ones make `OnlyRefusals` common, and
    /// requests cut short by a full refusal array).
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
    // The documented meaning of a zero age: the default, five minutes, not "give up".
    let max_age_ms = if sim.max_age_ms == 0 {
        300_000
    } else {
        sim.max_age_ms
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
        let next = ok(delivery.next_request(&input, request, &mut refusals, now))?;
        let after = delivery.position();
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
        // join it (count, bytes, array capacity, its key under per-key ordering, or a
        // refused record with the refusal array full).
        let left = waiting.iter().next().copied();
        let finished = left.is_none() && after == n;
        let refusals_full = next.refusals == refusals.len();
        let stopped_at_a_refusal = after < n && model_measure(&records[after], &limits).is_err();
        match next.status {
            NextStatus::Done => {
                // The only "stop", so it never comes with work: nothing written, nothing left.
                prop_assert!(finished, "Done with work left");
                prop_assert_eq!((next.entries, next.refusals, next.bytes), (0, 0, 0));
            }
            NextStatus::Ready => {
                prop_assert!(next.entries > 0, "Ready with an empty request");
                let full =
                    sent.len() == request.len() || sent.len() == limits.max_records() as usize;
                if !full && !finished {
                    let blocker = left.unwrap_or(after);
                    if let Ok(size) = model_measure(&records[blocker], &limits) {
                        let over = bytes + size > u64::from(limits.max_request_bytes());
                        let clash = per_key_order && keys.contains(&key_id(&records[blocker]));
                        prop_assert!(over || clash, "closed early before index {}", blocker);
                    } else {
                        prop_assert!(left.is_none() && refusals_full, "closed before {}", blocker);
                    }
                }
            }
            NextStatus::OnlyRefusals => {
                prop_assert_eq!(next.entries, 0);
                prop_assert!(next.refusals > 0, "OnlyRefusals without refusals");
                prop_assert!(left.is_none(), "OnlyRefusals while failures wait");
                prop_assert!(
                    after == n || (refusals_full && stopped_at_a_refusal),
                    "OnlyRefusals stopped at {} of {}",
                    after,
                    n
                );
            }
        }

        if next.status == NextStatus::Done {
            return finish(
                &mut delivery,
                &input,
                &fate,
                &waiting,
                (requests, accepted, retried, terminals, refused),
            );
        }
        if next.entries == 0 {
            continue; // OnlyRefusals: reported above, nothing in flight.
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
            prop_assert_eq!(again, Err(DeliveryError::RequestInFlight));
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
            prop_assert_eq!(e, Err(DeliveryError::NotTheRequestInFlight));
            // One entry altered: its index, attempts or first send.
            let mut altered = sent.to_vec();
            let at = rng.below(altered.len() as u64) as usize;
            match rng.below(3) {
                0 => altered[at].index = altered[at].index.wrapping_add(1 + rng.below(9) as usize),
                1 => altered[at].attempts = altered[at].attempts.wrapping_add(1),
                _ => altered[at].first_sent_ms = altered[at].first_sent_ms.wrapping_sub(1),
            }
            let e = delivery.settle(&altered, &[], now, &mut terminal);
            prop_assert_eq!(e, Err(DeliveryError::NotTheRequestInFlight));
            let (tiny, _) = terminal.split_at_mut(sent.len() - 1);
            let e = delivery.settle_all(sent, ErrorKind::Transport, now, tiny);
            prop_assert_eq!(e, Err(DeliveryError::TerminalArrayTooSmall));
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
            } else if sends[i] >= sim.max_attempts || age >= max_age_ms {
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

/// A protocol error as a test failure.
fn ok<T>(result: Result<T, DeliveryError>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("protocol error: {e} ({e:?})")))
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
    let again = ok(delivery.next_request(input, &mut request, &mut refusals, u64::MAX))?;
    prop_assert_eq!(again.status, NextStatus::Done);
    prop_assert_eq!((again.entries, again.refusals, again.bytes), (0, 0, 0));
    let mut terminal = [Terminal::default(); 8];
    prop_assert_eq!(
        delivery.settle(&[], &[], 0, &mut terminal),
        Err(DeliveryError::NothingInFlight)
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
        max_age_ms in 1u64..400,
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
        let next = ok(delivery.next_request(&input, &mut request, &mut refusals, 0))?;
        if next.status == NextStatus::Done {
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
        if next.entries == 0 {
            continue; // OnlyRefusals: the rest of the input is refused.
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
        let next = ok(delivery.next_request(&input, &mut request, &mut refusals, now))?;
        if next.status == NextStatus::Done {
            for (i, view) in input.iter().enumerate() {
                prop_assert_eq!(ended[i], view.measure(&limits).is_ok(), "index {}", i);
            }
            return Ok(());
        }
        if next.entries == 0 {
            continue; // OnlyRefusals: the rest of the input is refused.
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
    // A permission problem: the credentials are good, the policy says no.
    ("AccessDeniedException", ErrorKind::AccessDenied),
    ("NotAuthorized", ErrorKind::AccessDenied),
    // A credential problem: refresh them (or fix the clock), then send again.
    ("ExpiredTokenException", ErrorKind::Credentials),
    ("ExpiredToken", ErrorKind::Credentials),
    ("InvalidSignatureException", ErrorKind::Credentials),
    ("SignatureDoesNotMatch", ErrorKind::Credentials),
    ("RequestExpired", ErrorKind::Credentials),
    ("UnrecognizedClientException", ErrorKind::Credentials),
    ("InvalidClientTokenId", ErrorKind::Credentials),
    ("MissingAuthenticationToken", ErrorKind::Credentials),
    (
        "MissingAuthenticationTokenException",
        ErrorKind::Credentials,
    ),
    ("IncompleteSignatureException", ErrorKind::Credentials),
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
        (Credentials, false),
    ];
    assert_eq!(ErrorKind::ALL.len(), 14);
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
    assert_eq!(ErrorKind::Credentials.as_str(), "credentials");
    assert_eq!(ErrorKind::AccessDenied.as_str(), "access_denied");
    // Every name leads back to its kind.
    for kind in ErrorKind::ALL {
        let back = ErrorKind::ALL.iter().find(|k| k.as_str() == kind.as_str());
        assert_eq!(back, Some(&kind));
    }
}

/// `Delivery` has one request at a time and no pause, so expired or invalid credentials
/// end the records at once, reported as `credentials` (not `access_denied`, and not a
/// retryable kind that ran out of attempts).
#[test]
fn delivery_reports_credentials_as_terminal() {
    let records = [
        Record::new(b"x", b"a"),
        Record::new(b"y", b"b"),
        Record::new(b"z", b"c"),
    ];
    let mut request = [Pending::default(); 3];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 3];
    let policy = RetryPolicy {
        max_attempts: 1000,
        ..RetryPolicy::default()
    };

    // Per entry, from the codes a response carries.
    let mut delivery = Delivery::new(Limits::KDS, policy);
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.entries, 3);
    let outcomes = [
        Outcome::Failed(ErrorKind::from_code(b"ExpiredTokenException")),
        Outcome::Accepted,
        Outcome::Failed(ErrorKind::from_code(b"AccessDeniedException")),
    ];
    let settled = delivery
        .settle(&request[..3], &outcomes, 0, &mut terminal)
        .unwrap();
    assert_eq!(
        (settled.accepted, settled.retrying, settled.terminal),
        (1, 0, 2)
    );
    assert_eq!(
        terminal[..2],
        [
            Terminal {
                index: 0,
                kind: ErrorKind::Credentials,
                gave_up: false
            },
            Terminal {
                index: 2,
                kind: ErrorKind::AccessDenied,
                gave_up: false
            },
        ]
    );
    assert_eq!(terminal[0].kind.to_string(), "credentials");
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.status, NextStatus::Done, "nothing sent again");

    // For a request that failed as a whole.
    let mut delivery = Delivery::new(Limits::KDS, policy);
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    let kind = ErrorKind::from_code(b"com.amazonaws.kinesis.v20131202#RequestExpired");
    let settled = delivery
        .settle_all(&request[..next.entries], kind, 0, &mut terminal)
        .unwrap();
    assert_eq!((settled.retrying, settled.terminal), (0, 3));
    for (i, t) in terminal.iter().enumerate() {
        assert_eq!(
            *t,
            Terminal {
                index: i,
                kind: ErrorKind::Credentials,
                gave_up: false
            }
        );
    }
    assert_eq!(
        delivery.backoff_ms(u64::MAX),
        100,
        "a failed request backs off"
    );
}

#[test]
fn delivery_error_messages() {
    let all = [
        DeliveryError::NothingInFlight,
        DeliveryError::NotTheRequestInFlight,
        DeliveryError::TerminalArrayTooSmall,
        DeliveryError::RequestInFlight,
        DeliveryError::InputChanged,
        DeliveryError::ZeroCapacity,
    ];
    let messages: BTreeSet<&str> = all.iter().map(|e| e.message()).collect();
    assert_eq!(messages.len(), all.len(), "messages are distinct");
    for e in all {
        assert_eq!(e.to_string(), e.message());
        assert!(!e.message().is_empty());
        // A std error, so `?` works in functions returning `Box<dyn Error>`.
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert_eq!(boxed.to_string(), e.message());
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
        let next = delivery
            .next_request(&empty, &mut request, &mut refusals, 0)
            .unwrap();
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
        Err(DeliveryError::NothingInFlight)
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
        Err(DeliveryError::NothingInFlight)
    );
    let one = [Pending::default()];
    assert_eq!(
        delivery.settle_all(&one, ErrorKind::Transport, 0, &mut terminal),
        Err(DeliveryError::NothingInFlight)
    );
    assert_eq!(snapshot(&delivery), fresh);

    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 5)
        .unwrap();
    assert_eq!(
        (next.status, next.entries, next.bytes),
        (NextStatus::Ready, 2, 10),
        "the first and last request is Ready, never Done"
    );
    let sent = &request[..2];
    let before = snapshot(&delivery);

    // Not the request in flight: shorter, longer, empty.
    let longer = [sent[0], sent[1], sent[1]];
    for wrong in [&sent[..1], &longer[..], &[]] {
        assert_eq!(
            delivery.settle(wrong, &outcomes, 6, &mut terminal),
            Err(DeliveryError::NotTheRequestInFlight)
        );
        assert_eq!(
            delivery.settle_all(wrong, ErrorKind::ServerError, 6, &mut terminal),
            Err(DeliveryError::NotTheRequestInFlight)
        );
    }
    // A terminal array shorter than the request, even when nothing would be terminal.
    for small in [0, 1] {
        assert_eq!(
            delivery.settle(sent, &outcomes, 6, &mut terminal[..small]),
            Err(DeliveryError::TerminalArrayTooSmall)
        );
        assert_eq!(
            delivery.settle_all(sent, ErrorKind::Kms, 6, &mut terminal[..small]),
            Err(DeliveryError::TerminalArrayTooSmall)
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
        Err(DeliveryError::NothingInFlight)
    );
}

/// Models a caller that asks for the next request before settling the last one (a
/// pipelining loop, or an error path that forgot to settle): refused, nothing written.
#[test]
fn in_flight_until_settled() {
    let records: Vec<Record> = (0..5).map(|_| Record::new(b"x", b"k")).collect();
    let limits = Limits::new(2, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
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
        assert_eq!(again, Err(DeliveryError::RequestInFlight));
        // Checked before the capacities and the input: still the request in flight.
        let empty: [Record; 0] = [];
        let again = delivery.next_request(&empty, &mut other[..0], &mut other_refusals, 1);
        assert_eq!(again, Err(DeliveryError::RequestInFlight));
    }
    assert!(other.iter().all(|p| p.index == 99 && p.attempts == 9));
    assert!(other_refusals.iter().all(|r| r.index == 99));
    assert_eq!(snapshot(&delivery), before);

    let mut terminal = [Terminal::default(); 2];
    delivery
        .settle(&sent, &[Outcome::Accepted; 2], 1, &mut terminal)
        .unwrap();
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 2)
        .unwrap();
    assert_eq!((next.status, next.entries), (NextStatus::Ready, 2));
    assert_eq!(request[0].index, 2);
}

/// A refusal array of one: requests cut short by it are still `Ready`, calls with only a
/// refusal are `OnlyRefusals`, and `Done` comes alone, after the last request.
#[test]
fn a_one_entry_refusal_array() {
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
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, 0)
            .unwrap();
        assert!(next.refusals <= 1);
        refused.extend(
            refusals[..next.refusals]
                .iter()
                .map(|r| (r.index, r.reason)),
        );
        statuses.push((next.status, next.entries, next.refusals));
        if next.status == NextStatus::OnlyRefusals {
            assert_eq!((next.entries, next.refusals), (0, 1));
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
            (Ready, 1, 1),        // 0 sent, 1 refused, 2 does not fit the array
            (Ready, 1, 1),        // 2 refused, 3 sent, 4 waits
            (OnlyRefusals, 0, 1), // 4 refused, 5 waits: nothing to send
            (OnlyRefusals, 0, 1), // 5 refused, 6 waits
            (Ready, 1, 1),        // 6 refused, 7 sent: the last request, still Ready
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

    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 10)
        .unwrap();
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

    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 30)
        .unwrap();
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 50)
        .unwrap();
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
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
    let next = delivery
        .next_request(&records, &mut one, &mut refusals, 0)
        .unwrap();
    assert_eq!((next.status, one[0].index), (NextStatus::Ready, 1));
    delivery.settle(&one, &[fail], 0, &mut terminal).unwrap();
    assert_eq!(
        waiting(&delivery),
        [1, 2, 3],
        "1 goes back in front of 2 and 3"
    );

    let mut two = [Pending::default(); 2];
    let next = delivery
        .next_request(&records, &mut two, &mut refusals, 0)
        .unwrap();
    assert_eq!((next.entries, two[0].index, two[1].index), (2, 1, 2));
    assert_eq!(two[0].attempts, 2);
    delivery
        .settle(&two, &[fail, Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    assert_eq!(waiting(&delivery), [1, 3]);

    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    let sent: Vec<usize> = request[..next.entries].iter().map(|p| p.index).collect();
    assert_eq!(sent, [1, 3, 4, 5]);
    assert_eq!(
        next.status,
        NextStatus::Ready,
        "the last request is Ready too"
    );
    delivery
        .settle(&request[..4], &[Outcome::Accepted; 4], 0, &mut terminal)
        .unwrap();
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!((next.status, next.entries), (NextStatus::Done, 0));
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

    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(indices(&request, next), [0], "index 2 ('a') waits for 0");
    delivery
        .settle(&request[..1], &[Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(
        indices(&request, next),
        [2, 3, 4],
        "closes before hash key 7 again"
    );
    delivery
        .settle(&request[..3], &[Outcome::Accepted; 3], 0, &mut terminal)
        .unwrap();
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(indices(&request, next), [5]);
    assert_eq!(next.status, NextStatus::Ready);
    delivery
        .settle(&request[..1], &[Outcome::Accepted], 0, &mut terminal)
        .unwrap();
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!((next.status, next.entries), (NextStatus::Done, 0));

    // Without per-key ordering the same input goes in one request.
    let mut delivery = Delivery::new(Limits::KDS, policy(false));
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
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
            let next = delivery
                .next_request(&records, &mut request, &mut refusals, 0)
                .unwrap();
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
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, 0)
            .unwrap();
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
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, send_at)
            .unwrap();
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 5000)
        .unwrap();
    assert_eq!(next.entries, 1);
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.entries, 2);
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.entries, 2);
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
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, 0)
            .unwrap();
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
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 0)
        .unwrap();
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
            // A first delivery abandoned half-way, then `reset` and the whole input: the
            // reset and the errors must not allocate either.
            while delivery.position() < records.len() / 2 {
                let next = delivery.next_request(&records, &mut request, &mut refusals, now);
                let entries = next.unwrap().entries;
                if entries > 0 {
                    let mut probe = [Pending::default(); 1];
                    let again = delivery.next_request(&records, &mut probe, &mut [], now);
                    assert_eq!(again, Err(DeliveryError::RequestInFlight));
                    let sent = &request[..entries];
                    let e = delivery.settle(&sent[1..], &[], now, &mut terminal);
                    assert_eq!(e, Err(DeliveryError::NotTheRequestInFlight));
                    let _ = delivery.settle_all(sent, ErrorKind::Throttling, now, &mut terminal);
                }
            }
            delivery.reset();
            assert_eq!(
                delivery.next_request(&records[..1], &mut request, &mut [], now),
                Err(DeliveryError::ZeroCapacity)
            );
            loop {
                let next = delivery.next_request(&records, &mut request, &mut refusals, now);
                let next = next.unwrap();
                refused += next.refusals;
                if next.status == NextStatus::Done {
                    break;
                }
                if next.entries == 0 {
                    continue; // OnlyRefusals: the refusal array filled before any entry.
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

// ---------------------------------------------------------------------------------------
// The loops callers write, and the errors that keep them from losing records
// ---------------------------------------------------------------------------------------

/// The simulated service of the naive loop: retryable failures only (per entry, wrong
/// entry counts, whole requests), so with no attempt or age limit every sendable record
/// is eventually stored.
struct Service {
    rng: Rng,
    /// Per-mille chance that an entry fails.
    fail: u64,
}

enum Answer {
    Entries(Vec<Outcome>),
    Whole(ErrorKind),
}

impl Service {
    fn answer(&mut self, sent: &[Pending]) -> Answer {
        match self.rng.below(100) {
            0..=2 if self.fail > 0 => Answer::Whole(self.rng.pick(WHOLE_REQUEST)),
            3..=5 if self.fail > 0 => Answer::Entries(vec![Outcome::Accepted; sent.len() + 1]),
            _ => Answer::Entries(
                sent.iter()
                    .map(|_| {
                        if self.rng.below(1000) < self.fail {
                            Outcome::Failed(self.rng.pick(RETRYABLE_ENTRY))
                        } else {
                            Outcome::Accepted
                        }
                    })
                    .collect(),
            ),
        }
    }
}

/// What a naive loop did, for the checks.
#[derive(Debug)]
struct Books {
    /// Per input index: how often the service stored it, and the refusals reported for it.
    stored: Vec<u32>,
    refused: Vec<Vec<Reason>>,
    /// Records sent again after the service had stored them.
    sent_after_stored: Vec<usize>,
    terminal: Vec<Terminal>,
    /// Whether the loop ended at `Done` (rather than at an `Err` or the round guard).
    ended_at_done: bool,
    /// `(status, entries, refusals)` of every call.
    calls: Vec<(NextStatus, usize, usize)>,
    position: usize,
    waiting: usize,
}

/// The loop a Rust user writes first, from the types alone:
///
/// ```text
/// while let Ok(next) = d.next_request(..) {
///     report the refusals
///     if next.status == NextStatus::Done { break }
///     send request[..next.entries] (if there is anything to send), settle
/// }
/// ```
///
/// It stops at the first `Done` or the first `Err`, and decides whether there is anything
/// to send either from the entry count or (`key_on_status`) from the status being
/// `Ready`. With the old API it lost records three ways: the last request came with
/// `Done` (so it was never sent), refusals written with `Done` were never asked for again,
/// and a `Ready` with no entries was settled empty.
fn naive_loop(
    records: &[Rec],
    limits: Limits,
    per_key_order: bool,
    (request_len, refusals_len): (usize, usize),
    service: &mut Service,
    key_on_status: bool,
) -> Books {
    let input = views(records);
    let n = input.len();
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        max_age_ms: u64::MAX,
        per_key_order,
        ..RetryPolicy::DEFAULT
    };
    let mut delivery = Delivery::new(limits, policy);
    let mut request = vec![Pending::default(); request_len];
    let mut refusals = vec![Refusal::default(); refusals_len];
    let mut terminal = vec![Terminal::default(); request_len];
    let mut books = Books {
        stored: vec![0; n],
        refused: vec![Vec::new(); n],
        sent_after_stored: Vec::new(),
        terminal: Vec::new(),
        ended_at_done: false,
        calls: Vec::new(),
        position: 0,
        waiting: 0,
    };
    let mut now = 0u64;
    while let Ok(next) = delivery.next_request(&input, &mut request, &mut refusals, now) {
        books.calls.push((next.status, next.entries, next.refusals));
        if books.calls.len() > MAX_ROUNDS {
            break; // Not the user's: keeps a broken delivery from spinning forever.
        }
        for refusal in &refusals[..next.refusals] {
            books.refused[refusal.index].push(refusal.reason);
        }
        if next.status == NextStatus::Done {
            books.ended_at_done = true;
            break;
        }
        let sent = &request[..next.entries];
        let nothing_to_send = if key_on_status {
            next.status != NextStatus::Ready
        } else {
            sent.is_empty()
        };
        if nothing_to_send {
            continue;
        }
        for p in sent {
            if books.stored[p.index] > 0 {
                books.sent_after_stored.push(p.index);
            }
        }
        let answer = service.answer(sent);
        now += 1 + service.rng.below(10);
        let result = match &answer {
            Answer::Entries(outcomes) => delivery.settle(sent, outcomes, now, &mut terminal),
            Answer::Whole(kind) => delivery.settle_all(sent, *kind, now, &mut terminal),
        };
        let Ok(settled) = result else {
            break; // As `while let Ok` does for next_request: the loop just ends.
        };
        if let Answer::Entries(outcomes) = &answer {
            if outcomes.len() == sent.len() {
                for (p, outcome) in sent.iter().zip(outcomes) {
                    books.stored[p.index] += u32::from(*outcome == Outcome::Accepted);
                }
            }
        }
        books
            .terminal
            .extend_from_slice(&terminal[..settled.terminal]);
        now += delivery.backoff_ms(service.rng.next());
    }
    books.position = delivery.position();
    books.waiting = delivery.waiting().len();
    books
}

/// Every sendable record stored exactly once, every refused one reported exactly once
/// with its reason, and the loop ended at `Done` with nothing left.
fn check_books(records: &[Rec], limits: &Limits, books: &Books) -> Result<(), TestCaseError> {
    prop_assert!(
        books.ended_at_done,
        "the loop did not end at Done: {:?}",
        books.calls.last()
    );
    prop_assert_eq!(books.position, records.len());
    prop_assert_eq!(books.waiting, 0);
    prop_assert!(books.terminal.is_empty(), "terminal: {:?}", books.terminal);
    prop_assert!(
        books.sent_after_stored.is_empty(),
        "sent again after being stored: {:?}",
        books.sent_after_stored
    );
    for (i, record) in records.iter().enumerate() {
        match model_measure(record, limits) {
            Ok(_) => {
                prop_assert_eq!(books.stored[i], 1, "index {} stored", i);
                prop_assert!(books.refused[i].is_empty(), "sendable index {} refused", i);
            }
            Err(reason) => {
                prop_assert_eq!(books.stored[i], 0, "refused index {} stored", i);
                prop_assert_eq!(&books.refused[i], &vec![reason], "index {} refusals", i);
            }
        }
    }
    Ok(())
}

/// Records that are always refused: empty key, key not UTF-8, invalid hash key.
fn refused_rec() -> impl Strategy<Value = Rec> {
    let rec = |key: &[u8], hash_key: Option<&[u8]>| Rec {
        data_len: 3,
        key: key.to_vec(),
        hash_key: hash_key.map(<[u8]>::to_vec),
    };
    prop_oneof![
        Just(rec(b"", None)),
        Just(rec(b"\xff\xfe", None)),
        Just(rec(b"a", Some(b"01"))),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// The naive loop (see [`naive_loop`]) over random inputs, some ending in refused
    /// records, under tiny limits or the KDS ones (where most inputs are one request,
    /// which is then the first and the last), with request and refusal arrays down to
    /// one entry, against a service that fails at random but never for good.
    #[test]
    fn a_naive_loop_delivers_every_sendable_record_once(
        mut records in vec(rec(), 0..60),
        tail in vec(refused_rec(), 0..4),
        limits in prop_oneof![limits(), Just(Limits::KDS)],
        request_len in prop_oneof![Just(500usize), 1usize..8],
        refusals_len in prop_oneof![2 => Just(1usize), 1 => 1usize..4, 1 => Just(64usize)],
        fail in prop_oneof![Just(0u64), 0u64..700],
        per_key_order in any::<bool>(),
        key_on_status in any::<bool>(),
        seed in any::<u64>(),
    ) {
        records.extend(tail);
        let mut service = Service { rng: Rng(seed), fail };
        let books = naive_loop(
            &records,
            limits,
            per_key_order,
            (request_len, refusals_len),
            &mut service,
            key_on_status,
        );
        check_books(&records, &limits, &books)?;
    }

    /// Over random runs (random capacities per call, down to one entry; terminal errors,
    /// attempt limits, wrong counts, whole-request failures), `Done` never comes with
    /// entries, refusals or bytes, nor with anything left; `Ready` always has entries and
    /// `OnlyRefusals` only refusals. A loop that stops at `Done` therefore ends every
    /// record exactly once.
    #[test]
    fn done_never_comes_with_work(
        records in vec(rec(), 0..60),
        limits in limits(),
        max_attempts in 1u32..4,
        per_key_order in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let input = views(&records);
        let n = input.len();
        let policy = RetryPolicy { max_attempts, per_key_order, ..RetryPolicy::DEFAULT };
        let mut delivery = Delivery::new(limits, policy);
        let mut rng = Rng(seed);
        let mut request = [Pending::default(); 500];
        let mut refusals = [Refusal::default(); 64];
        let mut terminal = [Terminal::default(); 500];
        let mut ends = vec![0u32; n];
        let mut done = false;
        for round in 0..MAX_ROUNDS as u64 {
            let q = if rng.below(2) == 0 { 1 + rng.below(3) as usize } else { 500 };
            let r = if rng.below(2) == 0 { 1 + rng.below(2) as usize } else { 64 };
            let next = ok(delivery.next_request(&input, &mut request[..q], &mut refusals[..r], round))?;
            for refusal in &refusals[..next.refusals] {
                ends[refusal.index] += 1;
            }
            match next.status {
                NextStatus::Done => {
                    prop_assert_eq!((next.entries, next.refusals, next.bytes), (0, 0, 0));
                    prop_assert_eq!(delivery.position(), n);
                    prop_assert!(delivery.waiting().is_empty());
                    done = true;
                    break;
                }
                NextStatus::Ready => prop_assert!(next.entries > 0),
                NextStatus::OnlyRefusals => {
                    prop_assert_eq!(next.entries, 0);
                    prop_assert!(next.refusals > 0);
                    continue;
                }
            }
            let sent = &request[..next.entries];
            let outcomes: Vec<Outcome> = sent
                .iter()
                .map(|_| match rng.below(10) {
                    0..=4 => Outcome::Accepted,
                    5 => Outcome::Failed(rng.pick(TERMINAL_ENTRY)),
                    _ => Outcome::Failed(rng.pick(RETRYABLE_ENTRY)),
                })
                .collect();
            let settled = match rng.below(10) {
                0 => delivery.settle_all(sent, rng.pick(WHOLE_REQUEST), round, &mut terminal),
                1 => delivery.settle(sent, &outcomes[1..], round, &mut terminal),
                _ => delivery.settle(sent, &outcomes, round, &mut terminal),
            };
            let settled = ok(settled)?;
            for t in &terminal[..settled.terminal] {
                ends[t.index] += 1;
            }
            if settled.accepted > 0 {
                // Which ones: only a full, right-length answer stores anything.
                for (p, o) in sent.iter().zip(&outcomes) {
                    ends[p.index] += u32::from(*o == Outcome::Accepted);
                }
            }
        }
        prop_assert!(done, "not done after {} rounds", MAX_ROUNDS);
        prop_assert!(ends.iter().all(|&e| e == 1), "ends per index: {:?}", ends);
        // And it stays done, writing nothing.
        let again = ok(delivery.next_request(&input, &mut request, &mut refusals, 0))?;
        prop_assert_eq!((again.status, again.entries, again.refusals), (NextStatus::Done, 0, 0));
    }
}

/// The naive loop when the only request is also the last: ten records, one request. It
/// must come as `Ready` (with the old API it came as `Done`, and a loop that stopped at
/// `Done` never sent it).
#[test]
fn the_first_and_last_request_is_ready() {
    let records: Vec<Rec> = (0..10)
        .map(|i| Rec {
            data_len: 10 + i,
            key: KEYS[i % KEYS.len()].to_vec(),
            hash_key: None,
        })
        .collect();
    for key_on_status in [false, true] {
        let mut service = Service {
            rng: Rng(1),
            fail: 0,
        };
        let books = naive_loop(
            &records,
            Limits::KDS,
            false,
            (500, 1),
            &mut service,
            key_on_status,
        );
        use NextStatus::*;
        assert_eq!(books.calls, [(Ready, 10, 0), (Done, 0, 0)]);
        check_books(&records, &Limits::KDS, &books).unwrap();
    }
    // The same records followed by refused ones, with a one-entry refusal array: the
    // request comes with the first refusal, the others alone, then `Done` alone.
    let mut with_tail = records.clone();
    for key in [&b""[..], b"\xff", b""] {
        with_tail.push(Rec {
            data_len: 1,
            key: key.to_vec(),
            hash_key: None,
        });
    }
    let mut service = Service {
        rng: Rng(1),
        fail: 0,
    };
    let books = naive_loop(
        &with_tail,
        Limits::KDS,
        false,
        (500, 1),
        &mut service,
        false,
    );
    use NextStatus::*;
    assert_eq!(
        books.calls,
        [
            (Ready, 10, 1),
            (OnlyRefusals, 0, 1),
            (OnlyRefusals, 0, 1),
            (Done, 0, 0)
        ]
    );
    check_books(&with_tail, &Limits::KDS, &books).unwrap();
}

/// Models callers that settle with something other than the request they were handed:
/// one that rebuilds the `Pending`s from its own list of indices (attempts 0, its own send
/// time), one that sorts or regroups the request before sending it, one that settles a
/// stale copy of the previous request (same length), one that settles part of it. The
/// old check compared lengths only, so most of these silently settled the wrong records.
#[test]
fn settle_refuses_any_sent_but_the_request_in_flight() {
    let records: Vec<Record> = (0..8).map(|_| Record::new(b"data", b"key")).collect();
    let limits = Limits::new(4, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = [Terminal::default(); 8];
    let fail = Outcome::Failed(ErrorKind::ThroughputExceeded);
    let ok = Outcome::Accepted;

    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 10)
        .unwrap();
    assert_eq!(next.entries, 4);
    let previous = request;
    delivery
        .settle(&request, &[ok, fail, ok, fail], 20, &mut terminal)
        .unwrap();
    // Now a request with re-sent entries (attempts 1, first sent at 10) and new ones.
    let next = delivery
        .next_request(&records, &mut request, &mut refusals, 30)
        .unwrap();
    assert_eq!(next.entries, 4);
    let sent = request;
    let summary: Vec<(usize, u32, u64)> = sent
        .iter()
        .map(|p| (p.index, p.attempts, p.first_sent_ms))
        .collect();
    assert_eq!(summary, [(1, 1, 10), (3, 1, 10), (4, 0, 30), (5, 0, 30)]);
    let before = snapshot(&delivery);

    let altered = |f: &dyn Fn(&mut Vec<Pending>)| {
        let mut v = sent.to_vec();
        f(&mut v);
        v
    };
    let wrong: Vec<(&str, Vec<Pending>)> = vec![
        ("index 9", altered(&|v| v[0].index = 9)),
        ("index of another entry", altered(&|v| v[2].index = 5)),
        ("attempts reset to 0", altered(&|v| v[0].attempts = 0)),
        ("attempts raised", altered(&|v| v[3].attempts = 1)),
        ("own send time", altered(&|v| v[1].first_sent_ms = 30)),
        ("first_sent_ms of 0", altered(&|v| v[2].first_sent_ms = 0)),
        ("reversed", altered(&|v| v.reverse())),
        ("two re-sent entries swapped", altered(&|v| v.swap(0, 1))),
        ("two new entries swapped", altered(&|v| v.swap(2, 3))),
        ("sorted by index, descending", {
            let mut v = sent.to_vec();
            v.sort_by_key(|p| std::cmp::Reverse(p.index));
            v
        }),
        ("the previous request", previous.to_vec()),
        ("shorter at the end", sent[..3].to_vec()),
        ("shorter at the front", sent[1..].to_vec()),
        ("empty", Vec::new()),
        ("longer: an entry twice", altered(&|v| v.push(v[3]))),
        (
            "longer: the next record",
            altered(&|v| {
                v.push(Pending {
                    index: 6,
                    attempts: 0,
                    first_sent_ms: 30,
                })
            }),
        ),
    ];
    for (what, wrong) in &wrong {
        assert_ne!(&wrong[..], &sent[..], "{what}");
        let outcomes = vec![ok; wrong.len()];
        assert_eq!(
            delivery.settle(wrong, &outcomes, 40, &mut terminal),
            Err(DeliveryError::NotTheRequestInFlight),
            "settle, {what}"
        );
        assert_eq!(
            delivery.settle_all(wrong, ErrorKind::Kms, 40, &mut terminal),
            Err(DeliveryError::NotTheRequestInFlight),
            "settle_all, {what}"
        );
        let mut uninit = [std::mem::MaybeUninit::<Terminal>::uninit(); 8];
        assert_eq!(
            delivery.settle_uninit(wrong, &outcomes, 40, &mut uninit),
            Err(DeliveryError::NotTheRequestInFlight),
            "settle_uninit, {what}"
        );
        assert_eq!(
            delivery.settle_all_uninit(wrong, ErrorKind::Kms, 40, &mut uninit),
            Err(DeliveryError::NotTheRequestInFlight),
            "settle_all_uninit, {what}"
        );
        assert_eq!(snapshot(&delivery), before, "{what} changed the delivery");
    }
    assert!(terminal.iter().all(|t| *t == Terminal::default()));

    // The same settle with the right `sent` works, and settles the right records.
    let settled = delivery
        .settle(&sent, &[ok, fail, ok, ok], 40, &mut terminal)
        .unwrap();
    assert_eq!((settled.accepted, settled.retrying), (3, 1));
    let waiting: Vec<(usize, u32)> = delivery
        .waiting()
        .iter()
        .map(|p| (p.index, p.attempts))
        .collect();
    assert_eq!(waiting, [(3, 2)]);
}

/// The delivery after a partial failure: records 0..4 planned, 1 and 2 waiting.
fn after_a_partial_failure(records: &[Record]) -> Delivery {
    let limits = Limits::new(4, 1000, 100).unwrap();
    let mut delivery = Delivery::new(limits, RetryPolicy::default());
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 2];
    let mut terminal = [Terminal::default(); 4];
    let next = delivery
        .next_request(records, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.entries, 4);
    let fail = Outcome::Failed(ErrorKind::InternalFailure);
    delivery
        .settle(
            &request,
            &[Outcome::Accepted, fail, fail, Outcome::Accepted],
            1,
            &mut terminal,
        )
        .unwrap();
    assert_eq!(delivery.position(), 4);
    delivery
}

/// Models callers that change the input between calls: one that drops the records it has
/// sent from its buffer (`records.drain(..n)`, thinking the delivery goes on from what is
/// left), one that overwrites its buffer in place (a ring buffer) while failures still
/// wait. With the old API the first got `Done` with failures still waiting, silently lost;
/// the second had the waiting records dropped or re-planned against other data.
#[test]
fn a_changed_input_is_refused_and_loses_nothing() {
    let big = [0u8; 200];
    let records: Vec<Record> = (0..10).map(|_| Record::new(b"data", b"key")).collect();
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 2];
    let mut delivery = after_a_partial_failure(&records);
    let waiting_before = delivery.waiting().to_vec();
    assert_eq!(
        waiting_before.iter().map(|p| p.index).collect::<Vec<_>>(),
        [1, 2]
    );
    let before = snapshot(&delivery);

    // Shorter than what was planned: every cut below position 4.
    for len in 0..4 {
        let mut probe = [Pending {
            index: 99,
            ..Pending::default()
        }; 4];
        let e = delivery.next_request(&records[..len], &mut probe, &mut refusals, 2);
        assert_eq!(e, Err(DeliveryError::InputChanged), "input of {len}");
        assert!(probe.iter().all(|p| p.index == 99), "nothing written");
        assert_eq!(delivery.waiting(), &waiting_before[..]);
        assert_eq!(snapshot(&delivery), before);
    }
    // A waiting record replaced by a refused one (empty key, too large, key not UTF-8),
    // in an input of the same length.
    for bad in [
        Record::new(b"data", b""),
        Record::new(&big, b"key"),
        Record::new(b"data", b"\xff"),
    ] {
        for at in [1, 2] {
            let mut changed = records.clone();
            changed[at] = bad;
            let e = delivery.next_request(&changed, &mut request, &mut refusals, 2);
            assert_eq!(e, Err(DeliveryError::InputChanged), "{bad:?} at {at}");
            assert_eq!(delivery.waiting(), &waiting_before[..]);
            assert_eq!(snapshot(&delivery), before);
        }
    }
    // Given the original input again, it goes on and delivers everything once.
    let mut terminal = [Terminal::default(); 4];
    let mut stored = vec![0; records.len()];
    loop {
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, 3)
            .unwrap();
        assert_eq!(next.refusals, 0);
        if next.status == NextStatus::Done {
            break;
        }
        let sent = &request[..next.entries];
        let settled = delivery
            .settle(sent, &vec![Outcome::Accepted; sent.len()], 4, &mut terminal)
            .unwrap();
        assert_eq!(settled.accepted, sent.len());
        for p in sent {
            stored[p.index] += 1;
        }
    }
    // 0 and 3 were stored by the first request.
    assert_eq!(stored, [0, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
    assert_eq!(delivery.stats().accepted, 10);
}

/// Models a caller that passes `Vec::with_capacity(500)` as the request array (a length
/// of 0), or `&mut []` for refusals because its records "are all valid". With the old API
/// the first got `Ready` with no entries forever, the second `RefusalsFull` with nothing
/// at the first refused record, forever: a loop that never ends.
#[test]
fn zero_capacity_arrays_are_refused() {
    let records = [
        Record::new(b"x", b""), // refused
        Record::new(b"x", b"k"),
    ];
    let mut request = [Pending::default(); 4];
    let mut refusals = [Refusal::default(); 4];
    let mut with_capacity: Vec<Pending> = Vec::with_capacity(500);
    let fresh = Delivery::new(Limits::KDS, RetryPolicy::default());
    let waiting = after_a_partial_failure(&[Record::new(b"x", b"k"); 6]);
    for (mut delivery, input) in [
        (fresh, &records[..]),
        (waiting, &[Record::new(b"x", b"k"); 6]),
    ] {
        let before = snapshot(&delivery);
        for (q, r) in [(0, 4), (4, 0), (0, 0)] {
            let e = delivery.next_request(input, &mut request[..q], &mut refusals[..r], 0);
            assert_eq!(e, Err(DeliveryError::ZeroCapacity), "{q} {r}");
            let mut uninit_q = [std::mem::MaybeUninit::<Pending>::uninit(); 4];
            let mut uninit_r = [std::mem::MaybeUninit::<Refusal>::uninit(); 4];
            let e = delivery.next_request_uninit(input, &mut uninit_q[..q], &mut uninit_r[..r], 0);
            assert_eq!(e, Err(DeliveryError::ZeroCapacity), "uninit {q} {r}");
        }
        let e = delivery.next_request(input, &mut with_capacity, &mut refusals, 0);
        assert_eq!(e, Err(DeliveryError::ZeroCapacity), "Vec::with_capacity");
        // Even on an empty input, where nothing would be written: the error is the
        // caller's, and says so at once.
        let none: [Record; 0] = [];
        let mut empty_delivery = Delivery::new(Limits::KDS, RetryPolicy::default());
        let e = empty_delivery.next_request(&none, &mut request, &mut [], 0);
        assert_eq!(e, Err(DeliveryError::ZeroCapacity));
        assert_eq!(snapshot(&delivery), before);
        // With room, it goes on.
        let next = delivery
            .next_request(input, &mut request, &mut refusals, 0)
            .unwrap();
        assert!(next.entries > 0);
    }
}

/// `reset` starts over on a new input. Without it, a delivery reused on a new array goes
/// on from its position: a longer array has its first records silently skipped (they
/// were "planned" in the old array), a shorter one is refused as changed. That is why
/// `reset` exists: reusing a delivery (and its 30-odd KiB) for the next batch of records
/// is what a long-running producer does.
#[test]
fn reset_starts_over_on_a_new_input() {
    let limits = Limits::new(10, 10_000, 100).unwrap();
    let old: Vec<Record> = (0..30).map(|_| Record::new(b"old", b"k")).collect();
    let new: Vec<Record> = (0..50).map(|_| Record::new(b"new!", b"k")).collect();
    let short: Vec<Record> = (0..10).map(|_| Record::new(b"new!", b"k")).collect();
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::DEFAULT
    };
    let mut request = [Pending::default(); 10];
    let mut refusals = [Refusal::default(); 4];
    let mut terminal = [Terminal::default(); 10];

    /// Runs to `Done`, everything accepted; the indices sent, in order.
    fn run(
        delivery: &mut Delivery,
        input: &[Record],
        request: &mut [Pending],
        refusals: &mut [Refusal],
        terminal: &mut [Terminal],
    ) -> Vec<usize> {
        let mut sent = Vec::new();
        loop {
            let next = delivery.next_request(input, request, refusals, 0).unwrap();
            if next.status == NextStatus::Done {
                return sent;
            }
            let req = &request[..next.entries];
            sent.extend(req.iter().map(|p| p.index));
            let outcomes = vec![Outcome::Accepted; req.len()];
            delivery.settle(req, &outcomes, 0, terminal).unwrap();
        }
    }

    let mut delivery = Delivery::new(limits, policy);
    let sent = run(
        &mut delivery,
        &old,
        &mut request,
        &mut refusals,
        &mut terminal,
    );
    assert_eq!(sent, (0..30).collect::<Vec<_>>());
    let finished = delivery.clone();

    // Without reset: the longer array goes on from index 30, 0..30 are never sent.
    let sent = run(
        &mut delivery,
        &new,
        &mut request,
        &mut refusals,
        &mut terminal,
    );
    assert_eq!(sent, (30..50).collect::<Vec<_>>());
    // Without reset: the shorter array is refused.
    let mut delivery = finished.clone();
    let e = delivery.next_request(&short, &mut request, &mut refusals, 0);
    assert_eq!(e, Err(DeliveryError::InputChanged));

    // With reset: each new array from index 0, fully; limits and policy kept, counters new.
    for input in [&new, &short] {
        let mut delivery = finished.clone();
        delivery.reset();
        assert_eq!((delivery.position(), delivery.waiting().len()), (0, 0));
        assert_eq!(*delivery.stats(), Default::default());
        assert_eq!(*delivery.limits(), limits);
        assert_eq!(*delivery.policy(), policy);
        let sent = run(
            &mut delivery,
            input,
            &mut request,
            &mut refusals,
            &mut terminal,
        );
        assert_eq!(sent, (0..input.len()).collect::<Vec<_>>());
        assert_eq!(delivery.stats().accepted, input.len() as u64);
        // A reset delivery is a new one.
        let mut fresh = Delivery::new(limits, policy);
        let again = run(
            &mut fresh,
            input,
            &mut request,
            &mut refusals,
            &mut terminal,
        );
        assert_eq!(again, sent);
    }

    // Reset in the middle: a request in flight and failures waiting are forgotten.
    let mut delivery = Delivery::new(limits, policy);
    let next = delivery
        .next_request(&old, &mut request, &mut refusals, 0)
        .unwrap();
    delivery
        .settle_all(
            &request[..next.entries],
            ErrorKind::ServerError,
            0,
            &mut terminal,
        )
        .unwrap();
    let next = delivery
        .next_request(&old, &mut request, &mut refusals, 0)
        .unwrap();
    assert_eq!(next.entries, 10);
    assert_eq!(
        delivery.next_request(&old, &mut request, &mut refusals, 0),
        Err(DeliveryError::RequestInFlight)
    );
    delivery.reset();
    assert_eq!(
        snapshot(&delivery),
        snapshot(&Delivery::new(limits, policy))
    );
    let sent = run(
        &mut delivery,
        &short,
        &mut request,
        &mut refusals,
        &mut terminal,
    );
    assert_eq!(sent, (0..10).collect::<Vec<_>>());
    assert_eq!(
        delivery.settle(&request[..1], &[Outcome::Accepted], 0, &mut terminal),
        Err(DeliveryError::NothingInFlight)
    );
}

/// A policy with every field 0 but `max_attempts`, built field by field as C and Go
/// callers (and `RetryPolicy { max_attempts: 20, ..zeroed }`) do. The issue's repro: with
/// 200,000 records and retryable failures, such a policy gave up on every failure at
/// once (a `max_age_ms` of 0 made every record too old) and never backed off (a backoff
/// of 0). Zero means the default: it retries, and backs off with the default ceilings.
#[test]
fn a_policy_with_only_max_attempts_set_retries_and_backs_off() {
    let zeroed = RetryPolicy {
        backoff: Backoff {
            base_ms: 0,
            cap_ms: 0,
        },
        max_attempts: 0,
        max_age_ms: 0,
        per_key_order: false,
    };
    let policy = RetryPolicy {
        max_attempts: 20,
        ..zeroed
    };
    let expected = RetryPolicy {
        max_attempts: 20,
        ..RetryPolicy::DEFAULT
    };

    // 200,000 records; a quarter fail once, an eighth twice, all retryably.
    let n = 200_000;
    let records: Vec<Record> = (0..n).map(|_| Record::new(b"event", b"device")).collect();
    let mut delivery = Delivery::new(Limits::KDS, policy);
    assert_eq!(*delivery.policy(), expected);
    let mut request = vec![Pending::default(); 500];
    let mut refusals = [Refusal::default(); 1];
    let mut terminal = vec![Terminal::default(); 500];
    let mut outcomes = Vec::with_capacity(500);
    let (mut now, mut rng) = (0u64, Rng(7));
    let mut first_backoff = None;
    loop {
        let next = delivery
            .next_request(&records, &mut request, &mut refusals, now)
            .unwrap();
        if next.status == NextStatus::Done {
            break;
        }
        let sent = &request[..next.entries];
        outcomes.clear();
        outcomes.extend(sent.iter().map(|p| {
            let fails =
                (p.index % 4 == 0 && p.attempts == 0) || (p.index % 8 == 0 && p.attempts < 2);
            if fails {
                Outcome::Failed(ErrorKind::ThroughputExceeded)
            } else {
                Outcome::Accepted
            }
        }));
        now += 20;
        let settled = delivery
            .settle(sent, &outcomes, now, &mut terminal)
            .unwrap();
        assert_eq!(
            settled.terminal, 0,
            "gave up at {now} ms: {:?}",
            terminal[0]
        );
        if settled.retrying > 0 && first_backoff.is_none() {
            // Some stored, some failed: the first step of the default backoff, 100 ms.
            first_backoff = Some(delivery.backoff_ms(u64::MAX));
        }
        now += delivery.backoff_ms(rng.next());
    }
    let stats = delivery.stats();
    assert_eq!(stats.accepted, n as u64);
    assert_eq!(stats.terminal, 0);
    assert_eq!(stats.retried, (n / 4 + n / 8) as u64);
    assert_eq!(first_backoff, Some(100));

    // One record that always fails: sent exactly 20 times, after delays whose ceilings
    // are the default's (100 ms doubling to 10 s), then terminal with `gave_up`.
    let one = [Record::new(b"event", b"device")];
    let mut delivery = Delivery::new(Limits::KDS, policy);
    let mut ceilings = Vec::new();
    let mut now = 0;
    for attempt in 1..=20u32 {
        let next = delivery
            .next_request(&one, &mut request, &mut refusals, now)
            .unwrap();
        assert_eq!((next.status, next.entries), (NextStatus::Ready, 1));
        assert_eq!(request[0].attempts, attempt - 1);
        let settled = delivery
            .settle_all(&request[..1], ErrorKind::Throttling, now, &mut terminal)
            .unwrap();
        if attempt < 20 {
            assert_eq!(settled.retrying, 1, "attempt {attempt} at {now} ms");
        } else {
            assert_eq!(settled.terminal, 1);
            assert!(terminal[0].gave_up);
        }
        ceilings.push(delivery.backoff_ms(u64::MAX));
        now += delivery.backoff_ms(u64::MAX);
    }
    assert_eq!(
        ceilings[..9],
        [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
    );
    assert!(ceilings[9..].iter().all(|&c| c == 10_000));
    assert!(now < 300_000, "all within the default age limit");
    let next = delivery
        .next_request(&one, &mut request, &mut refusals, now)
        .unwrap();
    assert_eq!(next.status, NextStatus::Done);

    // A policy of zeros is the default one.
    assert_eq!(zeroed.effective(), RetryPolicy::DEFAULT);
    assert_eq!(
        *Delivery::new(Limits::KDS, zeroed).policy(),
        RetryPolicy::DEFAULT
    );
}

/// `effective` maps each zero field to the default's and keeps every other field, in all
/// 16 combinations of zero and non-zero fields; a `Delivery` runs on the effective policy.
#[test]
fn retry_policy_effective_field_by_field() {
    let d = RetryPolicy::DEFAULT;
    for per_key_order in [false, true] {
        for mask in 0..16u32 {
            let pick = |bit: u32, value: u64| if mask & (1 << bit) != 0 { value } else { 0 };
            let policy = RetryPolicy {
                backoff: Backoff {
                    base_ms: pick(0, 7),
                    cap_ms: pick(1, 1),
                },
                max_attempts: pick(2, 1) as u32,
                max_age_ms: pick(3, u64::MAX),
                per_key_order,
            };
            let or = |value: u64, default: u64| if value == 0 { default } else { value };
            let expected = RetryPolicy {
                backoff: Backoff {
                    base_ms: or(policy.backoff.base_ms, d.backoff.base_ms),
                    cap_ms: or(policy.backoff.cap_ms, d.backoff.cap_ms),
                },
                max_attempts: or(u64::from(policy.max_attempts), u64::from(d.max_attempts)) as u32,
                max_age_ms: or(policy.max_age_ms, d.max_age_ms),
                per_key_order,
            };
            let effective = policy.effective();
            assert_eq!(effective, expected, "{policy:?}");
            assert_eq!(effective.effective(), effective, "idempotent");
            assert_eq!(*Delivery::new(Limits::KDS, policy).policy(), expected);
        }
    }
    // By name, the defaults a zero stands for.
    let zero = RetryPolicy {
        backoff: Backoff {
            base_ms: 0,
            cap_ms: 0,
        },
        max_attempts: 0,
        max_age_ms: 0,
        per_key_order: true,
    }
    .effective();
    assert_eq!(
        (
            zero.backoff.base_ms,
            zero.backoff.cap_ms,
            zero.max_attempts,
            zero.max_age_ms
        ),
        (100, 10_000, 10, 300_000)
    );
    assert!(zero.per_key_order);
}

proptest! {
    #![proptest_config(config())]

    /// `effective` over arbitrary values: a zero field becomes the default's, any other
    /// value is kept as it is.
    #[test]
    fn retry_policy_effective_keeps_non_zero_fields(
        base_ms in prop_oneof![Just(0u64), any::<u64>()],
        cap_ms in prop_oneof![Just(0u64), any::<u64>()],
        max_attempts in prop_oneof![Just(0u32), any::<u32>()],
        max_age_ms in prop_oneof![Just(0u64), any::<u64>()],
        per_key_order in any::<bool>(),
    ) {
        let policy = RetryPolicy {
            backoff: Backoff { base_ms, cap_ms },
            max_attempts,
            max_age_ms,
            per_key_order,
        };
        let e = policy.effective();
        let d = RetryPolicy::DEFAULT;
        prop_assert_eq!(e.backoff.base_ms, if base_ms == 0 { d.backoff.base_ms } else { base_ms });
        prop_assert_eq!(e.backoff.cap_ms, if cap_ms == 0 { d.backoff.cap_ms } else { cap_ms });
        prop_assert_eq!(e.max_attempts, if max_attempts == 0 { d.max_attempts } else { max_attempts });
        prop_assert_eq!(e.max_age_ms, if max_age_ms == 0 { d.max_age_ms } else { max_age_ms });
        prop_assert_eq!(e.per_key_order, per_key_order);
        prop_assert_eq!(*Delivery::new(Limits::KDS, policy).policy(), e);
    }
}
