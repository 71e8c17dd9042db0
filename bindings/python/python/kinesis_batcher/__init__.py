"""kinesis-batcher for Python: records cut into Kinesis ``PutRecords`` / Firehose
``PutRecordBatch`` requests by the Rust core, with every refusal reported.

>>> from kinesis_batcher import plan, KDS
>>> p = plan([{"Data": b"x", "PartitionKey": "k"}, {"Data": b"y", "PartitionKey": ""}], KDS)
>>> [b.records for b in p.batches], [(r.index, r.reason) for r in p.refusals]
([[{'Data': b'x', 'PartitionKey': 'k'}]], [(1, 'key_empty')])

Records may be boto3 ``PutRecords`` entry dicts (``Data``, ``PartitionKey``, optional
``ExplicitHashKey``), ``(data, key)`` or ``(data, key, hash_key)`` tuples, or bare data
(``bytes``, ``str``, any bytes-like object) with one ``key=`` for all. Data is never read
or copied: only its length (a ``str`` counts its UTF-8 bytes). Keys are read in place.
"""

from ._native import (
    REASONS,
    Batch,
    Delivery,
    LineBatch,
    LinePlan,
    LineRefusal,
    Limits,
    Plan,
    Refusal,
    classify_error,
    plan,
    plan_lines,
)

KDS: Limits = Limits.KDS
"""Kinesis Data Streams today: 500 records, 10 MiB a request, 1 MiB a record."""
KDS_5MIB: Limits = Limits.KDS_5MIB
"""Kinesis Data Streams before 2025 and moto: 500 records, 5 MiB, 1 MiB."""
FIREHOSE: Limits = Limits.FIREHOSE
"""Firehose PutRecordBatch: 500 records, 4 MiB, 1,024,000 bytes, no key."""

__all__ = [
    "FIREHOSE",
    "KDS",
    "KDS_5MIB",
    "REASONS",
    "Batch",
    "Delivery",
    "LineBatch",
    "LinePlan",
    "LineRefusal",
    "Limits",
    "Plan",
    "Refusal",
    "classify_error",
    "plan",
    "plan_lines",
]
