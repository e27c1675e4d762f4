"""A model of string features, end to end, on both backends (docs/decisions/0030).

Countries in a table and pages in aggregations (`Last`, `Distinct`, `MostFrequent`) flow
into a dataset, a LightGBM model with categoricals, a prediction service, and decisions.
After training, some members move to countries and read pages the model never saw; the
service scores 1,000 random members exactly as the model scores the same members' offline
dataset, unseen categories included.
"""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pyarrow.parquet as pq

from loopline.app import App
from loopline.contracts import LogRegistry
from loopline.features import (
    Aggregations,
    Count,
    Distinct,
    Entity,
    FeatureSet,
    Last,
    MostFrequent,
    Table,
    TableFeature,
)
from loopline.features.offline.datasets import build_dataset
from loopline.features.processor import FeatureProcessor
from loopline.log import TopicConfig
from loopline.models.declarations import Model
from loopline.models.registry import ModelRegistry
from loopline.models.trainers import LightGBMTrainer, load_trainer
from loopline.models.training import train_once
from serving.helpers import KEY, Shop, decisions, serving, wait_ready
from support import unique

MINUTE = 60_000
KNOWN_COUNTRIES, NEW_COUNTRIES = ["DE", "FR", "NL", "NO", "SE"], ["IS", "PT"]
KNOWN_PAGES, NEW_PAGES = ["feed", "jobs", "profile", "search"], ["careers", "news"]
FEATURES = ["country", "age", "last_page", "pages_24h", "top_page_7d", "views"]


def lightgbm() -> LightGBMTrainer:
    return LightGBMTrainer({"num_leaves": 8, "min_data_in_leaf": 20}, num_boost_round=30)


def categorical_shop(profiles: str, views: str) -> App:
    member = Entity("member", "member_id")
    pages = Aggregations(
        views,
        member,
        [
            Last("page", name="last_page"),
            Distinct("page", window="24h", name="pages_24h"),
            MostFrequent("page", window="7d", name="top_page_7d"),
            Count(name="views"),
        ],
        time="at",
    )
    countries = Table(
        profiles,
        member,
        [TableFeature("country", "country", default="??"), TableFeature("age", "age")],
    )
    model = Model(unique("buys"), trainer=lightgbm, entity="member", features=FEATURES)
    return App(unique("shop"), features=FeatureSet([pages], tables=[countries]), models=[model])


def test_a_categorical_model_scores_1000_members_alike_offline_and_online(
    log, tmp_path, monkeypatch
):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", KEY)
    rng = random.Random(17)
    profiles, views = unique("profiles"), unique("views")
    log.create_topic(profiles)
    log.create_topic(views, TopicConfig(partitions=2))
    app = categorical_shop(profiles, views)
    model = app.models[0].name
    now = int(time.time() * 1000)
    start, trained_at, moved_at = now - 60 * MINUTE, now - 30 * MINUTE, now - 10 * MINUTE

    members = [f"m-{i}" for i in range(1600)]
    producer = log.producer()
    spine, events = [], []
    for i, who in enumerate(members):
        country = rng.choice([*KNOWN_COUNTRIES, None])  # None: no country, the default
        profile = {"member_id": who, "country": country, "age": rng.randint(18, 70)}
        producer.send(profiles, json.dumps(profile).encode(), who.encode(), timestamp=start)
        pages = [rng.choice(KNOWN_PAGES) for _ in range(rng.randint(1, 6))]
        for j, page in enumerate(pages):
            events.append((start + j * MINUTE + rng.randint(1, 999), who, page))
        likely = (country in ("NO", "SE")) + (pages.count("jobs") * 2 >= len(pages))
        label = int(likely + rng.random() > 1.6)
        spine.append(f"{who},{trained_at + i},{label}")
    send_views(producer, views, events)
    path = tmp_path / "spine.csv"
    path.write_text("member_id,at,label\n" + "\n".join(spine) + "\n")

    registry = ModelRegistry(log)
    try:
        result = train_once(log, app, model, spine=path, registry=registry, alias="production")
        assert result.metrics["auc"] > 0.7  # the categories carry the signal
        assert dict(result.version.features)["country"] == "string"

        # after training: members move to countries and read pages the model never saw
        for who in rng.sample(members, 300):
            country = rng.choice([*NEW_COUNTRIES, *KNOWN_COUNTRIES, None])
            profile = {"member_id": who, "country": country, "age": rng.randint(18, 70)}
            producer.send(profiles, json.dumps(profile).encode(), who.encode(), timestamp=moved_at)
        late = [(moved_at + rng.randint(0, 999), who, rng.choice(NEW_PAGES)) for who in members]
        send_views(producer, views, rng.sample(late, 300))
        producer.close()
        processor = FeatureProcessor(log, app)
        processor.run_until_caught_up()
        processor.close()

        chosen = rng.sample(members, 1000)
        asked_at = int(time.time() * 1000)
        (tmp_path / "asked.csv").write_text(
            "member_id,at\n" + "\n".join(f"{who},{asked_at}" for who in chosen) + "\n"
        )
        build_dataset(log, app, tmp_path / "asked.csv", tmp_path / "asked.parquet")
        dataset = pq.read_table(tmp_path / "asked.parquet")
        assert dataset["member_id"].to_pylist() == chosen
        published = load_trainer(registry.load_artifact(result.version), result.version.format)
        offline = published.predict(dataset.select(FEATURES))
        rows = dataset.select(FEATURES).to_pylist()
        unseen = [
            r
            for r in rows
            if r["country"] in NEW_COUNTRIES
            or r["last_page"] in NEW_PAGES
            or r["top_page_7d"] in NEW_PAGES
        ]
        assert len(unseen) > 100, "the sample holds unseen categories"

        schemas = LogRegistry(log)
        shop = Shop(log, app, schemas, registry, model, model)
        with serving(shop, model, tmp_path) as (client, service):
            assert wait_ready(client)["version"] == 1
            online = []
            for who in chosen:
                answer = client.post("/v1/predict", json={"entity": who})
                assert answer.status_code == 200, answer.text
                online.append(answer.json()["score"])
            served = {d["entity"]: d for d in decisions(log, service, 1000)}
        schemas.close()
    finally:
        registry.close()

    assert np.asarray(online).tobytes() == offline.tobytes()  # bit for bit, all 1,000
    for who, row in zip(chosen, rows, strict=True):  # decisions hold the strings as served
        (candidate,) = served[who]["candidates"]
        assert candidate["features"] == row


def send_views(producer, topic: str, events: list[tuple[int, str, str]]) -> None:
    """Views in event-time order: a view that arrives after later ones is late and counts
    nowhere, online or offline (decision 0008)."""
    for at, who, page in sorted(events):
        value = {"member_id": who, "at": at, "page": page}
        producer.send(topic, json.dumps(value).encode(), who.encode(), timestamp=at)
    producer.flush()
