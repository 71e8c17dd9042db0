//! Split-and-plan over a 256 MiB buffer of lines, beside two memchr baselines over the
//! same buffer: its bare newline count (`memchr_iter().count()`, which memchr answers
//! without stopping at each newline) and its iterator visiting every newline position
//! (the floor for anything that needs each line's bounds).
//!
//! `cargo bench --bench lines`; compare line_planner with both baselines.

mod common;
use common::Rng;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStep, Lines};
use kinesis_batcher::{Accumulator, Limits, Push, Record};

const SIZE: usize = 256 * 1024 * 1024;

/// NDJSON-like lines of 40..400 bytes, deterministic.
fn buffer() -> Vec<u8> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut buf = Vec::with_capacity(SIZE + 512);
    while buf.len() < SIZE {
        let len = rng.range(40, 400) as usize;
        buf.extend_from_slice(b"{\"event\":\"");
        buf.resize(buf.len() + len - 12, b'x');
        buf.extend_from_slice(b"\"}\n");
    }
    buf.truncate(SIZE);
    buf
}

fn lines(c: &mut Criterion) {
    let buf = buffer();
    let limits = Limits::KDS;
    let mut batches = vec![LineBatch::default(); 64];
    let mut refusals = vec![LineRefusal::default(); 64];

    let mut group = c.benchmark_group("lines_256mib");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Bytes(SIZE as u64));

    group.bench_function("memchr_count", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&buf)).count())
    });

    group.bench_function("memchr_positions", |b| {
        b.iter(|| {
            let (mut count, mut bytes, mut start) = (0usize, 0usize, 0usize);
            for end in memchr::memchr_iter(b'\n', black_box(&buf)) {
                bytes += end - start;
                start = end + 1;
                count += 1;
            }
            (count, bytes)
        })
    });

    group.bench_function("split_only", |b| {
        b.iter(|| {
            let mut lines = Lines::new(&limits);
            let mut input = black_box(&buf[..]);
            let mut count = 0usize;
            while let (LineStep::Line(_), consumed) = lines.next_line(input, true) {
                input = &input[consumed..];
                count += 1;
            }
            count
        })
    });

    group.bench_function("line_planner", |b| {
        b.iter(|| {
            let mut planner = LinePlanner::new(limits, b"partition-key").unwrap();
            let mut input = black_box(&buf[..]);
            let mut written = 0usize;
            loop {
                let p = planner.plan(input, true, &mut batches, &mut refusals);
                input = &input[p.consumed..];
                written += p.batches + p.refusals;
                if p.status == kinesis_batcher::lines::LineStatus::Done {
                    break;
                }
            }
            (written, planner.stats().batches)
        })
    });

    group.bench_function("lines_into_accumulator", |b| {
        b.iter(|| {
            let mut lines = Lines::new(&limits);
            let mut acc = Accumulator::new(limits);
            let mut input = black_box(&buf[..]);
            let mut sent = 0usize;
            while let (LineStep::Line(line), consumed) = lines.next_line(input, true) {
                input = &input[consumed..];
                if let Push::SendFirst(_) = acc.push(&Record::new(line.bytes, b"partition-key")) {
                    sent += 1;
                }
            }
            (sent, acc.flush())
        })
    });
    group.finish();
}

criterion_group!(benches, lines);
criterion_main!(benches);
