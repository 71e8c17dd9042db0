"""Aggregation through Python, both ways against the reference, aws-kinesis-agg."""

import base64
import hashlib
import random

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from kinesis_batcher import KDS, Limits, plan
from kinesis_batcher.aggregation import aggregate, deaggregate


def workload(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = rng.choice(["a", "user-%d" % rng.randrange(50), "é" * rng.randrange(1, 5)])
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        out.append((data, key))
    return out


def their_deaggregate(entries):
    events = [{"kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": str(i), "approximateArrivalTimestamp": 0.0,
                           "partitionKey": e["PartitionKey"], "explicitHashKey": e.get("ExplicitHashKey"),
                           "data": base64.b64encode(e["Data"]).decode()}, "eventSource": "aws:kinesis"}
              for i, e in enumerate(entries)]
    return [(base64.b64decode(u["kinesis"]["data"]), u["kinesis"]["partitionKey"]) for u in deaggregate_records(events)]


@pytest.mark.parametrize("mode", ["shared_hash_key", "one_key"])
@pytest.mark.parametrize("max_bytes", [0, 51_200, 2_000])
def test_ours_read_by_aws_kinesis_agg(mode, max_bytes):
    recs = workload(3000, f"{mode}/{max_bytes}")
    agg = aggregate(recs, KDS, mode=mode, max_bytes=max_bytes)
    assert agg.refusals == []
    assert their_deaggregate(agg.entries) == recs
    # Ranges tile the input in order, and each aggregate fits: as one record of its plan.
    assert [r for rng in agg.ranges for r in range(*rng)] == list(range(len(recs)))
    p = plan(agg.entries, KDS.with_max_record_bytes(max_bytes) if max_bytes >= 1 << 20 else KDS)
    assert p.refusals == [] and sum(b.count for b in p.batches) == len(agg.entries)
    if max_bytes:
        assert all(len(e["Data"]) + len(e["PartitionKey"].encode()) <= max_bytes for e in agg.entries)
    # And ours reads ours back.
    back = [(u.data, u.partition_key) for e in agg.entries
            for u in deaggregate(e["Data"], e["PartitionKey"], e.get("ExplicitHashKey"))]
    if mode == "one_key":
        assert back == recs
    assert [d for d, _ in back] == [d for d, _ in recs]


def shard_map(n):
    """n equal shards as ListShards gives them (by shard id; here shuffled), and their ends."""
    top = 2**128
    ends = [top * (i + 1) // n - 1 for i in range(n)]
    shards = [{"ShardId": f"shardId-{i:012d}", "HashKeyRange": {"StartingHashKey": str(ends[i - 1] + 1 if i else 0),
                                                                 "EndingHashKey": str(ends[i])}} for i in range(n)]
    random.Random(n).shuffle(shards)
    return shards, ends


def shard_of(ends, partition_key, explicit_hash_key=None):
    """The shard a record goes to, computed here from the service's rule (MD5 of the key)."""
    h = int(explicit_hash_key) if explicit_hash_key else int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")
    return next(i for i, end in enumerate(ends) if h <= end)


def test_per_shard_aggregates_hold_one_shard_each():
    shards, ends = shard_map(4)
    recs = workload(3000, "per-shard")
    recs[10:10] = [(b"routed", "any", str(ends[2]))]  # an explicit hash key decides its shard
    agg = aggregate(recs, KDS, mode="per_shard", shards=shards)
    assert agg.refusals == []
    assert [r for rng in agg.ranges for r in range(*rng)] == list(range(len(recs)))
    for entry, (start, end) in zip(agg.entries, agg.ranges):
        users = recs[start:end]
        shard = shard_of(ends, entry["PartitionKey"], entry.get("ExplicitHashKey"))
        assert {shard_of(ends, *u[1:]) for u in users} == {shard}
        back = deaggregate(entry["Data"], entry["PartitionKey"], entry.get("ExplicitHashKey"))
        assert [(u.data, u.partition_key) for u in back] == [u[:2] for u in users]
    # Each run of consecutive records bound for one shard is one aggregate (all of them
    # fit in one): no needless cut, and no aggregate across shards.
    shard_per_record = [shard_of(ends, *r[1:]) for r in recs]
    runs = 1 + sum(a != b for a, b in zip(shard_per_record, shard_per_record[1:]))
    assert len(agg.entries) == runs
    # (start, end) pairs of ints are a shard map too, and give the same aggregates.
    pairs = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards]
    assert aggregate(recs, KDS, mode="per_shard", shards=pairs) == agg


def test_per_shard_needs_a_whole_shard_map():
    shards, ends = shard_map(2)
    recs = [(b"x", "k")]
    with pytest.raises(ValueError, match="needs shards"):
        aggregate(recs, KDS, mode="per_shard")
    with pytest.raises(ValueError, match="per_shard"):
        aggregate(recs, KDS, shards=shards)
    with pytest.raises(ValueError, match="open shards"):  # a gap
        aggregate(recs, KDS, mode="per_shard", shards=[(0, 10), (12, 2**128 - 1)])
    with pytest.raises(ValueError, match="open shards"):  # a closed parent listed with its children
        aggregate(recs, KDS, mode="per_shard", shards=shards + [(0, 2**128 - 1)])
    with pytest.raises(ValueError):
        aggregate(recs, KDS, mode="per_shard", shards=[(0, 2**128)])
    with pytest.raises(TypeError):
        aggregate(recs, KDS, mode="per_shard", shards=[[0, 2**128 - 1]])
    with pytest.raises(ValueError, match="mode must be"):
        aggregate(recs, KDS, mode="per-shard")  # type: ignore[arg-type]


def test_theirs_read_by_ours():
    recs = workload(2000, "theirs")
    agg = RecordAggregator(max_size=64 * 1024)
    made = []
    for data, key in recs:
        full = agg.add_user_record(key, data)
        if full is not None:
            made.append(full.get_contents())
    last = agg.clear_and_get()
    if last is not None:
        made.append(last.get_contents())
    back = [(u.data, u.partition_key) for pk, ehk, data in made for u in deaggregate(data, pk, ehk)]
    assert back == recs


def test_refusals_and_damage():
    recs = [(b"a", "k"), (b"b", ""), (5, "k"), (b"x" * (1 << 20), "k"), (b"c", "k")]
    agg = aggregate(recs, KDS)
    assert [(i, r) for i, r, _ in agg.refusals] == [(1, "key_empty"), (2, "invalid_record"), (3, "record_too_large")]
    assert sum(e - s for s, e in agg.ranges) == 2
    one = aggregate([(b"a", "k"), (b"b", "k")], KDS).entries[0]
    damaged = bytearray(one["Data"])
    damaged[6] ^= 0xFF
    with pytest.raises(ValueError):
        deaggregate(bytes(damaged), one["PartitionKey"], one.get("ExplicitHashKey"))
    assert [u.data for u in deaggregate(b"plain", "k")] == [b"plain"]
    with pytest.raises(ValueError):
        aggregate(recs, Limits.FIREHOSE)
    with pytest.raises(ValueError):
        aggregate(recs, mode="per_shard")  # type: ignore[arg-type]
