"""Source topics on ``<app>.monitor``: records per second, freshness and each group's lag."""

from __future__ import annotations

import time

from click.testing import CliRunner

from loopline.app import App
from loopline.cli import cli
from loopline.log import TopicPartition
from loopline.monitor.records import GroupLag
from loopline.monitor.task import Monitor
from monitor.helpers import T0, monitor_records, produce
from support import consume_all, unique


def test_a_source_gets_a_record_per_window_with_its_rate_age_and_group_lag(log) -> None:
    app, src, group = App(unique("shop")), unique("clicks"), unique("features")
    log.create_topic(src)
    produce(log, src, [({"entity": f"m-{i}"}, T0 + i * 1000) for i in range(30)])  # 1/s
    reader = log.consumer(group, [src], reset="earliest")  # a stage that is 10 records behind
    assert len(consume_all(reader, 30)) == 30
    reader.commit({TopicPartition(src, 0): 20})
    reader.close()
    now = [T0 + 35_000]
    monitor = Monitor(
        log, app, sources=[src], groups=[group], windows=["10s"], lateness="0s",
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        monitor.run(until_caught_up=True)  # 3 windows of records close; the 4th opens, empty
        now[0] = T0 + 45_000  # 10 s without a record: the silent window closes too
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
    got = [r for r in monitor_records(log, app.name, stats.windows) if r.source == "feeds"]
    assert [(r.start - T0, r.records, r.records_per_second, r.age_seconds) for r in got] == [
        (0, 10, 1.0, 1.0),
        (10_000, 10, 1.0, 1.0),
        (20_000, 10, 1.0, 1.0),
        (30_000, 0, 0.0, 11.0),  # the newest record is 11 s old at the window's end
    ]
    assert {(r.key, r.topic, r.window, r.newest) for r in got[-1:]} == {
        (src, src, "10s", T0 + 29_000)
    }
    assert all(r.lags == [GroupLag(group=group, lag=10, partitions=1)] for r in got)


def test_a_group_that_does_not_read_the_source_has_no_lag_there(log) -> None:
    app, src, group = App(unique("shop")), unique("clicks"), unique("elsewhere")
    log.create_topic(src)
    produce(log, src, [({"entity": "m"}, T0 + i * 1000) for i in range(12)])
    monitor = Monitor(
        log, app, sources=[src], groups=[group], windows=["10s"], lateness="0s",
        clock=lambda: T0 + 25_000,
    )  # fmt: skip
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
    got = [r for r in monitor_records(log, app.name, stats.windows) if r.source == "feeds"]
    assert [(r.records, r.lags) for r in got] == [(10, []), (2, [])]


FEATURED_APP = """
from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet
from loopline.features.aggregations import Count

app = App({name!r}, features=FeatureSet([Aggregations({src!r}, Entity("member", "entity"),
    Count.per_window("clicks", windows=["1h"]))]))
"""


def test_loopline_monitor_writes_the_lag_of_the_groups_it_is_given(
    log, log_url, tmp_path, monkeypatch
) -> None:
    name, src, group = unique("shop"), unique("clicks"), unique("reader")
    module = unique("shop_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(FEATURED_APP.format(name=name, src=src))
    monkeypatch.syspath_prepend(str(tmp_path))
    log.create_topic(src)
    start = (time.time_ns() // 1_000_000 // 10_000 - 6) * 10_000  # a minute ago, on a window
    produce(log, src, [({"entity": f"m-{i}"}, start + i * 1000) for i in range(30)])
    reader = log.consumer(group, [src], reset="earliest")
    assert len(consume_all(reader, 30)) == 30
    reader.commit({TopicPartition(src, 0): 25})
    reader.close()
    result = CliRunner().invoke(
        cli,
        ["--log", log_url, "monitor", f"{module}:app", "--window", "10s", "--group", group,
         "--until-caught-up"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = [r for r in monitor_records(log, name, 3, timeout=10) if r.source == "feeds"]
    assert [(r.topic, r.start - start, r.records) for r in got[:3]] == [
        (src, 0, 10),
        (src, 10_000, 10),
        (src, 20_000, 10),
    ]
    assert got[0].lags == [GroupLag(group=group, lag=5, partitions=1)]
