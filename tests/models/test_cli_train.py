"""`loopline train`, as a user runs it: once, reproduce, on a schedule, online, and its errors.

Every test runs on the embedded log and on the real Kafka broker, with an
application module written to a temporary directory.
"""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
from click.testing import CliRunner, Result

from loopline.cli import cli
from loopline.log import TopicConfig
from loopline.models import ModelRegistry
from support import unique

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SECRET = "the train CLI tests' signing secret"

APP = """
from river import linear_model, optim

from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer, RiverTrainer

member = Entity("member", key="member_id")


def lightgbm():
    return LightGBMTrainer({{"num_leaves": 8, "min_data_in_leaf": 10}}, num_boost_round=30)


def river():
    return RiverTrainer(linear_model.LogisticRegression(optimizer=optim.SGD(0.05)))


app = App(
    {app!r},
    features=FeatureSet([Aggregations({clicks!r}, member, Count.per_window("clicks", windows=["1h"]), "at")]),
    models=[
        Model({accept!r}, trainer=lightgbm, entity="member"),
        Model({buy!r}, trainer=lightgbm, entity="member"),
        Model({learn!r}, trainer=river, entity="member"),
        Model({missing!r}, trainer=lightgbm, entity="member", features=["visits_7d"]),
    ],
)
"""


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for var in ("LOOPLINE_SIGNING_KEY_FILE", "LOOPLINE_VERIFY_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", SECRET)


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--log", url, *args])


def two_days_ago() -> int:
    return (int(time.time() * 1000) - 2 * DAY) // HOUR * HOUR


@pytest.fixture
def shop(log, tmp_path, monkeypatch):
    """The application module in the working directory, its clicks topic, a spine file whose
    label follows the clicks, and a topic of labelled examples. Returns names by role."""
    names = {
        "app": unique("shop"),
        "clicks": unique("clicks"),
        "examples": unique("examples"),
        **{role: unique(role) for role in ("accept", "buy", "learn", "missing")},
    }
    module = unique("shop_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(**names))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names["spec"] = f"{module}:app"

    rng = random.Random(1)
    t0 = two_days_ago()
    log.create_topic(names["clicks"], TopicConfig(partitions=2))
    events, spine = [], []
    for i in range(600):
        at = t0 + HOUR + i * 20_000
        clicks = rng.randint(0, 10)
        events += [(at - rng.randint(1, 50) * MINUTE, f"m{i}") for _ in range(clicks)]
        spine.append(f"m{i},{at},{int(clicks >= 5) if rng.random() > 0.1 else int(clicks < 5)}")
    producer = log.producer()
    for at, who in sorted(events):
        value = json.dumps({"member_id": who, "at": at}).encode()
        producer.send(names["clicks"], value, who.encode(), timestamp=at)
    (tmp_path / "spine.csv").write_text("member_id,at,label\n" + "\n".join(spine) + "\n")

    log.create_topic(names["examples"], TopicConfig(partitions=2))
    for value in examples(600):
        producer.send(names["examples"], value)
    producer.flush()
    producer.close()
    return names


def examples(n: int, start: int = 0, label: int | None = None) -> list[bytes]:
    rng = np.random.default_rng(start)
    t0 = two_days_ago()
    out = []
    for i in range(start, start + n):
        clicks = int(rng.integers(0, 11))
        value = label if label is not None else int(clicks + rng.normal() > 5)
        example = {"features": {"clicks_1h": clicks}, "label": value, "at": t0 + i * 1000}
        out.append(json.dumps(example).encode())
    return out


def send(log, topic: str, values: list[bytes]) -> None:
    producer = log.producer()
    for value in values:
        producer.send(topic, value)
    producer.flush()
    producer.close()


def test_train_once_then_reproduce(log, log_url, shop):
    trained = run(
        log_url,
        "train",
        shop["spec"],
        "--model",
        shop["accept"],
        "--spine",
        "spine.csv",
        "--alias",
        "candidate",
    )
    assert trained.exit_code == 0, trained.output
    line = trained.stdout.strip()
    assert line.startswith(f"published {shop['accept']} v1 (lightgbm; 480 train / 120 test rows):")
    assert "auc 0.8" in line or "auc 0.9" in line
    assert "; alias candidate -> v1; load " in line and "publish" in line
    registry = ModelRegistry(log)
    assert registry.alias(shop["accept"], "candidate").version == 1
    assert registry.latest(shop["accept"]).manifest["app_spec"] == shop["spec"]
    registry.close()

    again = run(log_url, "train", shop["spec"], "--model", shop["accept"], "--reproduce", "1")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(
        f"reproduced {shop['accept']} v1 from its manifest: identical scores on 120 test rows, "
        "artifact identical; auc "
    )


def test_train_from_labelled_examples_on_a_schedule(log, log_url, shop):
    done = run(
        log_url,
        "train",
        shop["spec"],
        "--model",
        shop["buy"],
        "--labelled",
        shop["examples"],
        "--every",
        "1s",
        "--runs",
        "2",
    )
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"published {shop['buy']} v1",
        f"published {shop['buy']} v2",
    ]
    assert (
        f"training {shop['buy']} of {shop['app']} every 1s from topic {shop['examples']}"
        in done.stderr
    )


def test_train_online_until_caught_up(log, log_url, shop):
    learned = run(
        log_url,
        "train",
        shop["spec"],
        "--model",
        shop["learn"],
        "--labelled",
        shop["examples"],
        "--online",
        "--every-examples",
        "200",
        "--until-caught-up",
        "--alias",
        "live",
    )
    assert learned.exit_code == 0, learned.output
    lines = learned.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"published {shop['learn']} v1 (online; 200 examples, 200 in all)")
    assert lines[2].endswith("; alias live -> v3")
    assert "learned 600 examples in" in learned.stderr and "3 versions published" in learned.stderr

    send(log, shop["examples"], examples(100, start=600))
    again = run(
        log_url,
        "train",
        shop["spec"],
        "--model",
        shop["learn"],
        "--labelled",
        shop["examples"],
        "--online",
        "--until-caught-up",
    )
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"published {shop['learn']} v4 (online; 100 examples, 700 in")
    assert "went on from v3" in again.stderr


def test_clear_errors(log, log_url, shop, monkeypatch):
    def fails(*args: str) -> str:
        result = run(log_url, "train", shop["spec"], *args)
        assert result.exit_code != 0, result.output
        return result.stderr

    empty = unique("empty")
    log.create_topic(empty)
    error = fails("--model", shop["buy"], "--labelled", empty)
    assert error.startswith(f"error: the data is empty: topic '{empty}' has no labelled examples")

    one_class = unique("ones")
    log.create_topic(one_class)
    send(log, one_class, examples(100, label=1))
    error = fails("--model", shop["buy"], "--labelled", one_class)
    assert "error: all 100 labels are 1: a classifier needs both classes" in error

    error = fails("--model", shop["missing"], "--spine", "spine.csv")
    assert "error: dataset lacks features: visits_7d; declared are visits_7d" in error

    error = fails("--model", shop["accept"], "--labelled", shop["examples"], "--online")
    assert "cannot learn online: its trainer (lightgbm) has no learn_one" in error

    error = fails("--model", "nope", "--spine", "spine.csv")
    assert f"error: application {shop['app']!r} declares no model 'nope'" in error

    error = fails("--model", shop["buy"])
    assert "say where the examples are: --spine FILE_OR_TOPIC" in error

    error = fails("--model", shop["buy"], "--spine", "spine.csv", "--every-examples", "5")
    assert "--every-examples applies only with --online" in error

    error = fails("--model", shop["buy"], "--spine", "spine.csv", "--every", "soon")
    assert "Invalid value for '--every'" in error

    monkeypatch.delenv("LOOPLINE_SIGNING_KEY")
    error = fails("--model", shop["buy"], "--labelled", shop["examples"])
    assert error.startswith(f"error: cannot publish model '{shop['buy']}' unsigned: set ")
    assert "LOOPLINE_SIGNING_KEY" in error


def test_a_spine_label_column_of_another_name_is_mapped_with_label(log, log_url, shop, tmp_path):
    # The model keeps label="label" (the field the outcome joiner writes); the spine a user
    # brings names its label "bought": --label maps it, and the error says so.
    text = (tmp_path / "spine.csv").read_text().replace("member_id,at,label", "member_id,at,bought")
    (tmp_path / "bought.csv").write_text(text)
    refused = run(
        log_url, "train", shop["spec"], "--model", shop["accept"], "--spine", "bought.csv"
    )
    assert refused.exit_code == 1
    assert "has no label column 'label'" in refused.stderr
    assert "pass --label COLUMN" in refused.stderr
    mapped = run(
        log_url, "train", shop["spec"], "--model", shop["accept"], "--spine", "bought.csv",
        "--label", "bought",
    )  # fmt: skip
    assert mapped.exit_code == 0, mapped.output
    assert mapped.stdout.startswith(f"published {shop['accept']} v1 (lightgbm; 480 train")
    learned = run(
        log_url, "train", shop["spec"], "--model", shop["accept"], "--labelled", shop["examples"]
    )  # the joiner's field, by the same model
    assert learned.exit_code == 0, learned.output
