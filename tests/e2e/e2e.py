#!/usr/bin/env python3
"""End-to-end checks of kinesis-batcher's three drivers against moto (a real Kinesis API).

Run by tests/e2e/run.sh, which starts moto and builds the tools. For each driver (the
CLI's request files sent with boto3, the C sample producer, the Go sample producer) it
creates a new 4-shard stream, generates a seeded NDJSON workload, runs the driver, and
checks: no request rejected by the server, every batch within the KDS_5MIB limits (by our
own count: keys in UTF-8 bytes, which moto does not do), the refused lines and reasons
equal to our model of the limits, and the read-back (every shard from TRIM_HORIZON)
holding every accepted record exactly once, byte for byte, with its key, on the shard
MD5(key) selects, and in input order per shard. Then the producers again through
fault_proxy.py (failed entries, HTTP 500/503, connections dropped before forwarding):
nothing lost, nothing duplicated.
"""
import argparse
import base64
import glob
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

CAP = 1024 * 1024  # record cap (data + key), KDS_5MIB
REQ_CAP = 5 * 1024 * 1024  # request cap, keys included
MAX_RECORDS = 500
SHARDS = 4
LINE_RE = re.compile(rb'^\{"n":(\d+)')

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- workload

MB_CHARS = "абвгдежзийклмнопрстуфхцчшщыэюяΩλπ日本語中文字鍵한국어✓€" + "😀🔑🚀🐍🌍"


def mb_text(rng, n):
    return "".join(rng.choice(MB_CHARS) for _ in range(n))


def make_line(n, key, size=None, msg=None, pad_char="x"):
    """A JSON line starting with {"n":N, with field k = key (if not None), exactly `size`
    bytes when given (padding with a "pad" field)."""
    obj = {"n": n}
    if key is not None:
        obj["k"] = key
    if msg is not None:
        obj["msg"] = msg
    if size is None:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    obj["pad"] = ""
    base = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    assert size >= base, (size, base)
    obj["pad"] = pad_char * (size - base)
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(line) == size
    return line


class Workload:
    """lines[i] is line i+1 (bytes; b"" for an empty line). key_of(n) is the partition key
    the driver gives line n; expect[n] is None (accepted) or the refusal reason."""

    def __init__(self, mode, fixed_key=None):
        self.mode, self.fixed_key = mode, fixed_key
        self.lines = []
        self.keys = {}  # line -> key text, for accepted lines and sized refusals

    def key_for(self, n):  # the key the driver will use for line n (producer modes)
        return self.fixed_key if self.mode == "fixed" else str(n)

    def write(self, path):
        with open(path, "wb") as f:
            for line in self.lines:
                f.write(line + b"\n")

    def model(self):
        """line -> None or reason, by our reading of the service's rules."""
        expect = {}
        for i, line in enumerate(self.lines):
            n = i + 1
            if not line:
                continue
            if self.mode in ("lineno", "fixed"):
                key = self.key_for(n)
                expect[n] = "record_too_large" if len(line) + len(key.encode()) > CAP else None
                self.keys[n] = key
                continue
            # CLI, --key-field k: a line over the cap is refused unparsed.
            if len(line) > CAP:
                expect[n] = "record_too_large"
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                expect[n] = "invalid_json"
                continue
            key = obj.get("k") if isinstance(obj, dict) else None
            if not isinstance(key, str):
                expect[n] = "key_field_missing"
                continue
            self.keys[n] = key
            if key == "":
                expect[n] = "key_empty"
            elif len(key) > 256:  # code points, the tool's default --key-unit
                expect[n] = "key_too_long"
            elif len(line) + len(key.encode()) > CAP:
                expect[n] = "record_too_large"
            else:
                expect[n] = None
        return expect


def gen_workload(rng, mode, records, fixed_key=None):
    """Mostly small JSON lines; runs of records exactly at the cap (so that requests of
    exactly 5 MiB occur); large records; records 1 byte over the cap and far over it
    (one larger than the C producer's read buffer); empty lines; for the CLI, multi-byte
    keys, keys of 256 and 257 code points, empty and missing keys, broken JSON."""
    w = Workload(mode, fixed_key)
    specials = []  # (kind, args)
    # A run of 10 at the cap holds a request of exactly 5 MiB (5 records of 1 MiB with
    # their keys) whatever request its first records join, if nothing else cuts it.
    specials += [("cap_run", 10), ("cap_run", 6)]
    specials += [("cap", None)] * 4
    specials += [("over", 1)] * 3 + [("over", CAP // 2)] + [("over", 6 * CAP)]
    specials += [("large", None)] * 25
    specials += [("empty", None)] * 20
    if mode == "field":
        specials += [("mb_cap", None)] * 3  # multi-byte key, data + key bytes == cap
        specials += [("mb_over", None)] * 3  # data + key chars <= cap < data + key bytes
        specials += [("key256", None)] * 3 + [("key257", None)] * 3
        specials += [("key_empty", None)] * 3 + [("key_missing", None)] * 2
        specials += [("bad_json", None)] * 2 + [("mb_cap256", None)]
    if mode == "fixed":
        specials += [("mb_over", None)] * 2
    total = records + len(specials)
    slots = {}
    for kind in specials:
        while True:
            at = rng.randrange(10, total)
            if at not in slots:
                slots[at] = kind
                break
    n = 0

    def key_text(n):
        if mode == "field":
            return (f"user-{rng.randrange(1000)}" if rng.random() < 0.85
                    else mb_text(rng, rng.randrange(1, 40)))
        return f"user-{rng.randrange(1000)}"

    def kbytes(n, key):  # the key bytes the driver adds to line n
        return len((key if mode == "field" else w.key_for(n)).encode())

    for slot in range(total):
        kind, arg = slots.get(slot, ("small", None))
        count = arg if kind == "cap_run" else 1
        for _ in range(count):
            n += 1
            key = key_text(n)
            if kind == "small":
                msg = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ")
                              for _ in range(rng.randrange(10, 300)))
                line = make_line(n, key, msg=msg)
            elif kind in ("cap_run", "cap"):
                line = make_line(n, key, size=CAP - kbytes(n, key))
            elif kind == "over":
                line = make_line(n, key, size=CAP - kbytes(n, key) + arg)
            elif kind == "large":
                line = make_line(n, key, size=rng.randrange(100_000, 900_000))
            elif kind == "empty":
                line = b""
            elif kind == "mb_cap":
                key = mb_text(rng, 20) + "🔑"
                line = make_line(n, key, size=CAP - len(key.encode()))
            elif kind == "mb_cap256":
                key = "🔑" * 256  # 256 code points, 1,024 UTF-8 bytes
                line = make_line(n, key, size=CAP - len(key.encode()))
            elif kind == "mb_over":
                key = fixed_key if mode == "fixed" else "ключ" * 5
                # Over by bytes, not by characters: what moto would let through.
                line = make_line(n, key, size=CAP - len(key) - 1)
                assert len(line) + len(key) <= CAP < len(line) + len(key.encode())
            elif kind == "key256":
                key = mb_text(rng, 256)
                line = make_line(n, key, msg="256 code points")
            elif kind == "key257":
                key = mb_text(rng, 257) if rng.random() < 0.5 else "k" * 257
                line = make_line(n, key, msg="257 code points")
            elif kind == "key_empty":
                line = make_line(n, "", msg="empty key")
            elif kind == "key_missing":
                line = make_line(n, None, msg="no key")
            elif kind == "bad_json":
                line = f'{{"n":{n},"k":"x","msg": broken'.encode()
            w.lines.append(line)
    return w


# ---------------------------------------------------------------- AWS side

def client(endpoint):
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
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
    """shard id -> [(key, data, hash range)] in shard order."""
    shards = kin.list_shards(StreamName=name)["Shards"]
    out = {}
    for sh in shards:
        rng = (int(sh["HashKeyRange"]["StartingHashKey"]), int(sh["HashKeyRange"]["EndingHashKey"]))
        it = kin.get_shard_iterator(StreamName=name, ShardId=sh["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = []
        for _ in range(100000):
            r = kin.get_records(ShardIterator=it, Limit=10000)
            got += [(rec["PartitionKey"], rec["Data"]) for rec in r["Records"]]
            it = r.get("NextShardIterator")
            if not r["Records"] or not it:
                break
        out[sh["ShardId"]] = (rng, got)
    return out


def check_read_back(kin, stream, w, accepted, ordered=True):
    """Every accepted line exactly once, byte for byte, with its key, on the right shard;
    per-shard input order asserted when `ordered`, else counted. Returns figures."""
    shards = read_back(kin, stream)
    seen = {}
    bad_bytes = bad_key = bad_shard = inversions = 0
    per_key_last, per_key_inv = {}, 0
    for sid, ((lo, hi), recs) in shards.items():
        last = 0
        for key, data in recs:
            m = LINE_RE.match(data)
            if not m:
                bad_bytes += 1
                continue
            n = int(m.group(1))
            seen[n] = seen.get(n, 0) + 1
            if data != w.lines[n - 1]:
                bad_bytes += 1
            if key != w.keys.get(n):
                bad_key += 1
            h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
            if not lo <= h <= hi:
                bad_shard += 1
            if n < last:
                inversions += 1
            last = max(last, n)
            if n < per_key_last.get(key, 0):
                per_key_inv += 1
            per_key_last[key] = max(per_key_last.get(key, 0), n)
    dups = sum(c - 1 for c in seen.values() if c > 1)
    missing = sorted(set(accepted) - set(seen))
    extra = sorted(set(seen) - set(accepted))
    total = sum(len(r) for _, r in shards.values())
    check(not missing, f"{stream}: {len(missing)} accepted lines not read back: {missing[:10]}")
    check(not extra, f"{stream}: {len(extra)} lines read back that should not be there: {extra[:10]}")
    check(dups == 0, f"{stream}: {dups} duplicates read back")
    check(bad_bytes == 0, f"{stream}: {bad_bytes} records differ from their input line")
    check(bad_key == 0, f"{stream}: {bad_key} records with the wrong partition key")
    check(bad_shard == 0, f"{stream}: {bad_shard} records on a shard MD5(key) does not select")
    if ordered:
        check(inversions == 0, f"{stream}: {inversions} records out of input order within their shard")
    return {"read_back": total, "duplicates": dups, "shard_order_inversions": inversions,
            "per_key_inversions": per_key_inv,
            "shards": {s: len(r) for s, (_, r) in shards.items()}}


def check_batch(where, entries):
    """entries: [(key, data_len)]; the KDS_5MIB limits, keys in UTF-8 bytes."""
    sizes = [d + len(k.encode()) for k, d in entries]
    ok = check(1 <= len(entries) <= MAX_RECORDS, f"{where}: {len(entries)} records")
    ok &= check(sum(sizes) <= REQ_CAP, f"{where}: {sum(sizes)} bytes with keys > 5 MiB")
    ok &= check(all(s <= CAP for s in sizes), f"{where}: a record over 1 MiB with its key")
    ok &= check(all(1 <= len(k) <= 256 for k, _ in entries), f"{where}: an empty or >256 key")
    return sum(sizes)


# ---------------------------------------------------------------- drivers

REFUSED_PRODUCER = re.compile(r"line (\d+) refused: (\w+):")
FAILED_PRODUCER = re.compile(r"line (\d+) failed: ")
SUMMARY_PRODUCER = re.compile(
    r"done: (\d+) lines, (\d+) stored, (\d+) refused, (\d+) failed, (\d+) requests, (\d+) retries")
REFUSED_CLI = re.compile(r"^(.+?):(\d+): ([^:\n]+): ", re.M)
# The CLI's per-refusal messages name the reason in words (cli/src/report.rs, label()).
CLI_LABELS = {"record too large": "record_too_large", "partition key empty": "key_empty",
              "partition key too long": "key_too_long", "partition key not UTF-8": "key_not_utf8",
              "explicit hash key invalid": "hash_key_invalid", "invalid JSON": "invalid_json",
              "key field missing": "key_field_missing"}
FINDINGS = []


def run_cli(args, kin, w, tag, work):
    stream = f"e2e-cli-{tag}"
    create_stream(kin, stream)
    path = os.path.join(work, f"{stream}.ndjson")
    w.write(path)
    expect = w.model()
    out = os.path.join(work, f"{stream}-requests")
    batches = os.path.join(work, f"{stream}-batches.jsonl")
    t0 = time.time()
    p = subprocess.run([args.cli, "emit", "--profile", args.cli_profile, "--key-field", "k",
                        "--stream", stream, "--out", out, "--batches", batches, path],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"cli: exit status {p.returncode}: {p.stderr[-2000:]}")
    report = p.stdout + p.stderr
    refused = {int(m.group(2)): CLI_LABELS.get(m.group(3), m.group(3))
               for m in REFUSED_CLI.finditer(p.stderr)
               if m.group(1) == path}
    want_refused = {n: r for n, r in expect.items() if r}
    check(len(want_refused) < 50, "cli workload: keep refusals under the 50 printed")
    check(refused == want_refused,
          f"cli: refusals differ from the model: reported-only "
          f"{sorted(set(refused.items()) - set(want_refused.items()))[:10]}, "
          f"missing {sorted(set(want_refused.items()) - set(refused.items()))[:10]}")
    m = re.search(r"records\s+(\d+): (\d+) accepted, (\d+) refused", report)
    accepted_model = sorted(n for n, r in expect.items() if r is None)
    check(m and int(m.group(1)) == len(expect) and int(m.group(2)) == len(accepted_model)
          and int(m.group(3)) == len(want_refused),
          f"cli summary: {m and m.group(0)} vs {len(expect)} records, "
          f"{len(accepted_model)} accepted, {len(want_refused)} refused")
    by_reason = {}
    for r in want_refused.values():
        by_reason[r] = by_reason.get(r, 0) + 1
    for reason, count in by_reason.items():
        mm = re.search(rf"^\s+{reason}\s+(\d+)", report, re.M)
        check(mm and int(mm.group(1)) == count, f"cli summary: {reason} count {mm and mm.group(1)} != {count}")
    # Request files: limits, content, then send them with boto3.
    files = sorted(glob.glob(os.path.join(out, "request-*.json")))
    blog = [json.loads(x) for x in open(batches)]
    check(len(blog) == len(files), f"cli: {len(blog)} --batches lines for {len(files)} files")
    sent_lines, failed_total, exact, biggest = [], 0, 0, 0
    for i, f in enumerate(files):
        req = json.load(open(f))
        check(req["StreamName"] == stream, f"{f}: StreamName {req['StreamName']}")
        recs = [(base64.b64decode(r["Data"], validate=True), r["PartitionKey"]) for r in req["Records"]]
        size = check_batch(f, [(k, len(d)) for d, k in recs])
        exact += size == REQ_CAP
        biggest = max(biggest, size)
        if i < len(blog):
            check(blog[i]["records"] == len(recs) and blog[i]["bytes"] == size,
                  f"{f}: --batches says {blog[i]['records']} records {blog[i]['bytes']} bytes, "
                  f"file has {len(recs)} / {size}")
        for d, k in recs:
            mm = LINE_RE.match(d)
            n = int(mm.group(1)) if mm else -1
            check(n > 0 and d == w.lines[n - 1] and k == w.keys.get(n),
                  f"{f}: record for line {n} differs from its input line or key")
            sent_lines.append(n)
        try:
            resp = kin.put_records(StreamName=stream,
                                   Records=[{"Data": d, "PartitionKey": k} for d, k in recs])
            failed_total += resp["FailedRecordCount"]
            check(resp["FailedRecordCount"] == 0, f"{f}: moto FailedRecordCount {resp['FailedRecordCount']}")
        except Exception as e:  # noqa: BLE001 - any rejection is a failure
            check(False, f"{f}: put_records raised {e!r}"[:500])
    check(exact >= 1, "cli: no request of exactly 5 MiB, though the workload has 10 records "
          "at the cap in a row")
    check(sent_lines == accepted_model, "cli: request files do not hold exactly the accepted "
          "lines once, in input order")
    rb = check_read_back(kin, stream, w, accepted_model)
    return {"driver": "cli", "stream": stream, "records": len(expect), "requests": len(files),
            "accepted": len(accepted_model), "refused": by_reason, "rejected_by_server": failed_total,
            "requests_of_exactly_5MiB": exact, "largest_request_bytes": biggest,
            "seconds": round(time.time() - t0, 1), **rb}


def start_proxy(args, work, name, seed, rates):
    portf = os.path.join(work, f"{name}.port")
    plog = os.path.join(work, f"{name}-proxy.jsonl")
    for f in (portf,):
        if os.path.exists(f):
            os.remove(f)
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "fault_proxy.py"),
           "--upstream-port", str(args.moto_port), "--port-file", portf, "--log", plog,
           "--seed", str(seed)]
    for k, v in rates.items():
        cmd += [f"--{k}-rate", str(v)]
    proc = subprocess.Popen(cmd)
    for _ in range(100):
        if os.path.exists(portf):
            return proc, int(open(portf).read()), plog
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("proxy did not start")


def run_producer(args, kin, w, driver, tag, work, seed, rates=None, ordered=True, per_key=False):
    """driver: 'c' or 'go'. rates: fault rates for the proxy (None: pass-through).
    per_key: run with --per-key-order and assert each key's records are read back in
    input order (the C producer; the Go binding plans sizes, which carry no key)."""
    stream = f"e2e-{driver}-{tag}"
    create_stream(kin, stream)
    path = os.path.join(work, f"{stream}.ndjson")
    w.write(path)
    expect = w.model()
    proc, port, plog = start_proxy(args, work, stream, seed, rates or {})
    binary = args.c_producer if driver == "c" else args.go_producer
    cmd = [binary, "--stream", stream, "--region", "us-east-1", "--endpoint",
           f"http://127.0.0.1:{port}", "--profile", "kds-5mib"]
    if w.mode == "fixed":
        cmd += ["--partition-key", w.fixed_key]
    if rates:
        cmd += ["--max-attempts", "40", "--backoff-base-ms", "20"]
    if per_key:
        cmd.append("--per-key-order")
    cmd.append(path)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        proc.terminate()
        proc.wait()
    secs = round(time.time() - t0, 1)
    want_refused = {n: r for n, r in expect.items() if r}
    accepted_model = sorted(n for n, r in expect.items() if r is None)
    name = f"{driver}/{tag}"
    check(p.returncode == (1 if want_refused else 0),
          f"{name}: exit status {p.returncode}: {p.stderr[-1500:]}")
    refused = {}
    for m in REFUSED_PRODUCER.finditer(p.stderr):
        check(int(m.group(1)) not in refused, f"{name}: line {m.group(1)} refused twice")
        refused[int(m.group(1))] = m.group(2)
    check(refused == want_refused,
          f"{name}: refusals differ from the model: reported-only "
          f"{sorted(set(refused.items()) - set(want_refused.items()))[:10]}, "
          f"missing {sorted(set(want_refused.items()) - set(refused.items()))[:10]}")
    failed = [int(m.group(1)) for m in FAILED_PRODUCER.finditer(p.stderr)]
    check(not failed, f"{name}: {len(failed)} lines failed for good: {failed[:10]}")
    s = SUMMARY_PRODUCER.search(p.stderr)
    check(s is not None, f"{name}: no summary line in stderr: {p.stderr[-500:]}")
    summary = [int(x) for x in s.groups()] if s else [0] * 6
    check(summary[:4] == [len(expect), len(accepted_model), len(want_refused), 0],
          f"{name}: summary {s and s.group(0)} vs {len(expect)} lines, "
          f"{len(accepted_model)} stored, {len(want_refused)} refused, 0 failed")
    # The proxy's log: every request within the limits, moto rejected nothing, each
    # record sent again only after a failure, and stored once.
    reqs = [json.loads(x) for x in open(plog)]
    faults = {"drop": 0, "http_error": 0, "entries_failed": 0}
    history = {}
    upstream_rejections = 0
    for r in reqs:
        check_batch(f"{name} request {r['n']}", [(e["key"], e["data_len"]) for e in r["entries"]])
        if r["action"] != "forward":
            faults[r["action"]] += 1
        elif r.get("upstream_status", 200) != 200 or r.get("upstream_failed") or r.get("upstream_error"):
            upstream_rejections += 1
            check(False, f"{name} request {r['n']}: moto said {r.get('upstream_status')} "
                  f"{r.get('upstream_failed')} {r.get('upstream_error')} {r.get('upstream_body', '')[:300]}")
        for e in r["entries"]:
            n = e["line"]
            if n is None or n > len(w.lines):
                check(False, f"{name}: an entry with no line number")
                continue
            check(e["data_len"] == len(w.lines[n - 1]) and e["key"] == w.keys.get(n),
                  f"{name}: line {n} sent with {e['data_len']} bytes, key {e['key']!r}")
            history.setdefault(n, []).append(e["result"])
            if e["result"] in ("ProvisionedThroughputExceededException", "InternalFailure"):
                faults["entries_failed"] += 1
    # The summary counts the requests and re-sent entries the library planned. A request
    # the proxy dropped can arrive again with the same entries for two reasons: the
    # library re-planned it (a transport error), or the HTTP client re-sent it by itself
    # (libcurl retries once when a re-used connection dies before any response), behind
    # the library's back. The proxy cannot tell them apart, so: the requests the summary
    # does not count must be such candidates, and their entries the re-sends it misses.
    candidates = [len(r["entries"]) for prev, r in zip(reqs, reqs[1:])
                  if prev["action"] == "drop" and [(e["line"], e["key"]) for e in prev["entries"]]
                  == [(e["line"], e["key"]) for e in r["entries"]]]
    sends = sum(len(h) for h in history.values())
    hidden, hidden_entries = len(reqs) - summary[4], sends - len(history) - summary[5]
    sums = {(0, 0)}
    for c in candidates:
        sums |= {(k + 1, t + c) for k, t in sums}
    check((hidden, hidden_entries) in sums,
          f"{name}: summary says {summary[4]} requests and {summary[5]} re-sent entries; the proxy "
          f"saw {len(reqs)} and {sends - len(history)} (drop-and-resend candidates: {candidates})")
    if hidden:
        FINDINGS.append(
            f"{name}: {hidden} of {faults['drop']} dropped requests were re-sent at once by the HTTP "
            f"client, unseen by the library: the summary says {summary[4]} requests and "
            f"{summary[5]} retries, the wire carried {len(reqs)} and {sends - len(history)}")
    exact = sum(1 for r in reqs if sum(e["size"] for e in r["entries"]) == REQ_CAP)
    biggest = max((sum(e["size"] for e in r["entries"]) for r in reqs), default=0)
    stored_in_log = sorted(n for n, h in history.items() if "stored" in h)
    resent_after_store = [n for n, h in history.items() if h.count("stored") != 1 or h[-1] != "stored"]
    check(not resent_after_store, f"{name}: lines not stored exactly once as their last send: "
          f"{[(n, history[n]) for n in resent_after_store[:5]]}")
    check(stored_in_log == accepted_model, f"{name}: stored lines (proxy log) != accepted model")
    rb = check_read_back(kin, stream, w, accepted_model, ordered=ordered)
    if per_key:
        check(rb["per_key_inversions"] == 0,
              f"{stream}: {rb['per_key_inversions']} records stored after a later record of "
              f"their key, with --per-key-order")
    by_reason = {}
    for r in want_refused.values():
        by_reason[r] = by_reason.get(r, 0) + 1
    out = {"driver": driver, "run": tag, "stream": stream, "records": len(expect),
           "requests": len(reqs), "accepted": len(accepted_model), "refused": by_reason,
           "retried_entries": sends - len(history), "rejected_by_server": upstream_rejections,
           "requests_of_exactly_5MiB": exact, "largest_request_bytes": biggest,
           "client_resent_requests": hidden,
           "seconds": secs, **rb}
    if rates:
        out["injected"] = faults
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--moto-port", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--c-producer", required=True)
    ap.add_argument("--go-producer", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--only", default="")
    ap.add_argument("--cli-profile", default="kds-5mib",
                    help="negative control: kds makes 10 MiB requests, which must fail the checks")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    log(f"e2e: seed {seed} (rerun with E2E_SEED={seed})")
    run_id = f"{int(time.time())}-{seed}"
    os.makedirs(args.work, exist_ok=True)
    kin = client(args.endpoint)
    fixed_key = "ключ-日本語-🔑-" + "€" * 20
    plan = [
        ("cli", lambda: run_cli(args, kin, gen_workload(random.Random(f"{seed}/cli"), "field",
                                                        args.records), run_id, args.work)),
    ]
    fault_rates = {"fail": 0.2, "error": 0.05, "drop": 0.03}
    for d in ("c", "go"):
        plan += [
            (d, lambda d=d: run_producer(
                args, kin, gen_workload(random.Random(f"{seed}/{d}"), "lineno", args.records),
                d, f"plain-{run_id}", args.work, seed)),
            (d, lambda d=d: run_producer(
                args, kin, gen_workload(random.Random(f"{seed}/{d}/key"), "fixed", 1500, fixed_key),
                d, f"key-{run_id}", args.work, seed)),
            (d, lambda d=d: run_producer(
                args, kin, gen_workload(random.Random(f"{seed}/{d}/fault"), "lineno", args.records),
                d, f"fault-{run_id}", args.work, seed + 1, rates=fault_rates, ordered=False)),
            (d, lambda d=d: run_producer(
                args, kin, gen_workload(random.Random(f"{seed}/{d}/faultkey"), "fixed", 1500, fixed_key),
                d, f"faultkey-{run_id}", args.work, seed + 2, rates=fault_rates, ordered=False)),
        ]
    # Per-key ordering under faults: one key, so every request holds one record.
    plan.append(("c", lambda: run_producer(
        args, kin, gen_workload(random.Random(f"{seed}/c/perkey"), "fixed", 300, fixed_key),
        "c", f"perkey-{run_id}", args.work, seed + 3, rates=fault_rates, ordered=True,
        per_key=True)))
    results = []
    t0 = time.time()
    for driver, fn in plan:
        if args.only and driver not in args.only.split(","):
            continue
        before = len(FAILURES)
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            check(False, f"{driver}: {e!r}")
            continue
        res["ok"] = len(FAILURES) == before
        results.append(res)
        log(json.dumps(res, ensure_ascii=False))
    log(f"\ne2e summary (seed {seed}, {time.time() - t0:.0f} s):")
    log(f"{'run':<20}{'records':>8}{'requests':>9}{'=5MiB':>6}{'accepted':>9}{'refused':>8}"
        f"{'read back':>10}{'dups':>5}{'retried':>8}{'order inv':>10}  injected / refused by reason")
    for r in results:
        run = f"{r['driver']}/{r.get('run', 'request files').split('-' + run_id)[0]}"
        inj = r.get("injected")
        log(f"{run:<20}{r['records']:>8}{r['requests']:>9}{r['requests_of_exactly_5MiB']:>6}{r['accepted']:>9}"
            f"{sum(r['refused'].values()):>8}{r['read_back']:>10}{r['duplicates']:>5}"
            f"{r.get('retried_entries', 0):>8}{r['shard_order_inversions']:>10}  "
            f"{'faults ' + json.dumps(inj) + ' ' if inj else ''}{json.dumps(r['refused'])}"
            f"{'' if r['ok'] else '  FAILED'}")
    for r in results:
        if r.get("per_key_inversions") and r.get("run", "").startswith("faultkey"):
            FINDINGS.append(
                f"{r['driver']}/faultkey: one partition key, {r['per_key_inversions']} records stored "
                f"after a later record of the same key (run without --per-key-order; "
                f"expected, PutRecords retries reorder)")
    if FINDINGS:
        log("\nfindings (not failures):")
        for f in FINDINGS:
            log(f"  * {f}")
    if FAILURES:
        log(f"\ne2e: {len(FAILURES)} failed assertions:")
        for f in FAILURES[:50]:
            log(f"  - {f}")
        sys.exit(1)
    log("e2e: all assertions passed")


if __name__ == "__main__":
    main()
