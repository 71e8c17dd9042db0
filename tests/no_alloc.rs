//! Proves that no core entry point allocates: a counting global allocator (tests/support)
//! wraps the system one, and each entry point runs between two readings of this thread's
//! count. The retry tests use it too, around whole delivery loops.

mod support;

use support::{allocations, assert_no_alloc};

use kinesis_batcher::cost::{base64_len, is_valid_hash_key, key_units, record_size};
use kinesis_batcher::retry::{
    Delivery, DeliveryError, ErrorKind, NextStatus, Outcome, Pending, RetryPolicy, Terminal,
};
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
        // A whole delivery (failures, refusals, protocol errors), then `reset` and another.
        let policy = RetryPolicy {
            max_attempts: 3,
            max_age_ms: 0, // the default
            per_key_order: true,
            ..RetryPolicy::DEFAULT
        };
        let delivered = assert_no_alloc("Delivery", || {
            let mut delivery = Delivery::new(limits, policy);
            let mut request = [Pending::default(); 500];
            let mut terminal = [Terminal::default(); 500];
            let mut outcomes = [Outcome::Accepted; 500];
            let mut ended = 0usize;
            for (round, input) in [&records[..], &records[..1000]].into_iter().enumerate() {
                if round > 0 {
                    delivery.reset();
                }
                for now in 0u64.. {
                    let next = delivery.next_request(input, &mut request, &mut refusals, now);
                    let next = next.expect("one request at a time, the same input");
                    ended += next.refusals;
                    if next.status == NextStatus::Done {
                        break;
                    }
                    if next.entries == 0 {
                        continue;
                    }
                    let again = delivery.next_request(input, &mut request[..0], &mut [], now);
                    assert_eq!(again, Err(DeliveryError::RequestInFlight));
                    let sent = &request[..next.entries];
                    let wrong = delivery.settle(&sent[1..], &outcomes, now, &mut terminal);
                    assert_eq!(wrong, Err(DeliveryError::NotTheRequestInFlight));
                    for (i, o) in outcomes[..sent.len()].iter_mut().enumerate() {
                        *o = match (i + now as usize) % 9 {
                            0 => Outcome::Failed(ErrorKind::ThroughputExceeded),
                            1 => Outcome::Failed(ErrorKind::Kms),
                            _ => Outcome::Accepted,
                        };
                    }
                    let settled = delivery
                        .settle(sent, &outcomes[..sent.len()], now, &mut terminal)
                        .expect("the request in flight");
                    ended += settled.accepted + settled.terminal;
                }
            }
            (ended, *delivery.stats(), delivery.backoff_ms(u64::MAX))
        });
        assert_eq!(delivered.0, records.len() + 1000);
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
            RetryPolicy::DEFAULT.effective(),
            DeliveryError::InputChanged.message(),
            ErrorKind::from_code(b"com.amazonaws.kinesis.v20131202#ValidationException:url"),
        )
    });
    assert!(limits.0.is_ok() && limits.1.is_ok() && limits.2.is_err());

    use kinesis_batcher::shards::{ShardMap, ShardRange, hash_key_of, parse_hash_key};
    let ranges = [
        ShardRange {
            start: 0,
            end: (1 << 127) - 1,
        },
        ShardRange {
            start: 1 << 127,
            end: u128::MAX,
        },
    ];
    let shards = assert_no_alloc("shards", || {
        let map = ShardMap::new(&ranges).unwrap();
        let key = hash_key_of("clé-😀".as_bytes(), None).unwrap();
        (
            map.shard_of(key),
            parse_hash_key(b"340282366920938463463374607431768211455"),
        )
    });
    assert_eq!(shards.1, Some(u128::MAX));
}

/// The C ABI allocates in `*_new` only: planning, pushing, splitting and delivering
/// through it never do.
#[cfg(feature = "ffi")]
#[test]
fn the_c_abi_allocates_only_in_new() {
    use kinesis_batcher::ffi::*;
    use kinesis_batcher::lines::{LineBatch, LineRefusal};
    use kinesis_batcher::retry::{Pending, Settled, Terminal};
    use std::ptr::{null, null_mut};

    let keys: Vec<String> = (0..2000).map(|i| format!("key-{i}")).collect();
    let data = vec![7u8; 4000];
    let records: Vec<kb_record> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| kb_record {
            data: data.as_ptr(),
            data_len: (i * 37) % data.len(),
            key: key.as_ptr(),
            key_len: if i % 101 == 0 { 0 } else { key.len() },
            hash_key: null(),
            hash_key_len: 0,
        })
        .collect();
    let mut limits = kb_limits::default();
    let mut policy = kb_retry_policy {
        backoff_base_ms: 0,
        backoff_cap_ms: 0,
        max_age_ms: 0,
        max_attempts: 0,
        per_key_order: 0,
    };
    // SAFETY: every pointer below is valid for the call, every array holds its length.
    unsafe {
        assert_eq!(kb_limits_profile(KB_PROFILE_KDS, &mut limits), KB_OK);
        assert_eq!(kb_retry_policy_default(&mut policy), KB_OK);
        policy.per_key_order = 1;
        let (mut planner, mut acc, mut lines, mut delivery) =
            (null_mut(), null_mut(), null_mut(), null_mut());
        assert_eq!(kb_planner_new(&limits, &mut planner), KB_OK);
        assert_eq!(kb_accumulator_new(&limits, &mut acc), KB_OK);
        assert_eq!(
            kb_line_planner_new(&limits, b"k".as_ptr(), 1, 0, &mut lines, null_mut()),
            KB_OK
        );
        assert_eq!(kb_delivery_new(&limits, &policy, &mut delivery), KB_OK);

        let mut batches = [Batch::default(); 4];
        let mut refusals = [Refusal::default(); 4];
        let (mut nb, mut nf, mut bad) = (0, 0, 0);
        assert_no_alloc("kb_planner_plan, resumed", || {
            while kb_planner_plan(
                planner,
                records.as_ptr(),
                records.len(),
                batches.as_mut_ptr(),
                4,
                &mut nb,
                refusals.as_mut_ptr(),
                4,
                &mut nf,
                &mut bad,
            ) != KB_OK
            {}
        });
        let (mut batch, mut reason) = (Batch::default(), Reason::KeyEmpty);
        assert_no_alloc("kb_accumulator_push", || {
            for record in &records {
                kb_accumulator_push(acc, record, &mut batch, &mut reason);
            }
            kb_accumulator_flush(acc, &mut batch)
        });
        let text = b"one\ntwo\nthree\n".repeat(1000);
        let mut line_batches = [LineBatch::default(); 4];
        let mut line_refusals = [LineRefusal::default(); 4];
        let mut consumed = 0;
        assert_no_alloc("kb_line_planner_plan", || {
            let mut at = 0;
            loop {
                let status = kb_line_planner_plan(
                    lines,
                    text[at..].as_ptr(),
                    text.len() - at,
                    true,
                    line_batches.as_mut_ptr(),
                    4,
                    &mut nb,
                    line_refusals.as_mut_ptr(),
                    4,
                    &mut nf,
                    &mut consumed,
                );
                at += consumed;
                if status == KB_OK {
                    break;
                }
            }
        });
        let mut request = [Pending::default(); 500];
        let mut terminal = [Terminal::default(); 500];
        let mut settled = Settled::default();
        let outcomes = [KB_OUTCOME_ACCEPTED; 500];
        // One whole delivery over the first `len` records, all stored.
        let mut deliver = |len: usize| {
            for now in 0.. {
                let (mut entries, mut bytes) = (0, 0);
                let status = kb_delivery_next_request(
                    delivery,
                    records.as_ptr(),
                    len,
                    request.as_mut_ptr(),
                    500,
                    &mut entries,
                    &mut bytes,
                    refusals.as_mut_ptr(),
                    4,
                    &mut nf,
                    now,
                    &mut bad,
                );
                match status {
                    KB_END => break,
                    KB_OK => assert!(entries > 0, "KB_OK always comes with a request"),
                    KB_ONLY_REFUSALS => assert!(entries == 0 && nf > 0),
                    _ => panic!("kb_delivery_next_request: {status}"),
                }
                if entries > 0 {
                    let st = kb_delivery_settle(
                        delivery,
                        request.as_ptr(),
                        entries,
                        outcomes.as_ptr(),
                        entries,
                        now,
                        terminal.as_mut_ptr(),
                        500,
                        &mut settled,
                        &mut bad,
                    );
                    assert_eq!(st, KB_OK);
                }
            }
        };
        // The whole array, then `kb_delivery_reset` and a shorter one from its index 0.
        assert_no_alloc("kb_delivery_next_request, settle and reset", || {
            deliver(records.len());
            assert_eq!(kb_delivery_reset(delivery), KB_OK);
            deliver(500);
        });
        let mut position = 0;
        assert_eq!(kb_delivery_position(delivery, &mut position), KB_OK);
        assert_eq!(position, 500);
        let mut stats = kinesis_batcher::Stats::default();
        assert_eq!(kb_planner_stats(planner, &mut stats), KB_OK);
        assert!(stats.batches >= 4 && stats.refused[Reason::KeyEmpty as usize] > 0);
        kb_planner_free(planner);
        kb_accumulator_free(acc);
        kb_line_planner_free(lines);
        kb_delivery_free(delivery);
    }
}
