"""The READMEs' Python examples, run as a reader runs them.

Every ```python block of bindings/python/README.md and of the top-level README.md runs in
its own interpreter: the installed package, a temporary directory as cwd and `python -I`
(neither the tree nor PYTHONPATH on sys.path), in a fresh namespace holding only the
prelude's names, which are what the snippets use without defining (your records, a
client...). Statements run one at a time as at the interactive prompt, so a line that
shows a value (`result.stored`) has it recorded; the checks below assert on those values
and on the requests the fake clients received, against what `kinesis_batcher.plan`
predicts.
"""

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kinesis_batcher import FIREHOSE, KDS, Limits, plan
from kinesis_batcher.aggregation import deaggregate

ROOT = Path(__file__).resolve().parents[3]
READMES = ["bindings/python/README.md", "README.md"]
PYTHON_INFO = {"python", "python3", "py"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    readme: str  # relative to ROOT
    line: int  # the README line of the block's first line of code (1-based)
    source: str

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"


def python_blocks(readme: str) -> list[Block]:
    """The fenced Python blocks of a Markdown file (CommonMark fences: ``` or ~~~, any
    indentation so that blocks in list items count, closed by the same character at least
    as long, or by the end of the file)."""
    lines = (ROOT / readme).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):  # not a fence: inline code
            i += 1
            continue
        close = re.compile(rf"^[ \t]*{re.escape(m['fence'][0])}{{{len(m['fence'])},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        info = m["info"].split()
        if info and info[0].lower() in PYTHON_INFO:
            indent = m["indent"]
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:j]]
            blocks.append(Block(readme, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


BLOCKS = [b for readme in READMES for b in python_blocks(readme)]

# Runs in the subprocess: argv[1] the job (JSON), argv[2] where to write the report
# (a repr() of plain values, read back with ast.literal_eval).
RUNNER = r'''
import ast, base64, dataclasses, json, os, sys

job = json.load(open(sys.argv[1]))
CALLS, LOGGED, SHOWN = [], [], []


class FakeClient:
    """Stands for boto3.client("kinesis") / ("firehose"): refuses what the service or
    boto3 would refuse outright, records each call, and answers that every record was
    stored, in the service's answer shape."""

    def __init__(self, service):
        self.service = service

    def put_records(self, *, Records, StreamName=None, StreamARN=None):
        assert self.service == "kinesis", f"put_records on a {self.service} client"
        assert 1 <= len(Records) <= 500, f"{len(Records)} records in one PutRecords"
        size = 0
        for r in Records:
            assert set(r) <= {"Data", "PartitionKey", "ExplicitHashKey"} and "Data" in r, r
            assert isinstance(r["Data"], (bytes, bytearray, str)), r
            assert 1 <= len(r["PartitionKey"]) <= 256, r
            size += len(r["Data"]) + len(r["PartitionKey"].encode())
        assert size <= 10 * 1024 * 1024, size
        CALLS.append(("kinesis", StreamName or StreamARN, [dict(r) for r in Records]))
        return {"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": str(i), "ShardId": "shardId-000000000000"} for i in range(len(Records))]}

    def put_record_batch(self, *, DeliveryStreamName, Records):
        assert self.service == "firehose", f"put_record_batch on a {self.service} client"
        assert 1 <= len(Records) <= 500, f"{len(Records)} records in one PutRecordBatch"
        for r in Records:
            assert set(r) == {"Data"} and isinstance(r["Data"], (bytes, bytearray, str)), r
        assert sum(len(r["Data"]) for r in Records) <= 4 * 1024 * 1024
        CALLS.append(("firehose", DeliveryStreamName, [dict(r) for r in Records]))
        return {"FailedPutCount": 0, "Encrypted": False,
                "RequestResponses": [{"RecordId": str(i)} for i in range(len(Records))]}


# The request files of the top-level README's send(): as `kinesis-batcher emit` writes
# them (README, "The command-line tool": request-000001.json, ..., Data in base64).
REQUESTS = [[b"request %d record %d \x00\xff\xc3\xa9" % (n, i) for i in range(n + 2)] for n in range(3)]


def write_requests(directory, target, name, keyed):
    os.mkdir(directory)
    for n, datas in enumerate(REQUESTS, 1):
        recs = [dict(Data=base64.b64encode(d).decode(), **({"PartitionKey": f"k{i}"} if keyed else {}))
                for i, d in enumerate(datas)]
        with open(f"{directory}/request-{n:06}.json", "w") as f:
            json.dump({target: name, "Records": recs}, f)


def prelude():
    """The names the snippets use without defining them, and nothing else."""
    import boto3

    # boto3.client: the boto3 block and the top-level README make their own clients;
    # they get the fake instead of reaching AWS.
    boto3.client = lambda service_name, *args, **kwargs: FakeClient(service_name)

    # records ("your records"): PutRecords entry dicts, the one shape all the package's
    # blocks take (the drop-in's json mode needs it). 64 to 84 bytes with the key, under
    # the drop-in example's 100-byte cap, and many, so that every block makes several
    # requests or aggregates. Index 100 has an empty key: each path must refuse it and
    # say so, never send it.
    records = [{"Data": b'{"n":%d,"pad":"%s"}' % (i, b"x" * (40 + i % 20)), "PartitionKey": f"user-{i % 7}"}
               for i in range(1203)]
    records[100]["PartitionKey"] = ""

    # lines: the boto3 block sends them to Firehose: bare bytes, a line each.
    lines = [b"line %d\n" % i for i in range(1203)]

    # log: the Native API block reports refusals with log.warning(format, *args). This
    # one formats at once, so that a format not matching its arguments fails the block
    # (logging would only print a traceback and go on).
    class Log:
        def warning(self, msg, *args):
            LOGGED.append(msg % args)

    # data, partition_key, explicit_hash_key: the aggregation block's last line decodes one
    # Kinesis record, as a consumer reads it; here one that the reference producer
    # (aws-kinesis-agg, the KPL's format) wrote, holding three user records.
    from aws_kinesis_agg.aggregator import RecordAggregator
    producer = RecordAggregator()
    for i in range(3):
        producer.add_user_record("pk", b"user record %d" % i)
    partition_key, explicit_hash_key, data = producer.clear_and_get().get_contents()

    # reqs/ and fh-reqs/ (directories, not names): the top-level README's
    # send("reqs/") and send("reqs/", firehose=True) read emit's request files.
    write_requests("reqs", "StreamName", "my-stream", keyed=True)
    write_requests("fh-reqs", "DeliveryStreamName", "my-delivery", keyed=False)

    return dict(client=FakeClient("kinesis"), records=records, lines=lines, log=Log(), data=data,
                partition_key=partition_key, explicit_hash_key=explicit_hash_key)


def plain(v):
    """A value that repr() writes and ast.literal_eval reads back."""
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {"__class__": type(v).__name__,
                **{f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    return repr(v)


names = prelude()
inputs = plain({k: names[k] for k in ("records", "lines", "data", "partition_key", "explicit_hash_key")})
inputs["requests"] = REQUESTS
ns = {"__name__": "__main__", **names}

# As at the interactive prompt: a statement's value goes to sys.displayhook, recorded with
# the line of the top-level statement that showed it.
line = [0]
sys.displayhook = lambda value: value is None or SHOWN.append((line[0], plain(value)))
try:
    tree = ast.parse(job["source"], job["filename"])
except SyntaxError as e:
    sys.exit(f'{job["filename"]}:{job["line"] - 1 + (e.lineno or 1)}: {e.msg}')
ast.increment_lineno(tree, job["line"] - 1)
for stmt in tree.body:
    line[0] = stmt.lineno
    exec(compile(ast.Interactive(body=[stmt]), job["filename"], "single"), ns)
line[0] = 0
exec(compile(job["after"], "<after>", "exec"), ns)

import kinesis_batcher
with open(sys.argv[2], "w") as f:
    f.write(repr(dict(calls=CALLS, logged=LOGGED, shown=SHOWN, inputs=inputs, package=kinesis_batcher.__file__)))
'''


def run_block(block: Block, tmp_path: Path, after: str = "") -> tuple[dict, str]:
    """Runs one block in a fresh interpreter in tmp_path; returns (report, stderr)."""
    job, report = tmp_path / "job.json", tmp_path / "report.txt"
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    job.write_text(json.dumps({"source": block.source, "filename": str(ROOT / block.readme),
                               "line": block.line, "after": after}))
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-I", str(runner), str(job), str(report)], cwd=work,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{block.id} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    return ast.literal_eval(report.read_text()), proc.stderr


def requests_to(report: dict, service: str, target: str) -> list[list[dict]]:
    """The records of each request the fake clients received for one stream, in order."""
    return [recs for s, t, recs in report["calls"] if (s, t) == (service, target)]


def targets(report: dict) -> set[tuple[str, str]]:
    """Every (service, stream) the block sent to: nothing goes anywhere unexpected."""
    return {(s, t) for s, t, _ in report["calls"]}


def shown(block: Block, report: dict, text: str) -> list:
    """The values shown by the top-level statement on the one block line containing text."""
    at = [block.line + n for n, line in enumerate(block.source.splitlines()) if text in line]
    assert len(at) == 1, f"{block.id}: {len(at)} lines contain {text!r}"
    return [v for line, v in report["shown"] if line == at[0]]


def flatten(requests: list[list]) -> list:
    return [r for request in requests for r in request]


def valid(records: list[dict]) -> list[dict]:
    """The records a service can take: all but the prelude's empty-key one."""
    return [r for r in records if r["PartitionKey"]]


def check_drop_in(block, report, stderr):
    records = report["inputs"]["records"]
    # The example's KinesisBatcher(record_max_size=100, batch_max_size=500, max_records_per_batch=2).
    expected = plan(records, Limits(2, 500, 100))
    assert targets(report) == {("kinesis", "your-stream-name")}
    sent = requests_to(report, "kinesis", "your-stream-name")
    assert sent == [b.records for b in expected.batches]
    assert len(sent) == 601 and all(len(r) <= 2 for r in sent)
    assert flatten(sent) == valid(records)  # all, in order, and never the refused one
    # The refused record is reported (the default on_refused warns), not dropped silently.
    assert "RefusedRecordWarning: record 100 refused (key_empty)" in stderr


def check_drop_in_defaults(block, report, stderr):
    records = report["inputs"]["records"]
    # The original's defaults: 500 records, 5 MiB a batch, 1 MiB a record.
    expected = plan(records, Limits(500, 5 * 1024 * 1024, 1024 * 1024))
    assert targets(report) == {("kinesis", "my-stream")}
    sent = requests_to(report, "kinesis", "my-stream")
    assert sent == [b.records for b in expected.batches] and len(sent) == 4
    assert flatten(sent) == valid(records)
    assert "RefusedRecordWarning: record 100 refused (key_empty)" in stderr


def check_native(block, report, stderr):
    records = report["inputs"]["records"]
    expected = plan(records, KDS)
    assert targets(report) == {("kinesis", "s")}
    sent = requests_to(report, "kinesis", "s")
    # 4 requests, not 3: the refused record closes the batch it would have joined.
    assert sent == [b.records for b in expected.batches] and len(sent) == 4
    assert flatten(sent) == valid(records)
    assert report["logged"] == [f"record 100: key_empty ({expected.refusals[0].message})"]


def check_boto3(block, report, stderr):
    records, lines = report["inputs"]["records"], report["inputs"]["lines"]
    assert shown(block, report, "result.stored") == [[i for i in range(len(records)) if i != 100]]
    [refused] = shown(block, report, "result.refused")
    assert [(r["index"], r["reason"]) for r in refused] == [(100, "key_empty")]
    assert shown(block, report, "result.failed") == [[]]
    [firehose_result] = shown(block, report, "put_record_batch(")
    assert firehose_result["stored"] == list(range(len(lines))) and firehose_result["refused"] == []
    assert targets(report) == {("kinesis", "my-stream"), ("firehose", "my-delivery-stream")}
    kinesis_sent = requests_to(report, "kinesis", "my-stream")
    # The helper's requests run across a refused record: plan says so with spanning_refusals.
    assert kinesis_sent == [b.records for b in plan(records, KDS.spanning_refusals(True)).batches]
    assert [len(r) for r in kinesis_sent] == [500, 500, 202]
    assert flatten(kinesis_sent) == valid(records)
    firehose_sent = requests_to(report, "firehose", "my-delivery-stream")
    assert len(firehose_sent) == len(plan(lines, FIREHOSE).batches) == firehose_result["requests"] == 3
    assert [r["Data"] for r in flatten(firehose_sent)] == lines


def check_aggregation(block, report, stderr):
    records = report["inputs"]["records"]
    [ranges] = shown(block, report, "agg.ranges")
    assert targets(report) == {("kinesis", "my-stream")}
    [sent] = requests_to(report, "kinesis", "my-stream")  # one request: plan says so below
    assert len(plan(sent, KDS).batches) == 1
    assert len(sent) == len(ranges) >= 2  # 51,200-byte aggregates: several
    [result] = shown(block, report, "put_records(client")
    assert result["stored"] == list(range(len(sent))) and result["requests"] == 1
    # Each Kinesis record sent holds exactly the valid user records of its range, in order.
    for entry, (start, end) in zip(sent, ranges):
        users = deaggregate(entry["Data"], entry["PartitionKey"], entry.get("ExplicitHashKey"))
        assert [(u.data, u.partition_key) for u in users] == [
            (r["Data"], r["PartitionKey"]) for r in valid(records[start:end])]
    assert [i for s, e in ranges for i in range(s, e)] == [i for i, r in enumerate(records) if r["PartitionKey"]]
    decoded = shown(block, report, "deaggregate(")
    assert decoded == [[b"user record 0", b"user record 1", b"user record 2"]]


def check_send_files(block, report, stderr):
    requests = report["inputs"]["requests"]
    assert targets(report) == {("kinesis", "my-stream"), ("firehose", "my-delivery")}
    assert requests_to(report, "kinesis", "my-stream") == [
        [{"Data": d, "PartitionKey": f"k{i}"} for i, d in enumerate(datas)] for datas in requests]
    # The snippet's comment: send("reqs/", firehose=True) for --profile firehose files.
    assert requests_to(report, "firehose", "my-delivery") == [[{"Data": d} for d in datas] for datas in requests]


# Which block each check is for (a line the block holds), and code run after the block.
CHECKS = {
    "batcher = KinesisBatcher(input_format=\"json\", record_max_size=100": (check_drop_in, ""),
    "for batch in KinesisBatcher(input_format=\"json\").batch_data(records):": (check_drop_in_defaults, ""),
    "result = plan(records, KDS)": (check_native, ""),
    "from kinesis_batcher.aws import Retry, put_records, put_record_batch": (check_boto3, ""),
    "from kinesis_batcher.aggregation import aggregate, deaggregate": (check_aggregation, ""),
    "def send(directory, firehose=False):": (check_send_files, 'send("fh-reqs/", firehose=True)'),
}


def checks_of(block: Block) -> list:
    return [v for marker, v in CHECKS.items() if marker in block.source]


@pytest.mark.parametrize("readme", READMES)
def test_readme_has_python_blocks(readme):
    # A renamed fence (```py3, ```Python...) must not skip everything silently.
    assert python_blocks(readme), f"no ```python block found in {readme}"


def test_every_check_finds_its_block():
    for marker in CHECKS:
        assert sum(marker in b.source for b in BLOCKS) == 1, f"no single README block holds {marker!r}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs(block, tmp_path):
    checks = checks_of(block)
    after = "".join(a for _, a in checks)
    report, stderr = run_block(block, tmp_path, after)
    # The installed package (test.sh's venv lives in target/), not the tree's sources.
    assert not Path(report["package"]).resolve().is_relative_to(ROOT / "bindings"), report["package"]
    for check, _ in checks:
        check(block, report, stderr)
