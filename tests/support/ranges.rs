//! Shard maps for tests, shared by the shard and aggregation tests.

use kinesis_batcher::shards::ShardRange;

/// Sorted, distinct split points: the ranges they cut 0..=2^128-1 into.
pub fn ranges_from(mut cuts: Vec<u128>) -> Vec<ShardRange> {
    cuts.retain(|&c| c != 0);
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges = Vec::new();
    let mut start = 0;
    for cut in cuts {
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
    ranges
}
