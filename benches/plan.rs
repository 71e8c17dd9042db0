//! Planning 1,000,000 records: the library's three call styles against the cost of
//! merely reading the lengths ("floor") and against the Vec-per-batch planner most
//! producers write ("naive").
//!
//! Run with `cargo bench --bench plan`. Each group holds every variant so that ratios
//! come from one run. Inputs are deterministic (an inline xorshift64*), built once,
//! outside the timed closures; every variant's plan is checked against the library's
//! before timing starts.

mod common;
#[path = "common/records.rs"]
mod records;
use records::{Kind, Mix, Spec, buffers, records_of, specs};

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use kinesis_batcher::{
    Accumulator, Batch, Event, Limits, Planner, Push, Record, RecordSize, Refusal, Status, plan,
};

const N: usize = 1_000_000;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const MAX_KEY_CHARS: usize = 256;

/// The workload.
const MIX: Mix = Mix {
    large_per_mille: 110,
    small: (10, 2001),
};

fn sizes_of(specs: &[Spec]) -> Vec<RecordSize> {
    specs
        .iter()
        .map(|s| RecordSize {
            data_len: s.data_len as u64,
            key_len: s.key_len as u32,
            key_units: s.key_len as u32,
            hash_key_len: 0,
            flags: match s.kind {
                Kind::KeyNotUtf8 => RecordSize::KEY_NOT_UTF8,
                _ => 0,
            },
        })
        .collect()
}

/// What every variant reports, to check they agree before timing them.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    batches: usize,
    refused: usize,
}

/// The producer's usual planner over sizes: a `Vec` of indices per batch.
fn naive_sizes(sizes: &[RecordSize], limits: &Limits) -> (Vec<Vec<usize>>, Vec<usize>) {
    let max_records = limits.max_records() as usize;
    let max_request = u64::from(limits.max_request_bytes());
    let max_record = u64::from(limits.max_record_bytes());
    let mut batches = Vec::new();
    let mut refused = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for (index, size) in sizes.iter().enumerate() {
        let key_ok = size.flags & RecordSize::KEY_NOT_UTF8 == 0
            && size.key_len > 0
            && size.key_units as usize <= MAX_KEY_CHARS;
        let record = size.data_len + u64::from(size.key_len);
        if !key_ok || record > max_record {
            refused.push(index);
            // The same plan as ours: a refusal closes the batch unless batches span them.
            if !limits.spans_refusals() && !current.is_empty() {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            continue;
        }
        if current.len() == max_records || bytes + record > max_request {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += record;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, refused)
}

/// The producer's usual planner over records: UTF-8 check and character count per key.
fn naive_records(records: &[Record<'_>], limits: &Limits) -> (Vec<Vec<usize>>, Vec<usize>) {
    let max_records = limits.max_records() as usize;
    let max_request = limits.max_request_bytes() as usize;
    let max_record = limits.max_record_bytes() as usize;
    let mut batches = Vec::new();
    let mut refused = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for (index, record) in records.iter().enumerate() {
        let key_ok = match std::str::from_utf8(record.key) {
            Ok(key) => (1..=MAX_KEY_CHARS).contains(&key.chars().count()),
            Err(_) => false,
        };
        let size = record.data.len() + record.key.len();
        if !key_ok || size > max_record {
            refused.push(index);
            if !limits.spans_refusals() && !current.is_empty() {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            continue;
        }
        if current.len() == max_records || bytes + size > max_request {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, refused)
}

/// Output arrays large enough for any plan of `n` records to finish in one call.
fn outputs(n: usize) -> (Vec<Batch>, Vec<Refusal>) {
    (vec![Batch::default(); n], vec![Refusal::default(); n])
}

fn bulk<M: kinesis_batcher::Measure>(
    input: &[M],
    limits: Limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Summary {
    let mut planner = Planner::new(limits);
    let progress = planner.plan(input, batches, refusals);
    assert_eq!(progress.status, Status::Done);
    Summary {
        batches: progress.batches,
        refused: progress.refusals,
    }
}

fn cursor(sizes: &[RecordSize], limits: Limits) -> Summary {
    let mut summary = Summary {
        batches: 0,
        refused: 0,
    };
    for event in plan(sizes, limits) {
        match event {
            Event::Batch(_) => summary.batches += 1,
            Event::Refused(_) => summary.refused += 1,
        }
    }
    summary
}

fn accumulate(sizes: &[RecordSize], limits: Limits) -> Summary {
    let mut acc = Accumulator::new(limits);
    let mut summary = Summary {
        batches: 0,
        refused: 0,
    };
    for size in sizes {
        match acc.push(size) {
            Push::Added => {}
            Push::SendFirst(_) => summary.batches += 1,
            Push::Refused(_) => summary.refused += 1,
        }
    }
    summary.batches += usize::from(acc.flush().is_some());
    summary
}

fn summary_of((batches, refused): (Vec<Vec<usize>>, Vec<usize>)) -> Summary {
    Summary {
        batches: batches.len(),
        refused: refused.len(),
    }
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

fn sizes_1m(c: &mut Criterion) {
    let limits = Limits::KDS;
    let sizes = sizes_of(&specs(N, SEED, &MIX));
    let (mut batches, mut refusals) = outputs(sizes.len());

    // Every variant must give the same plan shape before any of them is timed.
    let expected = bulk(&sizes, limits, &mut batches, &mut refusals);
    let full_by_count = batches[..expected.batches]
        .iter()
        .filter(|b| b.records == limits.max_records())
        .count();
    eprintln!(
        "sizes_1m: {} batches ({} closed full at 500 records, {} by bytes or at the end), {} refused",
        expected.batches,
        full_by_count,
        expected.batches - full_by_count,
        expected.refused
    );
    assert_eq!(cursor(&sizes, limits), expected);
    assert_eq!(accumulate(&sizes, limits), expected);
    assert_eq!(summary_of(naive_sizes(&sizes, &limits)), expected);
    // What the default (batches never hold a refused record) costs in requests.
    let spanning = limits.spanning_refusals(true);
    let ranges = bulk(&sizes, spanning, &mut batches, &mut refusals);
    assert_eq!(summary_of(naive_sizes(&sizes, &spanning)), ranges);
    eprintln!(
        "sizes_1m: {} batches when batches may span refusals ({} more by default)",
        ranges.batches,
        expected.batches - ranges.batches
    );

    let mut group = configure(c, "sizes_1m");
    group.bench_function("floor", |b| {
        b.iter(|| {
            let total: u64 = black_box(&sizes)
                .iter()
                .map(|s| s.data_len + u64::from(s.key_len))
                .sum();
            black_box(total)
        })
    });
    group.bench_function("planner_bulk", |b| {
        b.iter(|| black_box(bulk(black_box(&sizes), limits, &mut batches, &mut refusals)))
    });
    group.bench_function("cursor", |b| {
        b.iter(|| black_box(cursor(black_box(&sizes), limits)))
    });
    group.bench_function("accumulator", |b| {
        b.iter(|| black_box(accumulate(black_box(&sizes), limits)))
    });
    group.bench_function("naive", |b| {
        b.iter(|| black_box(summary_of(naive_sizes(black_box(&sizes), &limits))))
    });
    group.finish();
}

fn records_1m(c: &mut Criterion) {
    let limits = Limits::KDS;
    let specs = specs(N, SEED, &MIX);
    let buffers = buffers(&specs, SEED);
    let records = records_of(&specs, &buffers, SEED);
    let (mut batches, mut refusals) = outputs(records.len());

    let expected = bulk(&records, limits, &mut batches, &mut refusals);
    eprintln!(
        "records_1m: {} batches, {} refused",
        expected.batches, expected.refused
    );
    assert_eq!(
        bulk(&sizes_of(&specs), limits, &mut batches, &mut refusals),
        expected
    );
    assert_eq!(summary_of(naive_records(&records, &limits)), expected);

    let mut group = configure(c, "records_1m");
    group.bench_function("floor", |b| {
        b.iter(|| {
            let total: usize = black_box(&records)
                .iter()
                .map(|r| r.data.len() + r.key.len())
                .sum();
            black_box(total)
        })
    });
    group.bench_function("planner_bulk", |b| {
        b.iter(|| {
            black_box(bulk(
                black_box(&records),
                limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("naive", |b| {
        b.iter(|| black_box(summary_of(naive_records(black_box(&records), &limits))))
    });
    group.finish();
}

criterion_group!(benches, sizes_1m, records_1m);
criterion_main!(benches);
