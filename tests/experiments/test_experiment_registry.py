"""Experiments on the log, on both backends: history through compaction, races, bad records."""

from __future__ import annotations

import pytest

from loopline.experiments.records import Arm, Experiment, change_key
from loopline.experiments.registry import ExperimentConflict, ExperimentRegistry
from loopline.experiments.router import ExperimentRouter
from loopline.log import TopicConfig
from support import FAST_CLEANING, compact_now, unique

ARMS = (
    Arm("control", alias="production", weight=0.9, control=True),
    Arm("v7", version=7, weight=0.1),
)


def experiment(model: str, name: str | None = None) -> Experiment:
    return Experiment(name=name or unique("exp"), model=model, arms=ARMS)


@pytest.fixture
def topic(log) -> str:
    name = unique("experiments")
    log.create_topic(name, TopicConfig(compact=True, extra=FAST_CLEANING))
    return name


def test_compaction_keeps_every_revision_of_every_experiment(log, backend, topic) -> None:
    registry = ExperimentRegistry(log, topic=topic)
    model = unique("ranker")
    first = registry.start(experiment(model), reason="try v7").name
    for share in (0.25, 0.5):
        registry.set_weights(first, {"control": 1 - share, "v7": share}, reason=f"ramp {share}")
    registry.stop(first, reason="enough")
    second = registry.start(experiment(model)).name
    before = {name: registry.history(name) for name in (first, second)}

    compact_now(log, backend, topic)

    after = ExperimentRegistry(log, topic=topic)
    assert {name: after.history(name) for name in (first, second)} == before
    assert [e.weights["v7"] for e in before[first]] == [0.1, 0.25, 0.5, 0.5]
    assert after.running(model) == before[second][-1]
    registry.close()
    after.close()


def test_two_writers_racing_for_one_revision_one_wins_the_other_is_told(log, topic) -> None:
    first = ExperimentRegistry(log, topic=topic)
    late = ExperimentRegistry(log, topic=topic)
    name = first.start(experiment(unique("ranker"))).name
    late.refresh()
    real_refresh = late.table.refresh
    stale = [1]

    def stale_once(**kwargs):  # the late writer decides on what it read before the winner wrote
        if stale:
            stale.pop()
            return 0
        return real_refresh(**kwargs)

    late.table.refresh = stale_once  # type: ignore[method-assign]
    won = first.stop(name, reason="guardrail")
    with pytest.raises(ExperimentConflict, match=r"revision 2 was written by .* first"):
        late.set_weights(name, {"control": 0.5, "v7": 0.5}, reason="ramp")
    for registry in (first, late, ExperimentRegistry(log, topic=topic)):
        assert registry.get(name) == won  # the late write is void everywhere
        assert [e.state for e in registry.history(name)] == ["running", "stopped"]
        registry.close()


def test_a_malformed_record_is_skipped_and_the_router_follows_on(log, topic) -> None:
    registry = ExperimentRegistry(log, topic=topic)
    model = unique("ranker")
    name = registry.start(experiment(model)).name
    router = ExperimentRouter(registry, model, follow=False)
    assert router.current().revision == 1
    producer = log.producer()
    producer.send(topic, b'{"name": "half a record', change_key(name, 2, "bad").encode())
    producer.send(topic, b"[]", change_key(name, 2, "worse").encode())
    producer.flush()
    producer.close()
    registry.set_weights(name, {"control": 0.5, "v7": 0.5}, reason="ramp")
    router.refresh()
    assert router.current().revision == 2
    assert router.current().spec.weights == {"control": 0.5, "v7": 0.5}
    assert registry.table.skipped == 2
    fresh = ExperimentRegistry(log, topic=topic)
    assert [e.revision for e in fresh.history(name)] == [1, 2] and fresh.table.skipped == 2
    for part in (router, fresh, registry):
        part.close()
