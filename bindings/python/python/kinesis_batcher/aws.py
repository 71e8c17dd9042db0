"""Sending with boto3: plan, send, re-send only the failed entries, report everything.

``put_records(client, stream_name, records)`` delivers records to a Kinesis data stream
with a boto3 ``kinesis`` client; ``put_record_batch(client, delivery_stream_name,
records)`` to a Firehose stream with a ``firehose`` client. Both follow the core's retry
planning (``kinesis_batcher.Delivery``): failed entries are sent again, first and in
order, in the next request (topped up with records not sent yet), with exponential backoff
and full jitter between requests; retryable errors are retried within the attempt and age
limits, terminal ones (validation, access denied, credentials...) are not. The result
says, by input index, what was stored, what was refused before sending, and what failed.

boto3 is not imported here: pass any client with the boto3 method and answer shapes.
A connection lost after the service stored a request makes the records be sent again
(at-least-once): Kinesis has no idempotent writes.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._native import Delivery, Limits

__all__ = ["Retry", "Failure", "Result", "put_records", "put_record_batch"]


@dataclass(frozen=True)
class Retry:
    """Retry policy; 0 means the core's default (10 attempts, 5 minutes, 100 ms to 10 s)."""

    max_attempts: int = 0
    max_age_ms: int = 0
    base_ms: int = 0
    cap_ms: int = 0
    per_key_order: bool = False


@dataclass(frozen=True)
class Failure:
    """A record that will not be sent again: its input index, the error kind (such as
    ``"throughput_exceeded"`` or ``"access_denied"``), and whether the retry limits gave
    up on it (``gave_up``) rather than the error being terminal."""

    index: int
    kind: str
    gave_up: bool


@dataclass(frozen=True)
class Refused:
    """A record that can never be sent: input index, reason name and message."""

    index: int
    reason: str
    message: str


@dataclass
class Result:
    """What a delivery did, by input index. Every index is in exactly one of ``stored``,
    ``refused`` and ``failed``."""

    stored: List[int] = field(default_factory=list)
    refused: List[Refused] = field(default_factory=list)
    failed: List[Failure] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        """True when every record was stored."""
        return not self.refused and not self.failed


# botocore's errors raised before any answer, by class name (the module never imports
# botocore): those that mean no request reached the service in a state it could store
# (the connection failed or timed out) are transport errors, retried; those the client
# raises before sending (bad parameters, no credentials) are terminal, under the service
# code that means the same.
_BOTOCORE_TRANSPORT = {"ConnectionError", "HTTPClientError"}
_BOTOCORE_TERMINAL = {
    "ParamValidationError": "ValidationException",
    "NoCredentialsError": "MissingAuthenticationToken",
    "PartialCredentialsError": "MissingAuthenticationToken",
    "CredentialRetrievalError": "MissingAuthenticationToken",
    "NoAuthTokenError": "MissingAuthenticationToken",
}


def _botocore_classes(exc: BaseException) -> List[str]:
    return [c.__name__ for c in type(exc).__mro__ if c.__module__ == "botocore.exceptions"]


def _error_of(exc: BaseException) -> Optional[Tuple[str, int]]:
    """The (code, HTTP status) of a botocore ClientError, or of an error botocore raises
    before sending that can never succeed; None for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        code = str(response["Error"].get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code, status
    for name in _botocore_classes(exc):
        if name in _BOTOCORE_TERMINAL:
            return _BOTOCORE_TERMINAL[name], 0
    return None


def _is_transport(exc: BaseException) -> bool:
    """A connection or timeout error: no answer, so every entry may be sent again."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    if any(c.__module__.startswith("urllib3") for c in type(exc).__mro__):
        return True
    return any(name in _BOTOCORE_TRANSPORT for name in _botocore_classes(exc))


def _deliver(
    records: Sequence[Any],
    limits: Limits,
    key: Optional[str],
    retry: Retry,
    entry: Callable[[Any], Dict[str, Any]],
    send: Callable[[List[Dict[str, Any]]], List[Optional[str]]],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Result:
    delivery = Delivery(
        records,
        limits,
        key=key,
        max_attempts=retry.max_attempts,
        max_age_ms=retry.max_age_ms,
        base_ms=retry.base_ms,
        cap_ms=retry.cap_ms,
        per_key_order=retry.per_key_order,
    )
    items = delivery.records
    start = clock()

    def now_ms() -> int:
        return int((clock() - start) * 1000)

    result = Result()
    while True:
        status, entries, refusals = delivery.next_request(now_ms())
        result.refused.extend(Refused(i, r, m) for i, r, m in refusals)
        if status == "done":
            return result
        if not entries:
            continue
        request = [entry(items[i]) for i, _ in entries]
        result.requests += 1
        try:
            codes = send(request)
        except Exception as exc:  # noqa: BLE001 - classified, then re-raised if unknown
            error = _error_of(exc)
            if error is not None:
                _, terminal = delivery.settle_error(error[0], error[1], now_ms())
            elif _is_transport(exc):
                _, terminal = delivery.settle(None, now_ms())
            else:
                raise
        else:
            _, terminal = delivery.settle(codes, now_ms())
            if len(codes) == len(entries):
                result.stored.extend(i for (i, _), c in zip(entries, codes) if c is None)
        result.failed.extend(Failure(i, k, g) for i, k, g in terminal)
        delay = delivery.backoff_ms(random.getrandbits(64))
        if delay:
            sleep(delay / 1000)


def _kinesis_entry(key: Optional[str]) -> Callable[[Any], Dict[str, Any]]:
    def entry(record: Any) -> Dict[str, Any]:
        if isinstance(record, dict):
            return record
        if isinstance(record, tuple):
            e = {"Data": record[0], "PartitionKey": record[1]}
            if len(record) == 3 and record[2] is not None:
                e["ExplicitHashKey"] = record[2]
            return e
        return {"Data": record, "PartitionKey": key}

    return entry


def _firehose_entry(record: Any) -> Dict[str, Any]:
    if isinstance(record, dict):
        return {"Data": record["Data"]}
    if isinstance(record, tuple):
        return {"Data": record[0]}
    return {"Data": record}


def put_records(
    client: Any,
    stream_name: str,
    records: Sequence[Any],
    *,
    limits: Limits = Limits.KDS,
    key: Optional[str] = None,
    retry: Retry = Retry(),
    stream_arn: Optional[str] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Delivers ``records`` to the Kinesis data stream ``stream_name`` with
    ``client.put_records``, re-sending only failed entries. Records are PutRecords entry
    dicts, ``(data, key[, hash_key])`` tuples, or bare data with ``key=``. Use
    ``limits=Limits.KDS_5MIB`` for emulators and regions on the pre-2025 5 MiB request."""
    target: Dict[str, Any] = {"StreamARN": stream_arn} if stream_arn else {"StreamName": stream_name}

    def send(request: List[Dict[str, Any]]) -> List[Optional[str]]:
        response = client.put_records(Records=request, **target)
        return [r.get("ErrorCode") for r in response["Records"]]

    return _deliver(records, limits, key, retry, _kinesis_entry(key), send, sleep, clock)


def put_record_batch(
    client: Any,
    delivery_stream_name: str,
    records: Sequence[Any],
    *,
    limits: Limits = Limits.FIREHOSE,
    retry: Retry = Retry(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Delivers ``records`` (bare data, or dicts with ``Data``) to the Firehose stream
    ``delivery_stream_name`` with ``client.put_record_batch``, re-sending only failed
    entries."""

    def send(request: List[Dict[str, Any]]) -> List[Optional[str]]:
        response = client.put_record_batch(DeliveryStreamName=delivery_stream_name, Records=request)
        return [r.get("ErrorCode") for r in response["RequestResponses"]]

    return _deliver(records, limits, None, retry, _firehose_entry, send, sleep, clock)
