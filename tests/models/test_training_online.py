"""`train_online`: learning from the labelled stream, publishing as it goes, resuming.

Every test runs on the embedded log and on the real Kafka broker; model names
and topics are unique because Kafka is shared.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from river import linear_model, optim

from loopline import App
from loopline.log import TopicConfig
from loopline.models import HmacSigner, ModelRegistry
from loopline.models.declarations import Model
from loopline.models.evaluation import evaluate
from loopline.models.online import train_online
from loopline.models.trainers import LightGBMTrainer, RiverTrainer, load_trainer
from loopline.models.training import TrainingError
from loopline.stream.deadletters import DeadLetter
from support import consume_all, read_all, unique

SIGNER = HmacSigner(b"the online training tests' secret")


@pytest.fixture
def registry(log):
    registry = ModelRegistry(log, signer=SIGNER)
    yield registry
    registry.close()


def slow_learner() -> RiverTrainer:
    """Logistic regression with a small step: it keeps getting better for thousands of
    examples, so later versions are measurably better than earlier ones."""
    return RiverTrainer(linear_model.LogisticRegression(optimizer=optim.SGD(0.01)))


def stream(n: int, *, start: int = 0, nested: bool = True) -> tuple[list[bytes], np.ndarray]:
    """Examples whose label is 1 when ``2 * signal - 1 * other`` is positive (plus noise)."""
    rng = np.random.default_rng(17 + start)
    X = rng.normal(size=(n, 2))
    y = (2 * X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    t0 = int(time.time() * 1000) - 86_400_000
    out = []
    for i, ((signal, other), label) in enumerate(zip(X.tolist(), y.tolist(), strict=True)):
        features = {"signal": round(signal, 4), "other": round(other, 4)}
        row = {"features": features} if nested else features
        out.append(json.dumps({**row, "label": label, "at": t0 + (start + i) * 100}).encode())
    return out, X


def send(log, topic: str, values: list[bytes]) -> None:
    producer = log.producer()
    for i, value in enumerate(values):
        producer.send(topic, value, f"k{i % 5}".encode())
    producer.flush()
    producer.close()


def online_app(trainer=slow_learner, **model) -> App:
    return App(
        unique("shop"), models=[Model(unique("buy"), trainer=trainer, entity="member", **model)]
    )


def held_out_log_loss(registry, version, X: np.ndarray, y: np.ndarray) -> float:
    model = load_trainer(registry.load_artifact(version), version.format)
    scores = model.predict([{"signal": a, "other": b} for a, b in X.tolist()])
    return evaluate("classification", y, scores)["log_loss"]


def test_online_learning_improves_and_publishes_every_n_examples(log, registry):
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=3))
    values, _ = stream(2400)
    send(log, topic, values)
    app = online_app()
    name = app.models[0].name
    published = []
    stats = train_online(
        log,
        app,
        name,
        topic,
        registry=registry,
        every_examples=400,
        validate_every=1,
        until_caught_up=True,
        on_publish=published.append,
    )
    assert stats.examples == 2400 and stats.dead_letters == 0
    assert [v.version.version for v in stats.versions] == [1, 2, 3, 4, 5, 6]
    assert [v.total for v in published] == [400, 800, 1200, 1600, 2000, 2400]
    assert all(v.examples == 400 and v.validated == 400 for v in published)
    # progressive validation: each version is scored on examples it had not learned yet
    first, last = published[0].metrics, published[-1].metrics
    assert last["log_loss"] < first["log_loss"] and last["auc"] > 0.9
    # on data none of them saw, later versions are better
    holdout, X = stream(1000, start=10_000)
    y = np.array([json.loads(v)["label"] for v in holdout])
    losses = [held_out_log_loss(registry, v.version, X, y) for v in published]
    assert losses[-1] < losses[2] < losses[0]
    manifest = registry.version(name, 6).manifest
    assert manifest["kind"] == "online" and manifest["examples"] == 2400
    assert sum(p["end"] - p["start"] for p in manifest["partitions"]) == 2400
    assert registry.version(name, 6).features == (("signal", "float"), ("other", "float"))


def test_a_restart_goes_on_from_the_last_published_version(log, registry):
    topic = unique("examples")
    log.create_topic(topic, TopicConfig(partitions=2))
    values, _ = stream(1000, nested=False)
    send(log, topic, values[:600])
    app = online_app()
    name = app.models[0].name
    first = train_online(
        log, app, name, topic, registry=registry, every_examples=250, until_caught_up=True
    )
    assert [v.total for v in first.versions] == [250, 500, 600]
    send(log, topic, values[600:])
    second = train_online(
        log, app, name, topic, registry=registry, every_examples=250, until_caught_up=True
    )
    assert second.resumed_from == 3
    assert second.examples == 400  # none learned twice, none skipped
    assert [v.total for v in second.versions] == [850, 1000]
    manifest = registry.latest(name).manifest
    assert manifest["previous"] == 4 and manifest["examples"] == 1000
    assert sum(p["end"] - p["start"] for p in manifest["partitions"]) == 1000


def test_a_version_is_published_every_t_seconds(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    values, _ = stream(40)
    send(log, topic, values[:20])
    app = online_app()
    stop = threading.Event()
    published = []

    def on_publish(version) -> None:
        published.append(version)
        if len(published) == 1:
            send(log, topic, values[20:])
        else:
            stop.set()

    stats = train_online(
        log,
        app,
        app.models[0].name,
        topic,
        registry=registry,
        every_examples=1000,
        every_seconds=0.5,
        stop=stop,
        on_publish=on_publish,
    )
    assert [v.examples for v in stats.versions] == [20, 20]


def test_examples_it_cannot_learn_go_to_the_dead_letter_topic(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    values, _ = stream(30)
    bad = [b"not json", b'{"features": {"signal": 1.0, "other": 0.5}}', b'{"label": 1}']
    send(log, topic, values[:10] + bad + values[10:])
    app = online_app()
    stats = train_online(
        log, app, app.models[0].name, topic, registry=registry, until_caught_up=True
    )
    assert (stats.examples, stats.dead_letters) == (30, 3)
    consumer = log.consumer(None, [f"{topic}.dlq"], reset="earliest")
    letters = [DeadLetter.from_record(r) for r in consume_all(consumer, 3)]
    consumer.close()
    reasons = [letter.reason for letter in letters]
    assert "not valid JSON" in reasons[0]
    assert reasons[1] == "the example has no label field 'label'"
    assert reasons[2].startswith("the example lacks feature 'signal'")


def test_dead_letters_are_on_the_log_before_the_version_that_passes_them(log, registry):
    """A restart goes on from the last version's offsets, so the dead letters of the
    examples a version passed over must be durable before it is published: a kill -9
    between the two would lose them (it did, once in CI: the version came first)."""
    topic = unique("examples")
    log.create_topic(topic)
    values, _ = stream(40)
    send(log, topic, values[:10] + [b"not json"] * 3 + values[10:])
    seen: list[tuple[int, int]] = []

    class Watching(ModelRegistry):
        def publish(self, name, artifact, **kw):
            dlq = f"{topic}.dlq"
            on_log = len(read_all(log, dlq)) if dlq in log.list_topics() else 0
            seen.append((kw["manifest"]["dead_letters"], on_log))
            return super().publish(name, artifact, **kw)

    watching = Watching(log, signer=SIGNER)
    app = online_app()
    try:
        stats = train_online(
            log,
            app,
            app.models[0].name,
            topic,
            registry=watching,
            every_examples=20,
            until_caught_up=True,
        )
    finally:
        watching.close()
    assert stats.dead_letters == 3 and len(seen) == 2
    assert seen == [(3, 3), (3, 3)]


def test_a_trainer_that_does_not_learn_online_is_a_clear_error(log, registry):
    topic = unique("examples")
    log.create_topic(topic)
    app = online_app(trainer=LightGBMTrainer)
    with pytest.raises(TrainingError, match=r"cannot learn online: its trainer \(lightgbm\)"):
        train_online(log, app, app.models[0].name, topic, registry=registry)


def test_the_model_learned_online_is_the_one_learn_one_gives(log, registry):
    """The batch path hands River exactly what RiverTrainer.learn_one would: the same
    examples, in offset order, every feature a float (ints too)."""
    topic = unique("examples")
    log.create_topic(topic)  # one partition: one order
    rng = np.random.default_rng(3)
    values = []
    for _ in range(700):
        visits = int(rng.integers(0, 20))  # an int feature: learned as a float
        spend = round(float(rng.normal()), 3)
        label = bool(spend + visits / 10 + rng.normal() > 1)
        values.append(json.dumps({"visits": visits, "spend": spend, "label": label}).encode())
    send(log, topic, values)
    app = online_app(features=["visits", "spend"])
    stats = train_online(
        log, app, app.models[0].name, topic, registry=registry, until_caught_up=True
    )
    assert stats.examples == 700
    learned = registry.latest(app.models[0].name)
    online = load_trainer(registry.load_artifact(learned), learned.format)
    by_hand = slow_learner()
    for value in values:
        row = json.loads(value)
        by_hand.learn_one({"visits": row["visits"], "spend": row["spend"]}, row["label"])
    probe = [{"visits": v, "spend": s} for v in (0, 5, 19) for s in (-1.0, 0.0, 2.5)]
    assert online.predict(probe).tobytes() == by_hand.predict(probe).tobytes()
