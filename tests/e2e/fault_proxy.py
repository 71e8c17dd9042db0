#!/usr/bin/env python3
"""A logging, fault-injecting HTTP proxy in front of a Kinesis or Firehose API server (moto).

Standard library only; binds 127.0.0.1 on a port the OS chooses and writes it to
--port-file. Signatures are not verified (moto does not verify them either): the body is
forwarded as it is, or with some entries taken out, under the client's own headers.

Every PutRecords request (and Firehose PutRecordBatch request, in its own shape:
RequestResponses, FailedPutCount, RecordId, key "") is logged to --log as one JSON line:
  {"n", "action", "entries": [{"line", "key", "size", "data_len", "result"}],
   "upstream_status", "upstream_failed", "upstream_error"}
where action is "forward" (possibly with some entries failed by the proxy), "http_error"
(answered 500/503 without forwarding) or "drop" (connection closed without a response,
BEFORE anything was forwarded), and result is "stored" (moto gave a SequenceNumber), an
ErrorCode (injected, or moto's own), "request_failed" or "dropped". For Firehose,
"stored" means moto gave a RecordId. size = data bytes +
UTF-8 key bytes, as the service counts; line is the "n" field of the record's JSON data.

With every rate at 0 it is a pass-through logger: that is how the batches the producers
send are checked (moto does not check multi-byte keys nor empty requests itself).

Faults, decided by a seeded random generator, one request at a time:
  --drop-rate: close the connection before forwarding. Because nothing reached moto,
    a retry cannot duplicate. (A connection lost AFTER forwarding - moto stored the
    records but the response never arrived - makes duplicates unavoidable: the producer
    must send again, and Kinesis has no idempotent writes, so delivery is at-least-once.
    This proxy never does that, so the test can demand exactly-once.)
  --error-rate: answer HTTP 500 InternalFailure or 503 ServiceUnavailable, __type body.
  --fail-rate: fail each entry with that probability, ProvisionedThroughputExceeded-
    Exception or InternalFailure (Firehose: ServiceUnavailableException or InternalFailure),
    forward only the others, and merge moto's answers back in the original order with the
    right FailedRecordCount (FailedPutCount).

Latency: --latency-ms N makes every request (PutRecords or not, faulty or not) wait N ms
before it is forwarded or answered, as a network round trip would. Requests are handled
concurrently (one thread per connection, ThreadingHTTPServer, listen backlog 128), so N
requests in flight on N connections take about N ms together, not N x N: that is what
the throughput tests of several requests in flight measure.
"""
import argparse
import base64
import http.client
import json
import os
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LINE_RE = re.compile(rb'^\{"n":(\d+)')
# X-Amz-Target -> (answers' field, failed count's field, a stored entry's field, the
# per-entry error codes injected, the answer's other fields).
SHAPES = {
    "Kinesis_20131202.PutRecords": ("Records", "FailedRecordCount", "SequenceNumber",
                                    ["ProvisionedThroughputExceededException", "InternalFailure"],
                                    {"EncryptionType": "NONE"}),
    "Firehose_20150804.PutRecordBatch": ("RequestResponses", "FailedPutCount", "RecordId",
                                         ["ServiceUnavailableException", "InternalFailure"],
                                         {"Encrypted": False}),
}
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
       "trailer", "upgrade", "content-length", "expect"}


def line_of(data):
    m = LINE_RE.match(data)
    return int(m.group(1)) if m else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out in separate writes, and with Nagle
    # the body would wait for the client's delayed ACK (40 ms) on every response.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/x-amz-json-1.1", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def upstream(self, method, body):
        o = self.server.opts
        conn = http.client.HTTPConnection("127.0.0.1", o.upstream_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(method, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = (resp.status, resp.getheader("Content-Type") or "application/x-amz-json-1.1",
               [(k, v) for k, v in resp.getheaders()
                if k.lower().startswith("x-amz") and k.lower() != "x-amz-crc32"], data)
        conn.close()
        return out

    def delay(self):
        ms = self.server.opts.latency_ms
        if ms > 0:
            time.sleep(ms / 1000.0)

    def do_GET(self):
        self.delay()
        self.passthrough("GET", b"")

    def passthrough(self, method, body):
        status, ctype, extra, data = self.upstream(method, body)
        self.reply(status, data, ctype, extra)

    def do_POST(self):
        srv, o = self.server, self.server.opts
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self.delay()
        shape = SHAPES.get(self.headers.get("X-Amz-Target", ""))
        if shape is None:
            return self.passthrough("POST", body)
        answers_field, failed_field, stored_field, codes, extra_fields = shape
        req = json.loads(body)
        records = req.get("Records", [])
        entries = []
        for r in records:
            data = base64.b64decode(r["Data"])
            key = r.get("PartitionKey", "")
            entries.append({"line": line_of(data), "key": key,
                            "size": len(data) + len(key.encode()), "data_len": len(data)})
        with srv.lock:
            srv.requests += 1
            seq = srv.requests
            rng = srv.rng
            roll = rng.random()
            if roll < o.drop_rate:
                action = "drop"
            elif roll < o.drop_rate + o.error_rate:
                action = "http_error"
                code = rng.choice([(500, "InternalFailure"), (503, "ServiceUnavailable")])
            else:
                action = "forward"
                fails = [rng.choice(codes) if rng.random() < o.fail_rate else None for _ in records]
        log = {"n": seq, "action": action, "content_type": self.headers.get("Content-Type"),
               "entries": entries}
        if action == "drop":
            for e in entries:
                e["result"] = "dropped"
            srv.write_log(log)
            self.close_connection = True
            try:  # close without any response; the client sees the connection end
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if action == "http_error":
            for e in entries:
                e["result"] = "request_failed"
            log["status"] = code[0]
            srv.write_log(log)
            return self.reply(code[0], json.dumps(
                {"__type": code[1], "message": "injected by fault_proxy"}).encode())
        keep = [i for i, f in enumerate(fails) if f is None]
        out = [None] * len(records)
        for i, f in enumerate(fails):
            if f is not None:
                out[i] = {"ErrorCode": f, "ErrorMessage": "injected by fault_proxy"}
                entries[i]["result"] = f
        if keep or not records:
            sub = dict(req)
            sub["Records"] = [records[i] for i in keep]
            try:
                status, ctype, extra, data = self.upstream("POST", json.dumps(sub).encode())
            except Exception as e:  # moto unreachable: report it, answer 500
                log["upstream_error"] = repr(e)
                status, ctype, extra, data = 599, "", [], b""
            log["upstream_status"] = status
            if status != 200 or fails.count(None) == len(records):
                # Nothing injected (or moto refused): relay moto's answer as it is.
                if status != 200:
                    log["upstream_body"] = data[:500].decode("utf-8", "replace")
                    for i in keep:
                        entries[i]["result"] = "upstream_" + str(status)
                    srv.write_log(log)
                    if status == 599:
                        return self.reply(500, b'{"__type":"InternalFailure"}')
                    return self.reply(status, data, ctype, extra)
            resp = json.loads(data)
            log["upstream_failed"] = resp.get(failed_field)
            got = resp.get(answers_field, [])
            if len(got) != len(keep):
                log["upstream_error"] = f"{len(got)} entries for {len(keep)}"
            for i, r in zip(keep, got):
                out[i] = r
                entries[i]["result"] = "stored" if stored_field in r else r.get("ErrorCode")
        log["status"] = 200
        srv.write_log(log)
        failed = sum(1 for r in out if r is None or stored_field not in r)
        self.reply(200, json.dumps({failed_field: failed, answers_field: out, **extra_fields}).encode())


class Server(ThreadingHTTPServer):
    # Many connections may open at once (N requests in flight): the default backlog of 5
    # would drop SYNs and cost the client a one-second retransmission.
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--drop-rate", type=float, default=0.0)
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="wait this long before forwarding or answering each request")
    opts = ap.parse_args()
    if opts.latency_ms < 0:
        ap.error("--latency-ms must be >= 0")
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.opts, server.requests, server.rng = opts, 0, random.Random(opts.seed)
    server.lock = threading.Lock()
    logf = open(opts.log, "w")

    def write_log(obj):
        with server.lock:
            logf.write(json.dumps(obj) + "\n")
            logf.flush()
    server.write_log = write_log
    with open(opts.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(opts.port_file + ".tmp", opts.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
