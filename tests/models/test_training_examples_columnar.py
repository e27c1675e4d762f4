"""Labelled examples read column-wise are the examples read one by one.

A chunk of plain JSON values is parsed by Arrow's JSON reader; the table
must be the one decoding each value with msgspec gives (`records_table`, the
reference), whatever the values hold: nulls, missing fields, integers beside
floats, nested ``features`` maps, values that are not JSON objects at all.
And a topic read either way trains on the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline import App
from loopline.log import Log
from loopline.models.declarations import Model
from loopline.models.evaluation import DataError
from loopline.models.training_data import from_labelled, labelled_again
from loopline.models.training_examples import (
    plain_json_table,
    records_table,
)

decode = msgspec.json.Decoder().decode

numbers = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**70), 2**70),
    st.floats(-1e6, 1e6),
    st.floats(allow_nan=False),
    st.none(),
)
scalars = st.one_of(
    numbers, st.booleans(), st.text(max_size=3), st.sampled_from(["2024-05-01T10:00:00Z"])
)
names = st.sampled_from(["a", "b", "clicks_1h", "spend"])
features = st.dictionaries(names, numbers, max_size=4)
times = st.one_of(
    st.integers(1_600_000_000_000, 1_800_000_000_000),
    st.integers(1_600_000_000, 1_800_000_000),
    st.floats(1.6e9, 1.8e9),
    st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01"]),
    st.none(),
)
nested = st.fixed_dictionaries(
    {"features": st.one_of(features, st.none())},
    optional={"label": st.one_of(st.integers(0, 1), st.floats(0, 1), st.none()), "at": times},
)
flat = st.dictionaries(names, numbers, max_size=4).flatmap(
    lambda row: st.fixed_dictionaries(
        {k: st.just(v) for k, v in row.items()},
        optional={"label": st.integers(0, 1), "at": times, "note": scalars},
    )
)
odd = st.sampled_from(
    [
        b"",
        b"oops",
        b"[1, 2]",
        b"null",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": [1, 2]}',
        b'{"features": {"a": {"b": 1}}}',
        b'{"a": 1}\r',
        b'{"a":\n1}',
        b'{"a": "\xe9"}',
        b'{"a": 12345678901234567890}',
        b"{}",
    ]
)
values = st.one_of(
    st.lists(nested.map(json.dumps).map(str.encode), min_size=1, max_size=12),
    st.lists(flat.map(json.dumps).map(str.encode), min_size=1, max_size=12),
    st.lists(
        st.one_of(
            nested.map(json.dumps).map(str.encode), flat.map(json.dumps).map(str.encode), odd
        ),
        min_size=1,
        max_size=12,
    ),
)


def _reference(vals: list[bytes]) -> tuple[pa.Table | None, int] | str:
    try:
        table, undecodable, _ = records_table(vals, list(range(len(vals))), decode)
    except DataError as exc:
        return f"DataError: {exc}"
    return table, undecodable


@settings(max_examples=400, deadline=None)
@given(values)
def test_the_columnar_table_is_the_table_of_the_records_one_by_one(vals: list[bytes]) -> None:
    fast = plain_json_table(vals)
    if fast is None:
        return  # declined: the chunk is read one by one, the reference itself
    reference = _reference(vals)
    assert not isinstance(reference, str), reference  # columnar answered where one by one fails
    table, undecodable = reference
    assert undecodable == 0
    if table is None:
        assert fast.num_columns == 0 and fast.num_rows == len(vals)
        return
    assert fast.schema == table.schema
    assert fast.to_pylist() == table.to_pylist()


plain = st.fixed_dictionaries(
    {"features": st.dictionaries(names, st.one_of(st.floats(-1e6, 1e6), st.none()), max_size=4)},
    optional={
        "label": st.integers(0, 1),
        "at": st.integers(1_600_000_000_000, 1_800_000_000_000),
        "spend": st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6), st.none()),
    },
)


@settings(max_examples=100, deadline=None)
@given(st.lists(plain.map(json.dumps).map(str.encode), min_size=1, max_size=12))
def test_plain_examples_are_read_columnwise(vals: list[bytes]) -> None:
    """The ordinary case does take the column-wise way (else the test above proves little)."""
    assert plain_json_table(vals) is not None


@pytest.fixture
def app() -> App:
    return App("shop", models=[Model("buy", trainer=object, entity="member")])


def _send(log: Log, topic: str, vals: list[bytes]) -> None:
    producer = log.producer()
    for v in vals:
        producer.send(topic, v, timestamp=1_700_000_000_000)
    producer.flush()
    producer.close()


def test_a_blank_value_and_a_field_missing_from_the_first_example_are_read(
    log: Log, new_topic: Callable[..., str], app: App
) -> None:
    """A blank record among JSON examples counts as undecodable, and a feature the first
    example lacks is still a feature (both ways of reading agree)."""
    vals = [
        b'{"features": {"spend": 1.5}, "label": 1, "at": 1700000000000}',
        b"",
        b'{"features": {"spend": 2.0, "visits": 3}, "label": 0, "at": 1700000001000}',
        b'{"features": {"visits": 4}, "label": 1, "at": 1700000002000}',
    ]
    topic = new_topic()
    _send(log, topic, vals)
    data = from_labelled(log, app, app.model("buy"), topic)
    assert data.features == ("spend", "visits")
    assert data.table.select(["spend", "visits", "label"]).to_pylist() == [
        {"spend": 1.5, "visits": None, "label": 1},
        {"spend": 2.0, "visits": 3, "label": 0},
        {"spend": None, "visits": 4, "label": 1},
    ]
    assert (data.manifest["records"], data.manifest["undecodable"]) == (4, 1)
    again = labelled_again(log, app, app.model("buy"), data.manifest)
    assert again.table.equals(data.table)
