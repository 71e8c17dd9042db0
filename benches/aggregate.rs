//! Aggregation (the KPL record format) against what it cannot avoid, on the same data in
//! one run:
//!
//! * `encode_1mib`: [`encode`] of one ~1 MiB aggregate of 100-byte records (9-byte keys
//!   `user-NNNN`, shared-hash-key mode) beside copying the same records' data into one
//!   buffer (`copy_data`), that copy plus its MD5 (`copy_data_md5`: the format requires a
//!   digest, so this is the fair floor), the MD5 alone of the bytes `encode` hashes
//!   (`md5_only`), a writer of the very same bytes without the digest and without
//!   `encode`'s checking pass (`protobuf_only`: what the protobuf writing costs), and a
//!   KPL-style encoder (a `HashMap` key table, a `Vec` per sub-record, then one output
//!   `Vec`: `naive_kpl`).
//! * `decode_1mib`: [`deaggregate`] of that aggregate, alone and with every sub-record
//!   visited (its data length summed), beside a pass that only reads every byte
//!   (`read_bytes`, an xor fold) and the MD5 alone of the protobuf.
//! * `decode_key_reuse_1mib`: the same with keys from a pool of 100, encoded by
//!   [`encode`] and by the KPL-style encoder (whose key table holds each key once, so
//!   sub-records point back into it).
//! * `plan_1m`: planning 1,000,000 records of 100 bytes with
//!   [`Aggregation::plan`] in each mode (per-shard with a 4-shard map) beside the plain
//!   request planner [`plan`] and a floor that sums the lengths (per record: criterion's
//!   elements/s); `plan_parts_1024` times two things the modes pay per record or per
//!   step: a key's MD5 (`hash_key_of`) and a hash key's digit count (`hash_key_digits`).
//!
//! The setup prints (eprintln) how much aggregation packs: user records per Kinesis
//! record, and Kinesis records per `PutRecords` request, for 9-byte keys and for 36-char
//! UUID-like keys. Every variant's output is checked before anything is timed.
//!
//! `cargo bench --bench aggregate -- --warm-up-time 1 --measurement-time 3`: the groups
//! set only their sample sizes, so the command line decides the times.

mod common;
use common::Rng;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kinesis_batcher::aggregate::wire::MAGIC;
use kinesis_batcher::aggregate::{Aggregate, Aggregation, Layout, Mode, Step, deaggregate, encode};
use kinesis_batcher::shards::{
    MAX_HASH_KEY_DIGITS, ShardMap, ShardRange, hash_key_digits, hash_key_of,
};
use kinesis_batcher::{Event, Limits, Record, plan};
use md5::{Digest, Md5};

const N: usize = 1_000_000;
const RECORD_BYTES: usize = 100;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
/// `user-NNNN` keys are drawn from this many users.
const USERS: u64 = 10_000;

/// The records' bytes: one data buffer of `N * RECORD_BYTES` random bytes, and every key
/// back to back.
struct Input {
    data: Vec<u8>,
    keys: Vec<u8>,
    key_len: usize,
}

impl Input {
    fn records(&self) -> Vec<Record<'_>> {
        self.data
            .chunks_exact(RECORD_BYTES)
            .zip(self.keys.chunks_exact(self.key_len))
            .map(|(data, key)| Record::new(data, key))
            .collect()
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut bytes = Vec::with_capacity(n + 8);
    while bytes.len() < n {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(n);
    bytes
}

/// `user-NNNN`, N below `users`.
fn user_keys(n: usize, users: u64, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut keys = Vec::with_capacity(n * 9);
    for _ in 0..n {
        keys.extend_from_slice(format!("user-{:04}", rng.range(0, users)).as_bytes());
    }
    keys
}

/// 8-4-4-4-12 lowercase hex, as a UUID prints.
fn uuid_keys(n: usize, seed: u64) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = Rng(seed);
    let mut keys = Vec::with_capacity(n * 36);
    for _ in 0..n {
        let (mut hi, mut lo) = (rng.next(), rng.next());
        for at in 0..36 {
            if matches!(at, 8 | 13 | 18 | 23) {
                keys.push(b'-');
            } else {
                keys.push(HEX[(hi & 15) as usize]);
                hi = (hi >> 4) | (lo << 60);
                lo >>= 4;
            }
        }
    }
    keys
}

fn input(keys: Vec<u8>, key_len: usize) -> Input {
    Input {
        data: random_bytes(N * RECORD_BYTES, SEED),
        keys,
        key_len,
    }
}

/// Four shards of equal width.
fn four_shards() -> [ShardRange; 4] {
    let width = 1u128 << 126;
    core::array::from_fn(|i| ShardRange {
        start: i as u128 * width,
        end: if i == 3 {
            u128::MAX
        } else {
            (i as u128 + 1) * width - 1
        },
    })
}

fn aggregates_of(aggregation: &Aggregation<'_>, records: &[Record<'_>]) -> Vec<Aggregate> {
    aggregation
        .plan(records)
        .map(|step| match step {
            Step::Aggregate(aggregate) => aggregate,
            Step::Refused(refusal) => panic!("record {} refused", refusal.index),
        })
        .collect()
}

/// Batches and refusals of the request planner.
fn requests<M: kinesis_batcher::Measure>(input: &[M]) -> (usize, usize) {
    let (mut batches, mut refused) = (0, 0);
    for event in plan(input, Limits::KDS) {
        match event {
            Event::Batch(_) => batches += 1,
            Event::Refused(_) => refused += 1,
        }
    }
    (batches, refused)
}

/// How much each mode packs these records: printed once, not timed.
fn print_packing(label: &str, records: &[Record<'_>], map: ShardMap<'_>) {
    let (plain_requests, refused) = requests(records);
    assert_eq!(refused, 0);
    eprintln!(
        "packing, {label}: {} records of {RECORD_BYTES} bytes; without aggregation {plain_requests} requests ({:.0} records each)",
        records.len(),
        records.len() as f64 / plain_requests as f64
    );
    let modes = [
        ("shared_hash_key", Aggregation::default()),
        (
            "shared_hash_key, 51,200-byte aggregates (KPL default)",
            Aggregation::default().with_max_bytes(51_200),
        ),
        ("one_key", Aggregation::default().with_mode(Mode::OneKey)),
        (
            "per_shard (4 shards)",
            Aggregation::default().with_mode(Mode::PerShard(map)),
        ),
    ];
    for (name, aggregation) in modes {
        let aggregates = aggregates_of(&aggregation, records);
        let plain = aggregates
            .iter()
            .filter(|a| a.layout == Layout::Plain)
            .count();
        let bytes: u64 = aggregates.iter().map(|a| u64::from(a.size)).sum();
        let (batches, refused) = requests(&aggregates);
        assert_eq!(refused, 0);
        eprintln!(
            "packing, {label}, {name}: {} Kinesis records ({plain} plain), {:.1} user records each, {:.0} bytes each; \
             {batches} requests, {:.2} Kinesis records and {:.0} user records each ({:.1}x fewer requests)",
            aggregates.len(),
            records.len() as f64 / aggregates.len() as f64,
            bytes as f64 / aggregates.len() as f64,
            aggregates.len() as f64 / batches as f64,
            records.len() as f64 / batches as f64,
            plain_requests as f64 / batches as f64,
        );
    }
}

fn put_varint(out: &mut [u8], mut at: usize, mut value: u64) -> usize {
    while value >= 0x80 {
        out[at] = value as u8 | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
    at + 1
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The library's key table, as the bench needs it: a key equal to one of the last 8
/// distinct keys reuses its entry.
struct Recent<'r> {
    recent: [(&'r [u8], u64); 8],
    filled: usize,
    oldest: usize,
    entries: u64,
}

impl<'r> Recent<'r> {
    fn new() -> Self {
        Recent {
            recent: [(&[], 0); 8],
            filled: 0,
            oldest: 0,
            entries: 0,
        }
    }

    /// The key's index, and whether it is new (then taken in).
    fn index(&mut self, key: &'r [u8]) -> (u64, bool) {
        if let Some(&(_, index)) = self.recent[..self.filled].iter().find(|(k, _)| *k == key) {
            return (index, false);
        }
        let slot = if self.filled < 8 {
            self.filled += 1;
            self.filled - 1
        } else {
            let slot = self.oldest;
            self.oldest = (self.oldest + 1) % 8;
            slot
        };
        self.recent[slot] = (key, self.entries);
        self.entries += 1;
        (self.entries - 1, true)
    }
}

/// The bytes `encode` writes for a shared-hash-key aggregate, up to the digest, with
/// none of its checks: the cost of writing the protobuf. Returns the bytes written.
fn protobuf_only(records: &[Record<'_>], hash_key: &[u8], out: &mut [u8]) -> usize {
    out[..4].copy_from_slice(&MAGIC);
    let mut at = 4;
    let mut table = Recent::new();
    for record in records {
        if table.index(record.key).1 {
            out[at] = 0x0A;
            at = put_varint(out, at + 1, record.key.len() as u64);
            out[at..at + record.key.len()].copy_from_slice(record.key);
            at += record.key.len();
        }
    }
    out[at] = 0x12;
    at = put_varint(out, at + 1, hash_key.len() as u64);
    out[at..at + hash_key.len()].copy_from_slice(hash_key);
    at += hash_key.len();
    let mut table = Recent::new();
    for record in records {
        let (key_index, _) = table.index(record.key);
        let len = record.data.len() as u64;
        let body = 1 + varint_len(key_index) + 2 + 1 + varint_len(len) + record.data.len();
        out[at] = 0x1A;
        at = put_varint(out, at + 1, body as u64);
        out[at] = 0x08;
        at = put_varint(out, at + 1, key_index);
        out[at] = 0x10;
        out[at + 1] = 0;
        out[at + 2] = 0x1A;
        at = put_varint(out, at + 3, len);
        out[at..at + record.data.len()].copy_from_slice(record.data);
        at += record.data.len();
    }
    at
}

/// A KPL-style encoder: every distinct key once in a `HashMap`-indexed table, a `Vec`
/// per sub-record, then one output `Vec` and its digest.
fn naive_kpl(records: &[Record<'_>], hash_key: &[u8]) -> Vec<u8> {
    let mut index_of: HashMap<&[u8], u64> = HashMap::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut subs: Vec<Vec<u8>> = Vec::with_capacity(records.len());
    for record in records {
        let index = *index_of.entry(record.key).or_insert_with(|| {
            keys.push(record.key);
            keys.len() as u64 - 1
        });
        let mut sub = Vec::new();
        sub.push(0x08);
        push_varint(&mut sub, index);
        sub.push(0x10);
        push_varint(&mut sub, 0);
        sub.push(0x1A);
        push_varint(&mut sub, record.data.len() as u64);
        sub.extend_from_slice(record.data);
        subs.push(sub);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    for key in keys {
        out.push(0x0A);
        push_varint(&mut out, key.len() as u64);
        out.extend_from_slice(key);
    }
    out.push(0x12);
    push_varint(&mut out, hash_key.len() as u64);
    out.extend_from_slice(hash_key);
    for sub in &subs {
        out.push(0x1A);
        push_varint(&mut out, sub.len() as u64);
        out.extend_from_slice(sub);
    }
    let digest = Md5::digest(&out[4..]);
    out.extend_from_slice(&digest);
    out
}

fn copy_data(records: &[Record<'_>], out: &mut [u8]) -> usize {
    let mut at = 0;
    for record in records {
        out[at..at + record.data.len()].copy_from_slice(record.data);
        at += record.data.len();
    }
    at
}

fn xor_bytes(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, &b| acc ^ b)
}

/// deaggregate, then every sub-record visited: (count, data bytes).
fn deaggregate_all(data: &[u8], key: &[u8], hash_key: Option<&[u8]>) -> (usize, usize) {
    let sub_records = deaggregate(data, key, hash_key).unwrap();
    let (mut count, mut bytes) = (0, 0);
    for sub in sub_records {
        count += 1;
        bytes += sub.data.len();
    }
    (count, bytes)
}

/// Checks that `data` deaggregates to exactly `records`.
fn check_decodes(data: &[u8], key: &[u8], hash_key: &[u8], records: &[Record<'_>]) {
    let sub_records = deaggregate(data, key, Some(hash_key)).unwrap();
    assert_eq!(sub_records.len(), records.len());
    for (sub, record) in sub_records.zip(records) {
        assert_eq!(sub.data, record.data);
        assert_eq!(sub.partition_key, record.key);
        assert_eq!(sub.explicit_hash_key, Some(hash_key));
    }
}

/// The first aggregate of `records` (default aggregation), encoded: the aggregate, its
/// data, its outer keys.
fn first_aggregate<'r>(records: &'r [Record<'r>]) -> (Aggregate, Vec<u8>, &'r [u8], Vec<u8>) {
    let aggregate = match Aggregation::default().next(records, 0) {
        Some(Step::Aggregate(aggregate)) => aggregate,
        other => panic!("unexpected first step {other:?}"),
    };
    assert_eq!(aggregate.layout, Layout::SharedHashKey);
    let mut data = vec![0; aggregate.data_len as usize];
    assert_eq!(
        encode(records, &aggregate, &mut data),
        Ok(aggregate.data_len as usize)
    );
    let key = aggregate.partition_key(records);
    let mut digits = [0; MAX_HASH_KEY_DIGITS];
    let hash_key = aggregate
        .explicit_hash_key(records, &mut digits)
        .unwrap()
        .to_vec();
    check_decodes(&data, key, &hash_key, &records[aggregate.range()]);
    (aggregate, data, key, hash_key)
}

fn codec(c: &mut Criterion) {
    let input = input(user_keys(N, USERS, SEED ^ 0x5555), 9);
    let records = input.records();
    let (aggregate, encoded, key, hash_key) = first_aggregate(&records);
    let users = &records[aggregate.range()];
    let payload: usize = users.iter().map(|r| r.data.len()).sum();
    let message = &encoded[MAGIC.len()..encoded.len() - 16];
    eprintln!(
        "encode_1mib: {} records of {RECORD_BYTES} bytes ({payload} bytes of data) in a {}-byte aggregate ({} bytes of protobuf hashed)",
        users.len(),
        encoded.len(),
        message.len()
    );

    // Every variant checked against the library first.
    let mut out = vec![0; encoded.len()];
    let written = protobuf_only(users, &hash_key, &mut out);
    assert_eq!(&out[..written], &encoded[..encoded.len() - 16]);
    let kpl = naive_kpl(users, &hash_key);
    check_decodes(&kpl, key, &hash_key, users);
    eprintln!(
        "encode_1mib: the KPL-style aggregate of the same records is {} bytes",
        kpl.len()
    );
    let mut copy = vec![0; payload];
    assert_eq!(copy_data(users, &mut copy), payload);

    let mut group = c.benchmark_group("encode_1mib");
    group
        .throughput(Throughput::Bytes(payload as u64))
        .sample_size(30);
    group.bench_function("copy_data", |b| {
        b.iter(|| copy_data(black_box(users), black_box(&mut copy)))
    });
    group.bench_function("md5_only", |b| b.iter(|| Md5::digest(black_box(message))));
    group.bench_function("copy_data_md5", |b| {
        b.iter(|| {
            let n = copy_data(black_box(users), &mut copy);
            Md5::digest(black_box(&copy[..n]))
        })
    });
    group.bench_function("protobuf_only", |b| {
        b.iter(|| protobuf_only(black_box(users), &hash_key, black_box(&mut out)))
    });
    group.bench_function("encode", |b| {
        b.iter(|| encode(black_box(&records), &aggregate, black_box(&mut out)).unwrap())
    });
    group.bench_function("naive_kpl", |b| {
        b.iter(|| naive_kpl(black_box(users), &hash_key))
    });
    group.finish();

    let mut group = c.benchmark_group("decode_1mib");
    group
        .throughput(Throughput::Bytes(payload as u64))
        .sample_size(30);
    group.bench_function("read_bytes", |b| b.iter(|| xor_bytes(black_box(&encoded))));
    group.bench_function("md5_only", |b| b.iter(|| Md5::digest(black_box(message))));
    group.bench_function("deaggregate", |b| {
        b.iter(|| deaggregate(black_box(&encoded), key, Some(&hash_key)).unwrap())
    });
    group.bench_function("deaggregate_iterate", |b| {
        b.iter(|| deaggregate_all(black_box(&encoded), key, Some(&hash_key)))
    });
    group.finish();
    assert_eq!(
        deaggregate_all(&encoded, key, Some(&hash_key)),
        (users.len(), payload)
    );

    // Keys from a pool of 100: sub-records point back into the key table.
    let input = Input {
        keys: user_keys(N, 100, SEED ^ 0x7777),
        ..input
    };
    let records = input.records();
    let (aggregate, encoded, key, hash_key) = first_aggregate(&records);
    let users = &records[aggregate.range()];
    let kpl = naive_kpl(users, &hash_key);
    check_decodes(&kpl, key, &hash_key, users);
    let payload: usize = users.iter().map(|r| r.data.len()).sum();
    let entries = |data: &[u8]| {
        deaggregate(data, key, Some(&hash_key))
            .unwrap()
            .map(|s| s.partition_key)
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    eprintln!(
        "decode_key_reuse_1mib: {} records, keys from 100 ({} distinct): {} bytes from encode, {} bytes KPL-style",
        users.len(),
        entries(&encoded),
        encoded.len(),
        kpl.len()
    );
    let mut group = c.benchmark_group("decode_key_reuse_1mib");
    group
        .throughput(Throughput::Bytes(payload as u64))
        .sample_size(30);
    group.bench_function("md5_only", |b| {
        b.iter(|| Md5::digest(black_box(&encoded[4..encoded.len() - 16])))
    });
    group.bench_function("deaggregate_iterate", |b| {
        b.iter(|| deaggregate_all(black_box(&encoded), key, Some(&hash_key)))
    });
    group.bench_function("deaggregate_kpl_style", |b| {
        b.iter(|| deaggregate(black_box(&kpl), key, Some(&hash_key)).unwrap())
    });
    group.bench_function("deaggregate_iterate_kpl_style", |b| {
        b.iter(|| deaggregate_all(black_box(&kpl), key, Some(&hash_key)))
    });
    group.finish();
}

fn planning(c: &mut Criterion) {
    let ranges = four_shards();
    let map = ShardMap::new(&ranges).unwrap();
    let input = input(user_keys(N, USERS, SEED ^ 0x5555), 9);
    let records = input.records();
    print_packing("9-byte keys (user-NNNN)", &records, map);
    {
        let uuids = Input {
            data: Vec::new(),
            keys: uuid_keys(N, SEED ^ 0x3333),
            key_len: 36,
        };
        let records: Vec<Record<'_>> = input
            .data
            .chunks_exact(RECORD_BYTES)
            .zip(uuids.keys.chunks_exact(36))
            .map(|(data, key)| Record::new(data, key))
            .collect();
        print_packing("36-char UUID keys", &records, map);
    }

    let shared = Aggregation::default();
    let one_key = shared.with_mode(Mode::OneKey);
    let per_shard = shared.with_mode(Mode::PerShard(map));
    let count = |aggregation: &Aggregation<'_>, records: &[Record<'_>]| {
        aggregation
            .plan(records)
            .map(|step| match step {
                Step::Aggregate(aggregate) => aggregate.records(),
                Step::Refused(_) => 0,
            })
            .sum::<usize>()
    };
    for aggregation in [&shared, &one_key, &per_shard] {
        assert_eq!(count(aggregation, &records), N);
    }

    let mut group = c.benchmark_group("plan_1m");
    group
        .throughput(Throughput::Elements(N as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10);
    group.bench_function("floor", |b| {
        b.iter(|| {
            black_box(&records)
                .iter()
                .map(|r| r.data.len() + r.key.len())
                .sum::<usize>()
        })
    });
    group.bench_function("requests", |b| b.iter(|| requests(black_box(&records))));
    group.bench_function("aggregate_shared_hash_key", |b| {
        b.iter(|| count(&shared, black_box(&records)))
    });
    group.bench_function("aggregate_one_key", |b| {
        b.iter(|| count(&one_key, black_box(&records)))
    });
    group.bench_function("aggregate_per_shard", |b| {
        b.iter(|| count(&per_shard, black_box(&records)))
    });
    group.finish();

    // What the per-shard and one-key modes pay per step or per record: the MD5 of a key
    // (its hash key), and counting a hash key's decimal digits (u128 divisions).
    let hash_keys: Vec<u128> = records[..1024]
        .iter()
        .map(|r| hash_key_of(r.key, None).unwrap())
        .collect();
    let mut group = c.benchmark_group("plan_parts_1024");
    group.throughput(Throughput::Elements(1024)).sample_size(30);
    group.bench_function("hash_key_of", |b| {
        b.iter(|| {
            black_box(&records[..1024])
                .iter()
                .map(|r| hash_key_of(r.key, None).unwrap_or_default())
                .fold(0, |acc, h| acc ^ h)
        })
    });
    group.bench_function("hash_key_digits", |b| {
        b.iter(|| {
            black_box(&hash_keys)
                .iter()
                .map(|&h| hash_key_digits(h))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, codec, planning);
criterion_main!(benches);
