"""Threads: plans made concurrently are the same plans, and plan_lines on bytes lets other
threads run while the core plans."""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kinesis_batcher import KDS_5MIB, plan, plan_lines


def shape(p):
    return [(b.start, b.end, b.count, b.bytes) for b in p.batches], [(r.index, r.reason) for r in p.refusals]


def test_concurrent_plans_are_the_same_plans():
    recs = [(b"x" * (i % 5000), "k" * (1 + i % 300)) for i in range(20_000)]
    buf = b"".join(b"y" * (i % 3000) + b"\n" for i in range(20_000))
    alone, alone_lines = shape(plan(recs)), shape(plan_lines(buf, key="k"))
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: shape(plan(recs)) if i % 2 else shape(plan_lines(buf, key="k")), range(16)))
    assert got == [alone if i % 2 else alone_lines for i in range(16)]


def test_plan_lines_on_bytes_releases_the_gil():
    # While one thread plans a large bytes buffer, this one keeps running: the longest
    # pause it sees is well under the planning time (holding the GIL, it would pause for
    # all of it).
    buf = b"".join(b"%0199d\n" % i for i in range(1_000_000))  # 200 MB
    start = time.perf_counter()
    plan_lines(buf, KDS_5MIB, key="k")
    alone = time.perf_counter() - start
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        for _ in range(3):  # the best of three: a busy machine can pause any thread
            done = threading.Event()
            worker = threading.Thread(target=lambda: (plan_lines(buf, KDS_5MIB, key="k"), done.set()))
            longest, last = 0.0, time.perf_counter()
            worker.start()
            while not done.is_set():
                now = time.perf_counter()
                longest, last = max(longest, now - last), now
            worker.join()
            if longest < alone / 2:
                break
    finally:
        sys.setswitchinterval(old)
    assert longest < alone / 2, (longest, alone)
