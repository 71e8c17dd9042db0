"""A typed program over the native API and the drop-in: checked by mypy --strict in test.sh."""

from typing import Any, Dict, List, Tuple

from kinesis_batcher import KDS, FIREHOSE, Limits, Plan, Refusal, plan, plan_lines
from kinesis_batcher.aggregation import Aggregated, aggregate, deaggregate
from kinesis_batcher.aws import Result, Retry, put_records
from kinesis_batcher.compat import KinesisBatcher


class FakeKinesis:
    def put_records(self, Records: List[Dict[str, Any]], StreamName: str) -> Dict[str, Any]:
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"} for _ in Records]}


def entries(n: int) -> List[Dict[str, Any]]:
    return [{"Data": b"event", "PartitionKey": f"user-{i % 7}"} for i in range(n)]


def requests(records: List[Dict[str, Any]], limits: Limits = KDS) -> Tuple[List[List[Any]], List[str]]:
    result: Plan = plan(records, limits)
    refused: List[str] = [f"{r.index}: {r.reason}" for r in result.refusals]
    return [b.records for b in result.batches], refused


def main() -> None:
    sent, refused = requests(entries(1200))
    assert [len(r) for r in sent] == [500, 500, 200] and refused == []
    lines = plan_lines(b"a\nb\n", FIREHOSE)
    assert lines.batches[0].end_offset == 3
    seen: List[Refusal] = []
    batcher = KinesisBatcher("json", on_refused=seen.append)
    total = sum(len(b) for b in batcher.batch_data(entries(10)))
    assert total == 10 and not seen
    custom: Limits = Limits(2, 500, 100).with_key_unit("utf16_units")
    assert custom.key_unit == "utf16_units"
    agg: Aggregated = aggregate(entries(100), KDS, max_bytes=51_200)
    first = agg.entries[0]
    assert len(deaggregate(first["Data"], first["PartitionKey"], first.get("ExplicitHashKey"))) == 100
    result: Result = put_records(FakeKinesis(), "s", entries(600), retry=Retry(max_attempts=3))
    assert len(result.stored) == 600 and result.ok and result.requests == 2


if __name__ == "__main__":
    main()
