#!/usr/bin/env python3
"""Test data and checks for run.sh (standard library only).

  checks.py gen FILE                         write the test NDJSON file
  checks.py dry INPUT BODIES STDERR [MIB]    check --dry-run output (MIB: request cap)
  checks.py served INPUT LOG STORED STDERR MARKER
                                             check a run against fake_kinesis.py

The expected outcome of every line is computed here independently of the library: a
line (without its "\n" and a "\r" before it) is a record unless it is empty; it is
refused when its bytes plus its key (the line number in decimal) exceed 1 MiB.
"""
import base64
import collections
import json
import random
import re
import sys

MIB = 1024 * 1024
MARKER = "TERMINAL-ME"


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def gen(path):
    rng = random.Random(7)
    lines = []
    for n in range(1, 4001):
        key_len = len(str(n))
        if n % 97 == 0:
            line = ""  # empty: skipped
        elif n == 1000:
            line = "x" * (MIB - key_len)  # exactly the cap with its key: sent
        elif n == 1001:
            line = "y" * (MIB - key_len + 1)  # one byte over: refused
        elif n == 2000:
            line = "z" * (12 * MIB)  # over the cap and larger than the read buffer
        elif n in (1500, 3333):
            line = "w" * (MIB + rng.randint(1, 2 * MIB))  # over the cap
        elif 2101 <= n <= 2130:  # a dense run of large lines: requests fill by bytes
            line = json.dumps({"n": n, "blob": "B" * rng.randint(600_000, 1_000_000)})
        elif n % 150 == 0:
            line = json.dumps({"n": n, "blob": "b" * rng.randint(200_000, 900_000)})
        else:
            line = json.dumps({"n": n, "msg": "é\"\\" + "m" * rng.randint(0, 1500)})
            if n % 500 == 7:
                line = json.dumps({"n": n, "msg": MARKER})
        lines.append(line + ("\r\n" if n % 11 == 0 else "\n"))
    lines[-1] = lines[-1].rstrip("\n")  # the last line has no terminator
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def expected(input_path):
    """[(line number, data bytes)] of sendable lines, and the refused line numbers."""
    with open(input_path, "rb") as f:
        raw = f.read().split(b"\n")
    good, refused = [], []
    for n, line in enumerate(raw, 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        (refused if len(line) + len(str(n)) > MIB else good).append((n, line))
    return good, [n for n, _ in refused]


def check_refusals(stderr, refused):
    got = [int(n) for n in re.findall(r"line (\d+) refused: record_too_large", stderr)]
    if got != refused:
        fail(f"refusals reported for lines {got}, expected {refused}")


def dry(input_path, bodies_path, stderr_path, cap_mib="10"):
    good, refused = expected(input_path)
    sent, requests = [], 0
    with open(bodies_path, "rb") as f:
        for body in f:
            requests += 1
            req = json.loads(body)
            recs = req["Records"]
            if req["StreamName"] != "test-stream" or not 1 <= len(recs) <= 500:
                fail(f"request {requests}: stream or record count {len(recs)}")
            size = 0
            for r in recs:
                data, key = base64.b64decode(r["Data"], validate=True), r["PartitionKey"]
                size += len(data) + len(key.encode())
                if len(data) + len(key.encode()) > MIB:
                    fail(f"request {requests}: a record over 1 MiB")
                sent.append((int(key), data))
            if size > int(cap_mib) * MIB:
                fail(f"request {requests}: {size} bytes > {cap_mib} MiB")
    if sent != good:
        fail(f"dry run sent {len(sent)} records, expected {len(good)} in input order")
    check_refusals(open(stderr_path).read(), refused)
    print(f"ok: {requests} requests, {len(sent)} records in order, refused lines {refused}")


def served(input_path, log_path, stored_path, stderr_path, marker):
    good, refused = expected(input_path)
    stderr = open(stderr_path).read()
    check_refusals(stderr, refused)
    terminal = [n for n, d in good if marker and marker.encode() in d]
    want = collections.Counter(d for n, d in good if n not in terminal)
    with open(stored_path, "rb") as f:
        stored = collections.Counter(f.read().split(b"\n")[:-1])
    if stored != want:
        extra, missing = stored - want, want - stored
        fail(f"stored set differs: {sum(extra.values())} extra/duplicate, "
             f"{sum(missing.values())} missing")
    got_terminal = [int(n) for n in re.findall(r"line (\d+) failed: kms", stderr)]
    if got_terminal != terminal:
        fail(f"terminal failures reported for {got_terminal}, expected {terminal}")

    # Only failed records are sent again, first in the next request, in input order.
    log = [json.loads(line) for line in open(log_path)]
    sends = collections.Counter()
    retryable_failures = collections.Counter()
    retried_requests = 0
    for i, req in enumerate(log):
        for e in req["entries"]:
            sends[e["sha1"]] += 1
        failed = [e["sha1"] for e in req["entries"]
                  if e["result"] in ("request_failed", "ProvisionedThroughputExceededException")]
        for sha in failed:
            retryable_failures[sha] += 1
        if failed:
            retried_requests += 1
            if i + 1 == len(log):
                fail(f"request {req['n']} had failures but no request followed")
            head = [e["sha1"] for e in log[i + 1]["entries"][:len(failed)]]
            if head != failed:
                fail(f"request {req['n'] + 1} does not start with the {len(failed)} "
                     f"entries that failed in request {req['n']}")
    for sha, count in sends.items():
        if count != 1 + retryable_failures[sha]:
            fail(f"a record was sent {count} times after {retryable_failures[sha]} failures")
    print(f"ok: {len(log)} requests ({retried_requests} with retryable failures), "
          f"{sum(stored.values())} stored once each, terminal lines {terminal}, "
          f"refused lines {refused}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": gen, "dry": dry, "served": served}[cmd](*args)
