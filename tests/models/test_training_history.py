"""`train --spine` meets table history compaction removed: refused, or accepted on request."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature
from loopline.features.offline.datasets import DatasetError
from loopline.log import TopicConfig
from loopline.models import ModelRegistry
from loopline.models.declarations import Model
from loopline.models.signing import HmacSigner
from loopline.models.trainers import LightGBMTrainer
from loopline.models.training import train_once
from support import FAST_CLEANING, compact_now, unique

MINUTE = 60_000
T1 = 1_700_000_000_000
member = Entity("member", key="member_id")


def app_of(topic: str) -> App:
    age = TableFeature("age", "age", default=0)
    model = Model(
        "accept",
        entity="member",
        trainer=lambda: LightGBMTrainer({"min_data_in_leaf": 2}, num_boost_round=5),
    )
    return App("shop", features=FeatureSet(tables=[Table(topic, member, [age])]), models=[model])


def test_train_from_a_spine_refuses_lost_table_history_unless_allowed(log, backend, tmp_path):
    topic = unique("profiles")
    log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    producer = log.producer()
    members = [f"m{i}" for i in range(40)]
    for who in members:  # an age at T1, a new one 10 minutes later: compaction keeps the second
        for age, at in ((20, T1), (30, T1 + 10 * MINUTE)):
            value = json.dumps({"member_id": who, "age": age + members.index(who)}).encode()
            producer.send(topic, value, who.encode(), timestamp=at)
    producer.flush()
    producer.close()
    compact_now(log, backend, topic)
    rng = random.Random(3)
    rows = [(who, T1 + 1000 + i, rng.random() < 0.5) for i, who in enumerate(members)]
    rows += [(who, T1 + 11 * MINUTE + i, rng.random() < 0.5) for i, who in enumerate(members)]
    spine = Path(tmp_path / "spine.csv")
    spine.write_text("member_id,at,label\n" + "".join(f"{w},{t},{int(y)}\n" for w, t, y in rows))
    registry = ModelRegistry(log, signer=HmacSigner(b"k" * 32))
    app = app_of(topic)

    with pytest.raises(DatasetError, match="40 of 80 spine rows"):
        train_once(log, app, "accept", spine=spine, registry=registry)
    result = train_once(
        log, app, "accept", spine=spine, registry=registry, allow_missing_history=True
    )

    assert result.version.manifest["missing_history"] == {topic: 40}
    registry.close()


def test_allow_missing_history_needs_a_spine(tmp_path):
    from click.testing import CliRunner

    from loopline.cli import cli

    args = ["--log", f"embedded:{tmp_path}", "train", "shop:app", "--model", "accept"]
    result = CliRunner().invoke(cli, [*args, "--labelled", "x", "--allow-missing-history"])
    assert result.exit_code == 2
    assert "--allow-missing-history applies to a dataset built from --spine" in result.output
