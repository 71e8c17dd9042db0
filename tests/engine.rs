//! The producer engine against a simulated service on a simulated clock: random arrival
//! times, latencies, out-of-order responses, per-entry failures, lost requests,
//! throttling and credentials expiry. Whatever happens, every record pushed is stored
//! exactly once or reported (refused at push, or terminal), each key's records are
//! stored in push order when per-key order is on, no shard goes over its rates in any
//! one-second window, requests are within the limits, and linger is kept both ways (no
//! request before it is due, no due record left waiting). Naive models give the exact
//! requests of the simple cases.

#[path = "support/records.rs"]
#[allow(dead_code)] // Only ZEROS is used here.
mod records;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};

use kinesis_batcher::engine::{
    Engine, EngineConfig, EngineError, Handle, KeyEntry, Poll, PushError, RequestId, RequestSlot,
    ShardState, Slot, Storage, StorageSizes, Terminal,
};
use kinesis_batcher::retry::{Backoff, ErrorKind, Outcome, RetryPolicy};
use kinesis_batcher::shards::{ShardMap, ShardRange, hash_key_of};
use kinesis_batcher::{Limits, Reason, Record};
use proptest::prelude::*;
use records::ZEROS;
use support::assert_no_alloc;

/// The caller's memory for one engine.
struct Memory {
    slots: Vec<Slot>,
    keys: Vec<KeyEntry>,
    requests: Vec<RequestSlot>,
    entries: Vec<Handle>,
    shards: Vec<ShardState>,
}

impl Memory {
    fn new(limits: &Limits, config: &EngineConfig, capacity: usize, shards: usize) -> Memory {
        let sizes = StorageSizes::new(limits, config, capacity, shards).unwrap();
        Memory {
            slots: vec![Slot::default(); sizes.slots],
            keys: vec![KeyEntry::default(); sizes.keys],
            requests: vec![RequestSlot::default(); sizes.requests],
            entries: vec![Handle::default(); sizes.entries],
            shards: vec![ShardState::default(); sizes.shards],
        }
    }

    fn storage(&mut self) -> Storage<'_> {
        Storage {
            slots: &mut self.slots,
            keys: &mut self.keys,
            requests: &mut self.requests,
            entries: &mut self.entries,
            shards: &mut self.shards,
        }
    }
}

/// splitmix64: the simulated service's dice, seeded by proptest.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Clone, Debug)]
struct Rec {
    data_len: usize,
    key: Vec<u8>,
    hash_key: Option<Vec<u8>>,
    /// Arrives this many ms after the previous record.
    gap_ms: u64,
    /// The service always refuses it (a terminal error).
    poison: bool,
}

impl Rec {
    fn view(&self) -> Record<'_> {
        Record {
            data: &ZEROS[..self.data_len],
            key: &self.key,
            hash_key: self.hash_key.as_deref(),
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    records: Vec<Rec>,
    limits: Limits,
    config: EngineConfig,
    capacity: usize,
    /// Shard boundaries (cuts of 0..2^128), or no map.
    shards: Option<Vec<ShardRange>>,
    /// Per mille: an entry fails retryably; a request is lost; a request fails on
    /// credentials.
    fail: u64,
    lose: u64,
    credentials: u64,
    max_latency_ms: u64,
    seed: u64,
}

const KEYS: &[&str] = &["a", "b", "ключ", "🔑", "c", "d", "e", "f"];

fn record() -> impl Strategy<Value = Rec> {
    (
        prop_oneof![8 => 0usize..300, 1 => 300usize..1200],
        prop_oneof![20 => (0..KEYS.len()).prop_map(|k| KEYS[k].as_bytes().to_vec()), 1 => Just(Vec::new())],
        prop_oneof![10 => Just(None), 1 => (0u8..4).prop_map(|d| Some(vec![b'1' + d; 30]))],
        prop_oneof![3 => Just(0u64), 2 => 0u64..60],
        prop::bool::weighted(0.03),
    )
        .prop_map(|(data_len, key, hash_key, gap_ms, poison)| Rec {
            data_len,
            key,
            hash_key,
            gap_ms,
            poison,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(record(), 0..250),
        (1u32..12, 1200u32..4000, 600u32..1100),
        (0u64..200, 1u32..6, prop::bool::ANY, 0u64..6000),
        1usize..80,
        prop::option::weighted(0.4, (1usize..4, 3u32..40, 1000u32..20_000)),
        (0u64..300, 0u64..80, 0u64..30, 1u64..200, any::<u64>()),
    )
        .prop_map(
            |(
                records,
                (max_records, max_bytes, max_record),
                (linger, in_flight, reorder, buffered),
                capacity,
                shards,
                (fail, lose, credentials, max_latency_ms, seed),
            )| {
                let limits = Limits::new(max_records, max_bytes, max_record).unwrap();
                let (shards, rates) = match shards {
                    Some((n, records_per_sec, bytes_per_sec)) => {
                        let step = u128::MAX / n as u128;
                        let ranges = (0..n)
                            .map(|i| ShardRange {
                                start: step * i as u128 + (i > 0) as u128,
                                end: if i + 1 == n {
                                    u128::MAX
                                } else {
                                    step * (i as u128 + 1)
                                },
                            })
                            .collect();
                        (Some(ranges), (records_per_sec, bytes_per_sec))
                    }
                    None => (None, (0, 0)),
                };
                Scenario {
                    records,
                    limits,
                    config: EngineConfig {
                        linger_ms: linger,
                        max_in_flight: in_flight,
                        max_buffered_bytes: buffered,
                        allow_reordering: reorder,
                        shard_records_per_sec: rates.0,
                        shard_bytes_per_sec: rates.1,
                    },
                    capacity,
                    shards,
                    fail,
                    lose,
                    credentials,
                    max_latency_ms,
                    seed,
                }
            },
        )
}

/// What became of each record, and what the service saw.
#[derive(Default, Debug)]
struct Log {
    stored: Vec<usize>,
    refused: BTreeMap<usize, Reason>,
    terminal: BTreeMap<usize, Terminal>,
    /// (time, shard, size) of every entry sent.
    sends: Vec<(u64, usize, u32)>,
}

enum Response {
    Outcomes(Vec<Outcome>),
    Lost,
    Credentials,
}

const POLICY: RetryPolicy = RetryPolicy {
    backoff: Backoff {
        base_ms: 20,
        cap_ms: 400,
    },
    max_attempts: 12,
    max_age_ms: 0,
    per_key_order: false,
};

/// Runs a scenario to the end, checking every step; answers what became of the records.
fn simulate(s: &Scenario) -> Result<Log, TestCaseError> {
    let limits = s.limits;
    let config = s.config;
    let n_shards = s.shards.as_ref().map_or(0, Vec::len);
    let mut memory = Memory::new(&limits, &config, s.capacity, n_shards);
    let map = s.shards.as_deref().map(|r| ShardMap::new(r).unwrap());
    let mut engine = Engine::new(limits, POLICY, config, memory.storage(), map).unwrap();
    let effective = config.effective();
    let per_key = !effective.allow_reordering;
    let mut dice = Dice(s.seed);
    let mut log = Log::default();

    let identity = |r: &Rec| -> Vec<u8> {
        match &r.hash_key {
            Some(h) => [b"h:".as_slice(), h].concat(),
            None => [b"p:".as_slice(), &r.key].concat(),
        }
    };
    let shard_of = |r: &Rec| -> usize {
        match &map {
            Some(map) => map.shard_of(hash_key_of(&r.key, r.hash_key.as_deref()).unwrap()),
            None => 0,
        }
    };

    let mut arrivals = Vec::with_capacity(s.records.len());
    let mut t = 0u64;
    for r in &s.records {
        t += r.gap_ms;
        arrivals.push(t);
    }
    // Which record each slot holds; when each record was pushed.
    let mut owner: Vec<Option<usize>> = vec![None; s.capacity];
    let mut pushed_at = vec![0u64; s.records.len()];
    let mut sent_before: HashSet<usize> = HashSet::new();
    // Requests in flight: id -> (records, response, due time).
    let mut flight: Vec<(RequestId, Vec<usize>, Response, u64)> = Vec::new();
    let mut keys_in_flight: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut next = 0usize;
    let mut flushed = false;
    let mut resume_at: Option<u64> = None;
    let mut now = 0u64;
    let mut terminal = vec![Terminal::default(); limits.max_records() as usize];

    for _round in 0..200_000 {
        // Arrivals, until the buffer is full.
        let mut full = false;
        while next < s.records.len() && arrivals[next] <= now {
            match engine.push(&s.records[next].view(), now) {
                Ok(handle) => {
                    prop_assert!(
                        owner[handle.slot()].is_none(),
                        "slot {} reused while held",
                        handle.slot()
                    );
                    owner[handle.slot()] = Some(next);
                    pushed_at[next] = now;
                }
                Err(PushError::Full) => {
                    prop_assert!(engine.stats().buffered_records > 0, "full while empty");
                    full = true;
                    break;
                }
                Err(PushError::Refused(reason)) => {
                    log.refused.insert(next, reason);
                }
            }
            next += 1;
        }
        if next == s.records.len() && !flushed {
            engine.flush();
            flushed = true;
        }
        // Send whatever is due.
        let mut wake = u64::MAX;
        loop {
            let in_flight_before = engine.stats().in_flight_requests;
            match engine.next_request(now) {
                Poll::Ready(request) => {
                    let records: Vec<usize> = request
                        .handles
                        .iter()
                        .map(|h| owner[h.slot()].expect("a request names a held slot"))
                        .collect();
                    let bytes: u64 = records
                        .iter()
                        .map(|&i| {
                            let r = &s.records[i];
                            (r.data_len + r.key.len()) as u64
                        })
                        .sum();
                    prop_assert!(!records.is_empty());
                    prop_assert!(records.len() <= limits.max_records() as usize);
                    prop_assert_eq!(bytes, u64::from(request.bytes));
                    prop_assert!(bytes <= u64::from(limits.max_request_bytes()));
                    prop_assert!(in_flight_before < u64::from(effective.max_in_flight));
                    // Linger kept: a request leaves full, flushed, with a retry, or lingered.
                    let due = records.iter().any(|&i| {
                        sent_before.contains(&i)
                            || now - pushed_at[i] >= effective.linger_ms
                            || flushed
                    });
                    let full = records.len() == limits.max_records() as usize
                        || bytes + u64::from(limits.max_record_bytes())
                            > u64::from(limits.max_request_bytes());
                    prop_assert!(
                        due || full || n_shards > 0 || per_key,
                        "request at {} of {:?} pushed at {:?} is neither due nor full",
                        now,
                        records,
                        records.iter().map(|&i| pushed_at[i]).collect::<Vec<_>>()
                    );
                    for &i in &records {
                        let r = &s.records[i];
                        if per_key {
                            let id = identity(r);
                            prop_assert!(
                                !keys_in_flight.contains_key(&id),
                                "key of {} in two requests",
                                i
                            );
                            keys_in_flight.insert(id, i);
                        }
                        log.sends
                            .push((now, shard_of(r), (r.data_len + r.key.len()) as u32));
                        sent_before.insert(i);
                    }
                    let response = if dice.chance(s.lose) {
                        Response::Lost
                    } else if dice.chance(s.credentials) {
                        Response::Credentials
                    } else {
                        Response::Outcomes(
                            records
                                .iter()
                                .map(|&i| {
                                    if s.records[i].poison {
                                        Outcome::Failed(ErrorKind::InvalidArgument)
                                    } else if dice.chance(s.fail) {
                                        Outcome::Failed(if dice.chance(500) {
                                            ErrorKind::ThroughputExceeded
                                        } else {
                                            ErrorKind::InternalFailure
                                        })
                                    } else if dice.chance(s.credentials / 4) {
                                        Outcome::Failed(ErrorKind::Credentials)
                                    } else {
                                        Outcome::Accepted
                                    }
                                })
                                .collect(),
                        )
                    };
                    // Stored when the request reaches the service, in request order.
                    if let Response::Outcomes(outcomes) = &response {
                        for (&i, outcome) in records.iter().zip(outcomes) {
                            if *outcome == Outcome::Accepted {
                                log.stored.push(i);
                            }
                        }
                    }
                    let due = now + 1 + dice.below(s.max_latency_ms);
                    flight.push((request.id, records, response, due));
                }
                Poll::Wait { until_ms } => {
                    prop_assert!(until_ms > now, "wait until {} at {}", until_ms, now);
                    wake = until_ms;
                    break;
                }
                Poll::Busy => break,
                Poll::Paused => {
                    prop_assert!(engine.is_paused());
                    if resume_at.is_none() {
                        resume_at = Some(now + 1 + dice.below(100));
                    }
                    break;
                }
                Poll::Idle => {
                    prop_assert_eq!(
                        engine.stats().buffered_records,
                        engine.stats().in_flight_records
                    );
                    break;
                }
            }
        }
        // The next event.
        let arrival = (next < s.records.len() && !full).then(|| arrivals[next].max(now));
        let response = flight.iter().map(|f| f.3).min();
        let events = [
            arrival,
            response,
            (wake != u64::MAX).then_some(wake),
            resume_at,
        ];
        let Some(at) = events.into_iter().flatten().min() else {
            prop_assert!(!full, "stalled with a full buffer and nothing in flight");
            prop_assert!(
                engine.is_empty(),
                "records left with nothing to wait for: {:?}",
                engine.stats()
            );
            prop_assert_eq!(next, s.records.len());
            return Ok(log);
        };
        prop_assert!(at >= now);
        now = at;
        if resume_at.is_some_and(|t| t <= now) {
            resume_at = None;
            engine.resume();
        }
        // Responses due now, in any order.
        while let Some(pos) = flight.iter().position(|f| f.3 <= now) {
            let (id, records, response, _) = flight.swap_remove(pos);
            let random = dice.next();
            let settled = match &response {
                Response::Outcomes(outcomes) => {
                    engine.settle(id, outcomes, now, random, &mut terminal)
                }
                Response::Lost => {
                    engine.settle_all(id, ErrorKind::Transport, now, random, &mut terminal)
                }
                Response::Credentials => {
                    engine.settle_all(id, ErrorKind::Credentials, now, random, &mut terminal)
                }
            }
            .map_err(|e| TestCaseError::fail(format!("settle: {e}")))?;
            prop_assert!(
                engine.settle(id, &[], now, 0, &mut terminal) == Err(EngineError::NotInFlight)
            );
            for t in &terminal[..settled.terminal] {
                let i = owner[t.handle.slot()]
                    .take()
                    .expect("terminal names a held slot");
                prop_assert!(records.contains(&i));
                prop_assert!(t.kind != ErrorKind::Credentials);
                if s.records[i].poison {
                    prop_assert_eq!(t.kind, ErrorKind::InvalidArgument);
                } else {
                    prop_assert!(t.gave_up, "{:?} gave up without cause", t);
                }
                prop_assert!(log.terminal.insert(i, *t).is_none());
            }
            if let Response::Outcomes(outcomes) = &response {
                for (&i, outcome) in records.iter().zip(outcomes) {
                    if *outcome == Outcome::Accepted {
                        let slot = owner.iter().position(|o| *o == Some(i)).unwrap();
                        owner[slot] = None;
                    }
                }
            }
            if per_key {
                for &i in &records {
                    keys_in_flight.remove(&identity(&s.records[i]));
                }
            }
            prop_assert_eq!(
                settled.accepted + settled.retrying + settled.terminal,
                records.len()
            );
        }
    }
    Err(TestCaseError::fail("the simulation did not end"))
}

fn check(s: &Scenario, log: &Log) -> Result<(), TestCaseError> {
    // Every record exactly once: stored, refused or terminal.
    let mut seen = vec![0u32; s.records.len()];
    for &i in log
        .stored
        .iter()
        .chain(log.refused.keys())
        .chain(log.terminal.keys())
    {
        seen[i] += 1;
    }
    for (i, &n) in seen.iter().enumerate() {
        prop_assert_eq!(
            n,
            1,
            "record {} ({:?}) accounted {} times",
            i,
            s.records[i],
            n
        );
    }
    // Refused exactly when the limits say so.
    for (i, r) in s.records.iter().enumerate() {
        let expected = kinesis_batcher::Measure::measure(&r.view(), &s.limits).err();
        prop_assert_eq!(log.refused.get(&i).copied(), expected);
    }
    // Per-key order: each key's stored records in push order.
    if !s.config.allow_reordering {
        let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
        for &i in &log.stored {
            let r = &s.records[i];
            let id = match &r.hash_key {
                Some(h) => [b"h:".as_slice(), h].concat(),
                None => [b"p:".as_slice(), &r.key].concat(),
            };
            if let Some(&before) = last.get(&id) {
                prop_assert!(before < i, "key {:?}: {} stored after {}", id, i, before);
            }
            last.insert(id, i);
        }
    }
    // No shard over its rates in any one-second window.
    if s.shards.is_some() {
        let c = s.config.effective();
        for (k, &(t, shard, _)) in log.sends.iter().enumerate() {
            let window = log.sends[..=k]
                .iter()
                .filter(|&&(u, sh, _)| sh == shard && u + 1000 > t);
            let (records, bytes) = window.fold((0u64, 0u64), |(n, b), &(_, _, size)| {
                (n + 1, b + u64::from(size))
            });
            prop_assert!(
                records <= u64::from(c.shard_records_per_sec),
                "shard {} sent {} records in the second to {}",
                shard,
                records,
                t
            );
            // One record alone may exceed the byte rate; otherwise the bytes are within it.
            prop_assert!(
                records == 1 || bytes <= u64::from(c.shard_bytes_per_sec),
                "shard {} sent {} bytes in the second to {}",
                shard,
                bytes,
                t
            );
        }
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn every_record_stored_once_or_reported(s in scenario()) {
        let log = simulate(&s)?;
        check(&s, &log)?;
    }
}

/// The requests a naive model cuts when everything is pushed at once, flushed, and
/// every request is stored at once with one in flight: greedy in push order, skipping
/// (with per-key order) a key already in the request.
fn naive_requests(records: &[Rec], limits: &Limits, per_key: bool) -> Vec<Vec<usize>> {
    let mut queue: Vec<usize> = (0..records.len())
        .filter(|&i| kinesis_batcher::Measure::measure(&records[i].view(), limits).is_ok())
        .collect();
    let mut requests = Vec::new();
    while !queue.is_empty() {
        let mut request = Vec::new();
        let mut keys = HashSet::new();
        let mut bytes = 0u64;
        for &i in &queue {
            let r = &records[i];
            let id = match &r.hash_key {
                Some(h) => [b"h:".as_slice(), h].concat(),
                None => [b"p:".as_slice(), &r.key].concat(),
            };
            if per_key && keys.contains(&id) {
                continue;
            }
            let size = (r.data_len + r.key.len()) as u64;
            if request.len() == limits.max_records() as usize
                || bytes + size > u64::from(limits.max_request_bytes())
            {
                break;
            }
            keys.insert(id);
            bytes += size;
            request.push(i);
        }
        queue.retain(|i| !request.contains(i));
        requests.push(request);
    }
    requests
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn requests_match_a_naive_model(
        records in prop::collection::vec(record(), 0..200),
        (max_records, max_bytes) in (1u32..10, 1100u32..5000),
        reorder in prop::bool::ANY,
    ) {
        let limits = Limits::new(max_records, max_bytes, 1100).unwrap();
        let config = EngineConfig { allow_reordering: reorder, linger_ms: 1_000_000, ..EngineConfig::default() };
        let capacity = records.len().max(1);
        let mut memory = Memory::new(&limits, &config, capacity, 0);
        let mut engine = Engine::new(limits, POLICY, config, memory.storage(), None).unwrap();
        let mut owner = vec![usize::MAX; capacity];
        for (i, r) in records.iter().enumerate() {
            if let Ok(handle) = engine.push(&r.view(), 0) {
                owner[handle.slot()] = i;
            }
        }
        // Not due yet: linger is long and nothing is full unless the limits are reached.
        let mut got = Vec::new();
        engine.flush();
        let mut terminal = vec![Terminal::default(); max_records as usize];
        loop {
            let (id, request) = match engine.next_request(0) {
                Poll::Ready(request) => (request.id, request.handles.iter().map(|h| owner[h.slot()]).collect::<Vec<_>>()),
                Poll::Idle => break,
                other => return Err(TestCaseError::fail(format!("{other:?} with everything flushed"))),
            };
            let outcomes = vec![Outcome::Accepted; request.len()];
            engine.settle(id, &outcomes, 0, 0, &mut terminal).unwrap();
            got.push(request);
        }
        prop_assert!(engine.is_empty());
        prop_assert_eq!(got, naive_requests(&records, &limits, !reorder));
    }

    /// With nothing in the way (no failures, room in flight, no shards), a record leaves
    /// no later than its linger, and no request leaves before one of its records is due
    /// or it is full.
    #[test]
    fn linger_both_ways(
        gaps in prop::collection::vec(0u64..40, 1..200),
        linger in 1u64..150,
        max_records in 1u32..20,
    ) {
        let limits = Limits::new(max_records, 10 << 20, 1 << 20).unwrap();
        let config = EngineConfig { linger_ms: linger, max_in_flight: EngineConfig::MAX_IN_FLIGHT, allow_reordering: true, ..EngineConfig::default() };
        let mut memory = Memory::new(&limits, &config, gaps.len(), 0);
        let mut engine = Engine::new(limits, POLICY, config, memory.storage(), None).unwrap();
        let mut arrivals = Vec::new();
        let mut t = 0;
        for g in &gaps { t += g; arrivals.push(t); }
        let mut pushed = vec![0u64; gaps.len()];
        let mut sent = vec![None; gaps.len()];
        let mut next = 0;
        let mut now = 0;
        loop {
            while next < arrivals.len() && arrivals[next] <= now {
                let h = engine.push(&Record::new(b"x", b"k"), now).unwrap();
                prop_assert_eq!(h.slot(), next);
                pushed[next] = now;
                next += 1;
            }
            let mut wake = None;
            loop {
                match engine.next_request(now) {
                    Poll::Ready(request) => {
                        let full = request.handles.len() == max_records as usize;
                        let lingered = request.handles.iter().any(|h| now - pushed[h.slot()] >= linger);
                        prop_assert!(full || lingered, "early request at {}", now);
                        for h in request.handles { sent[h.slot()] = Some(now); }
                    }
                    Poll::Wait { until_ms } => { wake = Some(until_ms); break; }
                    Poll::Idle => break,
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                }
            }
            let arrival = (next < arrivals.len()).then(|| arrivals[next]);
            match [arrival, wake].into_iter().flatten().min() {
                Some(at) => now = at,
                None => break,
            }
        }
        for i in 0..gaps.len() {
            let at = sent[i].expect("every record sent");
            prop_assert!(at <= pushed[i] + linger, "record {} pushed at {} sent at {}", i, pushed[i], at);
        }
    }
}

fn small_engine(memory: &mut Memory, limits: Limits, config: EngineConfig) -> Engine<'_> {
    Engine::new(limits, POLICY, config, memory.storage(), None).unwrap()
}

#[test]
fn zero_config_is_the_safe_default() {
    assert_eq!(EngineConfig::default().effective(), EngineConfig::DEFAULT);
    let d = EngineConfig::DEFAULT;
    assert_eq!(
        (d.linger_ms, d.max_in_flight, d.max_buffered_bytes),
        (100, 1, 64 << 20)
    );
    assert!(!d.allow_reordering);
    assert_eq!(
        (d.shard_records_per_sec, d.shard_bytes_per_sec),
        (1000, 1 << 20)
    );
}

#[test]
fn backpressure_at_capacity_in_records_and_bytes() {
    let limits = Limits::KDS;
    let config = EngineConfig {
        max_buffered_bytes: 1000,
        ..EngineConfig::default()
    };
    let mut memory = Memory::new(&limits, &config, 3, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    // Bytes: 600 + 400 = 1000 fits exactly (inclusive), one more byte does not.
    engine.push(&Record::new(&ZEROS[..599], b"a"), 0).unwrap();
    engine.push(&Record::new(&ZEROS[..399], b"b"), 0).unwrap();
    assert_eq!(
        engine.push(&Record::new(b"", b"c"), 0),
        Err(PushError::Full)
    );
    assert_eq!(engine.stats().buffered_bytes, 1000);
    // A record above the byte budget is still taken when the buffer is empty.
    let mut memory = Memory::new(&limits, &config, 3, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    engine.push(&Record::new(&ZEROS[..5000], b"a"), 0).unwrap();
    // Records: a capacity of 3.
    let config = EngineConfig::default();
    let mut memory = Memory::new(&limits, &config, 3, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    for key in [b"a", b"b", b"c"] {
        engine.push(&Record::new(b"x", key), 0).unwrap();
    }
    assert_eq!(
        engine.push(&Record::new(b"x", b"d"), 0),
        Err(PushError::Full)
    );
    // A record that keeps failing holds its own slot only: the others are reused.
    engine.flush();
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    let id = request.id;
    let mut terminal = [Terminal::default(); 3];
    let failed_first = [
        Outcome::Failed(ErrorKind::InternalFailure),
        Outcome::Accepted,
        Outcome::Accepted,
    ];
    engine
        .settle(id, &failed_first, 1, u64::MAX, &mut terminal)
        .unwrap();
    for round in 0..5u64 {
        let d = engine.push(&Record::new(b"x", b"d"), 1).unwrap();
        let e = engine.push(&Record::new(b"x", b"e"), 1).unwrap();
        assert!(d.slot() != 0 && e.slot() != 0 && d != e);
        assert_eq!(
            engine.push(&Record::new(b"x", b"f"), 1),
            Err(PushError::Full)
        );
        engine.flush();
        let now = 10_000 * (round + 1);
        let Poll::Ready(request) = engine.next_request(now) else {
            panic!()
        };
        assert_eq!(
            request.handles[0].slot(),
            0,
            "the record sent again goes first"
        );
        let id = request.id;
        engine
            .settle(id, &failed_first, now, u64::MAX, &mut terminal)
            .unwrap();
    }
}

#[test]
fn refusals_are_counted_and_never_buffered() {
    let limits = Limits::KDS;
    let config = EngineConfig::default();
    let mut memory = Memory::new(&limits, &config, 4, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    let max = limits.max_record_bytes() as usize;
    // The record cap counts data + key: exactly the cap fits, one more byte does not.
    assert!(
        engine
            .push(&Record::new(&ZEROS[..max - 3], b"key"), 0)
            .is_ok()
    );
    assert_eq!(
        engine.push(&Record::new(&ZEROS[..max - 2], b"key"), 0),
        Err(PushError::Refused(Reason::RecordTooLarge))
    );
    // Multi-byte keys count their UTF-8 bytes.
    assert!(
        engine
            .push(&Record::new(&ZEROS[..max - 8], "🔑🔑".as_bytes()), 0)
            .is_ok()
    );
    assert_eq!(
        engine.push(&Record::new(&ZEROS[..max - 7], "🔑🔑".as_bytes()), 0),
        Err(PushError::Refused(Reason::RecordTooLarge))
    );
    assert_eq!(
        engine.push(&Record::new(b"x", b""), 0),
        Err(PushError::Refused(Reason::KeyEmpty))
    );
    assert_eq!(engine.stats().refused[Reason::RecordTooLarge as usize], 2);
    assert_eq!(engine.stats().refused[Reason::KeyEmpty as usize], 1);
    assert_eq!(engine.stats().buffered_records, 2);
}

#[test]
fn linger_wait_flush_and_idle() {
    let limits = Limits::KDS;
    let config = EngineConfig {
        linger_ms: 50,
        ..EngineConfig::default()
    };
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    assert_eq!(engine.next_request(0), Poll::Idle);
    engine.push(&Record::new(b"x", b"a"), 10).unwrap();
    assert_eq!(engine.next_request(10), Poll::Wait { until_ms: 60 });
    assert_eq!(engine.next_request(59), Poll::Wait { until_ms: 60 });
    engine.push(&Record::new(b"x", b"b"), 30).unwrap();
    assert_eq!(engine.next_request(59), Poll::Wait { until_ms: 60 });
    let Poll::Ready(request) = engine.next_request(60) else {
        panic!()
    };
    assert_eq!(request.handles.len(), 2);
    // One in flight by default.
    engine.push(&Record::new(b"x", b"c"), 61).unwrap();
    engine.flush();
    assert_eq!(engine.next_request(61), Poll::Busy);
}

#[test]
fn credentials_pause_until_resume_and_lose_nothing() {
    let limits = Limits::KDS;
    let config = EngineConfig::default();
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    for key in [b"a", b"b"] {
        engine.push(&Record::new(b"x", key), 0).unwrap();
    }
    engine.flush();
    let mut terminal = [Terminal::default(); 2];
    // Many expiries in a row: never terminal, never an attempt.
    for round in 0..30 {
        let Poll::Ready(request) = engine.next_request(round) else {
            panic!("round {round}")
        };
        let id = request.id;
        let settled = engine
            .settle(
                id,
                &[Outcome::Failed(ErrorKind::Credentials), Outcome::Accepted],
                round,
                u64::MAX,
                &mut terminal,
            )
            .unwrap();
        if round == 0 {
            assert_eq!(
                (settled.accepted, settled.retrying, settled.terminal),
                (1, 1, 0)
            );
        }
        assert_eq!(engine.next_request(round), Poll::Paused);
        assert!(engine.is_paused());
        engine.resume();
        engine.push(&Record::new(b"x", b"b"), round).unwrap();
        engine.flush();
    }
    assert_eq!(engine.stats().credential_failures, 30);
    assert_eq!(engine.stats().terminal, 0);
}

#[test]
fn terminal_kinds_attempts_and_age() {
    let limits = Limits::KDS;
    let config = EngineConfig::default();
    let policy = RetryPolicy {
        max_attempts: 2,
        max_age_ms: 1000,
        ..RetryPolicy::DEFAULT
    };
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = Engine::new(limits, policy, config, memory.storage(), None).unwrap();
    let mut terminal = [Terminal::default(); 3];
    for key in [b"a", b"b", b"c"] {
        engine.push(&Record::new(b"x", key), 0).unwrap();
    }
    engine.flush();
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    let (id, handles) = (request.id, request.handles.to_vec());
    // The terminal array must hold the whole request: nothing changes otherwise.
    assert_eq!(
        engine.settle(id, &[Outcome::Accepted; 3], 0, 0, &mut terminal[..2]),
        Err(EngineError::TerminalArrayTooSmall)
    );
    assert_eq!(
        engine.settle(id, &[Outcome::Accepted; 2], 0, 0, &mut terminal),
        Err(EngineError::OutcomeCount)
    );
    let outcomes = [
        Outcome::Failed(ErrorKind::Validation),
        Outcome::Failed(ErrorKind::InternalFailure),
        Outcome::Failed(ErrorKind::InternalFailure),
    ];
    let settled = engine.settle(id, &outcomes, 0, 0, &mut terminal).unwrap();
    assert_eq!((settled.retrying, settled.terminal), (2, 1));
    assert_eq!(
        terminal[0],
        Terminal {
            handle: handles[0],
            kind: ErrorKind::Validation,
            gave_up: false
        }
    );
    // Second attempt, 2 of 2: both give up.
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    let id = request.id;
    let settled = engine
        .settle(id, &outcomes[1..], 0, 0, &mut terminal)
        .unwrap();
    assert_eq!(settled.terminal, 2);
    assert!(
        terminal[..2]
            .iter()
            .all(|t| t.gave_up && t.kind == ErrorKind::InternalFailure)
    );
    assert!(engine.is_empty());
    // Age: sent at 0, failed at 1000.
    engine.push(&Record::new(b"x", b"a"), 0).unwrap();
    engine.flush();
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    let id = request.id;
    let settled = engine
        .settle_all(id, ErrorKind::Transport, 1000, 0, &mut terminal)
        .unwrap();
    assert_eq!(settled.terminal, 1);
    assert!(terminal[0].gave_up);
}

#[test]
fn per_key_order_holds_a_key_behind_its_oldest() {
    let limits = Limits::KDS;
    let config = EngineConfig {
        max_in_flight: 4,
        ..EngineConfig::default()
    };
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    for key in [b"a", b"a", b"b", b"a"] {
        engine.push(&Record::new(b"x", key), 0).unwrap();
    }
    engine.flush();
    let Poll::Ready(first) = engine.next_request(0) else {
        panic!()
    };
    assert_eq!(
        first.handles.iter().map(|h| h.slot()).collect::<Vec<_>>(),
        [0, 2]
    );
    let first = first.id;
    // Key "a" is in flight: its next record waits though requests are free.
    assert_eq!(engine.next_request(0), Poll::Busy);
    let mut terminal = [Terminal::default(); 2];
    engine
        .settle(
            first,
            &[
                Outcome::Failed(ErrorKind::InternalFailure),
                Outcome::Accepted,
            ],
            0,
            0,
            &mut terminal,
        )
        .unwrap();
    // The failed "a" goes again before the younger ones.
    let Poll::Ready(again) = engine.next_request(0) else {
        panic!()
    };
    assert_eq!(
        again.handles.iter().map(|h| h.slot()).collect::<Vec<_>>(),
        [0]
    );
}

#[test]
fn shards_keep_their_rate_and_back_off_alone() {
    let ranges = [
        ShardRange {
            start: 0,
            end: u128::MAX / 2,
        },
        ShardRange {
            start: u128::MAX / 2 + 1,
            end: u128::MAX,
        },
    ];
    let map = ShardMap::new(&ranges).unwrap();
    let limits = Limits::KDS;
    let config = EngineConfig {
        allow_reordering: true,
        shard_records_per_sec: 3,
        max_in_flight: 4,
        ..EngineConfig::default()
    };
    let mut memory = Memory::new(&limits, &config, 64, 2);
    let mut engine = Engine::new(limits, POLICY, config, memory.storage(), Some(map)).unwrap();
    // Keys by shard.
    let key_of = |shard: usize| -> String {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| map.shard_of(hash_key_of(k.as_bytes(), None).unwrap()) == shard)
            .unwrap()
    };
    let (k0, k1) = (key_of(0), key_of(1));
    for _ in 0..5 {
        engine.push(&Record::new(b"x", k0.as_bytes()), 0).unwrap();
    }
    engine.push(&Record::new(b"x", k1.as_bytes()), 0).unwrap();
    engine.flush();
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    assert_eq!(request.handles.len(), 4, "3 for shard 0, 1 for shard 1");
    let id = request.id;
    // Shard 0 is at its rate until its first bucket leaves the window, 1.1 s later.
    assert_eq!(engine.next_request(500), Poll::Wait { until_ms: 1100 });
    assert!(matches!(engine.next_request(1100), Poll::Ready(r) if r.handles.len() == 2));
    let mut terminal = [Terminal::default(); 4];
    let outcomes = [
        Outcome::Failed(ErrorKind::ThroughputExceeded),
        Outcome::Failed(ErrorKind::ThroughputExceeded),
        Outcome::Accepted,
        Outcome::Accepted,
    ];
    engine
        .settle(id, &outcomes, 1100, u64::MAX, &mut terminal)
        .unwrap();
    assert_eq!(
        (engine.shard_throttled(0), engine.shard_throttled(1)),
        (1, 0)
    );
    assert_eq!(engine.stats().throttled, 2);
}

#[test]
fn settle_checks_the_request() {
    let limits = Limits::KDS;
    let config = EngineConfig::default();
    let mut memory = Memory::new(&limits, &config, 4, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    let mut terminal = [Terminal::default(); 1];
    assert_eq!(
        engine.settle(RequestId(0), &[], 0, 0, &mut terminal),
        Err(EngineError::NotInFlight)
    );
    assert_eq!(
        engine.settle(RequestId(u64::MAX), &[], 0, 0, &mut terminal),
        Err(EngineError::NotInFlight)
    );
    engine.push(&Record::new(b"x", b"a"), 0).unwrap();
    engine.flush();
    let Poll::Ready(request) = engine.next_request(0) else {
        panic!()
    };
    let id = request.id;
    assert_eq!(engine.request(id).map(<[Handle]>::len), Some(1));
    engine
        .settle(id, &[Outcome::Accepted], 0, 0, &mut terminal)
        .unwrap();
    assert_eq!(
        engine.settle(id, &[Outcome::Accepted], 0, 0, &mut terminal),
        Err(EngineError::NotInFlight)
    );
    assert_eq!(engine.request(id), None);
}

#[test]
fn storage_sizes_are_checked() {
    let limits = Limits::KDS;
    let config = EngineConfig::default();
    assert_eq!(
        StorageSizes::new(&limits, &config, 0, 0),
        Err(EngineError::ZeroCapacity)
    );
    assert_eq!(
        StorageSizes::new(&limits, &config, usize::MAX, 0),
        Err(EngineError::SizeOverflow)
    );
    assert_eq!(
        StorageSizes::new(&limits, &config, usize::MAX / 4, 0),
        Err(EngineError::SizeOverflow)
    );
    let bad = EngineConfig {
        max_in_flight: EngineConfig::MAX_IN_FLIGHT + 1,
        ..config
    };
    assert_eq!(
        StorageSizes::new(&limits, &bad, 1, 0),
        Err(EngineError::InvalidConfig)
    );
    let sizes = StorageSizes::new(
        &limits,
        &EngineConfig {
            max_in_flight: 8,
            ..config
        },
        1000,
        3,
    )
    .unwrap();
    assert_eq!(
        (sizes.keys, sizes.requests, sizes.entries, sizes.shards),
        (2048, 8, 4000, 3)
    );
    let mut memory = Memory::new(&limits, &config, 4, 0);
    memory.keys.truncate(7);
    assert_eq!(
        Engine::new(limits, POLICY, config, memory.storage(), None).err(),
        Some(EngineError::StorageTooSmall)
    );
}

#[test]
fn the_engine_never_allocates() {
    let limits = Limits::KDS;
    let config = EngineConfig {
        max_in_flight: 4,
        ..EngineConfig::default()
    };
    let ranges = [ShardRange {
        start: 0,
        end: u128::MAX,
    }];
    let map = ShardMap::new(&ranges).unwrap();
    let mut memory = Memory::new(&limits, &config, 2000, 1);
    let keys: Vec<String> = (0..2000).map(|i| format!("key-{i}")).collect();
    let mut terminal = vec![Terminal::default(); 500];
    assert_no_alloc("the engine", || {
        let mut engine = Engine::new(limits, POLICY, config, memory.storage(), Some(map)).unwrap();
        for (i, key) in keys.iter().enumerate() {
            engine
                .push(&Record::new(b"payload", key.as_bytes()), i as u64)
                .unwrap();
        }
        engine.flush();
        let mut now = 0;
        while !engine.is_empty() {
            match engine.next_request(now) {
                Poll::Ready(request) => {
                    let id = request.id;
                    engine
                        .settle_all(id, ErrorKind::InternalFailure, now, 7, &mut terminal)
                        .unwrap();
                    let Poll::Ready(request) = engine.next_request(now + 10_000) else {
                        continue;
                    };
                    let id = request.id;
                    engine
                        .settle_all(id, ErrorKind::ThroughputExceeded, now, 7, &mut terminal)
                        .unwrap();
                }
                _ => now += 100,
            }
            // Accept whatever is due next.
            if let Poll::Ready(request) = engine.next_request(now + 20_000) {
                let (id, n) = (request.id, request.handles.len());
                let outcomes = [Outcome::Accepted; 500];
                engine
                    .settle(id, &outcomes[..n], now, 7, &mut terminal)
                    .unwrap();
            }
            now += 1000;
        }
    });
}

#[test]
fn a_push_shortens_a_wait_it_can_end_sooner() {
    let limits = Limits::KDS;
    let config = EngineConfig {
        linger_ms: 50,
        max_in_flight: 2,
        ..EngineConfig::default()
    };
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = small_engine(&mut memory, limits, config);
    engine.push(&Record::new(b"x", b"a"), 0).unwrap();
    engine.push(&Record::new(b"x", b"a"), 0).unwrap();
    let Poll::Ready(request) = engine.next_request(50) else {
        panic!()
    };
    assert_eq!(request.handles.len(), 1);
    let id = request.id;
    // The second "a" waits on the first, in flight: only a settle can change that...
    assert_eq!(engine.next_request(60), Poll::Busy);
    // ...or a record of another key, due after its own linger.
    engine.push(&Record::new(b"x", b"b"), 70).unwrap();
    assert_eq!(engine.next_request(70), Poll::Wait { until_ms: 120 });
    // A retry far off does not hold back a fresh record either.
    let slow = RetryPolicy {
        backoff: Backoff {
            base_ms: 10_000,
            cap_ms: 10_000,
        },
        ..POLICY
    };
    let mut memory = Memory::new(&limits, &config, 8, 0);
    let mut engine = Engine::new(limits, slow, config, memory.storage(), None).unwrap();
    engine.push(&Record::new(b"x", b"a"), 0).unwrap();
    let Poll::Ready(request) = engine.next_request(50) else {
        panic!()
    };
    assert_eq!(request.id, id, "ids start the same way");
    let mut terminal = [Terminal::default(); 1];
    engine
        .settle(
            id,
            &[Outcome::Failed(ErrorKind::InternalFailure)],
            60,
            u64::MAX,
            &mut terminal,
        )
        .unwrap();
    assert_eq!(engine.next_request(60), Poll::Wait { until_ms: 10_060 });
    engine.push(&Record::new(b"x", b"b"), 100).unwrap();
    assert_eq!(engine.next_request(100), Poll::Wait { until_ms: 150 });
}

#[test]
fn storage_element_sizes_are_what_the_readme_says() {
    assert_eq!(std::mem::size_of::<Slot>(), 72);
    assert_eq!(std::mem::size_of::<KeyEntry>(), 16);
    assert_eq!(std::mem::size_of::<Handle>(), 4);
}
