"""`loopline dataset build` and `loopline dataset rebuild`, as a user runs them, on both backends."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from loopline.cli import cli
from loopline.log import TopicConfig
from support import FAST_CLEANING, compact_now, unique

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000

APP = """
from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count, Sum

member = Entity("member", key="member_id")
item = Entity("item", key="item_id")
clicks = Aggregations(
    {topic!r}, member,
    [*Count.per_window("clicks", windows=["1h"]), *Sum.per_window("spent", field="amount", windows=["1h"])],
    time="at",
)
app = App("shop", features=FeatureSet([clicks]))
both = App("shop", features=FeatureSet(
    [clicks, Aggregations({topic!r}, item, Count.per_window("sales", windows=["1h"]), time="at")]))
"""


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


@pytest.fixture
def shop(log, tmp_path, monkeypatch):
    """An application module in the working directory, and its clicks topic with 3 records
    and one that is not JSON. Returns (module name, topic, first instant)."""
    topic = unique("clicks")
    module = unique("shop_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(topic=topic))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    log.create_topic(topic, TopicConfig(partitions=2))
    t0 = (int(time.time() * 1000) - 2 * DAY) // HOUR * HOUR
    producer = log.producer()
    for minute, who in [(1, "m1"), (2, "m1"), (3, "m2")]:
        value = {"member_id": who, "item_id": "i1", "at": t0 + minute * MINUTE, "amount": 2.5}
        producer.send(
            topic, json.dumps(value).encode(), who.encode(), timestamp=t0 + minute * MINUTE
        )
    producer.send(topic, b"{broken", b"m1", timestamp=t0 + 4 * MINUTE)
    producer.flush()
    producer.close()
    return module, topic, t0


def spine_csv(path: Path, t0: int) -> Path:
    path.write_text(f"member_id,at,label\nm1,{t0 + 10 * MINUTE},1\nm2,{t0 + 10 * MINUTE},0\n")
    return path


def test_build_then_rebuild_gives_the_same_bytes(log, log_url, shop, tmp_path):
    module, topic, t0 = shop
    spine = spine_csv(tmp_path / "spine.csv", t0)
    built = run(
        log_url,
        "dataset",
        "build",
        f"{module}:app",
        "--spine",
        str(spine),
        "--out",
        "train.parquet",
    )
    assert built.exit_code == 0, built.output
    assert built.stdout == (
        "built train.parquet: 2 rows x 2 features from 1 topic (4 records read, "
        "1 undecodable skipped); manifest train.parquet.manifest.json\n"
    )
    assert pq.read_table(tmp_path / "train.parquet").to_pylist() == [
        {"member_id": "m1", "at": t0 + 10 * MINUTE, "label": 1, "clicks_1h": 2, "spent_1h": 5.0},
        {"member_id": "m2", "at": t0 + 10 * MINUTE, "label": 0, "clicks_1h": 1, "spent_1h": 2.5},
    ]
    manifest = json.loads((tmp_path / "train.parquet.manifest.json").read_text())
    assert manifest["app_spec"] == f"{module}:app"
    assert sum(p["records"] for p in manifest["sources"][0]["partitions"]) == 4

    producer = log.producer()  # more clicks, known before the spine's instants
    producer.send(
        topic,
        json.dumps({"member_id": "m1", "at": t0 + 5 * MINUTE}).encode(),
        b"m1",
        timestamp=t0 + 5 * MINUTE,
    )
    producer.flush()
    producer.close()
    again = run(
        log_url, "dataset", "rebuild", "train.parquet.manifest.json", "--out", "again.parquet"
    )
    assert again.exit_code == 0, again.output
    original = (tmp_path / "train.parquet").read_bytes()
    assert (tmp_path / "again.parquet").read_bytes() == original
    sha = hashlib.sha256(original).hexdigest()
    assert sha == manifest["sha256"]
    assert again.stdout.startswith("rebuilt again.parquet: 2 rows x 2 features")
    assert again.stdout.endswith(f"identical (sha256 {sha[:12]}...)\n")


def test_spine_from_a_topic(log, log_url, shop):
    module, _, t0 = shop
    labels = unique("labels")
    log.create_topic(labels)
    producer = log.producer()
    value = {"member_id": "m1", "at": t0 + 10 * MINUTE, "label": 1}
    producer.send(labels, json.dumps(value).encode(), timestamp=t0 + 20 * MINUTE)
    producer.flush()
    producer.close()
    built = run(
        log_url, "dataset", "build", f"{module}:app", "--spine", labels, "--out", "t.parquet"
    )
    assert built.exit_code == 0, built.output
    assert (
        "1 row x 2 features from 2 topics (5 records read, 1 undecodable skipped)" in built.stdout
    )
    assert pq.read_table("t.parquet").column("clicks_1h").to_pylist() == [2]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "spine.csv",
            "user_id,at\nm1,1700000000000\n",
            "has no entity column: it needs a column 'entity' or 'member_id' holding entity ids; "
            "its columns are ['user_id', 'at']",
        ),
        (
            "spine.csv",
            "member_id,when\nm1,1700000000000\n",
            "has no time column 'at' or 'timestamp': its columns are ['member_id', 'when']; "
            "name the column holding each row's instant with --time-column",
        ),
        (
            "spine.csv",
            "member_id,at\nm1,2024-05-01T12:00:00Z\nm2,next tuesday\n",
            "row 2: cannot read time column 'at' from 'next tuesday'; use epoch milliseconds, "
            "ISO 8601 text (2024-05-01T12:00:00Z) or a timestamp type",
        ),
        ("spine.txt", "member_id,at\n", "unknown file type '.txt'; use .parquet, .csv or .jsonl"),
    ],
)
def test_bad_spines_say_what_is_wrong(log_url, shop, tmp_path, name, text, message):
    module, _, _ = shop
    (tmp_path / name).write_text(text)
    result = run(
        log_url, "dataset", "build", f"{module}:app", "--spine", name, "--out", "t.parquet"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "t.parquet").exists()


def test_a_spine_that_is_neither_file_nor_topic(log_url, shop):
    module, _, _ = shop
    result = run(
        log_url,
        "dataset",
        "build",
        f"{module}:app",
        "--spine",
        "nothing-here",
        "--out",
        "t.parquet",
    )
    assert result.exit_code == 1
    assert "the spine 'nothing-here' is neither a file nor a topic of" in result.stderr
    missing = run(
        log_url, "dataset", "build", f"{module}:app", "--spine", "gone.csv", "--out", "t.parquet"
    )
    assert missing.stderr == "error: no spine file 'gone.csv': check the path\n"


def test_several_entities_need_entity(log_url, shop, tmp_path):
    module, _, t0 = shop
    spine = spine_csv(tmp_path / "spine.csv", t0)
    args = ["dataset", "build", f"{module}:both", "--spine", str(spine), "--out", "t.parquet"]
    result = run(log_url, *args)
    assert result.exit_code == 1
    assert (
        "describe 2 entities (member, item); say which one the spine holds with --entity NAME"
        in (result.stderr)
    )
    assert run(log_url, *args, "--entity", "member").exit_code == 0
    unknown = run(log_url, *args, "--entity", "shop")
    assert "no feature of app 'shop' describes entity 'shop'; declared are ['item', 'member']" in (
        unknown.stderr
    )


def test_unknown_application(log_url, shop, tmp_path):
    spine = spine_csv(tmp_path / "spine.csv", 1_700_000_000_000)
    result = run(
        log_url, "dataset", "build", "nowhere:app", "--spine", str(spine), "--out", "t.parquet"
    )
    assert result.exit_code == 1
    assert "no module named 'nowhere'" in result.stderr


def test_rebuild_with_a_changed_spine_says_what_to_do(log_url, shop, tmp_path):
    module, _, t0 = shop
    spine = spine_csv(tmp_path / "spine.csv", t0)
    assert (
        run(
            log_url,
            "dataset",
            "build",
            f"{module}:app",
            "--spine",
            "spine.csv",
            "--out",
            "t.parquet",
        ).exit_code
        == 0
    )
    original = spine.read_text()
    spine.write_text(original + "m3,1700000000000,1\n")
    result = run(log_url, "dataset", "rebuild", "t.parquet.manifest.json", "--out", "u.parquet")
    assert result.exit_code == 1
    assert "is not the one the dataset was built from" in result.stderr
    assert "pass the original with --spine FILE" in result.stderr
    (tmp_path / "copy.csv").write_text(original)
    fixed = run(
        log_url,
        "dataset",
        "rebuild",
        "t.parquet.manifest.json",
        "--out",
        "u.parquet",
        "--spine",
        "copy.csv",
    )
    assert fixed.exit_code == 0, fixed.output
    assert Path("u.parquet").read_bytes() == Path("t.parquet").read_bytes()


def test_rebuild_of_a_file_that_is_no_manifest(log_url, tmp_path):
    (tmp_path / "m.json").write_text("[1, 2]")
    result = run(
        log_url,
        "dataset",
        "rebuild",
        str(tmp_path / "m.json"),
        "--out",
        str(tmp_path / "o.parquet"),
    )
    assert result.exit_code == 1
    assert "is not a dataset manifest" in result.stderr


PROFILES_APP = """
from loopline import App
from loopline.features import Entity, FeatureSet, Table, TableFeature

member = Entity("member", key="member_id")
app = App("shop", features=FeatureSet(
    tables=[Table({topic!r}, member, [TableFeature("country", "country", default="??")])]))
"""


def test_a_table_whose_history_was_compacted_away(log, log_url, backend, tmp_path, monkeypatch):
    topic = unique("profiles")
    module = unique("profiles_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(PROFILES_APP.format(topic=topic))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    log.create_topic(topic, TopicConfig(compact=True, extra=FAST_CLEANING))
    t1 = (int(time.time() * 1000) - HOUR) // MINUTE * MINUTE
    producer = log.producer()
    for country, arrival in [("DE", t1), ("FR", t1 + 10 * MINUTE)]:
        value = json.dumps({"member_id": "m1", "country": country}).encode()
        producer.send(topic, value, b"m1", timestamp=arrival)
    producer.flush()
    producer.close()
    compact_now(log, backend, topic)
    Path("spine.csv").write_text(f"member_id,at\nm1,{t1 + 1000}\nm1,{t1 + 11 * MINUTE}\n")
    args = ["dataset", "build", f"{module}:app", "--spine", "spine.csv", "--out", "t.parquet"]

    refused = run(log_url, *args)
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(
        f"error: table of topic {topic!r}: 1 of 2 spine rows need history the topic no longer holds"
    )
    assert "--allow-missing-history" in refused.stderr
    assert not Path("t.parquet").exists()

    accepted = run(log_url, *args, "--allow-missing-history")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stderr == (
        "rows given the default: country 50%\n"
        f"warning: table of topic {topic!r}: 1 spine row got the defaults, the history it "
        "needed being gone (recorded in the manifest as missing_history)\n"
    )
    assert pq.read_table("t.parquet").column("country").to_pylist() == ["??", "FR"]
    manifest = json.loads(Path("t.parquet.manifest.json").read_text())
    assert manifest["missing_history"] == {topic: 1}


def test_help_shows_examples():
    result = CliRunner().invoke(cli, ["dataset", "build", "--help"])
    assert result.exit_code == 0
    assert "loopline dataset build shop.features:app --spine labels.csv --out train.parquet" in (
        result.output
    )
    rebuild = CliRunner().invoke(cli, ["dataset", "rebuild", "--help"])
    assert (
        "loopline dataset rebuild train.parquet.manifest.json --out again.parquet" in rebuild.output
    )


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_dataset_files_get_the_users_umask(log_url, shop, tmp_path, umask):
    module, _, t0 = shop
    spine = spine_csv(tmp_path / "spine.csv", t0)
    before = os.umask(umask)
    try:
        built = run(log_url, "dataset", "build", f"{module}:app", "--spine", str(spine),
                    "--out", "train.parquet")  # fmt: skip
    finally:
        os.umask(before)
    assert built.exit_code == 0, built.output
    for name in ("train.parquet", "train.parquet.manifest.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


PAIRS = """
from loopline.features import Derived
pairs = App("shop", features=FeatureSet(
    [clicks, Aggregations({topic!r}, item, Count.per_window("sales", windows=["1h"]), time="at")],
    derived=[Derived("clicks_per_sale", ("clicks_1h", "sales_1h"), lambda c, s: c / max(s, 1))]))
"""


def test_a_spine_of_users_and_items_gets_both_and_their_cross_features(log_url, shop, tmp_path):
    module, topic, t0 = shop
    (tmp_path / f"{module}.py").write_text(
        (tmp_path / f"{module}.py").read_text() + PAIRS.format(topic=topic)
    )
    at = t0 + 10 * MINUTE
    (tmp_path / "pairs.csv").write_text(
        f"member_id,item_id,at,label\nm1,i1,{at},1\nm2,i1,{at},0\nm1,,{at},0\n"
    )
    args = ["dataset", "build", f"{module}:pairs", "--spine", "pairs.csv", "--out", "p.parquet"]
    built = run(log_url, *args, "--entity", "member=member_id", "--entity", "item=item_id")
    assert built.exit_code == 0, built.output
    assert built.stdout.startswith("built p.parquet: 3 rows x 4 features from 1 topic")
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == [
        {"member_id": "m1", "item_id": "i1", "at": at, "label": 1, "clicks_1h": 2,
         "spent_1h": 5.0, "sales_1h": 3, "clicks_per_sale": 2 / 3},
        {"member_id": "m2", "item_id": "i1", "at": at, "label": 0, "clicks_1h": 1,
         "spent_1h": 2.5, "sales_1h": 3, "clicks_per_sale": 1 / 3},
        {"member_id": "m1", "item_id": None, "at": at, "label": 0, "clicks_1h": 2,
         "spent_1h": 5.0, "sales_1h": 0, "clicks_per_sale": 2.0},
    ]  # fmt: skip
    manifest = json.loads((tmp_path / "p.parquet.manifest.json").read_text())
    assert manifest["entities"] == {"member": "member_id", "item": "item_id"}
    again = run(log_url, "dataset", "rebuild", "p.parquet.manifest.json", "--out", "q.parquet")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "q.parquet").read_bytes() == (tmp_path / "p.parquet").read_bytes()
    by_key = run(log_url, *args, "--entity", "member", "--entity", "item")  # key fields
    assert by_key.exit_code == 0, by_key.output

    twice = run(log_url, *args, "--entity", "member=member_id", "--entity", "member=item_id")
    assert twice.exit_code == 1
    assert twice.stderr == (
        "error: --entity member is given twice (member=member_id, member=item_id): "
        "name each entity once\n"
    )


PAIR_MODEL = """
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
paired = App("shop", features=pairs.features, models=[Model(
    "pair", entity="member", features=["clicks_1h", "sales_1h"],
    trainer=lambda: LightGBMTrainer({{"num_leaves": 2, "min_data_in_leaf": 1}}, num_boost_round=2))])
"""


def test_train_from_a_spine_of_users_and_items(log_url, shop, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "a dataset CLI test secret, 16+")
    module, topic, t0 = shop
    (tmp_path / f"{module}.py").write_text((APP + PAIRS + PAIR_MODEL).format(topic=topic))
    rows = [f"m{1 + i % 2},i1,{t0 + 10 * MINUTE + i * 1000},{i % 2}" for i in range(40)]
    (tmp_path / "pairs.csv").write_text("member_id,item_id,at,label\n" + "\n".join(rows) + "\n")
    args = ["train", f"{module}:paired", "--model", "pair", "--spine", "pairs.csv"]
    trained = run(log_url, *args, "--entity", "member=member_id", "--entity", "item=item_id")
    assert trained.exit_code == 0, trained.output
    assert re.match(r"published pair v\d+ \(lightgbm; 32 train / 8 test rows\)", trained.stdout)
    twice = run(log_url, *args, "--entity", "item=item_id", "--entity", "item=item_id")
    assert twice.stderr.startswith("error: --entity item is given twice")


SILENT = """
from loopline.features import Derived, Table, TableFeature
silent = App("shop", features=FeatureSet(
    [clicks], tables=[Table({profiles!r}, member, [TableFeature("age", "age", default=-1)])],
    derived=[Derived("per_click", ("spent_1h", "clicks_1h"), lambda s, n: s / nn, default=0.0)]))
"""


def test_dataset_build_says_what_got_defaults_silently(log, log_url, shop, tmp_path):
    module, topic, t0 = shop
    profiles = unique("profiles")
    log.create_topic(profiles)
    producer = log.producer()  # as `ingest` without --time-column: timed now, after the spine
    for who in ("m1", "m2"):
        producer.send(profiles, json.dumps({"member_id": who, "age": 40}).encode(), who.encode())
    producer.flush()
    producer.close()
    (tmp_path / f"{module}.py").write_text((APP + SILENT).format(topic=topic, profiles=profiles))
    spine = spine_csv(tmp_path / "spine.csv", t0)
    args = ["dataset", "build", f"{module}:silent", "--spine", str(spine), "--out", "s.parquet"]
    built = run(log_url, *args)
    assert built.exit_code == 0, built.output
    assert built.stderr.splitlines() == [
        "rows given the default: clicks_1h 0%, spent_1h 0%, age 100%, per_click 100%",
        "warning: derived feature 'per_click' raised on 2 of 2 rows, which got its default: "
        "check its function (`loopline features get` shows the errors online too)",
        f"warning: table of topic {profiles!r} has no record before 2 of 2 spine rows' "
        "instants, which got its defaults: was it ingested without --time-column? Its "
        "records are then timed at ingestion; ingest it again with --time-column COLUMN",
    ]
    manifest = json.loads((tmp_path / "s.parquet.manifest.json").read_text())
    assert manifest["derived_errors"] == {"per_click": 2}
    assert manifest["defaulted"]["age"] == 2
    assert manifest["before_first_record"] == {profiles: 2}


SILENT_MODEL = """
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
silently = App("shop", features=silent.features, models=[Model(
    "sm", entity="member", features=["clicks_1h", "per_click"],
    trainer=lambda: LightGBMTrainer({{"num_leaves": 2, "min_data_in_leaf": 1}}, num_boost_round=2))])
"""


def test_train_says_a_derived_feature_raised(log, log_url, shop, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", "a dataset CLI test secret, 16+")
    module, topic, t0 = shop
    profiles = unique("profiles")
    log.create_topic(profiles)
    source = (APP + SILENT + SILENT_MODEL).format(topic=topic, profiles=profiles)
    (tmp_path / f"{module}.py").write_text(source)
    rows = [f"m{1 + i % 2},{t0 + 10 * MINUTE + i * 1000},{i % 2}" for i in range(40)]
    (tmp_path / "s.csv").write_text("member_id,at,label\n" + "\n".join(rows) + "\n")
    trained = run(log_url, "train", f"{module}:silently", "--model", "sm", "--spine", "s.csv")
    assert trained.exit_code == 0, trained.output
    assert re.search(
        r"warning: derived feature 'per_click' raised on 40 of the data's rows, which got its "
        r"default: check its function \(recorded in v\d+'s manifest\)",
        trained.stderr,
    )
