"""Aggregation in the KPL's record format (the one ``aws-kinesis-agg`` and every KCL
consumer read), planned, encoded and decoded by the core.

``aggregate(records)`` returns Kinesis records as ``PutRecords`` entry dicts (send them
with ``put_records``, or plan them with ``plan``: an aggregate counts as one record) and
which user records each holds. Each is measured as the service measures it, outer
partition key included, so none is a byte over the record cap. The default mode,
``"shared_hash_key"``, keeps every user record inside the hash key the aggregate is
routed by, so a KCL consumer never drops one after a reshard; ``"one_key"`` aggregates
runs of records with the same key under that key; ``"per_shard"`` aggregates runs of
records bound for the same shard of ``shards=`` (the stream's open shards), as the KPL
does: smaller aggregates on a busy stream, but a consumer drops the records of an
aggregate that a reshard since has split across shards (the KCL's filter). ``deaggregate`` reads one Kinesis
record back (a plain record yields itself) and raises ``ValueError`` on a damaged one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

from . import _native
from ._native import Limits

__all__ = ["Aggregated", "UserRecord", "aggregate", "deaggregate"]


@dataclass(frozen=True)
class Aggregated:
    """Kinesis records (``entries``, PutRecords entry dicts), the user records each holds
    (``ranges``, input index ``start``..``end``), and the refused user records
    (``refusals``, ``(index, reason, message)``)."""

    entries: List[Dict[str, Any]]
    ranges: List[Tuple[int, int]]
    refusals: List[Tuple[int, str, str]]


@dataclass(frozen=True)
class UserRecord:
    data: bytes
    partition_key: str
    explicit_hash_key: Optional[str]


def aggregate(
    records: Sequence[Any],
    limits: Limits = Limits.KDS,
    *,
    key: Optional[str] = None,
    mode: Literal["shared_hash_key", "one_key", "per_shard"] = "shared_hash_key",
    max_bytes: int = 0,
    shards: Optional[Sequence[Any]] = None,
) -> Aggregated:
    """Aggregates ``records`` (entry dicts, ``(data, key[, hash_key])`` tuples, or bare
    ``bytes``/``str`` with ``key=``) into Kinesis records of at most ``max_bytes`` (0: the
    limits' record cap; the KPL's default is 51,200).

    ``shards`` (with ``mode="per_shard"`` only) is the stream's open shards, as
    ``client.list_shards(StreamName=..., ShardFilter={"Type": "AT_LATEST"})["Shards"]``
    returns them, or ``(starting_hash_key, ending_hash_key)`` pairs; they must tile the
    hash key space (``ValueError`` otherwise)."""
    out, refused = _native.aggregate(records, limits, key=key, mode=mode, max_bytes=max_bytes, shards=shards)
    return Aggregated([e for e, _, _ in out], [(s, t) for _, s, t in out], list(refused))


def deaggregate(data: bytes, partition_key: str, explicit_hash_key: Optional[str] = None) -> List[UserRecord]:
    """The user records of one Kinesis record, checked whole (magic, digest, every field)
    before any is returned."""
    return [UserRecord(d, k, h) for d, k, h in _native.deaggregate(data, partition_key, explicit_hash_key)]
