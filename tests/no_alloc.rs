//! Proves that no core entry point allocates: a counting global allocator (tests/support)
//! wraps the system one, and each entry point runs between two readings of this thread's
//! count. The retry tests use it too, around whole delivery loops.

mod support;

use support::{allocations, assert_no_alloc};

use kinesis_batcher::cost::{base64_len, is_valid_hash_key, key_units, record_size};
use kinesis_batcher::{
    Accumulator, Batch, KeyUnit, Limits, LimitsError, Measure, Planner, Reason, Record, RecordSize,
    Refusal, Status, plan,
};

#[test]
fn the_counter_sees_an_allocation() {
    // Without this, a broken counter would make every other assertion vacuous.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before);
    drop(v);
}

#[test]
fn no_core_entry_point_allocates() {
    let big = vec![0u8; 2 * 1024 * 1024];
    let long_key = "é".repeat(300);
    let records: Vec<Record> = (0..3000)
        .map(|i| match i % 97 {
            0 => Record::new(&big, b"too-large"),
            1 => Record::new(b"x", b""),
            2 => Record::new(b"x", long_key.as_bytes()),
            3 => Record::new(b"x", b"\xff\xfe"),
            4 => Record::new(b"x", b"k").with_hash_key(b"0123"),
            5 => Record::new(&big[..1000], b"k").with_hash_key(b"42"),
            _ => Record::new(&big[..(i * 7919) % 40_000], b"partition-key-0001"),
        })
        .collect();
    let sizes: Vec<RecordSize> = records
        .iter()
        .map(|r| RecordSize::of(r, KeyUnit::CodePoints))
        .collect();
    let mut batches = vec![Batch::default(); 7];
    let mut refusals = vec![Refusal::default(); 3];

    for limits in [
        Limits::KDS,
        Limits::KDS_5MIB,
        Limits::FIREHOSE,
        Limits::KDS
            .with_key_unit(KeyUnit::Utf16Units)
            .counting_hash_key(true),
    ] {
        // Bulk, resumed through small output arrays until done.
        assert_no_alloc("Planner::plan", || {
            let mut planner = Planner::new(limits);
            let mut written = 0;
            while planner.plan(&records, &mut batches, &mut refusals).status != Status::Done {
                written += 1;
            }
            let mut planner = Planner::new(limits);
            while planner.plan(&sizes, &mut batches, &mut refusals).status != Status::Done {
                written += 1;
            }
            (written, *planner.stats())
        });
        assert_no_alloc("cursor", || {
            let from_views = plan(&records, limits).count();
            let mut planner = Planner::new(limits);
            let mut from_sizes = 0;
            while planner.next_event(&sizes).is_some() {
                from_sizes += 1;
            }
            (from_views, from_sizes)
        });
        assert_no_alloc("Accumulator", || {
            let mut acc = Accumulator::new(limits);
            let mut outcomes = 0usize;
            for record in &records {
                outcomes +=
                    matches!(acc.push(record), kinesis_batcher::Push::SendFirst(_)) as usize;
            }
            let last = acc.flush();
            let stats = *acc.stats();
            (
                outcomes,
                last,
                stats.byte_fill(&limits),
                stats.record_fill(&limits),
                stats.refused_total(),
                acc.pending().copied(),
            )
        });
    }

    let measured = assert_no_alloc("measure, cost and validation", || {
        let r = &records[10];
        (
            r.measure(&Limits::KDS),
            RecordSize::of(r, KeyUnit::Utf16Units),
            record_size(&Limits::KDS, 10, 10, 10),
            base64_len(1000),
            is_valid_hash_key(b"340282366920938463463374607431768211455"),
            key_units(&long_key, KeyUnit::Utf16Units),
        )
    });
    assert_eq!(measured.5, 300);
    let limits = assert_no_alloc("limits and messages", || {
        (
            Limits::new(10, 1000, 100),
            Limits::kds_for_stream(2048),
            Limits::KDS.with_max_record_bytes(0),
            LimitsError::ZeroRecords.message(),
            Reason::ALL.map(Reason::message),
            Reason::ALL.map(Reason::as_str),
        )
    });
    assert!(limits.0.is_ok() && limits.1.is_ok() && limits.2.is_err());
}
