#!/usr/bin/env python3
"""End to end, aggregation: `kinesis-batcher emit --aggregate` against moto, read back
and deaggregated with our CLI and with aws-kinesis-agg. Run by tests/e2e/run.sh.

per-shard: a 4-shard stream, ListShards (ShardFilter AT_LATEST) into a shards file,
`emit --aggregate=per-shard --shards FILE`, each request file sent with boto3
put_records: every entry must succeed, on the shard our map predicts for its
ExplicitHashKey; then every shard read back (TRIM_HORIZON + GetRecords), deaggregated
with `kinesis-batcher deaggregate` and with aws_kinesis_agg, and compared with the
input: per shard as a multiset (each user record on the shard of MD5(its key)), and in
input order per partition key.
shared-hash-key (the default): stored, read back, deaggregated, equal to the input.
"""
import argparse
import base64
import collections
import hashlib
import json
import os
import random
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from aws_kinesis_agg.deaggregator import deaggregate_records

FAILURES = []
SHARDS = 4


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def client(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      read_timeout=300, connect_timeout=10))


def create_stream(kin, name):
    kin.create_stream(StreamName=name, ShardCount=SHARDS)
    for _ in range(200):
        if kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"stream {name} never became ACTIVE")


KEY_CHARS = "abcxyz0189-ключ日本語鍵한국어✓€😀🔑"


def workload(rng, n):
    keys = ["".join(rng.choice(KEY_CHARS) for _ in range(rng.randint(1, 12))) for _ in range(60)]
    keys += ["é" * 256, "k" * 256]
    lines, line_keys = [], []
    for i in range(n):
        key = rng.choice(keys)
        size = rng.choice([0, 10, 100, 1000]) if rng.random() < 0.995 else 100_000
        text = "".join(rng.choice(KEY_CHARS) for _ in range(rng.randint(0, size)))
        lines.append(json.dumps({"n": i, "k": key, "t": text}, ensure_ascii=False).encode())
        line_keys.append(key)
    return lines, line_keys


def md5_key(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


def shard_of(ranges, hash_key):
    for sid, (lo, hi) in ranges.items():
        if lo <= hash_key <= hi:
            return sid
    return None


def read_back(kin, stream):
    """shard id -> [get_records record] in shard order."""
    out = {}
    for sh in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=sh["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = []
        while it:
            r = kin.get_records(ShardIterator=it, Limit=10000)
            got += r["Records"]
            it = r.get("NextShardIterator")
            if not r["Records"]:
                break
        out[sh["ShardId"]] = got
    return out


def run_mode(args, kin, mode, seed, run_id):
    t0 = time.time()
    stream = f"e2e-agg-{mode}-{run_id}"
    create_stream(kin, stream)
    lines, keys = workload(random.Random(f"{seed}/{mode}"), args.records)
    work = os.path.join(args.work, stream)
    os.makedirs(work)
    path = os.path.join(work, "in.ndjson")
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    listed = kin.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})
    shards_path = os.path.join(work, "shards.json")
    with open(shards_path, "w") as f:
        json.dump({"Shards": listed["Shards"]}, f)
    ranges = {s["ShardId"]: (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
              for s in listed["Shards"]}
    out = os.path.join(work, "requests")
    cmd = [args.cli, "emit", f"--aggregate={mode}", "--profile", "kds-5mib", "--key-field", "k",
           "--stream", stream, "--out", out, "--summary", "json", path]
    if mode == "per-shard":
        cmd += ["--shards", shards_path]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if not check(p.returncode == 0, f"{mode}: emit exit {p.returncode}: {p.stderr[-1000:]}"):
        return {}
    summary = json.loads(p.stdout)
    agg = summary["aggregation"]
    check(agg["user_records"] == len(lines) and summary["refused"] == 0,
          f"{mode}: summary {agg} for {len(lines)} lines")
    files = sorted(os.path.join(out, f) for f in os.listdir(out))
    sent = wrong_shard = failed = 0
    for f in files:
        with open(f) as fh:
            req = json.load(fh)
        entries = []
        for e in req["Records"]:
            entry = {"Data": base64.b64decode(e["Data"]), "PartitionKey": e["PartitionKey"]}
            if "ExplicitHashKey" in e:
                entry["ExplicitHashKey"] = e["ExplicitHashKey"]
            entries.append(entry)
        resp = kin.put_records(StreamName=stream, Records=entries)
        failed += resp["FailedRecordCount"]
        for e, r in zip(entries, resp["Records"]):
            sent += 1
            if "ErrorCode" in r:
                continue
            hk = int(e["ExplicitHashKey"]) if "ExplicitHashKey" in e else md5_key(e["PartitionKey"])
            wrong_shard += r["ShardId"] != shard_of(ranges, hk)
    check(failed == 0, f"{mode}: {failed} entries failed")
    check(wrong_shard == 0, f"{mode}: {wrong_shard} entries stored on another shard than the map predicts")
    check(sent == agg["kinesis_records"], f"{mode}: sent {sent} entries, summary says {agg['kinesis_records']}")

    shards = read_back(kin, stream)
    input_by_shard = collections.defaultdict(collections.Counter)
    for line, key in zip(lines, keys):
        input_by_shard[shard_of(ranges, md5_key(key))][(key, line)] += 1
    everything = collections.Counter(zip(keys, lines))
    ours_all, theirs_all = collections.Counter(), collections.Counter()
    per_key_ours = collections.defaultdict(list)
    for sid, records in shards.items():
        # Ours: the get-records output as a file, through `deaggregate`.
        got = os.path.join(work, f"{sid}.json")
        with open(got, "w") as fh:
            json.dump({"Records": [{"Data": base64.b64encode(r["Data"]).decode(),
                                    "PartitionKey": r["PartitionKey"]} for r in records]}, fh)
        p = subprocess.run([args.cli, "deaggregate", got], capture_output=True)
        check(p.returncode == 0, f"{mode}/{sid}: deaggregate exit {p.returncode}: {p.stderr[-500:]!r}")
        ours = []
        for x in p.stdout.decode().splitlines():
            u = json.loads(x)
            ours.append((u["PartitionKey"], base64.b64decode(u["Data"])))
        # Theirs: aws-kinesis-agg on the boto3 records.
        theirs = [(u["kinesis"]["partitionKey"], base64.b64decode(u["kinesis"]["data"]))
                  for u in deaggregate_records([{"kinesis": {"kinesisSchemaVersion": "1.0",
                                                             "sequenceNumber": r["SequenceNumber"],
                                                             "approximateArrivalTimestamp": 0.0,
                                                             "partitionKey": r["PartitionKey"],
                                                             "data": base64.b64encode(r["Data"])}}
                                                for r in records])]
        check(ours == theirs, f"{mode}/{sid}: our deaggregate and aws-kinesis-agg differ")
        ours_all.update(ours)
        theirs_all.update(theirs)
        if mode == "per-shard":
            check(collections.Counter(ours) == input_by_shard[sid],
                  f"{mode}/{sid}: the user records read back are not the input records of this shard")
        for key, data in ours:
            per_key_ours[key].append(data)
    check(ours_all == everything, f"{mode}: read back {sum(ours_all.values())} user records, "
          f"input {len(lines)}: not the same multiset")
    check(theirs_all == everything, f"{mode}: aws-kinesis-agg reads back another multiset")
    if mode == "per-shard":
        per_key_in = collections.defaultdict(list)
        for line, key in zip(lines, keys):
            per_key_in[key].append(line)
        check(per_key_ours == per_key_in, f"{mode}: a key's records are not in input order")
    return {"mode": mode, "lines": len(lines), "requests": len(files), "kinesis_records": sent,
            "aggregates": agg["aggregates"], "ratio": round(agg["ratio"], 2),
            "read_back_records": sum(len(r) for r in shards.values()),
            "shards": {s: len(r) for s, r in shards.items()}, "seconds": round(time.time() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--records", type=int, default=5000)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"e2e aggregate: seed {seed}", flush=True)
    kin = client(args.endpoint)
    run_id = f"{int(time.time())}-{seed}"
    for mode in ("per-shard", "shared-hash-key"):
        try:
            print(json.dumps(run_mode(args, kin, mode, seed, run_id), ensure_ascii=False), flush=True)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            check(False, f"{mode}: {e!r}")
    if FAILURES:
        print(f"e2e aggregate: {len(FAILURES)} failed (seed {seed})")
        for f in FAILURES[:30]:
            print(f"  - {f}")
        sys.exit(1)
    print("e2e aggregate: all assertions passed", flush=True)


if __name__ == "__main__":
    main()
