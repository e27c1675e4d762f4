"""The monitor's records equal a batch recomputation from the same topics, on both backends."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import generate_latest

from loopline.app import App
from loopline.models import HmacSigner, ModelRegistry
from loopline.monitor.baselines import profiles_from
from loopline.monitor.task import Monitor
from loopline.stream.deadletters import DeadLetter
from monitor.helpers import (
    MINUTE,
    T0,
    make_decisions,
    make_labelled,
    monitor_records,
    produce,
    training_profile,
)
from monitor.offline import decision_windows, label_windows
from support import consume_all, unique

SIZES = (60_000, 3_600_000)
FAR = T0 + 10 * 3_600_000


def close(a, b, rel=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(b, list | str):  # bin counts and their bins' id: exactly
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def publish_v1(log, profile) -> tuple[ModelRegistry, str]:
    """Model versions 1 (with `profile`) and 2 (without) of a new model; the registry, its name."""
    models, name = ModelRegistry(log, signer=HmacSigner(b"k" * 32)), unique("m")
    models.publish(
        name,
        b"artifact",
        format="pickle",
        trainer="test",
        features=[("x", "float")],
        profile=profile.to_dict(),
    )
    models.publish(name, b"artifact", format="pickle", trainer="test", features=[("x", "float")])
    return models, name


def check(records, decisions, labelled, profile) -> None:
    by = {(r.source, r.window, r.start, r.key): r for r in records}
    assert len(by) == len(records), "one record per window and key"
    want = decision_windows([d for d, _ in decisions], SIZES, {1: profile}, "country")
    got = {k[1:]: r for k, r in by.items() if k[0] == "decisions"}
    assert set(got) == set(want)
    for key, m in want.items():
        r = got[key]
        assert (r.decisions, r.candidates) == (m["decisions"], m["candidates"]), key
        assert (r.errors, r.error_rate) == (m["errors"], m["error_rate"]), key
        assert (r.unknown, r.unknown_rate) == (m["unknown"], m["unknown_rate"]), key
        for q, v in zip(
            (0.5, 0.95, 0.99), (r.latency_p50, r.latency_p95, r.latency_p99), strict=True
        ):
            assert abs(v - m["latency"][q]) <= 0.01 * m["latency"][q] + 1e-9, (key, q)
        assert close(r.score_mean, m["score_mean"]) and close(r.score_std, m["score_std"], 1e-6)
        assert close(r.score_psi, m["score_psi"])
        stats = {f.name: f for f in r.features}
        for name, f in m["features"].items():
            for field, value in f.items():
                assert close(getattr(stats[name], field), value), (key, name, field)
    want = label_windows([e for e, _ in labelled], SIZES)
    got = {k[1:]: r for k, r in by.items() if k[0] == "labelled"}
    assert set(got) == set(want)
    for key, m in want.items():
        for field, value in m.items():
            assert close(getattr(got[key], field), value), (key, field)


def checked_run(log, models, profile, decisions, labelled) -> App:
    """A new application's monitor over `decisions` and `labelled` until caught up (with
    the versions of `models`), its records checked against the batch recomputation."""
    app = App(unique("shop"))
    monitor = Monitor(log, app, profiles_from(models), segment="country", clock=lambda: FAR)
    produce(log, monitor.decisions_topic, decisions)
    produce(log, monitor.labelled_topic, labelled)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        models.close()
    assert (stats.decisions, stats.labelled, stats.late) == (len(decisions), len(labelled), 0)
    records = monitor_records(log, app.name, stats.windows)
    assert len(records) == stats.windows
    check(records, decisions, labelled, profile)
    return app


def test_monitor_records_equal_a_batch_recomputation(log) -> None:
    profile = training_profile()
    models, model = publish_v1(log, profile)
    # 7.5 minutes; every 17th request failed (a decision with its error, no candidates), and
    # every 23rd other one was refused for an unknown entity (a 404: no candidates either)
    decisions = make_decisions(1500, step=300, model=model, errors_every=17, unknown_every=23)
    labelled = make_labelled(decisions)
    assert len(labelled) == 1500 - (1500 // 17 + 1500 // 23 - 3)  # 3 are both: errors
    assert sum(d["error"].startswith("404") for d, _ in decisions if "error" in d) == 62
    app = checked_run(log, models, profile, decisions, labelled)
    exposed = generate_latest().decode()  # what --metrics-port serves
    for gauge in (
        "decisions",
        "errors",
        "unknown_entities",
        "feature_coverage",
        "feature_psi",
        "auc",
        "latency_ms",
    ):
        assert f'loopline_monitor_{gauge}{{app="{app.name}"' in exposed, gauge


def test_numeric_features_in_any_order_equal_a_batch_recomputation(log) -> None:
    """Every candidate serving only numbers (None, ints, floats, bools), the same names in
    any order: the monitor reads them as one matrix, and must count what pandas counts."""
    profile = training_profile()
    models, model = publish_v1(log, profile)
    decisions = make_decisions(600, step=300, model=model, errors_every=19)
    rng = random.Random(5)
    for d, _ in decisions:
        for c in d["candidates"]:
            served = [
                ("x", c["features"]["x"]),
                ("rank", rng.randrange(10)),
                ("new", c["features"]["new"]),
            ]
            rng.shuffle(served)
            c["features"] = dict(served)
    checked_run(log, models, profile, decisions, make_labelled(decisions))


def test_a_restart_mid_window_writes_every_record_once(log) -> None:
    app = App(unique("shop"))
    profile = training_profile()
    models, model = publish_v1(log, profile)
    decisions = make_decisions(800, step=300, model=model)
    labelled = make_labelled(decisions)
    first, second = decisions[:500], decisions[500:]
    monitor = Monitor(log, app, profiles_from(models), segment="country", clock=lambda: 0)
    produce(log, monitor.decisions_topic, first)
    produce(log, monitor.labelled_topic, labelled[:400])
    try:
        monitor.run(until_caught_up=True)
    finally:
        monitor.close()
    produce(log, monitor.decisions_topic, second)
    produce(log, monitor.labelled_topic, labelled[400:])
    again = Monitor(log, app, profiles_from(models), segment="country", clock=lambda: FAR)
    try:
        again.run(until_caught_up=True)
    finally:
        again.close()
        models.close()
    total = len(decision_windows([d for d, _ in decisions], SIZES, {}, "country")) + len(
        label_windows([e for e, _ in labelled], SIZES)
    )
    records = monitor_records(log, app.name, total + 1, timeout=5)
    assert len(records) == total
    check(records, decisions, labelled, profile)


@pytest.mark.parametrize("topic", ["decisions", "labelled"])
def test_a_bad_record_goes_to_dead_letters_and_the_monitor_goes_on(log, topic) -> None:
    app = App(unique("shop"))
    decisions = make_decisions(20, step=1000)
    monitor = Monitor(log, app, clock=lambda: T0 + 10 * MINUTE)
    producer = log.producer()
    producer.send(f"{app.name}.{topic}", b'{"model": 3}', b"e-1", timestamp=T0)
    producer.flush()
    producer.close()
    produce(log, monitor.decisions_topic, decisions)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
    assert (stats.dead_letters, stats.decisions) == (1, 20)
    consumer = log.consumer(None, [f"{app.name}.{topic}.dlq"], reset="earliest")
    (letter,) = consume_all(consumer, 1)
    consumer.close()
    assert "model" in DeadLetter.from_record(letter).reason
    assert sum(r.decisions for r in monitor_records(log, app.name, 1) if r.window == "1m") == 20
