//! Aggregation: the KPL format byte for byte, planning and encoding against a naive model
//! (Vec-built protobuf, brute-force greedy), boundaries, round trips, and a model of the
//! KCL's range filter across resharding.

#[path = "support/model.rs"]
#[allow(dead_code)]
mod model;
mod support;

#[path = "support/ranges.rs"]
mod ranges;
use ranges::ranges_from;

use kinesis_batcher::aggregate::{
    Aggregate, Aggregation, AggregationError, DecodeError, EncodeError, Layout, Mode, Step,
    deaggregate, encode, encoded_len,
};
use kinesis_batcher::shards::{
    MAX_HASH_KEY_DIGITS, ShardMap, ShardRange, format_hash_key, hash_key_of, parse_hash_key,
};
use kinesis_batcher::{Event, KeyUnit, Limits, Reason, Record, Refusal, plan};
use md5::{Digest, Md5};
use proptest::prelude::*;

const MIB: u32 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Owned records with real data, so that a mix-up of data between records shows.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    data: Vec<u8>,
    key: Vec<u8>,
    hash_key: Option<Vec<u8>>,
}

impl Rec {
    fn new(data: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Rec {
        Rec {
            data: data.into(),
            key: key.into(),
            hash_key: None,
        }
    }
}

fn views(records: &[Rec]) -> Vec<Record<'_>> {
    records
        .iter()
        .map(|r| Record {
            data: &r.data,
            key: &r.key,
            hash_key: r.hash_key.as_deref(),
        })
        .collect()
}

fn decimal(hash_key: u128) -> Vec<u8> {
    hash_key.to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------
// The naive model: the format built with Vecs, keys reused from the last 8 distinct
// entries of a table (the documented rule), and the greedy plan found by serializing
// every candidate prefix.

const RECENT: usize = 8;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A key table: every entry in order; a key reuses an entry among the last 8.
#[derive(Default)]
struct Table(Vec<Vec<u8>>);

impl Table {
    fn index_of(&mut self, key: &[u8]) -> u64 {
        let from = self.0.len().saturating_sub(RECENT);
        if let Some(offset) = self.0[from..].iter().position(|k| k == key) {
            return (from + offset) as u64;
        }
        self.0.push(key.to_vec());
        (self.0.len() - 1) as u64
    }
}

/// The framed aggregate of `records` in `layout`, whose hash key is `hash_key`.
fn naive_serialize(records: &[Record], layout: Layout, hash_key: u128) -> Vec<u8> {
    let (mut keys, mut hash_keys) = (Table::default(), Table::default());
    let mut subs = Vec::new();
    for record in records {
        let (key_index, hash_key_index) = match layout {
            Layout::SharedHashKey => {
                hash_keys.index_of(&decimal(hash_key));
                (keys.index_of(record.key), Some(0))
            }
            Layout::OneKey => (
                keys.index_of(records[0].key),
                records[0].hash_key.map(|h| hash_keys.index_of(h)),
            ),
            Layout::OwnKeys => (
                keys.index_of(record.key),
                record.hash_key.map(|h| hash_keys.index_of(h)),
            ),
            Layout::Plain => unreachable!(),
        };
        let mut body = vec![0x08];
        put_varint(&mut body, key_index);
        if let Some(index) = hash_key_index {
            body.push(0x10);
            put_varint(&mut body, index);
        }
        put_bytes_field(&mut body, 0x1A, record.data);
        subs.push(body);
    }
    let mut message = Vec::new();
    for key in &keys.0 {
        put_bytes_field(&mut message, 0x0A, key);
    }
    for hash_key in &hash_keys.0 {
        put_bytes_field(&mut message, 0x12, hash_key);
    }
    for body in &subs {
        put_bytes_field(&mut message, 0x1A, body);
    }
    let mut framed = vec![0xF3, 0x89, 0x9A, 0xC2];
    framed.extend_from_slice(&message);
    framed.extend_from_slice(&Md5::digest(&message));
    framed
}

fn naive_hash_key(record: &Record) -> u128 {
    match record.hash_key {
        Some(h) => std::str::from_utf8(h).unwrap().parse().unwrap(),
        None => u128::from_be_bytes(Md5::digest(record.key).into()),
    }
}

fn naive_shard(ranges: &[ShardRange], hash_key: u128) -> usize {
    ranges
        .iter()
        .position(|r| r.start <= hash_key && hash_key <= r.end)
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum NaiveMode<'a> {
    Shared,
    OneKey,
    PerShard(&'a [ShardRange]),
}

/// Every step of the plan, by brute force.
fn naive_plan(records: &[Record], limits: &Limits, mode: NaiveMode, max_bytes: u32) -> Vec<Step> {
    let measure =
        |r: &Record| model::measure_parts(r.data.len() as u128, r.key, r.hash_key, limits);
    let mut steps = Vec::new();
    let mut from = 0;
    while from < records.len() {
        let first = &records[from];
        let plain_size = match measure(first) {
            Ok(size) => size as u32,
            Err(reason) => {
                steps.push(Step::Refused(Refusal {
                    index: from,
                    reason,
                }));
                from += 1;
                continue;
            }
        };
        let hash_key = naive_hash_key(first);
        let (layout, outer_key, outer_hash_key) = match mode {
            NaiveMode::OneKey => (
                Layout::OneKey,
                first.key.len(),
                first.hash_key.map_or(0, <[u8]>::len),
            ),
            NaiveMode::Shared => (Layout::SharedHashKey, 1, decimal(hash_key).len()),
            NaiveMode::PerShard(_) => (Layout::OwnKeys, 1, decimal(hash_key).len()),
        };
        let outer = outer_key
            + if limits.counts_hash_key() {
                outer_hash_key
            } else {
                0
            };
        let belongs = |r: &Record| match mode {
            NaiveMode::Shared => r.hash_key.is_none_or(|h| {
                std::str::from_utf8(h).unwrap().parse::<u128>().unwrap() == hash_key
            }),
            NaiveMode::OneKey => r.key == first.key && r.hash_key == first.hash_key,
            NaiveMode::PerShard(ranges) => {
                naive_shard(ranges, naive_hash_key(r)) == naive_shard(ranges, hash_key)
            }
        };
        let mut best = None;
        let mut end = from + 1;
        while end < records.len() && measure(&records[end]).is_ok() && belongs(&records[end]) {
            let bytes = naive_serialize(&records[from..=end], layout, hash_key);
            if bytes.len() + outer > max_bytes as usize {
                break;
            }
            best = Some((end + 1, bytes.len()));
            end += 1;
        }
        let aggregate = match best {
            Some((end, data_len)) => Aggregate {
                start: from,
                end,
                layout,
                data_len: data_len as u32,
                size: (data_len + outer) as u32,
                hash_key,
            },
            None => Aggregate {
                start: from,
                end: from + 1,
                layout: Layout::Plain,
                data_len: first.data.len() as u32,
                size: plain_size,
                hash_key,
            },
        };
        steps.push(Step::Aggregate(aggregate));
        from = aggregate.end;
    }
    steps
}

/// A user record as read back: data, partition key, explicit hash key.
type UserRecord = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// What a consumer should read back from `aggregate`: the user records with the keys the
/// layout gives them.
fn expected_user_records<'a>(records: &[Record<'a>], aggregate: &Aggregate) -> Vec<UserRecord> {
    records[aggregate.range()]
        .iter()
        .map(|r| {
            let hash_key = match aggregate.layout {
                Layout::SharedHashKey => Some(decimal(aggregate.hash_key)),
                _ => r.hash_key.map(<[u8]>::to_vec),
            };
            (r.data.to_vec(), r.key.to_vec(), hash_key)
        })
        .collect()
}

/// Encodes and decodes every aggregate of `steps`, checking bytes against the model and
/// the round trip against the input; returns how many user records came back.
fn check_encoding(records: &[Record], steps: &[Step]) -> usize {
    let mut back = 0;
    for step in steps {
        let Step::Aggregate(aggregate) = step else {
            continue;
        };
        let mut data = vec![0xAB; aggregate.data_len as usize + 3];
        let written = encode(records, aggregate, &mut data).unwrap();
        assert_eq!(written, aggregate.data_len as usize);
        let data = &data[..written];
        if aggregate.layout == Layout::Plain {
            assert_eq!(data, records[aggregate.start].data);
        } else {
            assert_eq!(
                data,
                naive_serialize(
                    &records[aggregate.range()],
                    aggregate.layout,
                    aggregate.hash_key
                )
            );
        }
        let key = aggregate.partition_key(records);
        let mut digits = [0; MAX_HASH_KEY_DIGITS];
        let hash_key = aggregate.explicit_hash_key(records, &mut digits);
        // The outer record lands where the aggregate's hash key says.
        assert_eq!(hash_key_of(key, hash_key), Some(aggregate.hash_key));
        let got: Vec<_> = deaggregate(data, key, hash_key)
            .unwrap()
            .map(|s| {
                (
                    s.data.to_vec(),
                    s.partition_key.to_vec(),
                    s.explicit_hash_key.map(<[u8]>::to_vec),
                )
            })
            .collect();
        assert_eq!(got, expected_user_records(records, aggregate));
        back += got.len();
    }
    back
}

// ---------------------------------------------------------------------------------------
// Generators.

/// Keys from a pool larger than the table's 8-entry window, with multi-byte and invalid
/// ones; explicit hash keys that sometimes equal another key's hash.
fn arb_record() -> impl Strategy<Value = Rec> {
    let keys: Vec<Vec<u8>> = (0..12)
        .map(|i| format!("k{i}").into_bytes())
        .chain([
            "é".repeat(3).into_bytes(),
            "日本".as_bytes().to_vec(),
            Vec::new(),
            b"\xff".to_vec(),
        ])
        .collect();
    let hash_keys: Vec<Vec<u8>> = vec![
        b"0".to_vec(),
        decimal(u128::MAX),
        decimal(1 << 127),
        decimal(u128::from_be_bytes(Md5::digest(b"k1").into())),
        decimal(u128::from_be_bytes(Md5::digest(b"k2").into())),
        b"01".to_vec(),
    ];
    (
        0usize..48,
        any::<u8>(),
        prop::sample::select(keys),
        prop::option::weighted(0.15, prop::sample::select(hash_keys)),
    )
        .prop_map(|(len, fill, key, hash_key)| Rec {
            data: (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
            key,
            hash_key,
        })
}

fn limits_for(cap: u32, count_hash_key: bool) -> Limits {
    Limits::new(500, 10 * MIB, cap)
        .unwrap()
        .counting_hash_key(count_hash_key)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The plan is the brute-force greedy plan, step for step, in every mode; every
    /// aggregate encodes to the model's bytes and decodes to its user records.
    #[test]
    fn plans_and_bytes_equal_the_naive_model(
        records in prop::collection::vec(arb_record(), 0..40),
        cap in 40u32..600,
        max_bytes in prop::option::of(30u32..700),
        count_hash_key in any::<bool>(),
        mode_choice in 0u8..3,
        cuts in prop::collection::vec(any::<u128>(), 0..4),
    ) {
        let views = views(&records);
        let limits = limits_for(cap, count_hash_key);
        let ranges = ranges_from(cuts);
        let map = ShardMap::new(&ranges).unwrap();
        let (mode, naive_mode) = match mode_choice {
            0 => (Mode::SharedHashKey, NaiveMode::Shared),
            1 => (Mode::OneKey, NaiveMode::OneKey),
            _ => (Mode::PerShard(map), NaiveMode::PerShard(&ranges)),
        };
        let aggregation = Aggregation::new(limits)
            .unwrap()
            .with_mode(mode)
            .with_max_bytes(max_bytes.unwrap_or(0));
        let effective = match max_bytes {
            Some(m) if m <= cap => m,
            _ => cap,
        };
        prop_assert_eq!(aggregation.max_bytes(), effective);

        let steps: Vec<Step> = aggregation.plan(&views).collect();
        prop_assert_eq!(&steps, &naive_plan(&views, &limits, naive_mode, effective));

        // Every index exactly once, in order; nothing over the caps.
        let mut next = 0;
        for step in &steps {
            match step {
                Step::Aggregate(a) => {
                    prop_assert_eq!(a.start, next);
                    prop_assert!(a.size <= limits.max_record_bytes());
                    if a.layout != Layout::Plain {
                        prop_assert!(a.size <= effective);
                        prop_assert!(a.records() >= 2);
                    }
                    next = a.end;
                }
                Step::Refused(r) => {
                    prop_assert_eq!(r.index, next);
                    next += 1;
                }
            }
        }
        prop_assert_eq!(next, views.len());
        // Stepping from any index gives what the iterator gave from there.
        for step in &steps {
            let from = match step {
                Step::Aggregate(a) => a.start,
                Step::Refused(r) => r.index,
            };
            prop_assert_eq!(aggregation.next(&views, from), Some(*step));
        }
        let accepted = steps
            .iter()
            .map(|s| match s {
                Step::Aggregate(a) => a.records(),
                Step::Refused(_) => 0,
            })
            .sum::<usize>();
        prop_assert_eq!(check_encoding(&views, &steps), accepted);
    }

    /// Key tables as other encoders write them (the KPL's tables reuse any earlier
    /// entry): sub-records naming entries in any order read back the right keys.
    #[test]
    fn any_table_index_order_reads_back_the_right_keys(
        n_keys in 1usize..40,
        n_hash_keys in 0usize..12,
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 1..80),
    ) {
        let keys: Vec<Vec<u8>> = (0..n_keys).map(|i| format!("key-{i}").into_bytes()).collect();
        let hash_keys: Vec<Vec<u8>> = (0..n_hash_keys).map(|i| decimal(i as u128 * 1_000_003)).collect();
        let mut message = Vec::new();
        for key in &keys {
            put_bytes_field(&mut message, 0x0A, key);
        }
        for hash_key in &hash_keys {
            put_bytes_field(&mut message, 0x12, hash_key);
        }
        let mut expected = Vec::new();
        for (n, (key, hash_key, with_hash_key)) in picks.iter().enumerate() {
            let key_index = key.index(n_keys);
            let hash_key_index = (*with_hash_key && n_hash_keys > 0).then(|| hash_key.index(n_hash_keys));
            let data = format!("record {n}").into_bytes();
            let mut body = vec![0x08];
            put_varint(&mut body, key_index as u64);
            if let Some(index) = hash_key_index {
                body.push(0x10);
                put_varint(&mut body, index as u64);
            }
            put_bytes_field(&mut body, 0x1A, &data);
            put_bytes_field(&mut message, 0x1A, &body);
            expected.push((data, keys[key_index].clone(), hash_key_index.map(|i| hash_keys[i].clone())));
        }
        let mut framed = vec![0xF3, 0x89, 0x9A, 0xC2];
        framed.extend_from_slice(&message);
        framed.extend_from_slice(&Md5::digest(&message));
        let got: Vec<UserRecord> = deaggregate(&framed, b"a", None)
            .unwrap()
            .map(|s| (s.data.to_vec(), s.partition_key.to_vec(), s.explicit_hash_key.map(<[u8]>::to_vec)))
            .collect();
        prop_assert_eq!(got, expected);
    }

    /// Any bytes at all: an error or views inside the input, never a panic; an aggregate
    /// with any byte changed is refused or still reads as a well-formed record.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut data = data;
        if magic && data.len() >= 4 {
            data[..4].copy_from_slice(&[0xF3, 0x89, 0x9A, 0xC2]);
        }
        let range = data.as_ptr_range();
        if let Ok(subs) = deaggregate(&data, b"pk", None) {
            let count = subs.len();
            let mut seen = 0;
            for sub in subs {
                seen += 1;
                let inside = |s: &[u8]| s.is_empty() || (range.start <= s.as_ptr() && s.as_ptr_range().end <= range.end) || s == b"pk";
                prop_assert!(inside(sub.data) && inside(sub.partition_key));
            }
            prop_assert_eq!(seen, count);
        }
    }

    /// A valid protobuf with a matching digest but damaged inside: every truncation and
    /// every single-byte change of the message, re-digested, is an error or a clean read.
    #[test]
    fn damaged_messages_with_good_digests_are_errors_or_clean(
        records in prop::collection::vec(arb_record(), 2..8),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let views = views(&records);
        let valid: Vec<Record> = views
            .iter()
            .filter(|r| model::measure_parts(r.data.len() as u128, r.key, r.hash_key, &Limits::KDS).is_ok())
            .copied()
            .collect();
        prop_assume!(valid.len() >= 2);
        let mut framed = naive_serialize(&valid, Layout::OwnKeys, 0);
        let message_len = framed.len() - 20;
        let at = 4 + position.index(message_len);
        let mut message = framed[4..4 + message_len].to_vec();
        if truncate {
            message.truncate(at - 4);
        } else {
            message[at - 4] = byte;
        }
        framed.truncate(4);
        framed.extend_from_slice(&message);
        framed.extend_from_slice(&Md5::digest(&message));
        match deaggregate(&framed, b"a", None) {
            Ok(subs) => {
                let n = subs.len();
                prop_assert_eq!(subs.count(), n);
            }
            Err(DecodeError::Malformed { offset }) => prop_assert!(offset < framed.len()),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The format, byte for byte.

#[test]
fn worked_example_of_the_format() {
    // kinesis-service.md §5: key "pk1", data "hi" in the KPL's own layout.
    let records = [Record::new(b"hi", b"pk1")];
    let mut aggregate = Aggregate {
        start: 0,
        end: 1,
        layout: Layout::OwnKeys,
        data_len: 0,
        size: 0,
        hash_key: 0,
    };
    aggregate.data_len = encoded_len(&records, &aggregate).unwrap();
    assert_eq!(aggregate.data_len, 33);
    let mut out = [0u8; 33];
    assert_eq!(encode(&records, &aggregate, &mut out), Ok(33));
    let expected_protobuf = [
        0x0A, 0x03, 0x70, 0x6B, 0x31, 0x1A, 0x06, 0x08, 0x00, 0x1A, 0x02, 0x68, 0x69,
    ];
    assert_eq!(out[..4], [0xF3, 0x89, 0x9A, 0xC2]);
    assert_eq!(out[4..17], expected_protobuf);
    let digest: Vec<u8> = (0..16)
        .map(|i| {
            u8::from_str_radix(&"e7799b81bbf6236671b426da556e52f8"[2 * i..2 * i + 2], 16).unwrap()
        })
        .collect();
    assert_eq!(out[17..], digest[..]);
    let back: Vec<_> = deaggregate(&out, b"a", None).unwrap().collect();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (
            back[0].data,
            back[0].partition_key,
            back[0].explicit_hash_key
        ),
        (&b"hi"[..], &b"pk1"[..], None)
    );
}

#[test]
fn plain_records_and_near_misses_decode_as_themselves() {
    let digest_of_nothing = Md5::digest(b"");
    let mut twenty = vec![0xF3, 0x89, 0x9A, 0xC2];
    twenty.extend_from_slice(&digest_of_nothing);
    // 20 bytes: no room for a protobuf after the magic and before the digest (the KCL's
    // "more than 16 bytes" rule), so a plain record.
    for data in [&b""[..], b"hello", &[0xF3, 0x89, 0x9A], &twenty] {
        let subs = deaggregate(data, b"key", Some(b"42")).unwrap();
        assert!(!subs.is_aggregated());
        let all: Vec<_> = subs.collect();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].data, all[0].partition_key, all[0].explicit_hash_key),
            (data, &b"key"[..], Some(&b"42"[..]))
        );
    }
    // Magic, a protobuf, a wrong digest.
    let mut damaged = twenty.clone();
    damaged.insert(4, 0x00);
    assert_eq!(
        deaggregate(&damaged, b"k", None).unwrap_err(),
        DecodeError::DigestMismatch
    );
}

/// Hand-made messages with good digests, each broken in one documented way.
#[test]
fn malformed_messages_name_the_offset() {
    let frame = |message: &[u8]| {
        let mut framed = vec![0xF3, 0x89, 0x9A, 0xC2];
        framed.extend_from_slice(message);
        framed.extend_from_slice(&Md5::digest(message));
        framed
    };
    let cases: &[(&[u8], usize)] = &[
        // A key index with no key table.
        (&[0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00], 4),
        // A sub-record without data.
        (&[0x0A, 0x01, b'k', 0x1A, 0x02, 0x08, 0x00], 4 + 3 + 2),
        // A sub-record without a key index.
        (&[0x0A, 0x01, b'k', 0x1A, 0x02, 0x1A, 0x00], 4 + 3 + 2),
        // A length past the end.
        (&[0x0A, 0x05, b'k'], 4),
        // A group (wire type 3), which the format never holds.
        (&[0x0B, 0x0C], 4),
        // An EHK index past the EHK table.
        (
            &[
                0x0A, 0x01, b'k', 0x1A, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x00,
            ],
            4 + 3,
        ),
        // A key table entry with the wrong wire type (varint).
        (&[0x08, 0x01], 4),
        // A varint of 11 bytes.
        (
            &[
                0x1A, 0x0C, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
            ],
            4 + 2,
        ),
    ];
    for (message, offset) in cases {
        assert_eq!(
            deaggregate(&frame(message), b"a", None).unwrap_err(),
            DecodeError::Malformed { offset: *offset },
            "message {message:02x?}"
        );
    }
    // Unknown fields and tags are skipped, as protobuf requires; an empty aggregate
    // holds no record.
    let with_extras = frame(&[
        0x0A, 0x01, b'k', 0x1A, 0x07, 0x08, 0x00, 0x1A, 0x01, b'x', 0x22, 0x00, 0x28, 0x05,
    ]);
    let all: Vec<_> = deaggregate(&with_extras, b"a", None).unwrap().collect();
    assert_eq!(
        (all.len(), all[0].data, all[0].partition_key),
        (1, &b"x"[..], &b"k"[..])
    );
    assert_eq!(
        deaggregate(&frame(&[0x28, 0x01]), b"a", None)
            .unwrap()
            .len(),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Boundaries.

/// Two records whose aggregate, with the outer key "a", is exactly the cap, and with one
/// data byte more is one over: the second case must not be one aggregate.
#[test]
fn an_aggregate_of_exactly_the_record_cap_and_one_byte_over() {
    for (limits, mode) in [
        (Limits::KDS, Mode::SharedHashKey),
        (Limits::KDS, Mode::OneKey),
        (Limits::KDS.counting_hash_key(true), Mode::SharedHashKey),
        (Limits::kds_for_stream(10240).unwrap(), Mode::SharedHashKey),
    ] {
        let cap = limits.max_record_bytes();
        let aggregation = Aggregation::new(limits).unwrap().with_mode(mode);
        let size_with = |second_len: usize| {
            let records = [
                Rec::new(vec![1; 100], "user-1"),
                Rec::new(vec![2; second_len], "user-1"),
            ];
            let views = views(&records);
            aggregation.next(&views, 0).unwrap()
        };
        // Find the second record's length that makes the aggregate exactly the cap.
        let mut len = cap as usize - 300;
        let exact = loop {
            match size_with(len) {
                Step::Aggregate(a) if a.layout != Layout::Plain && a.size == cap => break len,
                Step::Aggregate(a) if a.layout != Layout::Plain => len += (cap - a.size) as usize,
                other => panic!("{other:?} at {len}"),
            }
        };
        let Step::Aggregate(at_cap) = size_with(exact) else {
            panic!()
        };
        assert_eq!((at_cap.records(), at_cap.size), (2, cap));
        // The outer key is counted: data is one byte under the cap with key "a" (and,
        // counted here only when the limits say so, the hash key's digits).
        let outer_key = if mode == Mode::OneKey { 6 } else { 1 };
        let digits = if limits.counts_hash_key() {
            decimal(at_cap.hash_key).len() as u32
        } else {
            0
        };
        assert_eq!(at_cap.data_len, cap - outer_key - digits);
        let records = [
            Rec::new(vec![1; 100], "user-1"),
            Rec::new(vec![2; exact], "user-1"),
        ];
        assert_eq!(
            check_encoding(&views(&records), &[Step::Aggregate(at_cap)]),
            2
        );

        // One byte more: the first record goes alone, as a plain record.
        let Step::Aggregate(over) = size_with(exact + 1) else {
            panic!()
        };
        assert_eq!((over.layout, over.range()), (Layout::Plain, 0..1));
    }
}

#[test]
fn one_record_is_sent_plain_and_a_too_large_one_passes_through() {
    let aggregation = Aggregation::default();
    // Alone.
    let records = [Rec::new(*b"solo", "k")];
    let steps: Vec<_> = aggregation.plan(&views(&records)).collect();
    let Step::Aggregate(a) = steps[0] else {
        panic!()
    };
    assert_eq!(
        (steps.len(), a.layout, a.data_len, a.size),
        (1, Layout::Plain, 4, 5)
    );
    // A record of exactly the cap cannot share an aggregate (framing adds 20 bytes), so
    // it passes through plain between two aggregates; one byte more is refused.
    let cap = MIB as usize;
    let records = [
        Rec::new(*b"a", "k"),
        Rec::new(*b"b", "k"),
        Rec::new(vec![7; cap - 1], "k"),
        Rec::new(vec![7; cap], "k"),
        Rec::new(*b"c", "k"),
        Rec::new(*b"d", "k"),
    ];
    let views = views(&records);
    let steps: Vec<_> = aggregation.plan(&views).collect();
    let shape: Vec<_> = steps
        .iter()
        .map(|s| match s {
            Step::Aggregate(a) => (a.layout, a.range(), None),
            Step::Refused(r) => (Layout::Plain, r.index..r.index + 1, Some(r.reason)),
        })
        .collect();
    assert_eq!(
        shape,
        [
            (Layout::SharedHashKey, 0..2, None),
            (Layout::Plain, 2..3, None),
            (Layout::Plain, 3..4, Some(Reason::RecordTooLarge)),
            (Layout::SharedHashKey, 4..6, None),
        ]
    );
    assert_eq!(check_encoding(&views, &steps), 5);
}

#[test]
fn empty_data_and_256_character_keys_round_trip() {
    let long_ascii = "k".repeat(256);
    let long_multibyte = "é".repeat(256); // 512 UTF-8 bytes, 256 code points
    let records = [
        Rec::new(*b"", long_ascii.clone()),
        Rec::new(*b"", long_multibyte.clone()),
        Rec::new(*b"x", long_multibyte.clone()),
        Rec::new(*b"", "short"),
        Rec::new(*b"", "é".repeat(257)),
    ];
    let views = views(&records);
    for mode in [Mode::SharedHashKey, Mode::OneKey] {
        let steps: Vec<_> = Aggregation::default()
            .with_mode(mode)
            .plan(&views)
            .collect();
        assert_eq!(
            steps.last(),
            Some(&Step::Refused(Refusal {
                index: 4,
                reason: Reason::KeyTooLong
            }))
        );
        assert_eq!(check_encoding(&views, &steps), 4);
    }
    // Counted in UTF-16 units, as the KPL counts, the 256 "é" still fit; in UTF-8 bytes
    // they do not.
    let bytes = Limits::KDS.with_key_unit(KeyUnit::Utf8Bytes);
    let steps: Vec<_> = Aggregation::new(bytes).unwrap().plan(&views).collect();
    assert!(steps.contains(&Step::Refused(Refusal {
        index: 1,
        reason: Reason::KeyTooLong
    })));
}

#[test]
fn firehose_limits_cannot_aggregate() {
    assert_eq!(
        Aggregation::new(Limits::FIREHOSE),
        Err(AggregationError::NoPartitionKeys)
    );
}

#[test]
fn encoding_checks_before_it_writes() {
    let records = [
        Rec::new(*b"aa", "k1"),
        Rec::new(*b"bb", "k2"),
        Rec::new(*b"cc", "k2"),
    ];
    let views = views(&records);
    let Some(Step::Aggregate(aggregate)) = Aggregation::default().next(&views, 0) else {
        panic!()
    };
    assert_eq!(aggregate.range(), 0..3);
    let mut out = vec![0x55; aggregate.data_len as usize];
    // Too small by one: nothing written.
    assert_eq!(
        encode(
            &views,
            &aggregate,
            &mut out[..aggregate.data_len as usize - 1]
        ),
        Err(EncodeError::BufferTooSmall {
            needed: aggregate.data_len as usize
        })
    );
    assert!(out.iter().all(|&b| b == 0x55));
    // Out of range, reversed, or a plain "aggregate" of two records.
    for (start, end, layout) in [
        (0, 4, aggregate.layout),
        (2, 2, aggregate.layout),
        (0, 2, Layout::Plain),
    ] {
        let bad = Aggregate {
            start,
            end,
            layout,
            ..aggregate
        };
        assert_eq!(encode(&views, &bad, &mut out), Err(EncodeError::OutOfRange));
    }
    // A changed input: one data byte more.
    let changed = [
        Rec::new(*b"aa", "k1"),
        Rec::new(*b"bbb", "k2"),
        Rec::new(*b"cc", "k2"),
    ];
    assert_eq!(
        encode(&views_of(&changed), &aggregate, &mut out),
        Err(EncodeError::InputChanged)
    );
    // A one-key layout over records with different keys.
    let one_key = Aggregate {
        layout: Layout::OneKey,
        ..aggregate
    };
    assert_eq!(
        encode(&views, &one_key, &mut out),
        Err(EncodeError::InputChanged)
    );
    assert!(out.iter().all(|&b| b == 0x55));
    assert_eq!(
        encode(&views, &aggregate, &mut out),
        Ok(aggregate.data_len as usize)
    );
}

fn views_of(records: &[Rec]) -> Vec<Record<'_>> {
    views(records)
}

/// Aggregates are records to the request planner: 500 of them at most per request, and
/// never more than the request cap.
#[test]
fn aggregates_batch_into_requests() {
    let records: Vec<Rec> = (0..200_000)
        .map(|i| Rec::new(vec![(i % 251) as u8; 100], format!("user-{}", i % 1000)))
        .collect();
    let views = views(&records);
    let aggregates: Vec<Aggregate> = Aggregation::default()
        .plan(&views)
        .map(|s| match s {
            Step::Aggregate(a) => a,
            Step::Refused(r) => panic!("{r:?}"),
        })
        .collect();
    let ratio = records.len() / aggregates.len();
    // 1,000 keys in turn: each user record carries its key's table entry (its key was
    // not among the table's last 8), about 120 bytes a user record in 1 MiB.
    assert!((8_500..9_000).contains(&ratio), "ratio {ratio}");
    let mut kinesis_records = 0;
    for event in plan(&aggregates, Limits::KDS) {
        let Event::Batch(batch) = event else { panic!() };
        assert!(batch.bytes <= 10 * MIB && batch.records <= 500);
        kinesis_records += batch.records as usize;
    }
    assert_eq!(kinesis_records, aggregates.len());
    assert_eq!(
        check_encoding(
            &views,
            &aggregates
                .iter()
                .map(|&a| Step::Aggregate(a))
                .collect::<Vec<_>>()
        ),
        records.len()
    );
}

#[test]
fn planning_encoding_and_decoding_do_not_allocate() {
    let records: Vec<Rec> = (0..5000)
        .map(|i| Rec::new(vec![i as u8; i % 300], format!("key-{}", i % 13)))
        .collect();
    let views = views(&records);
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
    let mut out = vec![0; MIB as usize];
    for mode in [Mode::SharedHashKey, Mode::OneKey, Mode::PerShard(map)] {
        let aggregation = Aggregation::default().with_mode(mode);
        let first = support::assert_no_alloc("Aggregation::plan", || {
            let mut first = None;
            for step in aggregation.plan(&views) {
                if let (None, Step::Aggregate(a)) = (first, step) {
                    first = Some(a);
                }
            }
            first.unwrap()
        });
        let written =
            support::assert_no_alloc("encode", || encode(&views, &first, &mut out).unwrap());
        support::assert_no_alloc("deaggregate", || {
            let key = first.partition_key(&views);
            let mut digits = [0; MAX_HASH_KEY_DIGITS];
            let hash_key = first.explicit_hash_key(&views, &mut digits);
            let n = deaggregate(&out[..written], key, hash_key).unwrap().count();
            assert_eq!(n, first.records());
        });
    }
}

// ---------------------------------------------------------------------------------------
// The KCL's range filter (`AggregatorUtil.java`, `deaggregate`): a record is read from the
// shard that owns its outer hash key; every user record's effective hash key (its
// explicit hash key, else MD5 of its partition key) must lie in that shard's range, or
// the whole aggregate is dropped.

/// The user records the KCL hands to the application from one stored record, or `None`
/// when it drops the aggregate.
fn kcl_deaggregate(
    data: &[u8],
    key: &[u8],
    hash_key: Option<&[u8]>,
    shard: ShardRange,
) -> Option<usize> {
    let subs = deaggregate(data, key, hash_key).unwrap();
    if !subs.is_aggregated() {
        return Some(1);
    }
    let mut n = 0;
    for sub in subs {
        let effective = match sub.explicit_hash_key {
            Some(h) => parse_hash_key(h).unwrap(),
            None => u128::from_be_bytes(Md5::digest(sub.partition_key).into()),
        };
        if effective < shard.start || effective > shard.end {
            return None;
        }
        n += 1;
    }
    Some(n)
}

/// Puts every encoded record into the stream as `map` stands now, and reads them back
/// through the KCL model: user records delivered, and aggregates dropped.
fn through_the_kcl(
    records: &[Record],
    aggregates: &[Aggregate],
    map: &[ShardRange],
) -> (usize, usize) {
    let shard_map = ShardMap::new(map).unwrap();
    let (mut delivered, mut dropped) = (0, 0);
    for aggregate in aggregates {
        let mut data = vec![0; aggregate.data_len as usize];
        encode(records, aggregate, &mut data).unwrap();
        let key = aggregate.partition_key(records);
        let mut digits = [0; MAX_HASH_KEY_DIGITS];
        let hash_key = aggregate.explicit_hash_key(records, &mut digits);
        let lands = shard_map.shard_of(hash_key_of(key, hash_key).unwrap());
        match kcl_deaggregate(&data, key, hash_key, map[lands]) {
            Some(n) => delivered += n,
            None => dropped += 1,
        }
    }
    (delivered, dropped)
}

#[test]
fn the_kcl_drops_nothing_of_shared_hash_key_aggregates_across_a_split_and_a_merge() {
    let records: Vec<Rec> = (0..20_000)
        .map(|i| Rec::new(format!("event {i}"), format!("user-{}", (i * 7919) % 5000)))
        .collect();
    let views = views(&records);
    let half = 1u128 << 127;
    let before = [
        ShardRange {
            start: 0,
            end: half - 1,
        },
        ShardRange {
            start: half,
            end: u128::MAX,
        },
    ];
    // Shard 0 split at 2^126; then the upper half of shard 0 merged with shard 1.
    let split = [
        ShardRange {
            start: 0,
            end: (1 << 126) - 1,
        },
        ShardRange {
            start: 1 << 126,
            end: half - 1,
        },
        ShardRange {
            start: half,
            end: u128::MAX,
        },
    ];
    let merged = [
        ShardRange {
            start: 0,
            end: (1 << 126) - 1,
        },
        ShardRange {
            start: 1 << 126,
            end: u128::MAX,
        },
    ];
    let plan_with = |mode| -> Vec<Aggregate> {
        Aggregation::default()
            .with_max_bytes(4096) // many aggregates, so that every case occurs
            .with_mode(mode)
            .plan(&views)
            .map(|s| match s {
                Step::Aggregate(a) => a,
                Step::Refused(r) => panic!("{r:?}"),
            })
            .collect()
    };

    // (a) Shared hash key: planned once, put before, after the split, after the merge.
    let shared = plan_with(Mode::SharedHashKey);
    for map in [&before[..], &split, &merged] {
        assert_eq!(through_the_kcl(&views, &shared, map), (records.len(), 0));
    }

    // (c) Per shard, planned with the map before the split: fine while it is current,
    // aggregates straddling the new boundary are dropped after it.
    let per_shard = plan_with(Mode::PerShard(ShardMap::new(&before).unwrap()));
    assert_eq!(
        through_the_kcl(&views, &per_shard, &before),
        (records.len(), 0)
    );
    let (delivered, dropped) = through_the_kcl(&views, &per_shard, &split);
    assert!(
        dropped > 0 && delivered < records.len(),
        "{delivered} {dropped}"
    );

    // (d) Mixed keys with no shared hash key (the KPL layout without a shard map, what
    // aws-kinesis-agg makes): dropped even with no resharding at all.
    let mixed: Vec<Aggregate> = shared
        .iter()
        .map(|a| {
            let mut own = Aggregate {
                layout: Layout::OwnKeys,
                ..*a
            };
            own.data_len = encoded_len(&views, &own).unwrap();
            own
        })
        .collect();
    let (delivered, dropped) = through_the_kcl(&views, &mixed, &before);
    assert!(
        dropped > mixed.len() / 2,
        "only {dropped} of {} dropped",
        mixed.len()
    );
    assert!(delivered < records.len() / 2);
}

#[test]
fn hash_keys_format_and_parse_back() {
    let mut digits = [0; MAX_HASH_KEY_DIGITS];
    for value in [0, 1, 9, 10, u128::from(u64::MAX), 1 << 127, u128::MAX] {
        let text = format_hash_key(value, &mut digits);
        assert_eq!(text, value.to_string().as_bytes());
        assert_eq!(parse_hash_key(text), Some(value));
    }
}
