"""A typed program over the native API and the drop-in: checked by mypy --strict in test.sh."""

from typing import Any, Dict, List, Tuple

from kinesis_batcher import KDS, FIREHOSE, Limits, Plan, Refusal, plan, plan_lines
from kinesis_batcher.compat import KinesisBatcher


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


if __name__ == "__main__":
    main()
