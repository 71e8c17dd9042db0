#!/usr/bin/env python3
"""moto_server, with Kinesis's Shard.put_record under a lock.

moto 5.2.5's Shard.put_record numbers a record "highest sequence number + 1" without a
lock ("this function is not safe for concurrency"), and moto_server serves requests on
threads: two PutRecords stored at once on one shard can give two records the same
number, and the later silently replaces the earlier (both acknowledged; 8 boto3 threads
writing 40,000 records to one shard read back about 38,500). Every producer here keeps
several requests in flight, so every end-to-end script starts moto through this file.
Requests are still served concurrently; only the storing of one record is serialized.

    moto_server.py -H 127.0.0.1 -p PORT      (moto_server's own arguments)
"""
import signal
import sys
import threading

from moto.kinesis import models

_lock = threading.Lock()
_put_record = models.Shard.put_record


def _serialized_put_record(self, *args, **kwargs):
    with _lock:
        return _put_record(self, *args, **kwargs)


models.Shard.put_record = _serialized_put_record

if __name__ == "__main__":
    from moto.server import main

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main(sys.argv[1:])
