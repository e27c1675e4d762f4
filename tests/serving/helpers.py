"""A small shop for serving tests: member and item features, tiny models, a running service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

import loopline
from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.processor import FeatureProcessor
from loopline.http.server import running
from loopline.log import Log
from loopline.models.declarations import Model
from loopline.models.registry import ModelRegistry
from loopline.models.trainers import LightGBMTrainer
from loopline.serving.http import create_app
from loopline.serving.service import PredictionService
from support import consume_all, unique

KEY = "a serving test secret, 16+ bytes"
SRC = str(Path(loopline.__file__).parents[1])  # a `loopline` subprocess runs the code under test
MEMBERS = [f"m-{i}" for i in range(5)]
ITEMS = [f"i-{i}" for i in range(8)]


@dataclass
class Shop:
    log: Log
    app: App
    schemas: LogRegistry
    models: ModelRegistry
    ranker: str
    scorer: str


def make_shop(log: Log, *, process: bool = True) -> Shop:
    """Profiles and items on fresh topics, their features computed (unless not `process`),
    no model published yet."""
    profiles, items = unique("profiles"), unique("items")
    for topic in (profiles, items):
        log.create_topic(topic)
    member, item = Entity("member", "member_id"), Entity("item", "item_id")
    ranker, scorer = unique("ranker"), unique("scorer")
    app = App(
        unique("shop"),
        features=FeatureSet(
            tables=[
                Table(profiles, member, [TableFeature("age", "age", default=30)]),
                Table(
                    items, item, [TableFeature("price", "price"), TableFeature("stock", "stock")]
                ),
            ]
        ),
        models=[
            Model(ranker, trainer=LightGBMTrainer, entity="member", features=["age", "price"]),
            Model(scorer, trainer=LightGBMTrainer, entity="member", features=["age"]),
        ],
    )
    producer = log.producer()
    for i, m in enumerate(MEMBERS):
        producer.send(profiles, json.dumps({"member_id": m, "age": 20 + 10 * i}).encode())
    for i, it in enumerate(ITEMS):
        producer.send(items, json.dumps({"item_id": it, "price": 10.0 * i + 1}).encode())
    producer.flush()
    producer.close()
    if process:
        processor = FeatureProcessor(log, app)
        processor.run_until_caught_up()
        processor.close()
    return Shop(log, app, LogRegistry(log), ModelRegistry(log), ranker, scorer)


def fit(features: list[str], flip: bool = False, seed: int = 0) -> LightGBMTrainer:
    """A tiny model: a high price is good (bad, if `flip`); age matters a little."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(10, 70, 400), rng.uniform(0, 80, 400)])[:, : len(features)]
    signal = X[:, -1] if len(features) > 1 else X[:, 0]
    y = (signal > np.median(signal)).astype(int)
    if flip:
        y = 1 - y
    trainer = LightGBMTrainer({"num_leaves": 4, "min_data_in_leaf": 5}, num_boost_round=10)
    trainer.fit(X, y, features=features)
    return trainer


def publish(shop: Shop, name: str, trainer: LightGBMTrainer, registry=None) -> int:
    registry = registry or shop.models
    data, format = trainer.save()
    features = [(f, "float") for f in trainer.features]
    version = registry.publish(name, data, format=format, trainer="lightgbm", features=features)
    registry.promote(name, version.version, "production")
    return version.version


@contextmanager
def serving(
    shop: Shop, model: str, tmp_path, **kw
) -> Iterator[tuple[httpx.Client, PredictionService]]:
    token = kw.pop("token", None)
    service = PredictionService(
        shop.log,
        shop.app,
        shop.schemas,
        state_dir=tmp_path / unique("state"),
        model=model,
        refresh_interval=0.1,
        **kw,
    )
    with (
        running(create_app(service, token=token)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, service


def wait_ready(client: httpx.Client, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/readyz")
        if answer.status_code == 200:
            return answer.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready in {timeout} s: {answer.json()}")
        time.sleep(0.05)


def decisions(log: Log, service: PredictionService, expected: int) -> list[dict]:
    """The decisions on the service's topic, decoded, once at least `expected` arrived."""
    assert service.decisions.flush(60)
    consumer = log.consumer(None, [service.decisions.topic.name], reset="earliest")
    try:
        return [json.loads(r.value) for r in consume_all(consumer, expected)]
    finally:
        consumer.close()


def app_source(shop: Shop) -> str:
    """Python source declaring the same App as `make_shop` built (same topics and names)."""
    tables = shop.app.features.tables
    profiles, items = tables[0].source, tables[1].source
    return f"""
from loopline.app import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

member, item = Entity("member", "member_id"), Entity("item", "item_id")
app = App({shop.app.name!r}, features=FeatureSet(tables=[
    Table({profiles!r}, member, [TableFeature("age", "age", default=30)]),
    Table({items!r}, item, [TableFeature("price", "price"), TableFeature("stock", "stock")]),
]), models=[
    Model({shop.ranker!r}, trainer=LightGBMTrainer, entity="member", features=["age", "price"]),
    Model({shop.scorer!r}, trainer=LightGBMTrainer, entity="member", features=["age"]),
])
"""
