#!/usr/bin/env python3
"""The Go Producer (bindings/go/producer) end to end against moto.

Run by tests/e2e/go_producer_e2e.sh, which builds the kbproduce program
(bindings/go/producer/cmd/kbproduce) and starts moto (or is given one). Each run creates
a 4-shard stream, has kbproduce Put a generated workload (record n is the JSON line
{"n":N,"k":"k<n mod keys>","p":"xx..."} under the key k<n mod keys>; several goroutines
Put, each the records of its own keys in order) and Close, then reads every shard back
from TRIM_HORIZON with boto3 and checks: every record exactly once, with its key, on the
shard MD5(key) selects, and each key's records in the order they were Put.

Runs:
  direct        moto itself, 4 requests in flight
  faults        through fault_proxy.py: failed entries, HTTP 500/503, connections
                dropped before forwarding (so that exactly-once can be demanded); the
                proxy's log must show each record stored once, as its last send
  latency-1/-8  through fault_proxy.py --latency-ms 50 (pass-through otherwise), with 1
                and then 8 requests in flight: records a second with 8 must be at least
                --min-ratio (5) times those with 1
Prints one JSON line per run and a summary; exit status 1 on any failure.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import client, create_stream, read_back  # noqa: E402

LINE_RE = re.compile(rb'^\{"n":(\d+),"k":"([^"]*)"')
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def start_proxy(args, work, name, seed, rates, latency_ms=0):
    portf = os.path.join(work, f"{name}.port")
    plog = os.path.join(work, f"{name}-proxy.jsonl")
    if os.path.exists(portf):
        os.remove(portf)
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_proxy.py"),
           "--upstream-port", str(args.moto_port), "--port-file", portf, "--log", plog,
           "--seed", str(seed)]
    for k, v in rates.items():
        cmd += [f"--{k}-rate", str(v)]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd)
    for _ in range(200):
        if os.path.exists(portf) and open(portf).read().strip():
            return proc, int(open(portf).read()), plog
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("fault_proxy.py did not start")


def run(args, kin, tag, records, keys, in_flight, proxy=None, seed=1, extra=()):
    """One kbproduce run into a new stream; proxy: None, or (rates, latency_ms)."""
    stream = f"e2e-goproducer-{tag}"
    create_stream(kin, stream)
    endpoint, proc, plog = args.endpoint, None, None
    if proxy is not None:
        proc, port, plog = start_proxy(args, args.work, stream, seed, proxy[0], proxy[1])
        endpoint = f"http://127.0.0.1:{port}"
    cmd = [args.kbproduce, "--stream", stream, "--endpoint", endpoint, "--region", "us-east-1",
           "--profile", "kds-5mib", "--records", str(records), "--keys", str(keys),
           "--in-flight", str(in_flight), "--seed", str(seed), *extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    name = f"go-producer/{tag}"
    check(p.returncode == 0, f"{name}: exit status {p.returncode}: {p.stderr[-1500:]}")
    try:
        summary = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        check(False, f"{name}: no summary on stdout: {p.stdout[-500:]} {p.stderr[-500:]}")
        return {}
    check(summary["stored"] == records and summary["failed"] == 0 and summary["refused"] == 0,
          f"{name}: summary {summary}")

    # Read back: every record once, with its key, on its shard, each key in order.
    shards = read_back(kin, stream)
    seen, bad, wrong_shard, per_key_inversions = {}, 0, 0, 0
    for (lo, hi), recs in shards.values():
        last = {}
        for key, data in recs:
            m = LINE_RE.match(data)
            if not m or m.group(2).decode() != key:
                bad += 1
                continue
            n = int(m.group(1))
            if key != f"k{n % keys}":
                bad += 1
            seen[n] = seen.get(n, 0) + 1
            h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
            if not lo <= h <= hi:
                wrong_shard += 1
            if n < last.get(key, 0):
                per_key_inversions += 1
            last[key] = max(last.get(key, 0), n)
    missing = sorted(set(range(1, records + 1)) - set(seen))
    dups = sum(c - 1 for c in seen.values() if c > 1)
    check(not missing, f"{name}: {len(missing)} records not read back: {missing[:10]}")
    check(dups == 0, f"{name}: {dups} duplicates read back")
    check(bad == 0, f"{name}: {bad} records with unexpected data or key")
    check(wrong_shard == 0, f"{name}: {wrong_shard} records on a shard MD5(key) does not select")
    check(per_key_inversions == 0, f"{name}: {per_key_inversions} records stored after a later record of their key")
    out = {"run": tag, "records": records, "keys": keys, "in_flight": in_flight,
           "requests": summary["requests"], "retried": summary["retried"],
           "throttled": summary["throttled"], "seconds": round(summary["seconds"], 2),
           "records_per_sec": round(summary["records_per_sec"]), "duplicates": dups,
           "per_key_inversions": per_key_inversions}

    # The proxy's log: each record's last send stored it, and only that one.
    if plog is not None:
        history, faults = {}, {"drop": 0, "http_error": 0, "entries_failed": 0}
        for line in open(plog):
            r = json.loads(line)
            if r["action"] != "forward":
                faults[r["action"]] = faults.get(r["action"], 0) + 1
            elif r.get("upstream_status", 200) != 200 or r.get("upstream_failed") or r.get("upstream_error"):
                check(False, f"{name} request {r['n']}: moto rejected it: {r.get('upstream_status')} "
                      f"{r.get('upstream_error')}")
            for e in r["entries"]:
                history.setdefault(e["line"], []).append(e["result"])
                if e["result"] in ("ProvisionedThroughputExceededException", "InternalFailure"):
                    faults["entries_failed"] += 1
        not_once = [n for n, h in history.items() if h.count("stored") != 1 or h[-1] != "stored"]
        check(not not_once, f"{name}: records not stored exactly once as their last send: "
              f"{[(n, history[n]) for n in not_once[:5]]}")
        check(sorted(history) == list(range(1, records + 1)), f"{name}: the proxy saw other records")
        if proxy[0]:
            out["injected"] = faults
            check(summary["retried"] > 0, f"{name}: faults injected, nothing retried")
    print(json.dumps(out), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--moto-port", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kbproduce", required=True)
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--latency-records", type=int, default=5000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--latency-max-records", type=int, default=50,
                    help="records per request in the latency runs (moto's own time per request "
                         "grows with its records, and Python serves one request at a time)")
    ap.add_argument("--min-ratio", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    kin = client(args.endpoint)
    t0 = time.time()

    run(args, kin, "direct", args.records, 200, 4, seed=args.seed)
    run(args, kin, "faults", args.records, 200, 8, seed=args.seed,
        proxy=({"fail": 0.1, "error": 0.05, "drop": 0.05}, 0),
        extra=["--max-attempts", "40", "--backoff-base-ms", "20"])
    # Latency dominates: small records, one key each (per-key order then limits nothing),
    # fixed 50 ms per request; the same workload with 1 and with 8 requests in flight.
    n = args.latency_records
    lat = ["--size-min", "20", "--size-max", "60", "--writers", "1",
           "--max-records", str(args.latency_max_records)]
    one = run(args, kin, "latency-1", n, n, 1, seed=args.seed, proxy=({}, args.latency_ms), extra=lat)
    eight = run(args, kin, "latency-8", n, n, 8, seed=args.seed, proxy=({}, args.latency_ms), extra=lat)
    if one and eight:
        ratio = eight["records_per_sec"] / max(one["records_per_sec"], 1)
        print(json.dumps({"latency_ms": args.latency_ms, "records": n,
                          "records_per_request": args.latency_max_records,
                          "records_per_sec_1": one["records_per_sec"],
                          "records_per_sec_8": eight["records_per_sec"],
                          "ratio_8_vs_1": round(ratio, 2)}), flush=True)
        check(ratio >= args.min_ratio,
              f"8 in flight is {ratio:.2f}x 1 in flight through {args.latency_ms} ms of latency, "
              f"want at least {args.min_ratio}x")
    print(f"go_producer_e2e: {len(FAILURES)} failures in {time.time() - t0:.0f} s", flush=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
