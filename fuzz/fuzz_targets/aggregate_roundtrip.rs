//! Arbitrary small records through the C ABI: `kb_aggregate_plan` resumed through 1..=4-
//! entry arrays gives exactly the core's `Aggregation` plan (of the records before the
//! first unreadable one, which is then reported with its index); every aggregate is at
//! most the record cap and `max_bytes`, encodes to `data_len` bytes whose kb_record
//! measures `size`, and `kb_deaggregate` gives its user records back, equal to the input,
//! in all three modes.
#![no_main]

use std::ptr::null;

use arbitrary::Arbitrary;
use kb_fuzz::{HashSpec, KeySpec};
use kinesis_batcher::aggregate::{Aggregation, Layout, Mode, Step};
use kinesis_batcher::ffi::*;
use kinesis_batcher::shards::{ShardMap, ShardRange};
use kinesis_batcher::{Limits, Reason, Record, Refusal};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct SmallRec {
    data: Vec<u8>,
    key: KeySpec,
    hash_key: Option<HashSpec>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    record_cap: u16,
    count_hash_key: bool,
    mode: u8,
    max_bytes: u16,
    cuts: Vec<u128>,
    records: Vec<SmallRec>,
    /// A record made unreadable (NULL data with a length).
    unreadable: Option<u8>,
    caps: Vec<(u8, u8)>,
}

fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
    if n == 0 {
        &[]
    } else {
        // SAFETY: the callers pass views the library wrote, into live buffers.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

fuzz_target!(|input: Input| {
    let record_cap = 30 + u32::from(input.record_cap % 3000);
    let Ok(limits) = Limits::KDS.with_caps(500, 5 << 20, record_cap) else {
        return;
    };
    let limits = limits.counting_hash_key(input.count_hash_key);
    let mut kl = kb_limits::default();
    // SAFETY: a writable kb_limits.
    assert_eq!(unsafe { kb_limits_profile(KB_PROFILE_KDS, &mut kl) }, KB_OK);
    kl.max_request_bytes = 5 << 20;
    kl.max_record_bytes = record_cap;
    if input.count_hash_key {
        kl.options |= KB_LIMITS_COUNT_HASH_KEY;
    }

    // The shard map: sorted distinct cut points, up to 4.
    let mut cuts: Vec<u128> = input
        .cuts
        .iter()
        .take(4)
        .copied()
        .filter(|&c| c > 0)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges = Vec::new();
    let mut start = 0u128;
    for &cut in &cuts {
        ranges.push(ShardRange {
            start,
            end: cut - 1,
        });
        start = cut;
    }
    ranges.push(ShardRange {
        start,
        end: u128::MAX,
    });
    let c_ranges: Vec<kb_shard_range> = ranges
        .iter()
        .map(|r| kb_shard_range {
            start: kb_hash_key128 {
                high: (r.start >> 64) as u64,
                low: r.start as u64,
            },
            end: kb_hash_key128 {
                high: (r.end >> 64) as u64,
                low: r.end as u64,
            },
        })
        .collect();
    let map = ShardMap::new(&ranges).expect("a valid map");
    let mode = u32::from(input.mode % 3);
    let core_mode = match mode {
        KB_AGGREGATE_SHARED_HASH_KEY => Mode::SharedHashKey,
        KB_AGGREGATE_ONE_KEY => Mode::OneKey,
        _ => Mode::PerShard(map),
    };
    let max_bytes = u32::from(input.max_bytes % 4000);
    let aggregation = Aggregation::new(limits)
        .expect("KDS limits have keys")
        .with_mode(core_mode)
        .with_max_bytes(max_bytes);
    let how = kb_aggregation {
        mode,
        max_bytes,
        shards: c_ranges.as_ptr(),
        n_shards: c_ranges.len(),
    };

    let owned: Vec<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)> = input
        .records
        .iter()
        .take(200)
        .map(|r| {
            let data: Vec<u8> = r.data.iter().take(300).copied().collect();
            (
                data,
                r.key.bytes(),
                r.hash_key.as_ref().map(HashSpec::bytes),
            )
        })
        .collect();
    let mut recs: Vec<kb_record> = owned
        .iter()
        .map(|(data, key, hash_key)| kb_record {
            data: data.as_ptr(),
            data_len: data.len(),
            key: key.as_ptr(),
            key_len: key.len(),
            hash_key: hash_key.as_ref().map_or(null(), |h| h.as_ptr()),
            hash_key_len: hash_key.as_ref().map_or(0, Vec::len),
        })
        .collect();
    let unreadable = input
        .unreadable
        .map(usize::from)
        .filter(|&i| i < recs.len());
    if let Some(i) = unreadable {
        recs[i].data = null();
        recs[i].data_len = 1 + recs[i].data_len;
    }
    let views: Vec<Record> = owned[..unreadable.unwrap_or(owned.len())]
        .iter()
        .map(|(data, key, hash_key)| Record {
            data,
            key,
            hash_key: hash_key.as_deref(),
        })
        .collect();
    let want: Vec<Step> = aggregation.plan(&views).collect();

    // The C plan, resumed through small arrays.
    let caps: Vec<(usize, usize)> = if input.caps.is_empty() {
        vec![(1, 1)]
    } else {
        input
            .caps
            .iter()
            .take(16)
            .map(|&(a, r)| (usize::from(a % 4) + 1, usize::from(r % 4) + 1))
            .collect()
    };
    let mut got = Vec::new();
    let mut from = 0;
    let mut error = None;
    for call in 0.. {
        assert!(call <= 2 * recs.len() + 4, "no progress");
        let (cap_a, cap_r) = caps[call % caps.len()];
        let mut aggregates = vec![kb_aggregate::default(); cap_a];
        let mut refusals = vec![
            Refusal {
                index: 7,
                reason: Reason::KeyEmpty
            };
            cap_r
        ];
        let (mut na, mut nr, mut next, mut bad) = (usize::MAX, usize::MAX, usize::MAX, usize::MAX);
        // SAFETY: live inputs, outputs of their capacities.
        let st = unsafe {
            kb_aggregate_plan(
                &kl,
                &how,
                recs.as_ptr(),
                recs.len(),
                from,
                aggregates.as_mut_ptr(),
                cap_a,
                &mut na,
                refusals.as_mut_ptr(),
                cap_r,
                &mut nr,
                &mut next,
                &mut bad,
            )
        };
        if st == KB_NULL_FIELD {
            assert_eq!((na, nr, next), (0, 0, 0));
            error = Some((bad, from));
            break;
        }
        assert!(na <= cap_a && nr <= cap_r && next >= from && next <= recs.len());
        // In input order: merge the two arrays by position.
        let (mut ia, mut ir) = (0, 0);
        while ia < na || ir < nr {
            let take_aggregate = ir == nr || (ia < na && aggregates[ia].start < refusals[ir].index);
            if take_aggregate {
                got.push(Err(aggregates[ia]));
                ia += 1;
            } else {
                got.push(Ok(refusals[ir]));
                ir += 1;
            }
        }
        from = next;
        match st {
            KB_OK => break,
            KB_AGGREGATES_FULL | KB_REFUSALS_FULL => {}
            other => panic!("kb_aggregate_plan: {other}"),
        }
    }
    match (unreadable, error) {
        (Some(i), Some((bad, at))) => assert_eq!((bad, at), (i, i)),
        (None, None) => {}
        other => panic!("unreadable record {other:?}"),
    }
    assert_eq!(got.len(), want.len(), "the C plan vs the core's");
    for (c, core) in got.iter().zip(&want) {
        match (c, core) {
            (Ok(refusal), Step::Refused(r)) => assert_eq!(refusal, r),
            (Err(a), Step::Aggregate(g)) => {
                assert_eq!(
                    (a.start, a.end, a.data_len, a.size),
                    (g.start, g.end, g.data_len, g.size)
                );
                assert_eq!(
                    ((a.hash_key.high as u128) << 64) | a.hash_key.low as u128,
                    g.hash_key
                );
                let layout = match g.layout {
                    Layout::Plain => KB_LAYOUT_PLAIN,
                    Layout::SharedHashKey => KB_LAYOUT_SHARED_HASH_KEY,
                    Layout::OneKey => KB_LAYOUT_ONE_KEY,
                    Layout::OwnKeys => KB_LAYOUT_OWN_KEYS,
                };
                assert_eq!(a.layout, layout);
            }
            other => panic!("the C plan vs the core's: {other:?}"),
        }
    }

    // Every aggregate: encode, keys, measure, deaggregate: the input back.
    let cap = if max_bytes == 0 || max_bytes > record_cap {
        record_cap
    } else {
        max_bytes
    };
    for a in got.iter().filter_map(|step| step.err()) {
        assert!(a.size <= record_cap);
        assert!(
            a.layout == KB_LAYOUT_PLAIN || a.size <= cap,
            "{a:?} over {cap}"
        );
        let mut out = vec![0u8; a.data_len as usize];
        let (mut written, mut key, mut key_len, mut hk_len) = (0, null(), 0, 0);
        let mut digits = [0u8; KB_HASH_KEY_DIGITS_MAX];
        // SAFETY: live records, a buffer of data_len bytes, writable outputs.
        unsafe {
            assert_eq!(
                kb_aggregate_encode(
                    recs.as_ptr(),
                    recs.len(),
                    &a,
                    out.as_mut_ptr(),
                    out.len(),
                    &mut written
                ),
                KB_OK
            );
            assert_eq!(
                kb_aggregate_keys(
                    recs.as_ptr(),
                    recs.len(),
                    &a,
                    &mut key,
                    &mut key_len,
                    digits.as_mut_ptr(),
                    &mut hk_len
                ),
                KB_OK
            );
        }
        assert_eq!(written, out.len());
        let outer = kb_record {
            data: out.as_ptr(),
            data_len: written,
            key,
            key_len,
            hash_key: if hk_len == 0 { null() } else { digits.as_ptr() },
            hash_key_len: hk_len,
        };
        let (mut size, mut reason) = (0, Reason::KeyEmpty);
        // SAFETY: a live record and writable outputs.
        assert_eq!(
            unsafe { kb_record_measure(&kl, &outer, &mut size, &mut reason) },
            KB_OK
        );
        assert_eq!(
            size, a.size,
            "the encoded record measures what the plan said"
        );
        let mut it = kb_deaggregator::default();
        let (mut count, mut offset) = (0, 0);
        // SAFETY: live buffers, writable outputs.
        let st = unsafe {
            kb_deaggregate(
                &mut it,
                outer.data,
                outer.data_len,
                outer.key,
                outer.key_len,
                outer.hash_key,
                outer.hash_key_len,
                &mut count,
                &mut offset,
            )
        };
        assert_eq!((st, count), (KB_OK, a.end - a.start));
        let mut user = outer;
        for (data, key, hash_key) in &owned[a.start..a.end] {
            // SAFETY: a live iterator over live buffers.
            assert_eq!(unsafe { kb_deaggregate_next(&mut it, &mut user) }, KB_OK);
            assert_eq!(bytes(user.data, user.data_len), &data[..]);
            assert_eq!(bytes(user.key, user.key_len), &key[..]);
            let got_hash_key =
                (!user.hash_key.is_null()).then(|| bytes(user.hash_key, user.hash_key_len));
            let want_hash_key = if a.layout == KB_LAYOUT_SHARED_HASH_KEY {
                Some(&digits[..hk_len])
            } else {
                hash_key.as_deref()
            };
            assert_eq!(got_hash_key, want_hash_key);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { kb_deaggregate_next(&mut it, &mut user) }, KB_END);
    }
});
