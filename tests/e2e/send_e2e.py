#!/usr/bin/env python3
"""End to end, `kinesis-batcher send`: records streamed to a stream with the AWS SDK for
Rust, on the core's producer engine. Run by tests/e2e/run.sh (moto already started).

Against moto (a new 4-shard stream each time, read back from TRIM_HORIZON with boto3):
  direct      a seeded NDJSON workload (multi-byte keys, --key-field, some lines refused):
              every accepted line stored exactly once, with its key, in input order per
              key; the refusals (stderr lines, --refusals file) the same as emit's
  faults      the same through fault_proxy.py (entries failed, HTTP 500/503, connections
              dropped before forwarding): nothing lost, nothing duplicated, order kept
  aggregate   --aggregate, read back and deaggregated with aws_kinesis_agg: every line
              exactly once
  stop        --stop-on-refusal: exit 1 and the same message as emit; the lines before
              the refusal are stored
  terminal    a stream that does not exist: every record reported not stored
              (resource_not_found), exit 4
Against send_fake_kinesis.py (moto is the bottleneck there: about 30 PutRecords a second):
  streaming   lines written to send's stdin are stored while stdin is still open
  credentials the first requests answered ExpiredTokenException: sending pauses, the
              credentials are loaded again, everything is stored, said once on stderr
  throughput  through fault_proxy.py --latency-ms 50: --in-flight 8 at least 5x the
              records per second of --in-flight 1
  memory      an endless-style input on stdin (200 MB of lines): max RSS under 100 MB
"""
import argparse
import base64
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config
from aws_kinesis_agg.deaggregator import deaggregate_records

FAILURES = []
SHARDS = 4
LINE_RE = re.compile(rb'^\{"n":(\d+)')
HERE = os.path.dirname(os.path.abspath(__file__))
TIME = "/usr/bin/time"  # GNU time (Debian's package "time"), for the max RSS


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def log(msg):
    print(msg, flush=True)


def client(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      read_timeout=300, connect_timeout=10))


def create_stream(kin, name):
    kin.create_stream(StreamName=name, ShardCount=SHARDS)
    for _ in range(200):
        summary = kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"stream {name} never became ACTIVE")


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


KEY_CHARS = "abcxyz0189-ключ日本語鍵한국어✓€😀🔑"


def workload(rng, n):
    """NDJSON lines {"n":i,"k":key,"t":text} (compact, so the proxy reads n), with
    multi-byte keys and text, and some lines that are refused: not JSON, no "k", an empty
    key, a key of 257 code points, a line over the 1 MiB record cap. Empty lines too."""
    keys = ["".join(rng.choice(KEY_CHARS) for _ in range(rng.randint(1, 10))) for _ in range(70)]
    keys += ["é" * 256, "k" * 256]  # the longest keys: 256 code points (512 bytes for é)
    lines = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.004:
            lines.append(b'{"n":%d,"k":"broken' % i)
        elif roll < 0.008:
            lines.append(b'{"n":%d,"other":1}' % i)
        elif roll < 0.010:
            lines.append(b'{"n":%d,"k":""}' % i)
        elif roll < 0.012:
            lines.append(json.dumps({"n": i, "k": "x" * 257}, separators=(",", ":")).encode())
        elif roll < 0.014:
            lines.append(b"")
        else:
            text = "".join(rng.choice(KEY_CHARS) for _ in range(rng.choice([0, 10, 60, 300])))
            lines.append(json.dumps({"n": i, "k": rng.choice(keys), "t": text},
                                    ensure_ascii=False, separators=(",", ":")).encode())
    # One line over the record cap, whatever its key.
    big = len(lines) // 2
    lines[big] = json.dumps({"n": big, "k": "big", "t": "y" * (1024 * 1024)},
                            separators=(",", ":")).encode()
    return lines


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def refusal_lines(stderr, path):
    """The per-refusal messages (FILE:LINE: reason...) and --stop-on-refusal's."""
    return [line for line in stderr.splitlines()
            if (line.startswith(path + ":") and ": not stored:" not in line)
            or "(--stop-on-refusal)" in line]


def run_emit(args, path, work, extra=()):
    out = os.path.join(work, "emit-out")
    refusals = os.path.join(work, "emit-refusals.jsonl")
    cmd = [args.cli, "emit", "--profile", "kds-5mib", "--key-field", "k", "--stream", "s",
           "--out", out, "--refusals", refusals, *extra, path]
    p = subprocess.run(cmd, capture_output=True, text=True)
    with open(refusals, "rb") as f:
        return p, f.read()


def run_send(args, stream, path, work, endpoint, extra=(), name="send"):
    refusals = os.path.join(work, f"{name}-refusals.jsonl")
    cmd = [args.cli, "send", "--profile", "kds-5mib", "--key-field", "k", "--stream", stream,
           "--endpoint-url", endpoint, "--refusals", refusals, "--summary", "json", *extra, path]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    refused = b""
    if os.path.exists(refusals):
        with open(refusals, "rb") as f:
            refused = f.read()
    summary = None
    if p.stdout.strip():
        try:
            summary = json.loads(p.stdout)
        except ValueError:
            check(False, f"{name}: stdout is not the JSON summary: {p.stdout[:300]!r}")
    return p, refused, summary, seconds


def expected(lines, emit_refusals):
    """line number (1-based) -> (n, key) of every line emit accepted."""
    refused = {json.loads(x)["line"] for x in emit_refusals.splitlines()}
    out = {}
    for i, line in enumerate(lines):
        if not line or i + 1 in refused:
            continue
        obj = json.loads(line)
        out[obj["n"]] = obj["k"] if isinstance(obj["k"], str) else json.dumps(obj["k"])
    return out


def check_stored(tag, shards, want):
    """Every accepted line exactly once, with its key, in input order per key."""
    got = collections.Counter()
    wrong_key = 0
    out_of_order = 0
    for records in shards.values():
        last = {}
        for r in records:
            m = LINE_RE.match(r["Data"])
            if not m:
                check(False, f"{tag}: a stored record is not a workload line: {r['Data'][:60]!r}")
                continue
            n = int(m.group(1))
            got[n] += 1
            key = r["PartitionKey"]
            wrong_key += want.get(n) != key
            if key in last and last[key] >= n:
                out_of_order += 1
            last[key] = n
    dup = sum(1 for c in got.values() if c > 1)
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    check(not missing, f"{tag}: {len(missing)} accepted lines not stored, e.g. {sorted(missing)[:5]}")
    check(not extra, f"{tag}: {len(extra)} lines stored that should be refused, e.g. {sorted(extra)[:5]}")
    check(dup == 0, f"{tag}: {dup} lines stored more than once")
    check(wrong_key == 0, f"{tag}: {wrong_key} records stored under another key")
    check(out_of_order == 0, f"{tag}: {out_of_order} records out of input order within their key")
    return sum(got.values())


class Server:
    """A helper process that writes its port to a file; stopped by close()."""

    def __init__(self, cmd, port_file, log_path):
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd + ["--port-file", port_file], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(port_file):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[1]} exited: see {log_path}")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def fake(args, work, name, *extra):
    return Server([sys.executable, os.path.join(HERE, "send_fake_kinesis.py"), *extra],
                  os.path.join(work, f"{name}.port"), os.path.join(work, f"{name}.log"))


def proxy(args, work, name, upstream_port, *extra):
    return Server([sys.executable, os.path.join(HERE, "fault_proxy.py"), "--upstream-port",
                   str(upstream_port), "--log", os.path.join(work, f"{name}.jsonl"), *extra],
                  os.path.join(work, f"{name}.port"), os.path.join(work, f"{name}.log"))


# ------------------------------------------------------------------ against moto

def test_direct(args, kin, run_id, rng):
    tag = "direct"
    work = os.path.join(args.work, tag)
    os.makedirs(work)
    stream = f"send-{tag}-{run_id}"
    create_stream(kin, stream)
    lines = workload(rng, args.records)
    path = os.path.join(work, "in.ndjson")
    write_lines(path, lines)
    emit, emit_refusals = run_emit(args, path, work)
    check(emit.returncode == 0, f"{tag}: emit exit {emit.returncode}: {emit.stderr[-500:]}")
    p, refusals, summary, seconds = run_send(args, stream, path, work, args.endpoint)
    if not check(p.returncode == 0, f"{tag}: send exit {p.returncode}: {p.stderr[-1000:]}"):
        return None
    check(refusals == emit_refusals, f"{tag}: send's --refusals file differs from emit's")
    check(refusal_lines(p.stderr, path) == refusal_lines(emit.stderr, path),
          f"{tag}: send's refusal messages differ from emit's")
    want = expected(lines, emit_refusals)
    stored = check_stored(tag, read_back(kin, stream), want)
    s = summary["send"]
    check(summary["refused"] == len(emit_refusals.splitlines()), f"{tag}: summary refused {summary['refused']}")
    check(s["stored"]["records"] == len(want) == stored,
          f"{tag}: summary says {s['stored']['records']} stored, {len(want)} accepted, {stored} read back")
    check(s["not_stored"] == 0 and summary["exit_code"] == 0, f"{tag}: summary {s}")
    return {"test": tag, "lines": len(lines), "stored": stored, "refused": summary["refused"],
            "requests": s["requests"], "peak_in_flight": s["peak_in_flight"], "seconds": round(seconds, 2)}


def test_faults(args, kin, run_id, rng):
    tag = "faults"
    work = os.path.join(args.work, tag)
    os.makedirs(work)
    stream = f"send-{tag}-{run_id}"
    create_stream(kin, stream)
    lines = workload(rng, args.records)
    path = os.path.join(work, "in.ndjson")
    write_lines(path, lines)
    _, emit_refusals = run_emit(args, path, work)
    px = proxy(args, work, "proxy", args.moto_port, "--seed", str(rng.randrange(1 << 30)),
               "--fail-rate", "0.1", "--error-rate", "0.08", "--drop-rate", "0.08")
    try:
        p, _, summary, seconds = run_send(args, stream, path, work, px.url, ["--in-flight", "6"])
    finally:
        px.close()
    if not check(p.returncode == 0, f"{tag}: send exit {p.returncode}: {p.stderr[-1000:]}"):
        return None
    want = expected(lines, emit_refusals)
    stored = check_stored(tag, read_back(kin, stream), want)
    # Every request within the limits by our own count (moto does not count UTF-8 keys).
    actions = collections.Counter()
    with open(os.path.join(work, "proxy.jsonl")) as f:
        for x in f:
            req = json.loads(x)
            actions[req["action"]] += 1
            sizes = [e["size"] for e in req["entries"]]
            check(1 <= len(sizes) <= 500 and sum(sizes) <= 5 * 1024 * 1024 and max(sizes) <= 1024 * 1024,
                  f"{tag}: request {req['n']} over the limits: {len(sizes)} records, {sum(sizes)} bytes")
            keys = [e["key"] for e in req["entries"]]
            check(len(keys) == len(set(keys)), f"{tag}: request {req['n']} holds a key twice (per-key order)")
    s = summary["send"]
    check(s["retried"] > 0 and actions["drop"] > 0 and actions["http_error"] > 0,
          f"{tag}: no fault was met: retried {s['retried']}, proxy {dict(actions)}")
    return {"test": tag, "stored": stored, "requests": s["requests"], "retried": s["retried"],
            "throttled": s["throttled"], "proxy": dict(actions), "seconds": round(seconds, 2)}


def test_aggregate(args, kin, run_id, rng):
    tag = "aggregate"
    work = os.path.join(args.work, tag)
    os.makedirs(work)
    stream = f"send-{tag}-{run_id}"
    create_stream(kin, stream)
    lines = workload(rng, args.records)
    path = os.path.join(work, "in.ndjson")
    write_lines(path, lines)
    _, emit_refusals = run_emit(args, path, work, ["--aggregate"])
    p, refusals, summary, seconds = run_send(args, stream, path, work, args.endpoint, ["--aggregate"])
    if not check(p.returncode == 0, f"{tag}: send exit {p.returncode}: {p.stderr[-1000:]}"):
        return None
    check(refusals == emit_refusals, f"{tag}: send --aggregate's --refusals differ from emit --aggregate's")
    want = expected(lines, emit_refusals)
    shards = read_back(kin, stream)
    users = collections.Counter()
    kinesis_records = 0
    for records in shards.values():
        kinesis_records += len(records)
        for u in deaggregate_records([{"kinesis": {"kinesisSchemaVersion": "1.0",
                                                   "sequenceNumber": r["SequenceNumber"],
                                                   "approximateArrivalTimestamp": 0.0,
                                                   "partitionKey": r["PartitionKey"],
                                                   "data": base64.b64encode(r["Data"])}}
                                      for r in records]):
            data = base64.b64decode(u["kinesis"]["data"])
            m = LINE_RE.match(data)
            n = int(m.group(1)) if m else -1
            check(want.get(n) == u["kinesis"]["partitionKey"], f"{tag}: line {n} under another key")
            users[n] += 1
    check(set(users) == set(want) and all(c == 1 for c in users.values()),
          f"{tag}: read back {sum(users.values())} user records ({len(users)} distinct), "
          f"want {len(want)}")
    agg = summary["aggregation"]
    check(kinesis_records == summary["send"]["stored"]["records"] < len(want),
          f"{tag}: {kinesis_records} Kinesis records read back, summary {summary['send']['stored']}")
    return {"test": tag, "user_records": sum(users.values()), "kinesis_records": kinesis_records,
            "ratio": round(agg["ratio"], 2), "seconds": round(seconds, 2)}


def test_stop(args, kin, run_id, rng):
    tag = "stop"
    work = os.path.join(args.work, tag)
    os.makedirs(work)
    stream = f"send-{tag}-{run_id}"
    create_stream(kin, stream)
    lines = [json.dumps({"n": i, "k": f"k{i % 7}"}, separators=(",", ":")).encode() for i in range(300)]
    lines[200] = b'{"n":200,"k":"broken'
    path = os.path.join(work, "in.ndjson")
    write_lines(path, lines)
    emit, _ = run_emit(args, path, work, ["--stop-on-refusal"])
    p, _, summary, _ = run_send(args, stream, path, work, args.endpoint, ["--stop-on-refusal"])
    check(emit.returncode == 1 and p.returncode == 1,
          f"{tag}: exit codes emit {emit.returncode}, send {p.returncode}: {p.stderr[-500:]}")
    check(refusal_lines(p.stderr, path) == refusal_lines(emit.stderr, path) != [],
          f"{tag}: messages differ: {refusal_lines(p.stderr, path)} vs {refusal_lines(emit.stderr, path)}")
    want = {i: f"k{i % 7}" for i in range(200)}
    stored = check_stored(tag, read_back(kin, stream), want)
    check(summary and summary["stopped_at"] == {"file": path, "line": 201},
          f"{tag}: stopped_at {summary and summary['stopped_at']}")
    return {"test": tag, "stored": stored, "exit": p.returncode}


def test_terminal(args, kin, run_id, rng):
    tag = "terminal"
    work = os.path.join(args.work, tag)
    os.makedirs(work)
    lines = [json.dumps({"n": i, "k": f"k{i % 5}"}, separators=(",", ":")).encode() for i in range(120)]
    path = os.path.join(work, "in.ndjson")
    write_lines(path, lines)
    p, _, summary, _ = run_send(args, f"no-such-stream-{run_id}", path, work, args.endpoint)
    check(p.returncode == 4, f"{tag}: exit {p.returncode}, want 4: {p.stderr[-500:]}")
    not_stored = [x for x in p.stderr.splitlines() if ": not stored: resource_not_found" in x]
    check(len(not_stored) == 50 and not_stored[0].startswith(f"{path}:1: "),
          f"{tag}: {len(not_stored)} not-stored messages (the first 50 are shown): {not_stored[:2]}")
    check("ResourceNotFoundException" in p.stderr, f"{tag}: the service's error is not shown")
    s = summary["send"] if summary else {}
    check(s.get("not_stored") == 120 and s["not_stored_by_kind"]["resource_not_found"] == 120
          and summary["exit_code"] == 4, f"{tag}: summary {s}")
    # The text summary (stderr) says the same.
    q = subprocess.run([args.cli, "send", "--profile", "kds-5mib", "--key-field", "k", "--stream",
                        f"no-such-stream-{run_id}", "--endpoint-url", args.endpoint, "--quiet", path],
                       capture_output=True, text=True)
    check(q.returncode == 4 and "120 records could not be stored" in q.stderr and q.stdout == "",
          f"{tag}: --quiet: exit {q.returncode}, stderr {q.stderr[-300:]!r}")
    return {"test": tag, "exit": p.returncode, "not_stored": s.get("not_stored")}


# ------------------------------------------------------------- against the fake

def test_streaming(args, work_root):
    tag = "streaming"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    fk = fake(args, work, "fake", "--keep-lines")
    try:
        p = subprocess.Popen([args.cli, "send", "--stream", "s", "--endpoint-url", fk.url,
                              "--summary", "json"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(3):
            p.stdin.write(b'{"n":%d}\n' % i)
        p.stdin.flush()
        stored, t0 = 0, time.time()
        while time.time() - t0 < 5 and stored < 3:
            time.sleep(0.05)
            stored = fk.stats()["records"]
        latency = time.time() - t0
        check(stored == 3, f"{tag}: {stored} of 3 lines stored while stdin is open")
        # A line cut in two reads is one record, sent when its end comes.
        p.stdin.write(b'{"n":3,')
        p.stdin.flush()
        time.sleep(0.3)
        out, err = p.communicate(input=b'"k":1}\n', timeout=30)
        stats = fk.stats()
        check(p.returncode == 0 and stats["records"] == 4 and stats["distinct"] == 4
              and stats["lines"] == {}, f"{tag}: exit {p.returncode}, fake {stats}, {err[-300:]!r}")
    finally:
        fk.close()
    return {"test": tag, "first_lines_stored_after_s": round(latency, 2)}


def test_credentials(args, work_root):
    tag = "credentials"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    fk = fake(args, work, "fake", "--keep-lines", "--expired-first", "3")
    path = os.path.join(work, "in.ndjson")
    write_lines(path, [b'{"n":%d,"k":"k%d"}' % (i, i % 50) for i in range(2000)])
    try:
        p = subprocess.run([args.cli, "send", "--stream", "s", "--endpoint-url", fk.url,
                            "--summary", "json", path], capture_output=True, text=True, timeout=120)
        stats = fk.stats()
    finally:
        fk.close()
    summary = json.loads(p.stdout) if p.returncode in (0, 4) and p.stdout else {}
    s = summary.get("send", {})
    check(p.returncode == 0 and stats["records"] == 2000 and stats["distinct"] == 2000
          and stats["lines"] == {} and stats["expired"] == 3,
          f"{tag}: exit {p.returncode}, fake {stats}: {p.stderr[-500:]}")
    check(p.stderr.count("credentials refused") == 1 and "sending resumed" in p.stderr,
          f"{tag}: stderr: {p.stderr[-500:]!r}")
    check(s.get("credential_pauses", 0) >= 1 and s.get("not_stored") == 0, f"{tag}: summary {s}")
    return {"test": tag, "pauses": s.get("credential_pauses"), "expired_answers": stats["expired"]}


def test_signals(args, work_root):
    """SIGTERM stops the reading of a pipe that stays open, and everything read is still
    sent (lingering records at once), a line cut by the stop is reported, not sent; a
    second SIGINT ends a run that cannot store anything (credentials refused) at once."""
    tag = "signals"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    out = {"test": tag}
    fk = fake(args, work, "fake", "--keep-lines")
    try:
        with open(os.path.join(work, "out"), "w+") as o, open(os.path.join(work, "err"), "w+") as e:
            # 1,200 lines: two full requests go at once, 200 records linger (10 minutes).
            p = subprocess.Popen([args.cli, "send", "--stream", "s", "--endpoint-url", fk.url,
                                  "--linger-ms", "600000", "--summary", "json"],
                                 stdin=subprocess.PIPE, stdout=o, stderr=e)
            for i in range(1200):
                p.stdin.write(b'{"n":%d}\n' % i)
            p.stdin.write(b'{"n":1200,')
            p.stdin.flush()
            t0 = time.time()
            while time.time() - t0 < 10 and fk.stats()["records"] < 1000:
                time.sleep(0.05)
            time.sleep(0.3)
            before = fk.stats()["records"]
            t0 = time.time()
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=30)  # stdin stays open: only the signal ends the reading
            out["drain_s"] = round(time.time() - t0, 2)
            p.stdin.close()
            o.seek(0)
            e.seek(0)
            stdout, stderr = o.read(), e.read()
        stats = fk.stats()
        summary = json.loads(stdout) if stdout else {}
        check(before == 1000, f"{tag}: {before} records stored before the signal, want 1000")
        check(rc == 143 and summary.get("exit_code") == 143
              and summary.get("send", {}).get("stopped_by") == "SIGTERM",
              f"{tag}: exit {rc}, summary {summary}: {stderr[-500:]!r}")
        check(stats["records"] == 1200 and stats["distinct"] == 1200 and stats["lines"] == {},
              f"{tag}: fake {stats} after SIGTERM, want the 1200 whole lines once each")
        check("reading stopped by SIGTERM; 10 bytes of an unfinished last line dropped" in stderr,
              f"{tag}: stderr {stderr[-500:]!r}")
    finally:
        fk.close()

    fk = fake(args, work, "refusing", "--expired-first", "1000000000")
    try:
        p = subprocess.Popen([args.cli, "send", "--stream", "s", "--endpoint-url", fk.url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"".join(b'{"n":%d}\n' % i for i in range(300)))
        p.stdin.flush()
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        time.sleep(1)
        running = p.poll() is None
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=30)
        p.stdin.close()
        stderr = p.stderr.read().decode()
        p.stdout.close()
        p.stderr.close()
        check(running, f"{tag}: the first SIGINT ended a run whose records were not stored")
        check(rc == 130 and "SIGINT again: stopped at once; 300 records read are not confirmed stored"
              in stderr, f"{tag}: exit {rc}: {stderr[-500:]!r}")
    finally:
        fk.close()
    return out


def test_hot_key(args, work_root):
    """`yes | send`: one key. With per-key order each request holds one record of it,
    and the tool says why once; --allow-reordering fills requests."""
    tag = "hot_key"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    out = {"test": tag}
    lines = b'{"a":1}\n' * 1500
    fk = fake(args, work, "fake")
    try:
        for extra, want_hint in (([], True), (["--allow-reordering"], False)):
            before = fk.stats()["requests"]
            p = subprocess.run([args.cli, "send", "--stream", "s", "--endpoint-url", fk.url, *extra],
                               input=lines, capture_output=True, timeout=120)
            err = p.stderr.decode()
            requests = fk.stats()["requests"] - before
            hinted = err.count("most share a partition key already in flight")
            name = "reordering" if extra else "per_key"
            out[name] = {"requests": requests}
            check(p.returncode == 0 and hinted == (1 if want_hint else 0),
                  f"{tag}/{name}: exit {p.returncode}, hint said {hinted} times: {err[-400:]!r}")
            # One record a request; or full ones (a lingered one at most, on a slow machine).
            ok = requests == 1500 if want_hint else requests <= 4
            check(ok, f"{tag}/{name}: {requests} requests for 1500 records")
    finally:
        fk.close()
    return out


def test_throughput(args, work_root):
    tag = "throughput"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    n = args.throughput_records
    path = os.path.join(work, "in.ndjson")
    # About 100 bytes a line, each its own key (hash of the line).
    write_lines(path, [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 80) for i in range(n)])
    fk = fake(args, work, "fake")
    px = proxy(args, work, "proxy", fk.port, "--latency-ms", str(args.latency_ms))
    results = {}
    try:
        for in_flight in (1, 8):
            before = fk.stats()["records"]
            t0 = time.time()
            p = subprocess.run([args.cli, "send", "--stream", "s", "--endpoint-url", px.url,
                                "--in-flight", str(in_flight), "--linger-ms", "5",
                                "--max-records", str(args.throughput_max_records),
                                "--summary", "json", path], capture_output=True, text=True)
            seconds = time.time() - t0
            check(p.returncode == 0, f"{tag}: --in-flight {in_flight}: exit {p.returncode}: {p.stderr[-300:]}")
            s = json.loads(p.stdout)["send"] if p.returncode == 0 else {}
            check(fk.stats()["records"] - before == n, f"{tag}: --in-flight {in_flight}: not all stored")
            results[in_flight] = {"seconds": round(seconds, 2), "records_per_s": round(n / seconds),
                                  "requests": s.get("requests"), "peak_in_flight": s.get("peak_in_flight")}
    finally:
        px.close()
        fk.close()
    ratio = results[8]["records_per_s"] / results[1]["records_per_s"]
    log(f"  throughput at {args.latency_ms} ms a request, {n} records of ~100 bytes, "
        f"{args.throughput_max_records} a request: "
        f"--in-flight 1 {results[1]['records_per_s']} records/s, --in-flight 8 "
        f"{results[8]['records_per_s']} records/s: {ratio:.1f}x")
    check(ratio >= 5, f"{tag}: --in-flight 8 is only {ratio:.2f}x --in-flight 1 (want >= 5)")
    return {"test": tag, "latency_ms": args.latency_ms, "records": n, "in_flight_1": results[1],
            "in_flight_8": results[8], "ratio": round(ratio, 2)}


def generate(pipe, total, line_len):
    """Writes `total` bytes of distinct lines of `line_len` bytes (newline included)."""
    written, i = 0, 0
    pad = b"x" * line_len
    try:
        while written < total:
            block = []
            for _ in range(max(1, (1 << 20) // line_len)):
                head = b'{"n":%d,"pad":"' % i
                block.append(head + pad[:line_len - len(head) - 3] + b'"}\n')
                i += 1
            data = b"".join(block)
            pipe.write(data)
            written += len(data)
    except BrokenPipeError:
        pass
    finally:
        try:
            pipe.close()
        except BrokenPipeError:
            pass
    generate.lines = i


def test_memory(args, work_root):
    tag = "memory"
    work = os.path.join(work_root, tag)
    os.makedirs(work)
    fk = fake(args, work, "fake")
    out = {"test": tag, "bound_mb": args.memory_bound_mb}
    try:
        for name, total, line_len in (("small lines", args.memory_mb << 20, 100),
                                      ("20 KB lines", args.memory_mb << 20, 20_000)):
            before = fk.stats()["records"]
            t0 = time.time()
            # GNU time reports the max RSS of the program alone: a child of this Python
            # process would inherit its RSS as the maximum (the kernel records the old
            # image's peak at exec).
            rss_file = os.path.join(work, "maxrss")
            p = subprocess.Popen([TIME, "-f", "%M", "-o", rss_file, args.cli, "send", "--stream", "s",
                                  "--endpoint-url", fk.url, "--quiet", "--summary", "json"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            writer = threading.Thread(target=generate, args=(p.stdin, total, line_len))
            writer.start()
            # Drain the pipes as they fill, then reap the process with its rusage.
            result = {}
            readers = [threading.Thread(target=lambda f=f, k=k: result.__setitem__(k, f.read()))
                       for k, f in (("out", p.stdout), ("err", p.stderr))]
            for r in readers:
                r.start()
            p.wait()
            writer.join()
            for r in readers:
                r.join()
            seconds = time.time() - t0
            with open(rss_file) as f:
                rss_mb = int(f.read().split()[-1]) / 1024
            stored = fk.stats()["records"] - before
            check(p.returncode == 0, f"{tag}/{name}: exit {p.returncode}: {result['err'][-300:]!r}")
            check(stored == generate.lines, f"{tag}/{name}: {stored} stored of {generate.lines} lines")
            check(rss_mb < args.memory_bound_mb,
                  f"{tag}/{name}: max RSS {rss_mb:.1f} MB for {total >> 20} MB of input")
            out[name] = {"input_mb": total >> 20, "lines": generate.lines, "max_rss_mb": round(rss_mb, 1),
                         "seconds": round(seconds, 1)}
    finally:
        fk.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True, help="moto's URL")
    ap.add_argument("--work", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--throughput-records", type=int, default=8000)
    ap.add_argument("--throughput-max-records", type=int, default=100,
                    help="records per request in the throughput runs: the Python fake's own time "
                         "per request grows with its records and does not overlap (the GIL)")
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--memory-mb", type=int, default=200)
    ap.add_argument("--memory-bound-mb", type=int, default=100)
    ap.add_argument("--only", default=None, help="comma-separated test names")
    args = ap.parse_args()
    args.moto_port = urllib.parse.urlparse(args.endpoint).port
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    log(f"e2e send: seed {seed}")
    os.makedirs(args.work, exist_ok=True)
    kin = client(args.endpoint)
    run_id = f"{int(time.time())}-{seed}"
    moto_tests = [test_direct, test_faults, test_aggregate, test_stop, test_terminal]
    fake_tests = [test_streaming, test_credentials, test_signals, test_hot_key, test_throughput,
                  test_memory]
    only = set(args.only.split(",")) if args.only else None
    for test in moto_tests + fake_tests:
        name = test.__name__[len("test_"):]
        if only and name not in only:
            continue
        t0 = time.time()
        try:
            if test in moto_tests:
                result = test(args, kin, run_id, random.Random(f"{seed}/{name}"))
            else:
                result = test(args, args.work)
            if result is not None:
                result["total_s"] = round(time.time() - t0, 1)
                log(json.dumps(result, ensure_ascii=False))
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            check(False, f"{name}: {e!r}")
    if FAILURES:
        log(f"e2e send: {len(FAILURES)} failed (seed {seed})")
        for f in FAILURES[:30]:
            log(f"  - {f}")
        sys.exit(1)
    log("e2e send: all assertions passed")


if __name__ == "__main__":
    main()
