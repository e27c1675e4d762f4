"""The README's `shop` application, as written there, trains its model with the string
feature `country` (it was refused before categorical features, decision 0030)."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from loopline.log import TopicConfig
from loopline.models import HmacSigner, ModelRegistry
from loopline.models.online import train_online
from loopline.models.reproduction import reproduce
from loopline.models.trainers import load_trainer
from loopline.models.training import train_once
from support import unique

README = Path(__file__).parents[2] / "README.md"
MINUTE = 60_000


def readme_block(marker: str) -> str:
    """The README's first fenced Python block that contains `marker`."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S):
        if marker in block:
            return block
    raise AssertionError(f"the README has no python block with {marker!r}")


def test_the_readme_shop_model_trains_on_its_string_feature(log, tmp_path):
    orders, profiles = unique("orders"), unique("profiles")
    log.create_topic(orders, TopicConfig(partitions=2))
    log.create_topic(profiles)
    # the README's declarations, on this test's topics (the Kafka broker is shared)
    features = readme_block("# shop.py").replace('"orders", member', f'"{orders}", member')
    features = features.replace('Table("profiles"', f'Table("{profiles}"')
    model = readme_block("from river import tree").replace(
        'App("shop", features=...', "App(app.name, features=app.features"
    )
    scope: dict = {}
    exec(features, scope)
    exec(model, scope)
    app = scope["app"]
    assert [m.name for m in app.models] == ["buys", "buys_online"]

    rng = random.Random(5)
    now = int(time.time() * 1000)
    producer = log.producer()
    events, spine = [], []
    for i in range(600):
        who = f"m-{i}"
        country = rng.choice(["DE", "FR", "NO", None])
        value = {"member_id": who} | ({"country": country} if country else {})
        producer.send(
            profiles, json.dumps(value).encode(), who.encode(), timestamp=now - 90 * MINUTE
        )
        for _ in range(rng.randint(0, 3)):
            order = {
                "member_id": who,
                "at": now - rng.randint(31, 80) * MINUTE,
                "amount": round(rng.uniform(5, 50), 2),
                "status": rng.choice(["paid", "open"]),
            }
            events.append(order)
        label = int((country == "NO") + rng.random() > 0.9)
        spine.append(f"{who},{now - 30 * MINUTE + i},{label}")
    for order in sorted(events, key=lambda o: o["at"]):
        key = order["member_id"].encode()
        producer.send(orders, json.dumps(order).encode(), key, timestamp=order["at"])
    producer.flush()
    producer.close()
    path = tmp_path / "spine.csv"
    path.write_text("member_id,at,label\n" + "\n".join(spine) + "\n")

    registry = ModelRegistry(log, signer=HmacSigner(b"the readme test's shared secret"))
    try:
        result = train_once(log, app, "buys", spine=path, registry=registry)
        types = dict(result.version.features)
        assert types["country"] == "string"
        trainer = load_trainer(registry.load_artifact(result.version), result.version.format)
        again = reproduce(log, app, "buys", result.version.version, registry=registry)
        assert again.identical and again.same_artifact  # the categories are rebuilt alike
    finally:
        registry.close()
    assert trainer.encoding.categories["country"] == ("??", "DE", "FR", "NO")  # "??": the default
    row = dict.fromkeys(trainer.features, 0.0)
    norwegian, unseen = trainer.predict([{**row, "country": "NO"}, {**row, "country": "IS"}])
    assert norwegian > unseen


def test_the_readme_online_model_learns_examples_with_its_string_feature(log, tmp_path):
    # `train shop --model buys_online --labelled labelled --online`, as the README runs it
    features = readme_block("# shop.py")
    model = readme_block("from river import tree").replace(
        'App("shop", features=...', "App(app.name, features=app.features"
    )
    scope: dict = {}
    exec(features, scope)
    exec(model, scope)
    labelled = unique("labelled")
    log.create_topic(labelled)
    producer = log.producer()
    now = int(time.time() * 1000)
    for i in range(300):
        example = {
            "features": {"orders_24h": i % 3, "country": ["DE", "NO", None][i % 3]},
            "label": int(i % 3 == 1),
            "at": now - 60_000 + i,
        }
        producer.send(labelled, json.dumps(example).encode(), timestamp=now - 60_000 + i)
    producer.flush()
    producer.close()
    registry = ModelRegistry(log, signer=HmacSigner(b"the readme test's shared secret"))
    try:
        stats = train_online(
            log, scope["app"], "buys_online", labelled, registry=registry, until_caught_up=True
        )
    finally:
        registry.close()
    assert (stats.examples, stats.dead_letters) == (300, 0), stats
    assert len(stats.versions) == 1
