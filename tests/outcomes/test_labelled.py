"""`LabelledExample`: the record of the labelled topic, equal to what the joiner writes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.app import App
from loopline.contracts import ContractViolation, LogRegistry
from loopline.models.declarations import Model
from loopline.models.training_data import from_labelled
from loopline.outcomes import Outcomes
from loopline.outcomes.labelled import (
    CONTRACT,
    LabelledExample,
    examples,
    labelled_examples_topic,
)
from support import consume_all, unique

T0 = 1_714_564_800_000
HOUR = 3_600_000

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@st.composite
def decisions(draw):
    ids = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5, unique=True))
    returned = draw(st.lists(st.sampled_from(ids), max_size=len(ids), unique=True))
    return {
        "decision_id": draw(st.uuids()).hex,
        "at": "2024-05-01T12:00:00Z",
        "kind": "rank",
        "model": "pymk",
        "model_version": draw(st.integers(1, 1000)),
        "entity": draw(st.text(min_size=1, max_size=6)),
        "experiment": draw(st.sampled_from(["", "exp-1"])),
        "arm": draw(st.sampled_from(["", "b"])),
        "candidates": [
            {
                "id": i,
                "score": draw(st.floats(0, 1)),
                "features": draw(st.dictionaries(st.text(max_size=5), values, max_size=4)),
            }
            for i in ids
        ],
        "returned": [
            {"id": i, "score": draw(st.floats(0, 1)), "probability": draw(st.floats(0, 1))}
            for i in returned
        ],
    }


@given(
    decisions(),
    st.lists(
        st.tuples(st.sampled_from(["accepted", "viewed"]), st.text(max_size=6), st.floats(0, 5))
    ),
)
def test_every_example_the_joiner_builds_is_a_labelled_example_byte_for_byte(decision, matched):
    """The joiner writes `examples` dicts with msgspec: the record encodes to the same bytes,
    so the labelled topics written before the record existed decode as records."""
    outcomes = Outcomes(window="1h", positive=["accepted"])
    for example in examples(decision, T0, matched, outcomes, closed_at=T0 + HOUR):
        written = msgspec.json.encode(example)  # what the joiner sends
        record = msgspec.json.decode(written, type=LabelledExample)
        assert msgspec.json.encode(record) == written
        assert msgspec.structs.asdict(record) == example


def test_a_labelled_topic_bound_to_its_contract_refuses_bad_examples_and_trains(log):
    app = App(unique("shop"), outcomes=Outcomes(window="1h"))
    registry = LogRegistry(log)
    topic = labelled_examples_topic(app.name)
    topic.create(log, registry)
    assert registry.binding(topic.name).contract == CONTRACT == "loopline.labelled"
    producer = topic.producer(log, registry)
    for n in range(40):
        producer.send(
            LabelledExample(
                features={"same_city": n % 2, "city": "Basel"},
                label=float(n % 2),
                at=T0 + n,
                decision_id=f"d-{n}",
                model="accept",
                model_version=1,
                entity=f"m-{n % 3}",
                item=f"m-{n + 10}",
                position=0,
                probability=1.0,
                score=0.5,
                experiment="",
                arm="",
                outcomes=["accepted"] if n % 2 else [],
                closed_at=T0 + HOUR + n,
            )
        )
    with pytest.raises(ContractViolation):
        producer.send({"features": {}, "label": "yes"})  # not an example
    producer.flush()
    producer.close()
    consumer = log.consumer(None, [topic.name], reset="earliest")
    records = consume_all(consumer, 40)
    consumer.close()
    assert {r.key for r in records} == {b"m-0", b"m-1", b"m-2"}  # keyed by the entity
    assert records[0].timestamp == T0  # stamped with the decision's time
    model = Model("accept", trainer=object, entity="member", features=["same_city"])
    data = from_labelled(log, app, model, topic.name, schemas=registry)
    registry.close()
    assert data.table.num_rows == 40
    assert sorted(set(data.table.column(data.label).to_pylist())) == [0, 1]
