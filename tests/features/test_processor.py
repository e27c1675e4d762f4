"""The feature processor and the online store over the real log, on both backends.

Late records, dead letters, metrics (late count, freshness), window edges
read from the store, values falling as time passes, and the CLI
(`loopline features run|get|list`) with an application module.
"""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from loopline.app import App, AppError, load_app
from loopline.cli import cli
from loopline.cli.serve_log import show_serving_log
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count, Sum
from loopline.features.processor import (
    LATE_OFFSET,
    LATE_PARTITION,
    LATE_REASON,
    LATE_TOPIC,
    FeatureProcessor,
)
from loopline.features.store import FeatureStore
from loopline.log import TopicConfig
from support import consume_all, unique

MINUTE, HOUR = 60_000, 3_600_000
member = Entity("member", key="member_id")


def _app(source: str) -> App:
    group = Aggregations(
        source,
        member,
        time="at",
        lateness="5m",
        features=[
            *Count.per_window("clicks", windows=["1h", "lifetime"]),
            *Sum.per_window("spent", field="amount", windows=["1h"]),
        ],
    )
    return App(unique("shop"), features=FeatureSet([group]))


def _send(log, topic: str, values: list[dict], partition: int = 0) -> None:
    producer = log.producer()
    for value in values:
        producer.send(
            topic,
            msgspec.json.encode(value),
            value.get("member_id", "").encode() or None,
            partition=partition,
        )
    producer.flush()
    producer.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_late_records_go_to_the_late_topic_and_are_counted(log):
    source = unique("clicks")
    log.create_topic(source)
    app = _app(source)
    now = time.time_ns() // 1_000_000
    _send(
        log,
        source,
        [
            {"member_id": "m1", "at": now, "amount": 1.0},
            {"member_id": "m1", "at": now - 4 * MINUTE, "amount": 2.0},  # within lateness
            {"member_id": "m1", "at": now - 6 * MINUTE, "amount": 4.0},  # late
            {"member_id": "m1", "at": "when?", "amount": 8.0},  # unreadable
        ],
    )
    before = _metric("loopline_features_late_records_total", app=app.name, source=source)
    processor = FeatureProcessor(log, app)
    stats = processor.run_until_caught_up()
    processor.close()
    assert (stats.records, stats.late, stats.dead_letters) == (4, 1, 1)
    assert (
        _metric("loopline_features_late_records_total", app=app.name, source=source) - before == 1
    )
    assert _metric("loopline_features_freshness_seconds_count", app=app.name) >= 1

    late = consume_all(
        log.consumer(None, [f"{app.name}.features.late"], reset="earliest"), 1, timeout=10
    )
    assert len(late) == 1
    headers = dict(late[0].headers)
    assert msgspec.json.decode(late[0].value)["amount"] == 4.0
    assert headers[LATE_TOPIC] == source.encode()
    assert (headers[LATE_PARTITION], headers[LATE_OFFSET]) == (b"0", b"2")
    assert b"behind" in headers[LATE_REASON]
    dead = consume_all(log.consumer(None, [f"{source}.dlq"], reset="earliest"), 1, timeout=10)
    assert len(dead) == 1 and b"when?" in dead[0].value

    with FeatureStore(log, app) as store:
        store.catch_up()
        assert store.vector("member", "m1", at=now + 1) == {
            "clicks_1h": 2,
            "clicks_lifetime": 2,
            "spent_1h": 3.0,
        }
        assert _metric("loopline_features_store_freshness_seconds_count", app=app.name) >= 1


def test_a_window_ending_at_t_never_sees_an_event_at_or_after_t(log):
    source = unique("clicks")
    log.create_topic(source)
    app = _app(source)
    # event times ahead of the arrivals, so the store may read at exactly t (reads come
    # at or after every arrival); t is not on a tile boundary
    t = time.time_ns() // 1_000_000 + 10 * MINUTE + 17
    _send(
        log,
        source,
        [
            {"member_id": "m1", "at": t - 1, "amount": 1.0},
            {"member_id": "m1", "at": t, "amount": 10.0},
            {"member_id": "m1", "at": t + 1, "amount": 100.0},
        ],
    )
    processor = FeatureProcessor(log, app)
    processor.run_until_caught_up()
    processor.close()
    with FeatureStore(log, app) as store:
        store.catch_up()
        spent = [store.vector("member", "m1", at=at)["spent_1h"] for at in (t, t + 1, t + 2)]
        assert spent == [1.0, 11.0, 111.0]
        # an hour on, everything has left the 1h window; the lifetime count stays
        later = store.vector("member", "m1", at=t + 2 * HOUR)
        assert (later["clicks_1h"], later["clicks_lifetime"]) == (0, 3)


def test_the_store_follows_new_commits(log):
    source = unique("clicks")
    log.create_topic(source, TopicConfig(partitions=2))
    app = _app(source)
    now = time.time_ns() // 1_000_000
    processor = FeatureProcessor(log, app, commit_interval=0.01)
    with FeatureStore(log, app) as store:
        for n in range(1, 4):
            _send(log, source, [{"member_id": "m1", "at": now, "amount": 1.0}], partition=n % 2)
            processor.run_until_caught_up()
            store.catch_up()
            # records of one entity in two partitions: the store merges both states
            assert store.get("member", ["m1"], ["clicks_lifetime"])[0] == {"clicks_lifetime": n}
    processor.close()


def test_a_changelog_rolls_segments_the_cleaner_can_compact(log):
    """Kafka compacts closed segments only: a changelog with the default 1 GiB segments
    would be read whole by every store that starts (decision 0044)."""
    source = unique("clicks")
    log.create_topic(source, TopicConfig(partitions=2))
    processor = FeatureProcessor(log, _app(source))
    processor.close()
    (changelog,) = [t for t in log.list_topics() if t.endswith(f"{source}.changelog")]
    config = log.describe_topic(changelog).config
    assert (config.compact, config.partitions) == (True, 2)
    assert config.extra["segment.bytes"] == str(32 * 2**20)


APP_MODULE = """
from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count

member = Entity("member", key="member_id")
app = App("{name}", features=FeatureSet([
    Aggregations("{source}", member, Count.per_window("clicks", windows=["1h", "lifetime"]))]))
"""


def test_cli_features_run_and_get(log, log_url, tmp_path, monkeypatch):
    source = unique("clicks")
    log.create_topic(source)
    name = unique("cliapp")
    module = f"app_{name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(APP_MODULE.format(name=name, source=source))
    monkeypatch.chdir(tmp_path)
    _send(log, source, [{"member_id": "m1"}, {"member_id": "m1"}, {"member_id": "m2"}])
    runner = CliRunner()

    listed = runner.invoke(cli, ["--log", log_url, "features", "list", module])
    assert listed.exit_code == 0, listed.output
    assert "clicks_1h" in listed.output and source in listed.output

    ran = runner.invoke(
        cli, ["--log", log_url, "features", "run", f"{module}:app", "--until-caught-up"]
    )
    assert ran.exit_code == 0, ran.output
    assert "processed 3 records" in ran.output

    got = runner.invoke(cli, ["--log", log_url, "features", "get", module, "m1", "m2"])
    assert got.exit_code == 0, got.output
    lines = [json.loads(line) for line in got.output.splitlines() if line.startswith("{")]
    assert lines == [
        {"entity": "m1", "clicks_1h": 2, "clicks_lifetime": 2},
        {"entity": "m2", "clicks_1h": 1, "clicks_lifetime": 1},
    ]

    unknown = runner.invoke(
        cli, ["--log", log_url, "features", "get", module, "m1", "--feature", "nope"]
    )
    assert unknown.exit_code != 0 and "no feature named 'nope'" in unknown.output
    missing = runner.invoke(cli, ["--log", log_url, "features", "run", f"{module}:nope"])
    assert missing.exit_code != 0 and f"module '{module}' has no attribute 'nope'" in missing.output


RAISING_MODULE = """
from loopline import App
from loopline.features import Aggregations, Derived, Entity, FeatureSet
from loopline.features.aggregations import Count

member = Entity("member", key="member_id")
app = App("{name}", features=FeatureSet(
    [Aggregations("{source}", member, Count.per_window("clicks", windows=["1h"]))],
    derived=[Derived("per_hour", ("clicks_1h",), lambda n: n / nn, default=0.0)]))
"""


def test_cli_features_get_says_a_derived_feature_raised(log, log_url, tmp_path, monkeypatch):
    source = unique("clicks")
    log.create_topic(source)
    name = unique("cliapp")
    module = f"app_{name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(RAISING_MODULE.format(name=name, source=source))
    monkeypatch.chdir(tmp_path)
    _send(log, source, [{"member_id": "m1"}, {"member_id": "m2"}])
    # as after a `loopline serve` in the same process (in CI, an earlier test): the online
    # store's own warnings are shown; `features get` must still say it once
    show_serving_log()
    runner = CliRunner()
    ran = runner.invoke(
        cli, ["--log", log_url, "features", "run", f"{module}:app", "--until-caught-up"]
    )
    assert ran.exit_code == 0, ran.output
    got = runner.invoke(cli, ["--log", log_url, "features", "get", module, "m1", "m2"])
    assert got.exit_code == 0, got.output
    assert [json.loads(line) for line in got.stdout.splitlines()] == [
        {"entity": "m1", "clicks_1h": 1, "per_hour": 0.0},
        {"entity": "m2", "clicks_1h": 1, "per_hour": 0.0},
    ]
    assert got.stderr == (
        "warning: derived feature 'per_hour' raised for 2 of 2 entities and took its default "
        "(NameError: name 'nn' is not defined): fix its function\n"
    )


def test_a_raising_derived_feature_is_counted_in_metrics_and_warned_of(log, caplog) -> None:
    from loopline.features import Derived

    source = unique("clicks")
    log.create_topic(source)
    _send(log, source, [{"member_id": "m1"}])
    member = Entity("member", key="member_id")
    app = App(unique("shop"), features=FeatureSet(
        [Aggregations(source, member, Count.per_window("clicks", windows=["1h"]))],
        derived=[Derived("per_hour", ("clicks_1h",), lambda n: n / nn, default=0.0)]))  # fmt: skip  # noqa: F821 (the trap)
    processor = FeatureProcessor(log, app)
    processor.run_until_caught_up()
    processor.close()
    labels = {"app": app.name, "feature": "per_hour"}
    with caplog.at_level("WARNING", "loopline.features.store"), FeatureStore(log, app) as store:
        store.catch_up()
        assert store.get("member", ["m1", "m1", "m1"], at=None)[0]["per_hour"] == 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if REGISTRY.get_sample_value("loopline_features_derived_errors_total", labels) == 3:
                break
            time.sleep(0.05)
    assert REGISTRY.get_sample_value("loopline_features_derived_errors_total", labels) == 3
    [warned] = [r.getMessage() for r in caplog.records if "per_hour" in r.getMessage()]
    assert warned == (
        f"derived feature 'per_hour' of {app.name} raised on 3 reads so far and took its "
        "default (NameError: name 'nn' is not defined): fix its function"
    )


def test_load_app_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notanapp.py").write_text("app = 42\n")
    with pytest.raises(AppError, match=r"not a loopline\.App"):
        load_app("notanapp:app")
    with pytest.raises(AppError, match="no module named 'nosuchmodule'"):
        load_app("nosuchmodule:app")
    with pytest.raises(AppError, match="write module:attribute"):
        load_app("not a module")
