"""kinesis_batcher.aws end to end against moto: directly, and through
tests/e2e/fault_proxy.py (failed entries, 500/503 answers, dropped connections).
Nothing lost, nothing duplicated, every index accounted for once."""

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

import boto3  # noqa: E402  (test.sh installs boto3 and moto: these tests never skip)
import moto.server as moto_server  # noqa: E402

from kinesis_batcher import KDS_5MIB, FIREHOSE, Limits  # noqa: E402
from kinesis_batcher.aws import Retry, put_record_batch, put_records  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FAULT_PROXY = os.path.join(ROOT, "tests", "e2e", "fault_proxy.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def moto_port():
    for k, v in dict(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                     AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null").items():
        os.environ[k] = v
    os.environ.pop("AWS_PROFILE", None)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield port
    server.stop()


def kinesis(port):
    return without_sdk_retries("kinesis", port)


def without_sdk_retries(service, port):
    """A client that sends each call once, so that the helper's retries are the core's
    and every request the proxy logs is one the helper counted. (botocore's
    retries={"max_attempts": 1} means one retry, two attempts; total_max_attempts=1
    means none.)"""
    from botocore.config import Config
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10,
                                      connect_timeout=5))


def make_stream(client, name, shards=2):
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})


def read_all(client, name):
    out = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = client.get_records(ShardIterator=it, Limit=10000)
            out.extend(r["Records"])
            if not r["Records"]:
                break
            it = r["NextShardIterator"]
    return out


def workload(n):
    recs = [{"Data": json.dumps({"n": i, "pad": "x" * (i % 300)}).encode(), "PartitionKey": f"user-{i % 37}"}
            for i in range(n)]
    recs[5]["PartitionKey"] = ""                       # refused: key_empty
    recs[17] = {"Data": b"x" * (1024 * 1024), "PartitionKey": "big"}  # refused: too large
    recs[23] = {"Data": 12345, "PartitionKey": "k"}    # refused: invalid_record
    return recs


def check_exactly_once(client, name, recs, result):
    refused = {r.index for r in result.refused}
    assert refused == {5, 17, 23}
    assert sorted(r.reason for r in result.refused) == ["invalid_record", "key_empty", "record_too_large"]
    assert result.failed == []
    assert sorted(result.stored) == [i for i in range(len(recs)) if i not in refused]
    stored = Counter(json.loads(r["Data"])["n"] for r in read_all(client, name))
    assert set(stored.values()) == {1}, "a record was stored twice"
    assert set(stored) == set(result.stored)


def test_put_records_against_moto(moto_port):
    client = kinesis(moto_port)
    make_stream(client, "direct")
    recs = workload(3000)
    result = put_records(client, "direct", recs, limits=KDS_5MIB)
    check_exactly_once(client, "direct", recs, result)
    assert result.requests == 6  # 2997 records, 500 a request


def test_tuples_and_one_key(moto_port):
    client = kinesis(moto_port)
    make_stream(client, "forms", 1)
    result = put_records(client, "forms", [(b"a", "k"), (b"b", "k", "0")], limits=KDS_5MIB)
    assert result.stored == [0, 1] and result.ok
    result = put_records(client, "forms", [b"c", "d"], key="one", limits=KDS_5MIB)
    assert result.stored == [0, 1]
    assert [r["Data"] for r in read_all(client, "forms")] == [b"a", b"b", b"c", b"d"]


@pytest.fixture
def proxy(moto_port, tmp_path):
    port_file, log = tmp_path / "port", tmp_path / "log.jsonl"
    proc = subprocess.Popen([sys.executable, FAULT_PROXY, "--upstream-port", str(moto_port), "--port-file",
                             str(port_file), "--log", str(log), "--seed", "14", "--fail-rate", "0.2",
                             "--error-rate", "0.15", "--drop-rate", "0.1"])
    for _ in range(100):
        if port_file.exists() and port_file.read_text().strip():
            break
        time.sleep(0.05)
    yield int(port_file.read_text()), log
    proc.terminate()
    proc.wait()


def test_put_records_through_fault_proxy(moto_port, proxy):
    port, log = proxy
    make_stream(kinesis(moto_port), "faults")
    recs = workload(2000)
    slept = []
    result = put_records(kinesis(port), "faults", recs, limits=KDS_5MIB,
                         retry=Retry(max_attempts=50, base_ms=1, cap_ms=5), sleep=slept.append)
    check_exactly_once(kinesis(moto_port), "faults", recs, result)
    actions = Counter(json.loads(line)["action"] for line in log.read_text().splitlines())
    assert actions["drop"] and actions["http_error"], actions  # the faults happened
    failed_entries = sum(1 for line in log.read_text().splitlines()
                         for e in json.loads(line)["entries"] if e["result"] not in ("stored",))
    assert failed_entries > 0
    assert result.requests > 4 and slept  # re-sent with backoff


def test_terminal_errors_are_not_retried(moto_port):
    client = kinesis(moto_port)
    calls = []
    result = put_records(client, "no-such-stream", [(b"a", "k")] * 3, limits=KDS_5MIB,
                         sleep=calls.append)
    assert [(f.index, f.kind, f.gave_up) for f in result.failed] == [
        (0, "resource_not_found", False), (1, "resource_not_found", False), (2, "resource_not_found", False)]
    assert result.requests == 1 and result.stored == []


def test_gives_up_after_max_attempts():
    class Throttled:
        def __init__(self):
            self.calls = 0

        def put_records(self, Records, StreamName):
            self.calls += 1
            return {"FailedRecordCount": len(Records),
                    "Records": [{"ErrorCode": "ProvisionedThroughputExceededException"} for _ in Records]}

    client = Throttled()
    result = put_records(client, "s", [(b"a", "k")], retry=Retry(max_attempts=3), sleep=lambda s: None)
    assert client.calls == 3
    assert [(f.index, f.kind, f.gave_up) for f in result.failed] == [(0, "throughput_exceeded", True)]


def test_unknown_exceptions_propagate():
    class Broken:
        def put_records(self, **kw):
            raise ZeroDivisionError()

    with pytest.raises(ZeroDivisionError):
        put_records(Broken(), "s", [(b"a", "k")])


@pytest.mark.parametrize("error, kind", [
    ("ParamValidationError", "validation"), ("NoCredentialsError", "credentials"),
    ("PartialCredentialsError", "credentials")])
def test_botocore_errors_before_sending_are_terminal(error, kind):
    # Raised by the client before anything is sent, and the same on every attempt: each
    # entry fails at once with its kind, never retried as a lost connection.
    import botocore.exceptions as bx
    exc = {"ParamValidationError": lambda: bx.ParamValidationError(report="stream name too long"),
           "NoCredentialsError": bx.NoCredentialsError,
           "PartialCredentialsError": lambda: bx.PartialCredentialsError(provider="env", cred_var="x")}[error]()
    calls = []

    class Client:
        def put_records(self, **kw):
            calls.append(kw)
            raise exc

    result = put_records(Client(), "s", [(b"a", "k"), (b"b", "k")], sleep=lambda s: None)
    assert len(calls) == 1 and result.stored == []
    assert [(f.index, f.kind, f.gave_up) for f in result.failed] == [(0, kind, False), (1, kind, False)]


def test_botocore_connection_errors_are_retried():
    import botocore.exceptions as bx
    errors = [bx.EndpointConnectionError(endpoint_url="http://x"), bx.ReadTimeoutError(endpoint_url="http://x"),
              bx.ConnectionClosedError(endpoint_url="http://x")]
    calls = []

    class Client:
        def put_records(self, **kw):
            calls.append(kw)
            if errors:
                raise errors.pop(0)
            return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s"}] * len(kw["Records"])}

    result = put_records(Client(), "s", [(b"a", "k")], sleep=lambda s: None)
    assert len(calls) == 4 and result.stored == [0] and result.failed == []


def test_firehose_put_record_batch(moto_port):
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
    s3.create_bucket(Bucket="fh-bucket")
    fh = boto3.client("firehose", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
    fh.create_delivery_stream(DeliveryStreamName="fh", DeliveryStreamType="DirectPut",
                              ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/x",
                                                                  "BucketARN": "arn:aws:s3:::fh-bucket"})
    lines = [b"line %d\n" % i for i in range(1203)] + [b"x" * 1_024_001]
    result = put_record_batch(fh, "fh", lines, limits=FIREHOSE)
    assert result.stored == list(range(1203))
    assert [(r.index, r.reason) for r in result.refused] == [(1203, "record_too_large")]
    assert result.requests == 3


def test_limits_reject_what_moto_rejects(moto_port):
    # KDS (10 MiB) against moto, which keeps the 5 MiB request cap: the service's own
    # validation error is terminal, reported per record, not retried forever.
    client = kinesis(moto_port)
    make_stream(client, "tenmib", 1)
    recs = [(b"x" * (1000 * 1000), "k")] * 7
    result = put_records(client, "tenmib", recs, limits=Limits.KDS, sleep=lambda s: None)
    assert result.stored == [] and len(result.failed) == 7
    assert all(not f.gave_up for f in result.failed)


def test_put_records_per_key_order_through_fault_proxy(moto_port, proxy):
    # Many records over a few keys through failed entries, 500/503 answers and dropped
    # connections: with per_key_order each key's records are still stored in input order.
    # (Without it a failed entry is stored after the records of its key that followed it.)
    port, log = proxy
    make_stream(kinesis(moto_port), "per-key-order")
    keys = [f"device-{k}" for k in range(5)]
    pick = random.Random(7)
    recs = [{"Data": b'{"n":%d}' % i, "PartitionKey": pick.choice(keys)} for i in range(600)]
    slept = []
    result = put_records(without_sdk_retries("kinesis", port), "per-key-order", recs, limits=KDS_5MIB,
                         retry=Retry(max_attempts=50, base_ms=1, cap_ms=5, per_key_order=True),
                         sleep=slept.append)

    # What the helper reported: every record stored, once, each key's in input order.
    assert result.ok and result.refused == [] and result.failed == []
    assert sorted(result.stored) == list(range(len(recs)))
    by_key = {k: [i for i, r in enumerate(recs) if r["PartitionKey"] == k] for k in keys}
    for key, indices in by_key.items():
        assert [i for i in result.stored if recs[i]["PartitionKey"] == key] == indices, key

    # What the stream holds (a key is in one shard, read in order): the same.
    stored = read_all(kinesis(moto_port), "per-key-order")
    numbers = [json.loads(r["Data"])["n"] for r in stored]
    assert sorted(numbers) == list(range(len(recs))), "a record lost or stored twice"
    for key, indices in by_key.items():
        assert [json.loads(r["Data"])["n"] for r in stored if r["PartitionKey"] == key] == indices, key

    # The faults happened, on entries too, and no request held two records of one key.
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    actions = Counter(r["action"] for r in requests)
    assert actions["drop"] and actions["http_error"], actions
    assert any(e["result"] in ("ProvisionedThroughputExceededException", "InternalFailure")
               for r in requests for e in r["entries"])
    for r in requests:
        request_keys = [e["key"] for e in r["entries"]]
        assert len(request_keys) == len(set(request_keys)), r["n"]
    assert result.requests == len(requests) and slept


def test_firehose_put_record_batch_through_fault_proxy(moto_port, proxy):
    # Moto's Firehose writes each PutRecordBatch it takes as one S3 object in its own S3:
    # read the bucket back, every line exactly once.
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1")
    s3.create_bucket(Bucket="fh-faults-bucket")
    without_sdk_retries("firehose", moto_port).create_delivery_stream(
        DeliveryStreamName="fh-faults", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/x",
                                            "BucketARN": "arn:aws:s3:::fh-faults-bucket"})
    lines = [b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % 50)) for i in range(3000)]
    lines.insert(1234, b"x" * 1_024_001)  # refused: too large, never sent
    slept = []
    port, log_file = proxy
    client = without_sdk_retries("firehose", port)
    result = put_record_batch(client, "fh-faults", lines, limits=FIREHOSE,
                              retry=Retry(max_attempts=50, base_ms=1, cap_ms=5), sleep=slept.append)

    # What the helper reported.
    assert [(r.index, r.reason) for r in result.refused] == [(1234, "record_too_large")]
    assert result.failed == []
    assert sorted(result.stored) == [i for i in range(len(lines)) if i != 1234]

    # What the bucket holds: every line sent exactly once, and nothing else.
    delivered = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="fh-faults-bucket"):
        for obj in page.get("Contents", []):
            delivered += s3.get_object(Bucket="fh-faults-bucket", Key=obj["Key"])["Body"].read().splitlines(True)
    counts = Counter(delivered)
    assert set(counts.values()) == {1}, "a line stored twice"
    assert set(counts) == {lines[i] for i in result.stored}, "a line lost"

    # The faults happened, and the proxy saw each line accepted exactly once.
    log = [json.loads(line) for line in log_file.read_text().splitlines()]
    actions = Counter(r["action"] for r in log)
    assert actions["drop"] and actions["http_error"], actions
    results = Counter(e["result"] for r in log for e in r["entries"])
    assert results["ServiceUnavailableException"] and results["InternalFailure"], results
    accepted = Counter(e["line"] for r in log for e in r["entries"] if e["result"] == "stored")
    assert accepted == Counter(int(line[5:line.index(b",")]) for line in counts)
    assert result.requests == len(log) and slept
