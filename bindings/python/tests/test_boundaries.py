"""The boundaries the Rust tests cover (tests/boundaries.rs), through Python."""

import pytest

import kinesis_batcher as kb
from kinesis_batcher import FIREHOSE, KDS, KDS_5MIB, Limits, plan, plan_lines

MIB = 1024 * 1024


def shape(p):
    return [(b.start, b.end, b.count, b.bytes) for b in p.batches], [(r.index, r.reason) for r in p.refusals]


def test_profiles():
    assert (KDS.max_records, KDS.max_request_bytes, KDS.max_record_bytes) == (500, 10 * MIB, MIB)
    assert (KDS_5MIB.max_records, KDS_5MIB.max_request_bytes, KDS_5MIB.max_record_bytes) == (500, 5 * MIB, MIB)
    assert (FIREHOSE.max_request_bytes, FIREHOSE.max_record_bytes, FIREHOSE.partition_keys) == (4 * MIB, 1_024_000, False)
    assert Limits.kds_for_stream(4096).max_record_bytes == 4 * MIB
    assert Limits.kds_for_stream(1024) == KDS


@pytest.mark.parametrize("args", [(0, 10, 5), (2, 0, 5), (2, 10, 0), (501, 10, 5), (2, 10 * MIB + 1, 5), (2, 10, 11)])
def test_bad_limits_raise_value_error(args):
    with pytest.raises(ValueError):
        Limits(*args)


def test_profile_ceilings():
    with pytest.raises(ValueError):
        KDS_5MIB.with_caps(500, 5 * MIB + 1, MIB)
    with pytest.raises(ValueError):
        FIREHOSE.with_max_record_bytes(1_024_001)
    with pytest.raises(ValueError):
        Limits.kds_for_stream(1023)
    assert KDS.with_max_record_bytes(2 * MIB).max_record_bytes == 2 * MIB


def test_empty_input_has_no_batch():
    assert shape(plan([])) == ([], [])


def test_record_cap_is_inclusive_and_counts_the_key():
    key = "k" * 10
    exact = (b"x" * (MIB - 10), key)
    over = (b"x" * (MIB - 9), key)
    assert shape(plan([exact, over, exact])) == ([(0, 1, 1, MIB), (2, 3, 1, MIB)], [(1, "record_too_large")])


def test_str_data_and_keys_count_utf8_bytes():
    # "é" is 2 UTF-8 bytes: 3 characters of data are 6 bytes, the key 2 bytes.
    assert plan([("ééé", "é")]).batches[0].bytes == 8
    limits = Limits(10, 100, 7)
    assert shape(plan([("ééé", "é")], limits))[1] == [(0, "record_too_large")]


def test_request_bytes_inclusive():
    limits = Limits(500, 100, 50)
    recs = [(b"x" * 49, "k")] * 3  # 50 bytes each
    assert shape(plan(recs, limits))[0] == [(0, 2, 2, 100), (2, 3, 1, 50)]


def test_record_count_cap():
    p = plan([(b"", "k")] * 1001, KDS)
    assert [b.count for b in p.batches] == [500, 500, 1]
    assert p.batches[1].records == [(b"", "k")] * 500


def test_keys_1_to_256_characters():
    ok = "é" * 256  # 256 code points, 512 bytes
    recs = [(b"d", ok), (b"d", "x" * 257), (b"d", ""), (b"d", b"\xff"), (b"d", "\ud800")]
    batches, refusals = shape(plan(recs))
    assert batches == [(0, 1, 1, 513)]
    assert refusals == [(1, "key_too_long"), (2, "key_empty"), (3, "key_not_utf8"), (4, "key_not_utf8")]
    assert shape(plan([(b"d", ok)], KDS.with_key_unit("utf8_bytes")))[1] == [(0, "key_too_long")]
    assert shape(plan([(b"d", "😀" * 129)], KDS.with_key_unit("utf16_units")))[1] == [(0, "key_too_long")]
    assert shape(plan([(b"d", "😀" * 128)], KDS.with_key_unit("utf16_units")))[1] == []


def test_explicit_hash_keys():
    top = str(2**128 - 1)
    recs = [(b"d", "k", top), (b"d", "k", str(2**128)), (b"d", "k", "01"), (b"d", "k", "0"), (b"d", "k", None)]
    batches, refusals = shape(plan(recs))
    assert refusals == [(1, "hash_key_invalid"), (2, "hash_key_invalid")]
    assert [b[:3] for b in batches] == [(0, 1, 1), (3, 5, 2)]
    assert plan([(b"d", "k", top)], KDS.counting_hash_key(True)).batches[0].bytes == 2 + 39


def test_refusal_closes_batch_unless_spanning():
    recs = [(b"a", "k"), (b"b", ""), (b"c", "k")]
    assert shape(plan(recs))[0] == [(0, 1, 1, 2), (2, 3, 1, 2)]
    p = plan(recs, KDS.spanning_refusals(True))
    assert shape(p)[0] == [(0, 3, 2, 4)]
    assert p.batches[0].refused == 1
    assert p.batches[0].records == [(b"a", "k"), (b"c", "k")]


def test_record_forms_agree():
    dicts = [{"Data": b"abc", "PartitionKey": "key"}, {"Data": "é", "PartitionKey": "key", "ExplicitHashKey": "5"}]
    tuples = [(b"abc", "key"), ("é", "key", "5")]
    assert shape(plan(dicts)) == shape(plan(tuples))
    assert shape(plan([b"abc", bytearray(b"abc"), memoryview(b"abc")], key="key")) == (
        [(0, 3, 3, 18)], [])


def test_a_repeated_key_object_is_measured_as_itself():
    # The binding measures a key object once while consecutive records share it: a
    # refused key must stay refused, and an accepted one accepted, object by object.
    ok, long, bad = "k", "k" * 257, "\ud800"
    recs = [(b"x", ok), (b"x", long), (b"x", long), (b"x", ok), (b"x", bad), (b"x", bad), (b"x", b"k")]
    batches, refusals = shape(plan(recs))
    assert refusals == [(1, "key_too_long"), (2, "key_too_long"), (4, "key_not_utf8"), (5, "key_not_utf8")]
    assert [b[:3] for b in batches] == [(0, 1, 1), (3, 4, 1), (6, 7, 1)]
    # The call's one key is one object for every record.
    assert shape(plan([b"x"] * 3, key=long))[1] == [(0, "key_too_long"), (1, "key_too_long"), (2, "key_too_long")]


def test_dict_fields_beyond_the_entry():
    # A dict with a field boto3 does not know is still read; its hash key only if present.
    recs = [{"Data": b"ab", "PartitionKey": "k", "Other": 1},
            {"Data": b"ab", "PartitionKey": "k", "ExplicitHashKey": "01"},
            {"Data": b"ab", "PartitionKey": "k", "ExplicitHashKey": None, "Other": 2}]
    batches, refusals = shape(plan(recs))
    assert refusals == [(1, "hash_key_invalid")]
    assert [b[:3] for b in batches] == [(0, 1, 1), (2, 3, 1)]
    # Without partition keys a dict needs no key, and a hash key is not read.
    assert shape(plan([{"Data": b"ab"}, {"Data": b"ab", "ExplicitHashKey": "x"}], FIREHOSE)) == (
        [(0, 2, 2, 4)], [])


def test_firehose_ignores_keys():
    p = plan([b"x" * 1_024_000, {"Data": b"x" * 1_024_001}, "abc"], FIREHOSE)
    assert shape(p) == ([(0, 1, 1, 1_024_000), (2, 3, 1, 3)], [(1, "record_too_large")])


def test_invalid_records_are_refused_not_raised():
    recs = [(b"a", "k"), 42, {"PartitionKey": "k"}, {"Data": 3, "PartitionKey": "k"},
            {"Data": b"x", "PartitionKey": 7}, (b"x",), {"Data": b"x"}, b"bare", (b"b", "k")]
    batches, refusals = shape(plan(recs))
    assert [b[:3] for b in batches] == [(0, 1, 1), (8, 9, 1)]
    assert [r for r in refusals] == [(i, "invalid_record") for i in range(1, 8)]
    assert all(r.message for r in plan(recs).refusals)
    assert plan(recs).refusals[0].record == 42


def test_not_a_sequence_raises_type_error():
    with pytest.raises(TypeError):
        plan(b"abc", key="k")
    with pytest.raises(TypeError):
        plan(5)  # type: ignore[arg-type]


def test_any_iterable():
    assert shape(plan(((b"x", "k") for _ in range(3))))[0] == [(0, 3, 3, 6)]


def test_lines():
    buf = b"a\nbb\n\nccc\n" + b"x" * 20 + b"\n"
    limits = Limits(2, 1000, 10)
    p = plan_lines(buf, limits, key="k")
    assert [(b.start, b.end, b.count, b.bytes, b.offset, b.end_offset, b.first_line, b.last_line) for b in p.batches] == [
        (0, 2, 2, 5, 0, 4, 1, 2), (2, 3, 1, 4, 6, 9, 4, 4)]
    assert [(r.index, r.line, r.offset, r.reason) for r in p.refusals] == [(3, 5, 10, "record_too_large")]
    assert len(plan_lines(bytearray(buf), limits, key="k").batches) == 2
    assert len(plan_lines(memoryview(buf), limits, key="k").batches) == 2
    assert plan_lines(b"", key="k").batches == []
    with pytest.raises(ValueError):
        plan_lines(buf)  # KDS needs a key
    with pytest.raises(ValueError):
        plan_lines(buf, key="")
    assert len(plan_lines(buf, FIREHOSE).batches) == 1


def test_lines_keep_empty():
    assert plan_lines(b"a\n\nb\n", key="k", keep_empty=True).batches[0].count == 3


def test_reasons_listed():
    assert set(kb.REASONS) == {"key_not_utf8", "key_empty", "key_too_long", "hash_key_invalid", "record_too_large", "invalid_record"}
