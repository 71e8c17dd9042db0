"""A pure-Python model of the service's rules and greedy in-order planning, written from
the README (not from the core), for the property tests to compare against."""

from typing import Any, List, Optional, Tuple

MIB = 1024 * 1024


def key_reason(key: Any, unit: str = "code_points") -> Optional[str]:
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return "key_not_utf8"
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        return "key_not_utf8"
    if len(raw) == 0:
        return "key_empty"
    units = {"code_points": len(key), "utf16_units": len(key.encode("utf-16-le")) // 2, "utf8_bytes": len(raw)}[unit]
    if units > 256:
        return "key_too_long"
    return None


def hash_key_ok(h: str) -> bool:
    if h == "0":
        return True
    if not h or not h.isascii() or not h.isdigit() or h[0] == "0" or len(h) > 39:
        return False
    return int(h) <= 2**128 - 1


def size_of(data: Any, key: Any, hash_key: Any, max_record: int, keyed: bool = True) -> Tuple[int, Optional[str]]:
    n = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if keyed:
        why = key_reason(key)
        if why:
            return 0, why
        if hash_key is not None and not hash_key_ok(hash_key):
            return 0, "hash_key_invalid"
        n += len(key.encode("utf-8") if isinstance(key, str) else key)
    if n > max_record:
        return 0, "record_too_large"
    return n, None


def naive_plan(sized: List[Tuple[int, Optional[str]]], max_records: int, max_request: int):
    """sized: (size, reason) per record. Returns ([(start, end, count, bytes)], [(index, reason)])."""
    batches, refusals = [], []
    open_: Optional[List[int]] = None  # start, end, count, bytes
    sealed = False
    for i, (size, why) in enumerate(sized):
        if why:
            refusals.append((i, why))
            sealed = open_ is not None
            continue
        if open_ is not None and (sealed or open_[2] + 1 > max_records or open_[3] + size > max_request):
            batches.append(tuple(open_))
            open_ = None
        sealed = False
        if open_ is None:
            open_ = [i, i + 1, 1, size]
        else:
            open_[1] = i + 1
            open_[2] += 1
            open_[3] += size
    if open_ is not None:
        batches.append(tuple(open_))
    return batches, refusals


def original_batch_data(records: List[Any], input_format: str = "string", record_max_size: int = MIB,
                        batch_max_size: int = 5 * MIB, max_records_per_batch: int = 500):
    """The original KinesisBatcher's loop as its users see it on valid input: greedy, in
    order, sizes as len() (characters), a final batch yielded even when empty."""
    batch: List[Any] = []
    size = 0
    for r in records:
        n = len(r["Data"]) + len(r["PartitionKey"]) if input_format == "json" else len(r)
        if n > record_max_size:
            print("Record too large, discarding")
            continue
        if len(batch) + 1 > max_records_per_batch or size + n > batch_max_size:
            yield batch
            batch, size = [], 0
        batch.append(r)
        size += n
    yield batch
