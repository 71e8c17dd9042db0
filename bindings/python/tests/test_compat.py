"""The drop-in: the original's documented examples, the same lists on valid input, and
each documented difference."""

import warnings

import pytest
from hypothesis import given, settings, strategies as st

from kinesis_batcher.compat import KinesisBatcher, RefusedRecordWarning
from naive import original_batch_data


def test_readme_defaults_string_format():
    # README: batcher = KinesisBatcher(); for batch in batcher.batch_data(records): ...
    batcher = KinesisBatcher()
    assert (batcher.input_format, batcher.record_max_size, batcher.batch_max_size, batcher.max_records_per_batch) == (
        "string", 1048576, 5242880, 500)
    records = ["event-%d" % i for i in range(1200)]
    assert list(batcher.batch_data(records)) == list(original_batch_data(records))


def test_readme_json_format():
    # README: KinesisBatcher(input_format="json"), records {'Data': b'data', 'PartitionKey': string}
    batcher = KinesisBatcher(input_format="json")
    records = [{"Data": b"data", "PartitionKey": "partition-%d" % i} for i in range(1001)]
    out = list(batcher.batch_data(records))
    assert out == list(original_batch_data(records, "json"))
    assert [len(b) for b in out] == [500, 500, 1]
    assert out[0][0] is records[0]


def test_readme_boto3_example():
    # README's complete example: KinesisBatcher(formatting="json", record_max_size=100,
    # batch_max_size=500, max_records_per_batch=2) on 1..5 records of b'a string'.
    batcher = KinesisBatcher(formatting="json", record_max_size=100, batch_max_size=500, max_records_per_batch=2)
    for n in range(1, 6):
        records = [{"Data": b"a string", "PartitionKey": "partition-{}".format(i)} for i in range(n)]
        out = list(batcher.batch_data(records))
        assert out == list(original_batch_data(records, "json", 100, 500, 2))
        assert [len(b) for b in out] == [2] * (n // 2) + [1] * (n % 2)


ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40), ascii_text.filter(bool)), min_size=1, max_size=60),
       st.integers(1, 5), st.integers(60, 300))
def test_same_lists_as_the_original_on_valid_input(pairs, max_records, max_batch):
    records = [{"Data": d, "PartitionKey": k} for d, k in pairs]
    ours = list(KinesisBatcher("json", 60, max_batch, max_records).batch_data(records))
    assert ours == list(original_batch_data(records, "json", 60, max_batch, max_records))


@settings(max_examples=300, deadline=None)
@given(st.lists(ascii_text, min_size=1, max_size=60), st.integers(1, 5), st.integers(20, 100))
def test_same_lists_in_string_mode(records, max_records, max_batch):
    ours = list(KinesisBatcher("string", 20, max_batch, max_records).batch_data(records))
    assert ours == list(original_batch_data(records, "string", 20, max_batch, max_records))


def test_difference_no_empty_batch():
    assert list(KinesisBatcher().batch_data([])) == []
    assert list(original_batch_data([])) == [[]]


def test_difference_str_counted_in_utf8_bytes():
    batcher = KinesisBatcher("string", record_max_size=4, batch_max_size=4, max_records_per_batch=10)
    refused = []
    batcher.on_refused = refused.append
    # "éé" is 2 characters but 4 bytes; "ééé" is 6 bytes: refused, where the original kept it.
    assert list(batcher.batch_data(["éé", "ééé", "a"])) == [["éé"], ["a"]]
    assert [(r.index, r.reason) for r in refused] == [(1, "record_too_large")]


def test_difference_refused_records_warn_instead_of_print(capsys):
    batcher = KinesisBatcher("json", record_max_size=10, batch_max_size=100, max_records_per_batch=10)
    records = [{"Data": b"x" * 20, "PartitionKey": "k"}, {"Data": b"ok", "PartitionKey": "k"}]
    with pytest.warns(RefusedRecordWarning, match="record 0 refused"):
        assert list(batcher.batch_data(records)) == [[records[1]]]
    assert capsys.readouterr().out == ""


def test_difference_on_refused_in_order_before_the_following_batch():
    events = []
    batcher = KinesisBatcher("json", 10, 100, 10, on_refused=lambda r: events.append(("refused", r.index, r.reason)))
    records = [{"Data": b"a", "PartitionKey": "k"}, {"Data": b"b", "PartitionKey": ""},
               {"Data": b"c", "PartitionKey": "k"}, {"Data": 5, "PartitionKey": "k"}]
    for batch in batcher.batch_data(records):
        events.append(("batch", len(batch)))
    assert events == [("batch", 1), ("refused", 1, "key_empty"), ("batch", 1), ("refused", 3, "invalid_record")]


def test_difference_invalid_records_refused_not_raised():
    batcher = KinesisBatcher("json", on_refused=lambda r: None)
    records = [{"Data": b"a", "PartitionKey": "k"}, "not a dict", {"Data": b"b"}, {"Data": b"c", "PartitionKey": "x" * 257}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(batcher.batch_data(records)) == [[records[0]]]


def test_limits_checked_at_construction():
    with pytest.raises(ValueError):
        KinesisBatcher(max_records_per_batch=0)
    with pytest.raises(ValueError):
        KinesisBatcher(input_format="xml")
