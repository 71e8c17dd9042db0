#!/usr/bin/env python3
"""kb-producer against moto (a real Kinesis API), with several requests in flight.

Run by tests/e2e/c_producer_e2e.sh, with the venv's python (boto3). Each run creates a
4-shard stream, writes a seeded NDJSON file, runs kb-producer on it, and reads every
shard back from TRIM_HORIZON. The checks: exit status 0 and no line failed; the summary's
counts; every line stored exactly once, byte for byte, under its key, on the shard
MD5(key) selects; each key's records in input order (per-key order is the producer's
default, and holds with requests in flight, failures and retries).

  direct     straight to moto, --key-field k, 8 in flight
  faults     through fault_proxy.py: failed entries, HTTP 500/503, connections dropped
             before forwarding, 20 ms a request; 8 in flight; credentials from a file
  latency    through fault_proxy.py --latency-ms 50, line-number keys: 1 in flight, then
             8; the throughput ratio is printed. moto's own cost per record (about
             0.08 ms, under one interpreter lock) bounds what several requests in
             flight gain here, so only a clear gain (1.4x) is asserted; the 5x claim is
             checked against bindings/c/test/fake_kinesis.py, whose cost is negligible.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time

import boto3
from botocore.config import Config

SHARDS = 4
LINE_RE = re.compile(rb'^\{"n":(\d+)')
SUMMARY = re.compile(r"done: (\d+) lines, (\d+) stored, (\d+) refused, (\d+) failed, "
                     r"(\d+) requests, (\d+) retries")
FAILURES = []


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
        s = kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if s["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"stream {name} never became ACTIVE")


def read_back(kin, name):
    """[(hash range, [(key, data)] in shard order)] for every shard."""
    out = []
    for sh in kin.list_shards(StreamName=name)["Shards"]:
        rng = (int(sh["HashKeyRange"]["StartingHashKey"]), int(sh["HashKeyRange"]["EndingHashKey"]))
        it = kin.get_shard_iterator(StreamName=name, ShardId=sh["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = []
        while it:
            r = kin.get_records(ShardIterator=it, Limit=10000)
            recs += [(x["PartitionKey"], x["Data"]) for x in r["Records"]]
            if not r["Records"]:
                break
            it = r.get("NextShardIterator")
        out.append((rng, recs))
    return out


def workload(rng, n, keys):
    """n lines {"n":i,...}: with keys, a field k among `keys` distinct values (several
    records per key, so that their order matters); sizes from a few bytes to ~20 KB."""
    lines = []
    for i in range(1, n + 1):
        obj = {"n": i}
        if keys:
            obj["k"] = f"key-{rng.randrange(keys)}-é"
        size = rng.choice([0, 10, 100, 1000, 20000]) if rng.random() < 0.3 else rng.randrange(200)
        obj["pad"] = "x" * size
        lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    return lines


def start_proxy(args, name, extra):
    portf = os.path.join(args.work, f"{name}.port")
    plog = os.path.join(args.work, f"{name}-proxy.jsonl")
    proxy = os.path.join(args.root, "tests", "e2e", "fault_proxy.py")
    proc = subprocess.Popen([sys.executable, proxy, "--upstream-port", str(args.moto_port),
                             "--port-file", portf, "--log", plog, "--seed", str(args.seed)] + extra)
    for _ in range(100):
        if os.path.exists(portf) and open(portf).read().strip():
            return proc, int(open(portf).read()), plog
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("fault_proxy.py did not start")


def run(args, kin, name, lines, options, proxy=None, key_field=True, env=None):
    """Runs kb-producer on lines into a new stream; checks it; returns figures."""
    stream = f"c-e2e-{name}-{args.run_id}"
    create_stream(kin, stream)
    path = os.path.join(args.work, f"{stream}.ndjson")
    with open(path, "wb") as f:
        f.writelines(line + b"\n" for line in lines)
    proc = None
    endpoint = args.endpoint
    if proxy is not None:
        proc, port, plog = start_proxy(args, stream, proxy)
        endpoint = f"http://127.0.0.1:{port}"
    cmd = [args.producer, "--stream", stream, "--region", "us-east-1", "--endpoint", endpoint,
           "--profile", "kds-5mib"] + (["--key-field", "k"] if key_field else []) + options + [path]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                           env={**os.environ, **(env or {})})
    finally:
        if proc:
            proc.terminate()
            proc.wait()
    secs = time.time() - t0
    where = f"{name} ({' '.join(options)})"
    check(p.returncode == 0, f"{where}: exit status {p.returncode}: {p.stderr[-1500:]}")
    failed = re.findall(r"line (\d+) (?:failed|refused): ", p.stderr)
    check(not failed, f"{where}: {len(failed)} lines failed or refused: {failed[:10]}")
    s = SUMMARY.search(p.stderr)
    check(s is not None, f"{where}: no summary: {p.stderr[-500:]}")
    summary = [int(x) for x in s.groups()] if s else [0] * 6
    check(summary[:4] == [len(lines), len(lines), 0, 0],
          f"{where}: summary {s and s.group(0)}, expected {len(lines)} lines all stored")

    # Read back: exactly once, byte for byte, right key and shard, per-key input order.
    want_key = {}
    for line in lines:
        n = int(LINE_RE.match(line).group(1))
        want_key[n] = json.loads(line)["k"] if key_field else str(n)
    seen, last, inversions, bad = {}, {}, 0, []
    for (lo, hi), recs in read_back(kin, stream):
        for key, data in recs:
            m = LINE_RE.match(data)
            n = int(m.group(1)) if m else None
            if n is None or n not in want_key:
                bad.append(("unknown record", data[:40]))
                continue
            seen[n] = seen.get(n, 0) + 1
            if data != lines[n - 1] or key != want_key[n]:
                bad.append(("bytes or key", n))
            if not lo <= int.from_bytes(hashlib.md5(key.encode()).digest(), "big") <= hi:
                bad.append(("shard", n))
            if n < last.get(key, 0):
                inversions += 1
            last[key] = max(last.get(key, 0), n)
    dups = sum(c - 1 for c in seen.values())
    missing = sorted(set(want_key) - set(seen))
    check(not missing, f"{where}: {len(missing)} lines not read back: {missing[:10]}")
    check(dups == 0, f"{where}: {dups} duplicates read back")
    check(not bad, f"{where}: {len(bad)} records wrong: {bad[:5]}")
    check(inversions == 0, f"{where}: {inversions} records stored after a later one of their key")
    out = {"run": name, "options": " ".join(options), "records": len(lines),
           "keys": len(set(want_key.values())), "read_back": sum(seen.values()),
           "duplicates": dups, "per_key_inversions": inversions, "requests": summary[4],
           "retries": summary[5], "seconds": round(secs, 2),
           "records_per_s": round(len(lines) / secs)}
    if proxy is not None:
        reqs = [json.loads(x) for x in open(plog)]
        out["proxy_requests"] = len(reqs)
        out["injected"] = {a: sum(1 for r in reqs if r["action"] == a) for a in ("drop", "http_error")}
        out["injected"]["entries_failed"] = sum(
            1 for r in reqs for e in r["entries"]
            if e.get("result") in ("ProvisionedThroughputExceededException", "InternalFailure"))
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--moto-port", type=int, required=True)
    ap.add_argument("--producer", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    args.root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    args.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    args.run_id = f"{int(time.time())}-{args.seed}"
    os.makedirs(args.work, exist_ok=True)
    print(f"c_producer_e2e: seed {args.seed} (rerun with --seed {args.seed})", flush=True)
    kin = client(args.endpoint)
    rng = random.Random(args.seed)
    # Enough keys that several requests can be in flight (a key is in one at a time).
    keys = max(args.records // 2, 1)
    t0 = time.time()
    run(args, kin, "direct", workload(rng, args.records, keys), ["--in-flight", "8"])

    creds = os.path.join(args.work, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = test\naws_secret_access_key = test\n"
                "aws_session_token = test\n")
    run(args, kin, "faults", workload(rng, args.records, keys),
        ["--in-flight", "8", "--max-attempts", "40", "--backoff-base-ms", "20",
         "--credentials-file", creds],
        proxy=["--fail-rate", "0.2", "--error-rate", "0.05", "--drop-rate", "0.03",
               "--latency-ms", "20"],
        env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})

    plain = workload(rng, 2 * args.records, 0)
    one = run(args, kin, "latency1", plain, ["--in-flight", "1"],
              proxy=["--latency-ms", "50"], key_field=False)
    eight = run(args, kin, "latency8", plain, ["--in-flight", "8"],
                proxy=["--latency-ms", "50"], key_field=False)
    ratio = one["seconds"] / eight["seconds"]
    print(f"c_producer_e2e: 50 ms a request, {len(plain)} records: 1 in flight "
          f"{one['records_per_s']} records/s, 8 in flight {eight['records_per_s']} records/s: "
          f"{ratio:.1f}x", flush=True)
    check(ratio >= 1.4, f"8 in flight only {ratio:.1f}x faster than 1 through a 50 ms proxy")
    print(f"c_producer_e2e: {'FAILED' if FAILURES else 'passed'} in {time.time() - t0:.0f} s"
          f" (seed {args.seed})", flush=True)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
