#!/usr/bin/env python3
"""A fake Kinesis endpoint speaking just enough PutRecords to test kb-producer.

Standard library only. It checks each request as the service would (method, path,
X-Amz-Target, Content-Type, the stream name, the limits) and verifies the AWS Signature
V4 in the Authorization header with the expected credentials, then fails entries
deterministically:

* the first attempt of every Nth distinct record (--fail-every, by data) gets
  ProvisionedThroughputExceededException;
* a record whose data contains --terminal-marker gets KMSAccessDeniedException (terminal);
* --first-request 500 | throttle: the whole first request fails with HTTP 500
  (InternalFailure in the body) or HTTP 400 with only an X-Amzn-ErrorType header
  (ThrottlingException);
* --deny-all: every request fails with HTTP 400 AccessDeniedException.
* --throttle-every K: every Kth request fails as a whole with HTTP 400
  ThrottlingException (in the body's __type).
* --expired-token T: a request signed with session token T fails as a whole with HTTP
  400 ExpiredTokenException (the token the fake expects is --session-token).

Requests are served concurrently (a thread per connection), each after --latency-ms
plus a seeded random 0..--latency-jitter-ms, so that requests in flight together can
complete out of order. --fast skips the checks and the log's entries (a response with a
SequenceNumber per "Data" in the body), for throughput and memory runs.

It binds 127.0.0.1 on a port the OS chooses and writes the port to --port-file. Every
stored record's data goes to --stored (one per line), in the order they are stored;
every request goes to --log as a JSON line, in the order they complete: {"n", "status",
"t0", "t1" (arrival and answer, time.time()), "concurrent" (requests being served when
it arrived, itself included), "entries": [{"sha1", "key", "result"}]} (in --fast mode
"records" instead of "entries"), where result is "stored", an ErrorCode, or
"request_failed". Records are stored and logged under one lock, so the log's order is
the order in which records were stored.
"""
import argparse
import base64
import os
import hashlib
import hmac
import json
import random
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_RECORDS, MAX_REQUEST, MAX_RECORD = 500, 10 * 1024 * 1024, 1024 * 1024
AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/kinesis/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


def hmac256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl reuses its connection

    def log_message(self, *args):  # quiet: the request log is the record
        pass

    def setup(self):
        super().setup()
        # Headers and body are two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK of the headers, 40 ms a response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        sys.stderr.write(f"fake_kinesis: {status} {code}: {message}\n")
        self.reply(status, {"__type": code, "message": message})

    def check_signature(self, body):
        """None when the SigV4 signature is right, else what is wrong."""
        o = self.server.opts
        m = AUTH_RE.match(self.headers.get("Authorization", ""))
        amz_date = self.headers.get("x-amz-date", "")
        if not m:
            return f"bad Authorization header: {self.headers.get('Authorization')!r}"
        key, date, region, signed, signature = m.groups()
        if key != o.access_key or region != o.region or not amz_date.startswith(date):
            return f"credential scope {key}/{date}/{region} (x-amz-date {amz_date!r})"
        if o.session_token and self.headers.get("x-amz-security-token") != o.session_token:
            return "missing or wrong x-amz-security-token"
        if not o.session_token and self.headers.get("x-amz-security-token"):
            return "a session token where none is expected"
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            return f"host and x-amz-date must be signed: {signed}"
        if o.session_token and "x-amz-security-token" not in names:
            return "x-amz-security-token is not signed"
        canonical_headers = "".join(
            f"{n}:{' '.join((self.headers.get(n) or '').split())}\n" for n in names
        )
        path, _, query = self.path.partition("?")
        canonical = "\n".join(
            ["POST", path, query, canonical_headers, signed, hashlib.sha256(body).hexdigest()]
        )
        scope = f"{date}/{region}/kinesis/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        k = hmac256(("AWS4" + o.secret_key).encode(), date)
        for part in (region, "kinesis", "aws4_request"):
            k = hmac256(k, part)
        expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return f"signature mismatch; canonical request was:\n{canonical}"
        return None

    def do_GET(self):
        self.error(405, "UnknownOperationException", "PutRecords is a POST")

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with srv.lock:
            srv.requests += 1
            n = srv.requests
            srv.serving += 1
            srv.max_serving = max(srv.max_serving, srv.serving)
            concurrent = srv.serving
            delay = srv.opts.latency_ms + srv.rng.uniform(0, srv.opts.latency_jitter_ms)
        t0 = time.time()
        try:
            if delay:
                time.sleep(delay / 1000)
            with srv.lock:
                self.put_records(n, body, t0, concurrent)
        finally:
            with srv.lock:
                srv.serving -= 1

    def fast(self, n, body, t0, concurrent):
        srv = self.server
        count = body.count(b'"Data":"')
        if count not in srv.fast_replies:
            entry = '{"SequenceNumber":"49590000000000000000","ShardId":"shardId-000000000000"}'
            srv.fast_replies[count] = (
                '{"FailedRecordCount":0,"Records":[' + ",".join([entry] * count) + "]}").encode()
        reply = srv.fast_replies[count]
        srv.log.write(json.dumps({"n": n, "status": 200, "t0": t0, "t1": time.time(),
                                  "concurrent": concurrent, "records": count}) + "\n")
        srv.log.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def put_records(self, n, body, t0, concurrent):
        srv, o = self.server, self.server.opts
        if o.fast:
            return self.fast(n, body, t0, concurrent)
        if self.path != "/":
            return self.error(404, "UnknownOperationException", f"path {self.path}")
        if self.headers.get("X-Amz-Target") != "Kinesis_20131202.PutRecords":
            return self.error(400, "UnknownOperationException", "X-Amz-Target")
        if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
            return self.error(400, "SerializationException", "Content-Type")
        expired = o.expired_token and self.headers.get("x-amz-security-token") == o.expired_token
        problem = None if expired else self.check_signature(body)
        if problem:
            return self.error(400, "InvalidSignatureException", problem)
        try:
            req = json.loads(body)
            records = [(base64.b64decode(r["Data"], validate=True), r["PartitionKey"])
                       for r in req["Records"]]
        except (ValueError, KeyError, TypeError) as e:
            return self.error(400, "SerializationException", f"bad body: {e}")
        if req.get("StreamName") != o.stream:
            return self.error(400, "ResourceNotFoundException", f"stream {req.get('StreamName')}")
        sizes = [len(d) + len(k.encode()) for d, k in records]
        if not 1 <= len(records) <= MAX_RECORDS or sum(sizes) > MAX_REQUEST:
            return self.error(400, "ValidationException", f"{len(records)} records, {sum(sizes)} bytes")
        if any(s > MAX_RECORD for s in sizes) or any(not 1 <= len(k) <= 256 for _, k in records):
            return self.error(400, "ValidationException", "a record or key over its limit")

        entries, out = [], []
        whole = None
        if o.deny_all:
            whole = (400, "AccessDeniedException")
        elif expired:
            whole = (400, "ExpiredTokenException")
        elif n == 1 and o.first_request != "ok":
            whole = (500, "InternalFailure") if o.first_request == "500" else (400, "Throttling")
        elif o.throttle_every and n % o.throttle_every == 0:
            whole = (400, "ThrottlingException")
        for data, key in records:
            sha = hashlib.sha1(data).hexdigest()
            if sha not in srv.seen:
                srv.seen[sha] = [len(srv.seen), 0]  # distinct index, attempts so far
            srv.seen[sha][1] += 1
            index, attempt = srv.seen[sha]
            if whole:
                result = "request_failed"
            elif o.terminal_marker and o.terminal_marker.encode() in data:
                result = "KMSAccessDeniedException"
            elif o.fail_every and index % o.fail_every == o.fail_every - 1 and attempt == 1:
                result = "ProvisionedThroughputExceededException"
            else:
                result = "stored"
                srv.stored.write(data + b"\n")
            entries.append({"sha1": sha, "key": key, "result": result})
            if result == "stored":
                out.append({"SequenceNumber": "4959%020d" % srv.sequence, "ShardId": "shardId-000000000000"})
                srv.sequence += 1
            else:
                out.append({"ErrorCode": result, "ErrorMessage": f"fake {result}"})
        status = whole[0] if whole else 200
        srv.log.write(json.dumps({"n": n, "status": status, "t0": t0, "t1": time.time(),
                                  "concurrent": concurrent, "entries": entries}) + "\n")
        srv.log.flush()
        srv.stored.flush()
        if whole and whole[1] == "Throttling":
            # The code only in the header, as some front ends send it.
            return self.reply(400, {"message": "Rate exceeded"},
                              [("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/")])
        if whole:
            return self.reply(whole[0], {"__type": whole[1], "message": "fake whole-request failure"})
        failed = sum(1 for e in entries if e["result"] != "stored")
        self.reply(200, {"FailedRecordCount": failed, "Records": out, "EncryptionType": "NONE"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--stored", required=True)
    ap.add_argument("--stream", default="test-stream")
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--access-key", default="AKIDEXAMPLE")
    ap.add_argument("--secret-key", default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    ap.add_argument("--session-token", default="")
    ap.add_argument("--fail-every", type=int, default=3)
    ap.add_argument("--terminal-marker", default="")
    ap.add_argument("--first-request", choices=["ok", "500", "throttle"], default="ok")
    ap.add_argument("--deny-all", action="store_true")
    ap.add_argument("--throttle-every", type=int, default=0)
    ap.add_argument("--expired-token", default="")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--latency-jitter-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fast", action="store_true")
    opts = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.opts, server.requests, server.sequence, server.seen = opts, 0, 0, {}
    server.lock, server.serving, server.max_serving = threading.Lock(), 0, 0
    server.rng, server.fast_replies = random.Random(opts.seed), {}
    server.log = open(opts.log, "w", buffering=1 << 16)
    server.stored = open(opts.stored, "wb")
    with open(opts.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(opts.port_file + ".tmp", opts.port_file)  # appears whole, never half-written
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
