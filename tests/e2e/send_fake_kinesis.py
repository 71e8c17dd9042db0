#!/usr/bin/env python3
"""A minimal, fast fake Kinesis endpoint for `kinesis-batcher send`'s throughput and
memory tests, where moto itself is the bottleneck (about 30 PutRecords a second, fewer
as a stream fills, and slower with requests in parallel).

Standard library only; binds 127.0.0.1 on a port the OS chooses and writes it to
--port-file. Every PutRecords request (X-Amz-Target Kinesis_20131202.PutRecords) is
checked against the KDS limits (at most 500 records, 10 MiB with keys, 1 MiB per record
with its key, a partition key of 1 to 256 characters) and stores every entry: the answer
gives each a SequenceNumber and a ShardId. A request that breaks a limit is answered
with HTTP 400 ValidationException, and counted. Other targets get HTTP 400
UnknownOperationException. Signatures are not checked. --expired-first N: the first N
PutRecords requests are answered HTTP 400 ExpiredTokenException (credentials refused),
as an STS session token that expired would be.

GET /stats answers the counters as JSON: requests, records, bytes (data + UTF-8 keys),
invalid (requests refused), expired (answered ExpiredTokenException), max_concurrent (requests being handled at once, at most),
and, with --keep-lines, "lines": how many times each {"n":N ...} line number was stored
(as {N: count}, only for counts other than 1, plus "distinct").
"""
import argparse
import base64
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_RECORDS, MAX_REQUEST, MAX_RECORD = 500, 10 * 1024 * 1024, 1024 * 1024
LINE_RE = re.compile(rb'^\{"n":(\d+)')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out in separate writes, and with Nagle
    # the body would wait for the client's delayed ACK (40 ms) on every response.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        with srv.lock:
            stats = dict(srv.stats)
            if srv.opts.keep_lines:
                stats["distinct"] = len(srv.lines)
                stats["lines"] = {n: c for n, c in srv.lines.items() if c != 1}
        self.reply(200, stats)

    def do_POST(self):
        srv = self.server
        with srv.lock:
            srv.active += 1
            srv.stats["max_concurrent"] = max(srv.stats["max_concurrent"], srv.active)
        try:
            self.put_records()
        finally:
            with srv.lock:
                srv.active -= 1

    def put_records(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("X-Amz-Target", "") != "Kinesis_20131202.PutRecords":
            return self.reply(400, {"__type": "UnknownOperationException"})
        with srv.lock:
            expired = srv.stats["expired"] < srv.opts.expired_first
            if expired:
                srv.stats["expired"] += 1
        if expired:
            return self.reply(400, {"__type": "ExpiredTokenException",
                                    "message": "The security token included in the request is expired"})
        records = json.loads(body).get("Records", [])
        total, lines, bad = 0, [], None
        if not 1 <= len(records) <= MAX_RECORDS:
            bad = f"{len(records)} records"
        for r in records:
            data = base64.b64decode(r["Data"])
            key = r.get("PartitionKey", "")
            size = len(data) + len(key.encode())
            total += size
            if not 1 <= len(key) <= 256 or size > MAX_RECORD:
                bad = f"record of {size} bytes, key of {len(key)} characters"
            if srv.opts.keep_lines:
                m = LINE_RE.match(data)
                lines.append(int(m.group(1)) if m else -1)
        if total > MAX_REQUEST:
            bad = f"request of {total} bytes"
        with srv.lock:
            if bad:
                srv.stats["invalid"] += 1
            else:
                srv.stats["requests"] += 1
                srv.stats["records"] += len(records)
                srv.stats["bytes"] += total
                for n in lines:
                    srv.lines[n] = srv.lines.get(n, 0) + 1
                first = srv.sequence
                srv.sequence += len(records)
        if bad:
            sys.stderr.write(f"send_fake_kinesis: invalid request: {bad}\n")
            return self.reply(400, {"__type": "ValidationException", "message": bad})
        self.reply(200, {"FailedRecordCount": 0, "EncryptionType": "NONE", "Records": [
            {"SequenceNumber": str(first + i), "ShardId": "shardId-000000000000"}
            for i in range(len(records))]})


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--keep-lines", action="store_true",
                    help="count each stored line number (for exactly-once checks)")
    ap.add_argument("--expired-first", type=int, default=0,
                    help="answer the first N PutRecords with ExpiredTokenException")
    opts = ap.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.opts, server.lock, server.active, server.sequence = opts, threading.Lock(), 0, 1
    server.lines = {}
    server.stats = {"requests": 0, "records": 0, "bytes": 0, "invalid": 0, "max_concurrent": 0,
                    "expired": 0}
    with open(opts.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(opts.port_file + ".tmp", opts.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
