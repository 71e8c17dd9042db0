#!/usr/bin/env python3
"""Test data and checks for run.sh (standard library only).

  checks.py gen FILE                         write the test NDJSON file
  checks.py dry INPUT BODIES STDERR [MIB]    check --dry-run output (MIB: request cap)
  checks.py served INPUT LOG STORED STDERR MARKER [FLAG...]
                                             check a run against fake_kinesis.py; flags:
                                             perkey (each key's records stored in input
                                             order), inflight=N (at most N requests at
                                             once, and more than one), out-of-order (some
                                             response completed before an earlier request's)
  checks.py keyed FILE N KEYS                write N JSON lines {"k":"dev-(i % KEYS)","n":i}
  checks.py linger WRITES LOG LO_MS HI_MS    each record reached the endpoint LO..HI ms
                                             after it was written (WRITES: "time line")
  checks.py keys-gen FILE                    write the --key-field / --format test file
  checks.py keys MODE FILE CLI_DIR CLI_REFUSALS CLI_SUMMARY STDERR dry BODIES
  checks.py keys MODE FILE CLI_DIR CLI_REFUSALS CLI_SUMMARY STDERR served LOG STORED
                                             check a --key-field device (MODE key-field)
                                             or --format ndjson --partition-key k (MODE
                                             ndjson) run against kinesis-batcher's answer

The expected outcome of every line is computed here independently of the library: a
line (without its "\n" and a "\r" before it) is a record unless it is empty; it is
refused when its bytes plus its key (the line number in decimal) exceed 1 MiB. For the
keys test, each line's outcome is written beside it (KEY_CASES), and the producer must
agree with both that and the kinesis-batcher command-line tool.
"""
import base64
import collections
import hashlib
import json
import os
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


def served(input_path, log_path, stored_path, stderr_path, marker, *flags):
    good, refused = expected(input_path)
    stderr = open(stderr_path).read()
    check_refusals(stderr, refused)
    terminal = [n for n, d in good if marker and marker.encode() in d]
    want = collections.Counter(d for n, d in good if n not in terminal)
    with open(stored_path, "rb") as f:
        stored_list = f.read().split(b"\n")[:-1]
    stored = collections.Counter(stored_list)
    if stored != want:
        extra, missing = stored - want, want - stored
        fail(f"stored set differs: {sum(extra.values())} extra/duplicate, "
             f"{sum(missing.values())} missing")
    got_terminal = sorted(int(n) for n in re.findall(r"line (\d+) failed: kms", stderr))
    if got_terminal != terminal:
        fail(f"terminal failures reported for {got_terminal}, expected {terminal}")
    other = re.findall(r"line (\d+) failed: (?!kms)", stderr)
    if other:
        fail(f"lines failed for another reason than kms: {other[:5]}")

    # Only failed records are sent again: each record is sent once, plus once per
    # retryable failure (a failed entry, or a request failed as a whole).
    log = [json.loads(line) for line in open(log_path)]
    sends = collections.Counter()
    retryable_failures = collections.Counter()
    retried_requests = 0
    for req in log:
        for e in req["entries"]:
            sends[e["sha1"]] += 1
        failed = [e["sha1"] for e in req["entries"]
                  if e["result"] in ("request_failed", "ProvisionedThroughputExceededException")]
        for sha in failed:
            retryable_failures[sha] += 1
        retried_requests += bool(failed)
    for sha, count in sends.items():
        if count != 1 + retryable_failures[sha]:
            fail(f"a record was sent {count} times after {retryable_failures[sha]} failures")
    notes = []
    if "perkey" in flags:
        # The log is in storage order: each key's records must come in input order.
        position = {hashlib.sha1(d).hexdigest(): i for i, (_, d) in enumerate(good)}
        last, keys = {}, set()
        for req in log:
            for e in req["entries"]:
                if e["result"] != "stored":
                    continue
                i, k = position[e["sha1"]], e["key"]
                if i < last.get(k, -1):
                    fail(f"key {k!r}: input record {i} stored after record {last[k]}")
                last[k] = i
                keys.add(k)
        notes.append(f"{len(keys)} keys each stored in input order")
    for f in flags:
        if f.startswith("inflight="):
            most = max(r["concurrent"] for r in log)
            if not 2 <= most <= int(f[9:]):
                fail(f"at most {most} requests at once, expected 2..{f[9:]}")
            notes.append(f"up to {most} requests at once")
    if "out-of-order" in flags:
        late = sum(1 for a, b in zip(log, log[1:]) if b["n"] < a["n"])
        if not late:
            fail("every response completed in request order")
        notes.append(f"{late} responses completed before an earlier request's")
    print(f"ok: {len(log)} requests ({retried_requests} with retryable failures), "
          f"{sum(stored.values())} stored once each, terminal lines {terminal}, "
          f"refused lines {refused}" + "".join(f"; {n}" for n in notes))


def keyed(path, n, keys):
    with open(path, "w") as f:
        for i in range(1, int(n) + 1):
            f.write(json.dumps({"k": f"dev-{i % int(keys)}", "n": i, "pad": "p" * (i % 50)}) + "\n")


def linger(writes_path, log_path, lo, hi):
    """Each record written at time t reached the endpoint between t + lo and t + hi ms."""
    written = {}
    for line in open(writes_path, "rb"):
        t, data = line.rstrip(b"\n").split(b" ", 1)
        written[hashlib.sha1(data).hexdigest()] = float(t)
    arrived = {}
    for req in map(json.loads, open(log_path)):
        for e in req["entries"]:
            arrived.setdefault(e["sha1"], req["t0"])
    if set(arrived) != set(written):
        fail(f"{len(written)} lines written, {len(arrived)} different records sent")
    delays = sorted(round((arrived[s] - written[s]) * 1000) for s in written)
    if not all(float(lo) <= d <= float(hi) for d in delays):
        fail(f"delays from write to send {delays} ms, expected {lo}..{hi}")
    print(f"ok: {len(delays)} records each sent {delays[0]}..{delays[-1]} ms after it was "
          f"written (linger window {lo}..{hi} ms)")


# ---- --key-field and --format ndjson ------------------------------------------------

# (line, its outcome under --key-field device, its outcome under --format ndjson): a key,
# or the reason the line is refused; None under ndjson for a line sent as it is. None as
# the line is an empty line (skipped: no record, but it has a line number).
KEY_CASES = [
    (b'{"device":"d-1","n":1}', "d-1", None),
    (b'{"n":2,"device":"d-2"}', "d-2", None),
    (b"not json", "invalid_json", "invalid_json"),
    (b'{"device":"cut short"', "invalid_json", "invalid_json"),
    (b'{"device":"d-5"} trailing', "invalid_json", "invalid_json"),
    (b'{"device":"tab\there"}', "invalid_json", "invalid_json"),  # a raw control character
    (b'{"device":"x",}', "invalid_json", "invalid_json"),
    (b'{"device":"\xff"}', "invalid_json", None),  # the key field's value must be UTF-8
    (b"1e999", "invalid_json", None),  # a bare number is read as a double under --key-field
    (b'{"n":10}', "key_field_missing", None),
    (b'{"device":null,"n":11}', "key_field_missing", None),
    (b'{"device":{"id":12}}', "key_field_missing", None),
    (b'{"device":true,"n":13}', "key_field_missing", None),
    (b'[{"device":"d-14"}]', "key_field_missing", None),  # not an object
    (b'"device"', "key_field_missing", None),
    (None, None, None),
    (b'{"device":42,"n":17}', "42", None),  # a number: its JSON text, as written
    (b'{"device":-1.50e3,"n":18}', "-1.50e3", None),
    ('{"device":"café","n":19}'.encode(), "café", None),  # multi-byte: a view into the line
    (b'{"device":"caf\\u00e9","n":20}', "café", None),  # escaped: decoded
    (b'{"device":"\\ud83d\\ude00 \\"q\\"","n":21}', '\U0001F600 "q"', None),
    (b'{"dev\\u0069ce":"d-22"}', "d-22", None),  # an escaped member name
    (b' {"device":"a","device":"d-23"}\t', "d-23", None),  # the last one wins
    (b'{"a\tb":1,"device":"d-24"}', "d-24", "invalid_json"),  # top-level names are bytes
    (b'{"device":"d-25","msg":"\xff"}', "d-25", None),  # other strings' bytes are not checked
    (b'{"x":' + b"[" * 300 + b"]" * 300 + b',"device":"d-26"}', "d-26", None),  # any depth
    (b'{"device":"","n":27}', "key_empty", None),  # the library's refusals
    (b'{"device":"\\ud800","n":28}', "key_not_utf8", None),  # unpaired surrogate: WTF-8
    (b'{"device":"' + b"k" * 257 + b'"}', "key_too_long", None),
    (b'{"device":"' + "é".encode() * 256 + b'","n":30}', "é" * 256, None),  # 256 code points
    (b'{"device":"big","pad":"' + b"p" * MIB + b'"}', "record_too_large", "record_too_large"),
    (b"{" * (MIB + 1), "record_too_large", "record_too_large"),  # over the cap: not parsed
    (b'{"device":"d-33"}\r', "d-33", None),  # a \r\n line
    (b'{"device":"d-34","n":34}', "d-34", None),  # the last line, without a \n
]


def keys_gen(path):
    with open(path, "wb") as f:
        f.write(b"\n".join(line or b"" for line, _, _ in KEY_CASES))


def keys_expected(mode):
    """{line number: reason} refused, and [(data, key)] sent, in input order."""
    refused, sent = {}, []
    for n, (line, by_field, by_ndjson) in enumerate(KEY_CASES, 1):
        if line is None:
            continue
        data = line[:-1] if line.endswith(b"\r") else line
        if mode == "ndjson":
            outcome = by_ndjson or ("key", "k")
        elif by_field in REASONS:
            outcome = by_field
        else:
            outcome = ("key", by_field)
        if isinstance(outcome, tuple):
            sent.append((data, outcome[1]))
        else:
            refused[n] = outcome
    return refused, sent


REASONS = ("invalid_json", "key_field_missing", "key_empty", "key_not_utf8", "key_too_long",
           "hash_key_invalid", "record_too_large")


def keys(mode, input_path, cli_dir, cli_refusals, cli_summary, stderr_path, how, *outputs):
    want_refused, want_sent = keys_expected(mode)
    # The tool's answer: every refused line and its reason, its counts, its requests.
    cli_refused = {}
    for line in open(cli_refusals):
        r = json.loads(line)
        cli_refused[r["line"]] = r["reason"]
    counts = {k: v for k, v in json.load(open(cli_summary))["refusals"].items() if v}
    cli_sent = []
    for name in sorted(os.listdir(cli_dir)):
        for r in json.load(open(os.path.join(cli_dir, name)))["Records"]:
            cli_sent.append((base64.b64decode(r["Data"]), r["PartitionKey"]))
    if cli_refused != want_refused or cli_sent != want_sent:
        fail(f"kinesis-batcher disagrees with KEY_CASES: refused {cli_refused} "
             f"(expected {want_refused}), {len(cli_sent)} records (expected {len(want_sent)})")
    if collections.Counter(cli_refused.values()) != counts:
        fail(f"kinesis-batcher's summary counts {counts}, its refusals {cli_refused}")

    # The producer's: one "line N refused: REASON: ..." each, and the same counts.
    got = {}
    for m in re.finditer(r"line (\d+) refused: (\w+): ", open(stderr_path, encoding="utf-8").read()):
        if int(m.group(1)) in got:
            fail(f"line {m.group(1)} reported refused twice")
        got[int(m.group(1))] = m.group(2)
    if got != cli_refused:
        diff = sorted(set(got.items()) ^ set(cli_refused.items()))
        fail(f"refusals differ from kinesis-batcher's (line, reason): {diff}")
    by_reason = collections.Counter(got.values())
    if by_reason != counts:
        fail(f"refusals per reason {dict(by_reason)}, kinesis-batcher {counts}")

    if how == "dry":  # every request body, in order: the same records, keys and order
        sent = [(base64.b64decode(r["Data"], validate=True), r["PartitionKey"])
                for body in open(outputs[0], "rb") for r in json.loads(body)["Records"]]
        # The same records with the same keys, and each key's records in the same order
        # (per-key order holds a record back while an earlier one of its key is
        # unsettled, so records of different keys may trade places).
        def by_key(recs):
            out = collections.defaultdict(list)
            for d, k in recs:
                out[k].append(d)
            return out
        if by_key(sent) != by_key(cli_sent):
            diff = [(a, b) for a, b in zip(sent, cli_sent) if a != b][:3]
            fail(f"sent {len(sent)} records, kinesis-batcher {len(cli_sent)}; first "
                 f"differences {diff}")
    else:  # stored exactly the accepted lines, each once, each with its key
        log, stored_path = outputs
        key_of = {hashlib.sha1(d).hexdigest(): k for d, k in cli_sent}
        stored_keys = collections.Counter()
        for line in open(log):
            for e in json.loads(line)["entries"]:
                if e["result"] == "stored":
                    stored_keys[(e["sha1"], e["key"])] += 1
        if stored_keys != collections.Counter(key_of.items()):
            fail(f"stored (record, key) pairs differ: "
                 f"{sorted(set(stored_keys) ^ set(key_of.items()))[:5]}")
        with open(stored_path, "rb") as f:
            stored = collections.Counter(f.read().split(b"\n")[:-1])
        if stored != collections.Counter(d for d, _ in cli_sent):
            fail("the stored data differ from the accepted lines")
    print(f"ok: {len(cli_sent)} records {'sent' if how == 'dry' else 'stored'} with "
          f"kinesis-batcher's keys, refusals as it reports them: "
          f"{dict(sorted(by_reason.items()))}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": gen, "dry": dry, "served": served, "keys-gen": keys_gen, "keys": keys,
     "keyed": keyed, "linger": linger}[cmd](*args)
