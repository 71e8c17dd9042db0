//! Shard prediction against the plainest models there are: RFC 1321's MD5 test vectors,
//! decimal strings printed by `u128::to_string`, and a linear scan for the shard.

#[path = "support/ranges.rs"]
mod ranges;
use ranges::ranges_from;

use kinesis_batcher::shards::{
    ShardMap, ShardMapError, ShardRange, hash_key_of, parse_hash_key, partition_key_hash,
};
use proptest::prelude::*;

/// RFC 1321 appendix A.5, read as big-endian integers.
#[test]
fn partition_keys_hash_as_md5_big_endian() {
    let vectors: [(&[u8], &str); 5] = [
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (key, hex) in vectors {
        let expected = u128::from_str_radix(hex, 16).unwrap();
        assert_eq!(partition_key_hash(key), expected, "{hex}");
        assert_eq!(hash_key_of(key, None), Some(expected));
    }
    // A multi-byte key is hashed as its UTF-8 bytes.
    assert_eq!(
        partition_key_hash("😀".as_bytes()),
        0x2a02_eac3_9d71_6a70_ecf3_7579_1859_27b6
    );
}

#[test]
fn hash_keys_parse_at_their_edges() {
    assert_eq!(parse_hash_key(b"0"), Some(0));
    assert_eq!(parse_hash_key(b"1"), Some(1));
    let max = u128::MAX.to_string();
    assert_eq!(parse_hash_key(max.as_bytes()), Some(u128::MAX));
    // 2^128, a leading zero, empty, a sign, a space, a non-digit.
    for bad in [
        &b"340282366920938463463374607431768211456"[..],
        b"01",
        b"",
        b"+1",
        b" 1",
        b"1a",
        b"-0",
    ] {
        assert_eq!(
            parse_hash_key(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(hash_key_of(b"k", Some(bad)), None);
    }
    // The explicit hash key wins over the partition key.
    assert_eq!(hash_key_of(b"k", Some(b"42")), Some(42));
}

/// About the ranges `CreateStream` makes for `n` shards: even splits of 0..=2^128-1.
fn even(n: u128) -> Vec<ShardRange> {
    let step = u128::MAX / n;
    (0..n)
        .map(|i| ShardRange {
            start: i * step,
            end: if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            },
        })
        .collect()
}

#[test]
fn shard_of_is_exact_at_every_range_edge() {
    let one = [ShardRange {
        start: 0,
        end: u128::MAX,
    }];
    let map = ShardMap::new(&one).unwrap();
    assert_eq!((map.shard_of(0), map.shard_of(u128::MAX)), (0, 0));

    for n in [2, 3, 4, 7, 1000] {
        let ranges = even(n);
        let map = ShardMap::new(&ranges).unwrap_or_else(|e| panic!("{n}: {e}"));
        for (i, range) in ranges.iter().enumerate() {
            assert_eq!(map.shard_of(range.start), i);
            assert_eq!(map.shard_of(range.end), i);
            if range.end != u128::MAX {
                assert_eq!(map.shard_of(range.end + 1), i + 1);
            }
        }
        assert_eq!(map.shard_of(0), 0);
        assert_eq!(map.shard_of(u128::MAX), ranges.len() - 1);
    }
}

#[test]
fn ranges_that_are_not_the_open_shards_are_refused() {
    let r = |start, end| ShardRange { start, end };
    let half = 1u128 << 127;
    let cases: [(Vec<ShardRange>, ShardMapError); 7] = [
        (vec![], ShardMapError::Empty),
        (
            vec![r(0, half), r(half, u128::MAX)],
            ShardMapError::NotContiguous { index: 1 }, // overlap
        ),
        (
            vec![r(0, half - 1), r(half + 1, u128::MAX)],
            ShardMapError::NotContiguous { index: 1 }, // gap
        ),
        (
            vec![r(half, u128::MAX), r(0, half - 1)],
            ShardMapError::NotContiguous { index: 0 }, // unsorted
        ),
        (
            vec![r(1, u128::MAX)],
            ShardMapError::NotContiguous { index: 0 },
        ),
        (vec![r(0, half)], ShardMapError::Incomplete),
        (
            vec![r(0, half), r(half + 1, half), r(half + 1, u128::MAX)],
            ShardMapError::Reversed { index: 1 },
        ),
    ];
    for (ranges, error) in cases {
        assert_eq!(ShardMap::new(&ranges), Err(error), "{ranges:?}");
        assert!(!error.message().is_empty());
    }
    // A closed parent listed with its two children (ListShards without AT_LATEST).
    let parent_and_children = [r(0, u128::MAX), r(0, half - 1), r(half, u128::MAX)];
    assert_eq!(
        ShardMap::new(&parent_and_children),
        Err(ShardMapError::NotContiguous { index: 1 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn the_shard_found_is_the_one_a_linear_scan_finds(
        cuts in prop::collection::vec(any::<u128>(), 0..40),
        keys in prop::collection::vec(any::<u128>(), 1..20),
        near in prop::collection::vec((any::<prop::sample::Index>(), -2i8..=2), 0..10),
    ) {
        let ranges = ranges_from(cuts);
        let map = ShardMap::new(&ranges).unwrap();
        // Random keys, and keys at and around every kind of edge.
        let mut probes = keys;
        for (index, delta) in near {
            let range = ranges[index.index(ranges.len())];
            probes.push(range.start.saturating_add_signed(i128::from(delta)));
            probes.push(range.end.saturating_add_signed(i128::from(delta)));
        }
        for key in probes {
            let scan = ranges.iter().position(|r| r.start <= key && key <= r.end).unwrap();
            prop_assert_eq!(map.shard_of(key), scan, "key {}", key);
        }
    }

    #[test]
    fn decimal_hash_keys_round_trip(value in any::<u128>()) {
        let text = value.to_string();
        prop_assert_eq!(parse_hash_key(text.as_bytes()), Some(value));
        prop_assert_eq!(parse_hash_key(format!("0{text}").as_bytes()), None);
    }
}

#[test]
fn hash_key_digits_at_every_power_of_ten() {
    use kinesis_batcher::shards::hash_key_digits;
    assert_eq!(hash_key_digits(0), 1);
    assert_eq!(hash_key_digits(u128::MAX), 39);
    let mut power = 1u128;
    for digits in 1..39 {
        power *= 10; // 10^digits
        assert_eq!(hash_key_digits(power - 1), digits, "10^{digits} - 1");
        assert_eq!(hash_key_digits(power), digits + 1, "10^{digits}");
    }
}
