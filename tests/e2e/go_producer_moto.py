#!/usr/bin/env python3
"""moto_server, answering one request at a time.

moto's Kinesis is not safe for concurrent PutRecords: Shard.put_record numbers a record
"last sequence number + 1" and stores it under that number ("this function is not safe
for concurrency", moto 5.2.5), so two requests stored at once can give two records the
same sequence number, and the later one replaces the earlier: a record moto answered
with a SequenceNumber is then missing from GetRecords. moto_server runs werkzeug
threaded; a producer with several requests in flight needs it not to. This is
moto_server's own main with threaded=False (werkzeug then speaks HTTP/1.0: one request
per connection, the others wait in the listen backlog). Requests still overlap in the
fault proxy in front of it (its --latency-ms delay is applied concurrently), as they
would on a network.

    go_producer_moto.py -H 127.0.0.1 -p PORT
"""
import argparse
import signal
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
