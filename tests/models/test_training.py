"""`train_once`, `reproduce` and `train_every`: from pinned data to signed versions.

Every test runs on the embedded log and on the real Kafka broker. The models
topic is shared by all tests on Kafka, so every model name is unique.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count
from loopline.features.offline.manifests import DatasetError
from loopline.log import TopicConfig
from loopline.models import HmacSigner, ModelRegistry, SigningKeyMissing
from loopline.models.declarations import Model
from loopline.models.evaluation import DataError
from loopline.models.profiles import read_profile
from loopline.models.reproduction import reproduce
from loopline.models.schedules import train_every
from loopline.models.trainers import LightGBMTrainer, load_trainer
from loopline.models.training import TrainingError, train_once
from support import unique

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SIGNER = HmacSigner(b"the training tests' shared secret")
member = Entity("member", key="member_id")


def lightgbm() -> LightGBMTrainer:
    return LightGBMTrainer({"num_leaves": 8, "min_data_in_leaf": 10}, num_boost_round=30)


@pytest.fixture
def registry(log):
    registry = ModelRegistry(log, signer=SIGNER)
    yield registry
    registry.close()


def two_days_ago() -> int:
    """An hour boundary recent enough for Kafka's retention."""
    return (int(time.time() * 1000) - 2 * DAY) // HOUR * HOUR


def clicks_and_spine(log, tmp_path: Path, rows: int = 1500, seed: int = 3):
    """A clicks topic and a spine whose label follows the member's clicks in the hour before.

    Each spine row is a member of its own with 0 to 10 clicks in the 50 minutes before its
    instant; the label is 1 when there were 5 or more, flipped for 10 % of the rows. So
    `clicks_1h` predicts the label (AUC about 0.9) and nothing else does.
    """
    rng = random.Random(seed)
    topic = unique("clicks")
    log.create_topic(topic, TopicConfig(partitions=2))
    t0 = two_days_ago()
    events, spine = [], []
    for i in range(rows):
        at = t0 + HOUR + i * 20_000
        clicks = rng.randint(0, 10)
        for _ in range(clicks):
            events.append((at - rng.randint(1, 50) * MINUTE, f"m{i}"))
        label = int(clicks >= 5) if rng.random() > 0.1 else int(clicks < 5)
        spine.append(f"m{i},{at},{label}")
    producer = log.producer()
    for at, who in sorted(events):
        value = json.dumps({"member_id": who, "at": at}).encode()
        producer.send(topic, value, who.encode(), timestamp=at)
    producer.flush()
    producer.close()
    path = tmp_path / "spine.csv"
    path.write_text("member_id,at,label\n" + "\n".join(spine) + "\n")
    app = App(
        unique("shop"),
        features=FeatureSet(
            [Aggregations(topic, member, Count.per_window("clicks", windows=["1h"]), "at")]
        ),
        models=[Model(unique("accept"), trainer=lightgbm, entity="member")],
    )
    return app, topic, path


def examples(n: int, *, start: int = 0, seed: int = 5, nested: bool = False) -> list[bytes]:
    """Labelled examples whose label follows `spend` (and not `noise`), in time order."""
    rng = np.random.default_rng(seed + start)
    t0 = two_days_ago()
    out = []
    for i in range(start, start + n):
        spend, noise = rng.normal(), rng.normal()
        label = int(spend + 0.5 * rng.normal() > 0)
        features = {"spend": round(float(spend), 4), "noise": round(float(noise), 4)}
        at = t0 + i * 1000
        row = {"features": features} if nested else dict(features)
        out.append(json.dumps({**row, "label": label, "at": at}).encode())
    return out


def send(log, topic: str, values: list[bytes]) -> None:
    producer = log.producer()
    for i, value in enumerate(values):
        producer.send(topic, value, f"e{i % 7}".encode())
    producer.flush()
    producer.close()


def examples_app(**model) -> App:
    return App(
        unique("shop"),
        models=[Model(unique("buy"), trainer=lightgbm, entity="member", **model)],
    )


# -- once ------------------------------------------------------------------------------


def test_a_spine_dataset_with_a_known_signal_gives_a_good_version(log, registry, tmp_path):
    app, topic, spine = clicks_and_spine(log, tmp_path)
    name = app.models[0].name
    progress = []
    result = train_once(
        log,
        app,
        name,
        spine=spine,
        registry=registry,
        alias="candidate",
        progress=lambda what, done, total: progress.append((what, done, total)),
    )
    assert result.version.version == 1
    assert (result.train_rows, result.test_rows) == (1200, 300)
    assert result.metrics["auc"] > 0.8
    assert {"log_loss", "accuracy", "ece", "brier"} <= set(result.metrics)
    assert set(result.timings) == {"load", "fit", "evaluate", "profile", "publish"}
    assert result.seconds == sum(result.timings.values()) > 0
    assert registry.alias(name, "candidate").version == 1
    version = registry.version(name, 1)
    assert version.features == (("clicks_1h", "int"),)
    clicks = read_profile(version, registry.verifier).feature("clicks_1h")  # a dataset's too
    assert clicks.count == 1200 and clicks.default == 0.0  # Count's declared default
    assert clicks.coverage == 1 - clicks.defaults / 1200 and clicks.nulls == 0
    assert version.trainer == "lightgbm" and version.format == "lightgbm"
    assert version.metrics == result.metrics
    manifest = version.manifest
    assert manifest["kind"] == "dataset" and manifest["rows"] == 1500
    assert manifest["sources"][0]["topic"] == topic
    assert manifest["split"]["train_rows"] == 1200 and manifest["split"]["time"] == "at"
    assert len(manifest["sha256"]) == 64 and manifest["fingerprint"]
    assert any(what == f"read {topic}" for what, _, _ in progress)
    assert ("fit lightgbm on 1,200 rows", 1, 1) in progress
    # the published model is the one that was evaluated
    model = load_trainer(registry.load_artifact(version), version.format)
    assert model.predict([{"clicks_1h": 9}])[0] > 0.5 > model.predict([{"clicks_1h": 1}])[0]


def test_reproduce_gives_identical_predictions(log, registry, tmp_path):
    app, topic, spine = clicks_and_spine(log, tmp_path, rows=800)
    name = app.models[0].name
    train_once(log, app, name, spine=spine, registry=registry)
    producer = log.producer()  # appended after training: a rebuild must not read it
    t0 = two_days_ago()
    for i in range(50):
        value = json.dumps({"member_id": f"m{i}", "at": t0 + HOUR}).encode()
        producer.send(topic, value, f"m{i}".encode(), timestamp=t0 + HOUR)
    producer.flush()
    producer.close()

    again = reproduce(log, app, name, 1, registry=registry)
    assert again.test_rows == 160
    assert again.identical and again.max_difference == 0.0
    assert again.original.tobytes() == again.rebuilt.tobytes()
    assert again.same_artifact and again.same_params
    assert again.metrics == registry.version(name, 1).metrics


def test_reproduce_a_labelled_topic_version(log, registry):
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=3))
    send(log, topic, examples(600))
    app = examples_app()
    name = app.models[0].name
    train_once(log, app, name, labelled_topic=topic, registry=registry)
    send(log, topic, examples(100, start=600))
    again = reproduce(log, app, name, 1, registry=registry)
    assert again.identical and again.same_artifact and again.test_rows == 120


def test_reproduce_refuses_records_that_changed(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    send(log, topic, examples(300))
    app = examples_app()
    name = app.models[0].name
    version = train_once(log, app, name, labelled_topic=topic, registry=registry).version
    registry.publish(  # the same version record, but the manifest names other records
        name,
        registry.load_artifact(version),
        format=version.format,
        trainer=version.trainer,
        features=version.features,
        manifest={
            **version.manifest,
            "partitions": [{**p, "sha256": "0" * 64} for p in version.manifest["partitions"]],
        },
    )
    with pytest.raises(DatasetError, match="holds other records in offsets"):
        reproduce(log, app, name, 2, registry=registry)


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_labelled_examples_flat_or_nested(log, registry, nested):
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=2))
    send(log, topic, [*examples(1000, nested=nested), b"not json", b'{"spend": 1.0}'])
    app = examples_app()
    name = app.models[0].name
    result = train_once(log, app, name, labelled_topic=topic, registry=registry)
    assert result.train_rows + result.test_rows == 1000
    assert result.metrics["auc"] > 0.8
    version = registry.version(name, 1)
    assert version.features == (("spend", "float"), ("noise", "float"))
    manifest = version.manifest
    assert manifest["kind"] == "labelled" and manifest["topic"] == topic
    assert manifest["shape"] == ("nested" if nested else "flat")
    assert (manifest["records"], manifest["undecodable"], manifest["unlabelled"]) == (1002, 1, 1)
    assert sum(p["end"] - p["start"] for p in manifest["partitions"]) == 1002


def test_declared_features_are_the_ones_learned(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    send(log, topic, examples(400))
    app = examples_app(features=["spend"])
    train_once(log, app, app.models[0].name, labelled_topic=topic, registry=registry)
    assert registry.latest(app.models[0].name).features == (("spend", "float"),)


# -- errors a user can act on ----------------------------------------------------------


def test_empty_data_is_a_clear_error(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    app = examples_app()
    with pytest.raises(DataError, match=rf"the data is empty: topic '{topic}' has no labelled"):
        train_once(log, app, app.models[0].name, labelled_topic=topic, registry=registry)


def test_one_class_only_is_a_clear_error(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    rows = [json.loads(v) for v in examples(200)]
    send(log, topic, [json.dumps({**r, "label": 1}).encode() for r in rows])
    app = examples_app()
    with pytest.raises(DataError, match="all 200 labels are 1: a classifier needs both classes"):
        train_once(log, app, app.models[0].name, labelled_topic=topic, registry=registry)


def test_one_class_in_the_later_part_is_a_clear_error(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    rows = [json.loads(v) for v in examples(200)]
    late = [json.dumps({**r, "label": 0}).encode() for r in rows[150:]]
    send(log, topic, [json.dumps(r).encode() for r in rows[:150]] + late)
    app = examples_app()
    with pytest.raises(DataError, match=r"the later part of the data \(40 rows from at .*all 40"):
        train_once(log, app, app.models[0].name, labelled_topic=topic, registry=registry)


def test_a_missing_declared_feature_is_a_clear_error(log, registry, tmp_path):
    topic = unique("examples")
    log.create_topic(topic)
    send(log, topic, examples(100))
    app = examples_app(features=["spend", "visits_7d"])
    with pytest.raises(DataError, match="lacks features: visits_7d; declared are spend, visits_7d"):
        train_once(log, app, app.models[0].name, labelled_topic=topic, registry=registry)

    app, _, spine = clicks_and_spine(log, tmp_path, rows=50)
    model = Model(unique("accept"), trainer=lightgbm, entity="member", features=["views_1h"])
    app = App(app.name, features=app.features, models=[model])
    with pytest.raises(DataError, match="lacks features: views_1h"):
        train_once(log, app, model.name, spine=spine, registry=registry)


def test_no_signing_key_fails_before_reading_anything(log, monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY", "LOOPLINE_SIGNING_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    unsigned = ModelRegistry(log)
    app = examples_app()
    try:
        with pytest.raises(SigningKeyMissing, match="set LOOPLINE_SIGNING_KEY"):
            train_once(
                log, app, app.models[0].name, labelled_topic="no-such-topic", registry=unsigned
            )
    finally:
        unsigned.close()


def test_spine_or_labelled_topic_one_of_the_two(log, registry):
    app = examples_app()
    with pytest.raises(TrainingError, match="one of the two"):
        train_once(log, app, app.models[0].name, registry=registry)


# -- on a schedule ---------------------------------------------------------------------


def test_periodic_retraining_picks_up_new_data(log, registry):
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=2))
    send(log, topic, examples(500))
    app = examples_app()
    name = app.models[0].name
    seen = []

    def more_data(result) -> None:
        seen.append(result)
        if len(seen) == 1:
            send(log, topic, examples(300, start=500))

    results = train_every(
        0.2,
        threading.Event(),
        log,
        app,
        name,
        labelled_topic=topic,
        registry=registry,
        on_result=more_data,
        runs=2,
    )
    assert [r.version.version for r in results] == [1, 2]
    first, second = (registry.version(name, v).manifest for v in (1, 2))
    assert (first["rows"], second["rows"]) == (500, 800)
    ends = [sum(p["end"] for p in m["partitions"]) for m in (first, second)]
    assert ends[1] == ends[0] + 300
    assert results[1].train_rows > results[0].train_rows


def test_periodic_retraining_goes_on_after_a_run_without_data(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    app = examples_app()
    errors = []

    def fill(exc: Exception) -> None:
        errors.append(exc)
        send(log, topic, examples(300))

    results = train_every(
        0.1,
        threading.Event(),
        log,
        app,
        app.models[0].name,
        labelled_topic=topic,
        registry=registry,
        on_error=fill,
        runs=2,
    )
    assert "the data is empty" in str(errors[0])
    assert [r.version.version for r in results] == [1]
