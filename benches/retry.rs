//! Retry planning: one cycle of `Delivery::next_request` + `Delivery::settle` for a full
//! 500-record request of which 10% fail, over a 100,000-record input.
//!
//! Run with `cargo bench --bench retry`. Records have 16 to 36 byte keys and 10 to 200
//! byte payloads (deterministic, an inline xorshift64*), so `Limits::KDS` closes every
//! request on the 500-record count. The response pattern is fixed: the entries at
//! positions 3, 13, 23, ... fail with `ProvisionedThroughputExceededException`, the rest
//! are stored, so each request carries ~50 re-sent entries at its front. When the input
//! runs out the delivery starts again (`Delivery::reset`, 33 KiB rewritten once every
//! ~220 cycles, inside the timing). Variants:
//!
//! * `plain`: no per-key ordering;
//! * `per_key_order/unique_keys`: per-key ordering with every key distinct, so requests
//!   stay at 500 and only the cost of the key check shows;
//! * `per_key_order/2000_keys`: keys drawn from 2,000, so requests also close on repeats;
//! * `planner_baseline`: one batch from the plain `Planner` cursor over the same records,
//!   for the cost of planning without retry bookkeeping.

mod common;
use common::Rng;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kinesis_batcher::retry::{Delivery, ErrorKind, Outcome, Pending, RetryPolicy, Terminal};
use kinesis_batcher::{Event, Limits, Planner, Record, Refusal};

const N: usize = 100_000;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
static PAYLOAD: [u8; 200] = [b'x'; 200];

/// `count` distinct-enough keys of 16 to 36 ASCII bytes.
fn keys(rng: &mut Rng, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let len = rng.range(16, 37) as usize;
            (0..len)
                .map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// Records over `keys`: record `i` uses key `pick(i)`.
fn records<'a>(
    rng: &mut Rng,
    keys: &'a [Vec<u8>],
    pick: impl Fn(&mut Rng, usize) -> usize,
) -> Vec<Record<'a>> {
    (0..N)
        .map(|i| {
            let data = &PAYLOAD[..rng.range(10, 201) as usize];
            Record::new(data, &keys[pick(rng, i)])
        })
        .collect()
}

/// 10% of the entries fail: positions 3, 13, 23, ...
fn outcomes() -> Vec<Outcome> {
    (0..500)
        .map(|i| {
            if i % 10 == 3 {
                Outcome::Failed(ErrorKind::ThroughputExceeded)
            } else {
                Outcome::Accepted
            }
        })
        .collect()
}

/// The arrays one delivery loop needs, and the loop's cycle.
struct Cycle<'a> {
    records: &'a [Record<'a>],
    delivery: Delivery,
    request: Vec<Pending>,
    refusals: Vec<Refusal>,
    terminal: Vec<Terminal>,
    outcomes: Vec<Outcome>,
}

impl<'a> Cycle<'a> {
    fn new(records: &'a [Record<'a>], per_key_order: bool) -> Cycle<'a> {
        let policy = RetryPolicy {
            per_key_order,
            ..RetryPolicy::DEFAULT
        };
        Cycle {
            records,
            delivery: Delivery::new(Limits::KDS, policy),
            request: vec![Pending::default(); 500],
            refusals: vec![Refusal::default(); 64],
            terminal: vec![Terminal::default(); 500],
            outcomes: outcomes(),
        }
    }

    /// One request planned and settled. Returns the entries sent and how many of them
    /// were re-sent.
    #[inline]
    fn step(&mut self) -> (usize, usize) {
        let next = self
            .delivery
            .next_request(self.records, &mut self.request, &mut self.refusals, 0)
            .expect("one request at a time, the same input");
        let n = next.entries;
        if n == 0 {
            return (0, 0); // `Done` (or only refusals): nothing to settle.
        }
        let resent = self.request[..n]
            .iter()
            .take_while(|p| p.attempts > 0)
            .count();
        let settled = self
            .delivery
            .settle(
                &self.request[..n],
                &self.outcomes[..n],
                0,
                &mut self.terminal,
            )
            .expect("a request is in flight");
        black_box(settled);
        (n, resent)
    }

    fn finished(&self) -> bool {
        self.delivery.position() == self.records.len() && self.delivery.waiting().is_empty()
    }

    /// One cycle, starting the delivery over once it is done.
    #[inline]
    fn run(&mut self) -> (usize, usize) {
        let out = self.step();
        if self.finished() {
            self.delivery.reset();
        }
        out
    }
}

/// Runs one whole delivery and prints what a cycle does on average.
fn describe(name: &str, records: &[Record<'_>], per_key_order: bool) {
    let mut cycle = Cycle::new(records, per_key_order);
    let (mut cycles, mut entries, mut resent) = (0usize, 0usize, 0usize);
    while !cycle.finished() {
        let (n, r) = cycle.step();
        cycles += 1;
        entries += n;
        resent += r;
    }
    let stats = cycle.delivery.stats();
    println!(
        "{name}: {cycles} cycles per delivery of {N} records, {:.1} entries per request \
         ({:.1} re-sent), {} accepted, {} terminal",
        entries as f64 / cycles as f64,
        resent as f64 / cycles as f64,
        stats.accepted,
        stats.terminal,
    );
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(SEED);
    let unique_keys = keys(&mut rng, N);
    let pool = keys(&mut rng, 2000);
    let unique = records(&mut rng, &unique_keys, |_, i| i);
    let pooled = records(&mut rng, &pool, |rng, _| rng.range(0, 2000) as usize);

    describe("plain", &unique, false);
    describe("per_key_order/unique_keys", &unique, true);
    describe("per_key_order/2000_keys", &pooled, true);

    let mut group = c.benchmark_group("retry_cycle_500_records_10pct_failing");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    let mut cycle = Cycle::new(&unique, false);
    group.bench_function("plain", |b| b.iter(|| cycle.run()));
    let mut cycle = Cycle::new(&unique, true);
    group.bench_function("per_key_order/unique_keys", |b| b.iter(|| cycle.run()));
    let mut cycle = Cycle::new(&pooled, true);
    group.bench_function("per_key_order/2000_keys", |b| b.iter(|| cycle.run()));

    // The plain planner's cursor, one 500-record batch per iteration.
    let mut planner = Planner::new(Limits::KDS);
    group.bench_function("planner_baseline", |b| {
        b.iter(|| {
            loop {
                match planner.next_event(&unique) {
                    Some(Event::Batch(batch)) => break black_box(batch),
                    Some(Event::Refused(_)) => {}
                    None => planner = Planner::new(Limits::KDS),
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
