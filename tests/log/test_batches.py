"""The embedded log's record batches: every record comes back as it was written."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loopline.log.embedded.batches import decode, encode

DATA = st.none() | st.binary(max_size=40)
HEADERS = st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=5)), max_size=2).map(tuple)
RECORDS = st.lists(
    st.tuples(DATA, DATA, st.integers(-(2**63), 2**63 - 1), HEADERS, st.integers(1, 5)),
    max_size=30,
)


@given(RECORDS, st.booleans(), st.booleans())
def test_a_batch_decodes_to_the_records_encoded(records, compacted, with_headers) -> None:
    keys = [r[0] for r in records]
    values = [r[1] for r in records]
    stamps = [r[2] for r in records]
    headers = [r[3] for r in records] if with_headers else None
    gaps = [r[4] for r in records]
    deltas = [sum(gaps[:i]) for i in range(len(records))] if compacted else None
    read = decode("t", 3, 100, encode(keys, values, stamps, headers, deltas))
    offsets = (
        [100 + d for d in deltas] if deltas is not None else list(range(100, 100 + len(records)))
    )
    assert [r.offset for r in read] == offsets
    assert [r.key for r in read] == keys
    assert [r.value for r in read] == values
    assert [r.timestamp for r in read] == stamps
    assert [r.headers for r in read] == (headers if with_headers else [()] * len(records))
    assert {(r.topic, r.partition) for r in read} <= {("t", 3)}
    assert all(type(r.value) is bytes for r in read if r.value is not None)
