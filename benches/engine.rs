//! The producer engine's cost per record beside the plain planner's, on the same 100,000
//! records (16 to 36 byte keys from a pool of 20,000, 10 to 200 byte payloads).
//!
//! Run with `cargo bench --bench engine`. Every variant goes through all the records;
//! the engine ones push until the buffer (10,000 records) is full, take every due request
//! (flushed, so linger never waits) and settle it as stored at once, 8 requests in flight:
//!
//! * `planner`: the plain `Planner` cursor, batch by batch: the floor;
//! * `accumulator`: `Accumulator::push`, one record at a time;
//! * `engine/reordering`: push, next_request, settle with `allow_reordering`;
//! * `engine/per_key_order`: the same with the default per-key order;
//! * `engine/per_key_order+shards`: and a map of 16 shards (an MD5 per record), with rates
//!   high enough never to hold a record back, so only the bookkeeping shows;
//! * `naive/per_key_order`: the same decisions as `engine/per_key_order`, written the way
//!   one would without the core: a `VecDeque` of pending records, a `HashSet` of the keys
//!   in flight, a `Vec` per request, the queue rebuilt after each look.

mod common;
use common::Rng;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinesis_batcher::engine::{
    Engine, EngineConfig, Handle, KeyEntry, Poll, PushError, RequestSlot, ShardState, Slot,
    Storage, StorageSizes, Terminal,
};
use kinesis_batcher::retry::{Outcome, RetryPolicy};
use kinesis_batcher::shards::{ShardMap, ShardRange};
use kinesis_batcher::{Accumulator, Event, Limits, Planner, Record};

const N: usize = 100_000;
const CAPACITY: usize = 10_000;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
static PAYLOAD: [u8; 200] = [b'x'; 200];

struct Memory {
    slots: Vec<Slot>,
    keys: Vec<KeyEntry>,
    requests: Vec<RequestSlot>,
    entries: Vec<Handle>,
    shards: Vec<ShardState>,
}

impl Memory {
    fn new(config: &EngineConfig, shards: usize) -> Memory {
        let sizes = StorageSizes::new(&Limits::KDS, config, CAPACITY, shards).unwrap();
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

/// Every record through the engine; answers the records stored.
fn run(records: &[Record<'_>], engine: &mut Engine<'_>, terminal: &mut [Terminal]) -> u64 {
    let stored = [Outcome::Accepted; 500];
    let mut out: Vec<(kinesis_batcher::engine::RequestId, usize)> = Vec::with_capacity(8);
    let mut next = 0;
    let mut now = 0;
    while next < records.len() || !engine.is_empty() {
        while next < records.len() {
            match engine.push(&records[next], now) {
                Ok(_) => next += 1,
                Err(PushError::Full) => break,
                Err(PushError::Refused(_)) => unreachable!(),
            }
        }
        engine.flush();
        loop {
            match engine.next_request(now) {
                Poll::Ready(request) => out.push((request.id, request.handles.len())),
                Poll::Wait { .. } | Poll::Busy | Poll::Idle => break,
                Poll::Paused => unreachable!(),
            }
        }
        for (id, n) in out.drain(..) {
            engine.settle(id, &stored[..n], now, 0, terminal).unwrap();
        }
        now += 1;
    }
    engine.stats().accepted_records
}

/// What one would write without the engine, for the same records and decisions: per-key
/// order, 8 requests in flight, everything stored at once.
fn naive(records: &[Record<'_>]) -> u64 {
    use std::collections::{HashSet, VecDeque};
    let limits = Limits::KDS;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut flight: Vec<Vec<usize>> = Vec::new();
    let mut busy: HashSet<&[u8]> = HashSet::new();
    let mut stored = 0u64;
    let mut next = 0;
    while next < records.len() || !queue.is_empty() {
        while next < records.len()
            && queue.len() + flight.iter().map(Vec::len).sum::<usize>() < CAPACITY
        {
            let r = &records[next];
            // The same checks as push: a valid key and the record cap.
            if !r.key.is_empty()
                && std::str::from_utf8(r.key).is_ok()
                && r.data.len() + r.key.len() <= limits.max_record_bytes() as usize
            {
                queue.push_back(next);
            }
            next += 1;
        }
        while flight.len() < 8 {
            let mut request = Vec::new();
            let mut bytes = 0;
            let mut kept = VecDeque::with_capacity(queue.len());
            let mut closed = false;
            for &i in &queue {
                let r = &records[i];
                let size = r.data.len() + r.key.len();
                if closed || busy.contains(r.key) {
                    kept.push_back(i);
                    continue;
                }
                if request.len() == limits.max_records() as usize
                    || bytes + size > limits.max_request_bytes() as usize
                {
                    closed = true;
                    kept.push_back(i);
                    continue;
                }
                busy.insert(r.key);
                bytes += size;
                request.push(i);
            }
            queue = kept;
            if request.is_empty() {
                break;
            }
            flight.push(request);
        }
        for request in flight.drain(..) {
            for i in request {
                busy.remove(records[i].key);
                stored += 1;
            }
        }
    }
    stored
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            let len = rng.range(16, 37) as usize;
            (0..len)
                .map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64) as usize])
                .collect()
        })
        .collect();
    let records: Vec<Record<'_>> = (0..N)
        .map(|_| {
            let data = &PAYLOAD[..rng.range(10, 201) as usize];
            Record::new(data, &keys[rng.range(0, keys.len() as u64) as usize])
        })
        .collect();
    let ranges: Vec<ShardRange> = (0..16u128)
        .map(|i| ShardRange {
            start: i << 124,
            end: if i == 15 {
                u128::MAX
            } else {
                ((i + 1) << 124) - 1
            },
        })
        .collect();
    let map = ShardMap::new(&ranges).unwrap();

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("planner", |b| {
        b.iter(|| {
            let mut planner = Planner::new(Limits::KDS);
            let mut sent = 0;
            while let Some(event) = planner.next_event(black_box(&records)) {
                if let Event::Batch(batch) = event {
                    sent += batch.records;
                }
            }
            assert_eq!(sent as usize, N);
        })
    });
    group.bench_function("accumulator", |b| {
        b.iter(|| {
            let mut accumulator = Accumulator::new(Limits::KDS);
            for record in black_box(&records) {
                black_box(accumulator.push(record));
            }
            black_box(accumulator.flush())
        })
    });
    let variants = [
        ("engine/reordering", true, false),
        ("engine/per_key_order", false, false),
        ("engine/per_key_order+shards", false, true),
    ];
    for (name, reordering, shards) in variants {
        let config = EngineConfig {
            max_in_flight: 8,
            allow_reordering: reordering,
            shard_records_per_sec: u32::MAX,
            shard_bytes_per_sec: u32::MAX,
            ..EngineConfig::default()
        };
        let n_shards = if shards { ranges.len() } else { 0 };
        let mut memory = Memory::new(&config, n_shards);
        let mut terminal = vec![Terminal::default(); 500];
        group.bench_function(name, |b| {
            b.iter(|| {
                let map = shards.then_some(map);
                let mut engine = Engine::new(
                    Limits::KDS,
                    RetryPolicy::DEFAULT,
                    config,
                    memory.storage(),
                    map,
                )
                .unwrap();
                assert_eq!(
                    run(black_box(&records), &mut engine, &mut terminal),
                    N as u64
                );
            })
        });
    }
    group.bench_function("naive/per_key_order", |b| {
        b.iter(|| assert_eq!(naive(black_box(&records)), N as u64))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
