"""Benchmark: 1,000,000 records of 100 bytes, the Python binding beside a pure-Python
greedy loop with the original KinesisBatcher's accounting (written here for the bench).

    python bindings/python/bench.py [N]     # after pip install ./bindings/python

Goals (issue 14): the drop-in at least 5x the loop; the native API at least 20x on
(bytes, str) tuples and at least 100x on one buffer of newline-delimited records.
Each figure is the best of 5 runs; the input is built once, outside the timing.

Floors, in the same run: what the drop-in must hand back (the same batches as lists, cut
by pure-Python slicing of the same ranges), what reading one length per record costs
CPython's own C code (sum(map(len, map(itemgetter(...), records))): no Python bytecode
per record), and what planning one buffer must read (the buffer searched once for a byte
it does not hold). A ratio above "floor" is out of reach
whatever the planner does. "the original" is the issue's figure for the original package
(2.7 M records/s), not measured here.
"""

import sys
import time
from operator import itemgetter

from kinesis_batcher import KDS_5MIB, plan, plan_lines
from kinesis_batcher.compat import KinesisBatcher

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
RECORD_MAX, BATCH_MAX, MAX_RECORDS = 1048576, 5242880, 500
ORIGINAL_RATE = 2.7e6  # records/s: the figure for the original package


def greedy_loop(records):
    """The original's loop and accounting (len of data + len of key, in characters), on
    PutRecords entry dicts, batches as lists."""
    batches = []
    batch = []
    size = 0
    for r in records:
        n = len(r["Data"]) + len(r["PartitionKey"])
        if n > RECORD_MAX:
            continue
        if len(batch) + 1 > MAX_RECORDS or size + n > BATCH_MAX:
            batches.append(batch)
            batch, size = [], 0
        batch.append(r)
        size += n
    if batch:
        batches.append(batch)
    return batches


def greedy_loop_tuples(records):
    """The same loop over (data, key) tuples (for reference; the ratios are to the dict loop)."""
    batches = []
    batch = []
    size = 0
    for r in records:
        data, key = r
        n = len(data) + len(key)
        if n > RECORD_MAX:
            continue
        if len(batch) + 1 > MAX_RECORDS or size + n > BATCH_MAX:
            batches.append(batch)
            batch, size = [], 0
        batch.append(r)
        size += n
    if batch:
        batches.append(batch)
    return batches


def best(fn, runs=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    key = "user-00042"                      # 10 bytes; data 90 bytes: 100 bytes a record
    data = [(b"%089d\n" % i)[:90] for i in range(N)]
    dicts = [{"Data": d, "PartitionKey": key} for d in data]
    tuples = [(d, key) for d in data]
    # The same keys' text, but a new str object for every record (the binding measures a
    # key object once while consecutive records share it: this is its slower case).
    fresh_keys = [(d, "".join(key)) for d in data]
    buffer = b"".join((b"%099d\n" % i) for i in range(N))   # 100-byte lines + newline

    t_loop, ref = best(lambda: greedy_loop(dicts))
    t_loop_t, _ = best(lambda: greedy_loop_tuples(tuples))
    batcher = KinesisBatcher("json")
    t_compat, got = best(lambda: list(batcher.batch_data(dicts)))
    assert got == ref, "the drop-in's batches differ from the loop's"
    starts = []
    at = 0
    for b in ref:
        starts.append((at, at + len(b)))
        at += len(b)
    t_slices, _ = best(lambda: [dicts[s:e] for s, e in starts])
    t_len_dicts, _ = best(lambda: sum(map(len, map(itemgetter("Data"), dicts))))
    t_len_tuples, _ = best(lambda: sum(map(len, map(itemgetter(0), tuples))))
    t_tuples, p = best(lambda: plan(tuples, KDS_5MIB))
    assert [b.count for b in p.batches] == [len(b) for b in ref]
    t_tuples_read, _ = best(lambda: [b.records for b in plan(tuples, KDS_5MIB).batches])
    t_fresh, pf = best(lambda: plan(fresh_keys, KDS_5MIB))
    assert [b.count for b in pf.batches] == [len(b) for b in ref]
    t_lines, lp = best(lambda: plan_lines(buffer, KDS_5MIB, key=key))
    mv = memoryview(buffer)
    t_lines_read, _ = best(lambda: [mv[b.offset:b.end_offset] for b in plan_lines(buffer, KDS_5MIB, key=key).batches])
    assert sum(b.count for b in lp.batches) == N
    t_read, _ = best(lambda: buffer.find(b"\xff"))

    print(f"{N:,} records of 100 bytes, best of 5; ratios to the dict loop (and to the original's 2.7 M/s)")
    print(f"pure-Python greedy loop (dicts)       {t_loop * 1e3:8.1f} ms  {N / t_loop / 1e6:6.2f} M records/s  (1.0x)")
    print(f"pure-Python greedy loop (tuples)      {t_loop_t * 1e3:8.1f} ms  {N / t_loop_t / 1e6:6.2f} M records/s")
    rows = (("compat batch_data (dicts)", t_compat, 5),
            ("  floor: slicing the same lists", t_slices, None),
            ("  floor: that + C summing Data lengths", t_slices + t_len_dicts, None),
            ("native plan (bytes, str) tuples", t_tuples, 20),
            ("  + every batch.records read", t_tuples_read, None),
            ("  a new key object per record", t_fresh, None),
            ("  floor: C summing data lengths", t_len_tuples, None),
            ("native plan_lines (one buffer)", t_lines, 100),
            ("  + every batch's bytes (memoryview)", t_lines_read, None),
            ("  floor: reading the buffer once", t_read, None))
    for name, t, goal in rows:
        ratio = t_loop / t
        verdict = "" if goal is None else f", goal {goal}x: {'met' if ratio >= goal else 'NOT met'}"
        print(f"{name:37} {t * 1e3:8.1f} ms  {N / t / 1e6:6.2f} M records/s  "
              f"({ratio:.1f}x; {N / t / ORIGINAL_RATE:.0f}x the original{verdict})")


if __name__ == "__main__":
    main()
