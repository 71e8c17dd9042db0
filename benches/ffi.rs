//! Planning 1,000,000 records through the C ABI (`kb_planner_plan`, called directly from
//! Rust as C would call it) beside the same plan through the Rust API, for both record
//! forms, in one group so the ratios come from one run.
//!
//! Run with `cargo bench --features ffi --bench ffi`. The records are realistic for a
//! producer (100 to 2000 bytes of data, 16 to 36 ASCII bytes of key, one in 1000
//! refused); the Rust and C variants read the same bytes (the `kb_record`s point into
//! the buffers the `Record`s borrow) and are checked to give the same plan before timing.
//! Each iteration creates its planner (`Planner::new`, or `kb_planner_new` and
//! `kb_planner_free`) inside the timed closure, one per 1,000,000 records; the output
//! arrays are allocated once, large enough for one call.

mod common;
#[path = "common/records.rs"]
mod records;
use records::{Mix, buffers, records_of, specs};

use std::hint::black_box;
use std::ptr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinesis_batcher::ffi::{
    KB_BATCHES_FULL, KB_OK, KB_PROFILE_KDS, KB_REFUSALS_FULL, kb_limits, kb_limits_profile,
    kb_planner, kb_planner_free, kb_planner_new, kb_planner_plan, kb_planner_plan_sizes, kb_record,
};
use kinesis_batcher::{Batch, Limits, Planner, Record, RecordSize, Refusal, Status};

const N: usize = 1_000_000;
const SEED: u64 = 0x2545_F491_4F6C_DD1D;
/// Output capacity of the resumed variants.
const CHUNKED: usize = 64;

/// The workload.
const MIX: Mix = Mix {
    large_per_mille: 0,
    small: (100, 2001),
};

/// The same records as C describes them: pointers into the same buffers.
fn c_records_of(records: &[Record<'_>]) -> Vec<kb_record> {
    records
        .iter()
        .map(|r| kb_record {
            data: r.data.as_ptr(),
            data_len: r.data.len(),
            key: r.key.as_ptr(),
            key_len: r.key.len(),
            hash_key: ptr::null(),
            hash_key_len: 0,
        })
        .collect()
}

/// What a plan wrote: batch and refusal counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    batches: usize,
    refusals: usize,
}

fn rust_plan<M: kinesis_batcher::Measure>(
    input: &[M],
    limits: Limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Counts {
    let mut planner = Planner::new(limits);
    let progress = planner.plan(input, batches, refusals);
    assert_eq!(progress.status, Status::Done);
    Counts {
        batches: progress.batches,
        refusals: progress.refusals,
    }
}

/// A C planner for one plan, freed when dropped.
struct CPlanner(*mut kb_planner);

impl CPlanner {
    fn new(limits: &kb_limits) -> CPlanner {
        let mut planner = ptr::null_mut();
        // SAFETY: both pointers are valid for the call.
        assert_eq!(unsafe { kb_planner_new(limits, &mut planner) }, KB_OK);
        CPlanner(planner)
    }
}

impl Drop for CPlanner {
    fn drop(&mut self) {
        // SAFETY: from kb_planner_new, not used again.
        unsafe { kb_planner_free(self.0) }
    }
}

fn c_plan_records(
    records: &[kb_record],
    limits: &kb_limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Counts {
    let planner = CPlanner::new(limits);
    let (mut n_batches, mut n_refusals, mut bad_index) = (0, 0, usize::MAX);
    // SAFETY: every array holds its length, the records point into live buffers, the
    // count pointers are writable, and nothing overlaps.
    let status = unsafe {
        kb_planner_plan(
            planner.0,
            records.as_ptr(),
            records.len(),
            batches.as_mut_ptr(),
            batches.len(),
            &mut n_batches,
            refusals.as_mut_ptr(),
            refusals.len(),
            &mut n_refusals,
            &mut bad_index,
        )
    };
    assert_eq!(status, KB_OK, "bad index {bad_index}");
    Counts {
        batches: n_batches,
        refusals: n_refusals,
    }
}

/// Rust, resumed with 64-entry output arrays until done: the usual streaming pattern.
fn rust_plan_chunked<M: kinesis_batcher::Measure>(
    input: &[M],
    limits: Limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Counts {
    let mut planner = Planner::new(limits);
    let mut counts = Counts {
        batches: 0,
        refusals: 0,
    };
    loop {
        let progress = planner.plan(input, &mut batches[..CHUNKED], &mut refusals[..CHUNKED]);
        counts.batches += black_box(progress.batches);
        counts.refusals += black_box(progress.refusals);
        if progress.status == Status::Done {
            return counts;
        }
    }
}

/// The C ABI, resumed with 64-entry output arrays until done.
fn c_plan_records_chunked(
    records: &[kb_record],
    limits: &kb_limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Counts {
    let planner = CPlanner::new(limits);
    let mut counts = Counts {
        batches: 0,
        refusals: 0,
    };
    loop {
        let (mut n_batches, mut n_refusals, mut bad_index) = (0, 0, usize::MAX);
        // SAFETY: as in `c_plan_records`.
        let status = unsafe {
            kb_planner_plan(
                planner.0,
                records.as_ptr(),
                records.len(),
                batches.as_mut_ptr(),
                CHUNKED,
                &mut n_batches,
                refusals.as_mut_ptr(),
                CHUNKED,
                &mut n_refusals,
                &mut bad_index,
            )
        };
        counts.batches += black_box(n_batches);
        counts.refusals += black_box(n_refusals);
        match status {
            KB_OK => return counts,
            KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
            other => panic!("status {other}, bad index {bad_index}"),
        }
    }
}

fn c_plan_sizes(
    sizes: &[RecordSize],
    limits: &kb_limits,
    batches: &mut [Batch],
    refusals: &mut [Refusal],
) -> Counts {
    let planner = CPlanner::new(limits);
    let (mut n_batches, mut n_refusals) = (0, 0);
    // SAFETY: as in `c_plan_records`.
    let status = unsafe {
        kb_planner_plan_sizes(
            planner.0,
            sizes.as_ptr(),
            sizes.len(),
            batches.as_mut_ptr(),
            batches.len(),
            &mut n_batches,
            refusals.as_mut_ptr(),
            refusals.len(),
            &mut n_refusals,
        )
    };
    assert_eq!(status, KB_OK);
    Counts {
        batches: n_batches,
        refusals: n_refusals,
    }
}

/// Output arrays large enough for any plan of `n` records to finish in one call.
fn outputs(n: usize) -> (Vec<Batch>, Vec<Refusal>) {
    (vec![Batch::default(); n], vec![Refusal::default(); n])
}

/// The plan `run` writes, as owned arrays, to compare variants.
fn written(
    run: impl FnOnce(&mut [Batch], &mut [Refusal]) -> Counts,
) -> (Counts, Vec<Batch>, Vec<Refusal>) {
    let (mut batches, mut refusals) = outputs(N);
    let counts = run(&mut batches, &mut refusals);
    batches.truncate(counts.batches);
    refusals.truncate(counts.refusals);
    (counts, batches, refusals)
}

fn ffi_1m(c: &mut Criterion) {
    let limits = Limits::KDS;
    let mut c_limits = kb_limits {
        profile: 0,
        max_records: 0,
        max_request_bytes: 0,
        max_record_bytes: 0,
        key_unit: 0,
        options: 0,
    };
    // SAFETY: `c_limits` is writable.
    assert_eq!(
        unsafe { kb_limits_profile(KB_PROFILE_KDS, &mut c_limits) },
        KB_OK
    );
    let specs = specs(N, SEED, &MIX);
    let buffers = buffers(&specs, SEED);
    let records = records_of(&specs, &buffers, SEED);
    let c_records = c_records_of(&records);
    let sizes: Vec<RecordSize> = records
        .iter()
        .map(|r| RecordSize::of(r, limits.key_unit()))
        .collect();

    // All four must write the same plan before any of them is timed.
    let expected = written(|b, r| rust_plan(&records, limits, b, r));
    assert!(written(|b, r| c_plan_records(&c_records, &c_limits, b, r)) == expected);
    assert!(written(|b, r| rust_plan(&sizes, limits, b, r)) == expected);
    let counts = |run: Counts| (run.batches, run.refusals);
    let (mut b, mut r) = outputs(N);
    assert_eq!(
        counts(rust_plan_chunked(&records, limits, &mut b, &mut r)),
        counts(expected.0)
    );
    assert_eq!(
        counts(c_plan_records_chunked(
            &c_records, &c_limits, &mut b, &mut r
        )),
        counts(expected.0)
    );
    assert!(written(|b, r| c_plan_sizes(&sizes, &c_limits, b, r)) == expected);
    eprintln!(
        "ffi_1m: {} batches, {} refused",
        expected.0.batches, expected.0.refusals
    );

    let (mut batches, mut refusals) = outputs(N);
    let mut group = c.benchmark_group("ffi_1m");
    group
        .throughput(Throughput::Elements(N as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("floor", |b| {
        b.iter(|| {
            let total: usize = black_box(&c_records)
                .iter()
                .map(|r| r.data_len + r.key_len)
                .sum();
            black_box(total)
        })
    });
    group.bench_function("rust_records", |b| {
        b.iter(|| {
            black_box(rust_plan(
                black_box(&records),
                limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("c_abi_records", |b| {
        b.iter(|| {
            black_box(c_plan_records(
                black_box(&c_records),
                &c_limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("rust_records_resumed_64", |b| {
        b.iter(|| {
            black_box(rust_plan_chunked(
                black_box(&records),
                limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("c_abi_records_resumed_64", |b| {
        b.iter(|| {
            black_box(c_plan_records_chunked(
                black_box(&c_records),
                &c_limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("rust_sizes", |b| {
        b.iter(|| {
            black_box(rust_plan(
                black_box(&sizes),
                limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.bench_function("c_abi_sizes", |b| {
        b.iter(|| {
            black_box(c_plan_sizes(
                black_box(&sizes),
                &c_limits,
                &mut batches,
                &mut refusals,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, ffi_1m);
criterion_main!(benches);
