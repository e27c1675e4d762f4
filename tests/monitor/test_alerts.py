"""Alerts open when a served feature's coverage drops or a source goes silent, and resolve."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import msgspec
import pytest

from loopline.app import App, AppError
from loopline.log import Log
from loopline.monitor.alerts import Alert, AlertRecord
from loopline.monitor.baselines import profiles_from
from loopline.monitor.task import Monitor
from loopline.monitor.webhook import Webhook
from monitor.helpers import (
    MINUTE,
    T0,
    make_decisions,
    make_labelled,
    monitor_records,
    produce,
    training_profile,
)
from monitor.test_monitor import publish_v1
from support import consume_all, unique


def alerts(log: Log, app: App, expected: int, timeout: float = 20.0) -> list[AlertRecord]:
    consumer = log.consumer(None, [f"{app.name}.alerts"], reset="earliest")
    try:
        got = consume_all(consumer, expected, timeout=timeout)
    finally:
        consumer.close()
    return [msgspec.json.decode(r.value, type=AlertRecord) for r in got]


def test_a_coverage_drop_opens_an_alert_and_recovery_resolves_it(log) -> None:
    app = App(unique("shop"))
    models, model = publish_v1(log, training_profile())
    broken = (T0 + 4 * MINUTE, T0 + 6 * MINUTE)
    decisions = make_decisions(6000, step=100, broken=broken, model=model)  # 10 minutes
    monitor = Monitor(
        log, app, profiles_from(models), windows=["1m"], clock=lambda: T0 + 60 * MINUTE
    )
    produce(log, monitor.decisions_topic, decisions)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        models.close()
    got = [a for a in alerts(log, app, stats.alerts, timeout=10) if a.alert == "coverage_drop"]
    for arm in ("a", "b"):
        mine = [a for a in got if a.scope == f"{model}:1:{arm}:"]
        assert [(a.state, a.feature, a.start) for a in mine] == [
            ("opened", "x", broken[0]),
            ("updated", "x", broken[0] + MINUTE),
            ("resolved", "x", broken[1]),
        ], mine
        opened = mine[0]
        assert opened.value == 0.0 and opened.baseline > 0.6 and opened.rows > 100
        assert opened.low == opened.baseline - 0.10 and opened.end == broken[0] + MINUTE
    assert not [a for a in got if a.scope.startswith(f"{model}:2:")]  # no profile: no baseline


class Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_silent_source_opens_a_freshness_alert_that_resolves_when_it_resumes(log) -> None:
    app, src = App(unique("shop")), unique("clicks")
    log.create_topic(src)
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received = []
    now = [T0 + 30_000]
    monitor = Monitor(
        log, app, sources=[src], clock=lambda: now[0],
        on_alert=[Webhook(f"http://127.0.0.1:{server.server_port}/alerts")],
    )  # fmt: skip

    def clicks(start: int, n: int) -> None:
        produce(log, src, [({"entity": f"m-{i}"}, start + i * 1000) for i in range(n)])

    try:
        clicks(T0, 30)  # one a second until T0 + 29 s
        monitor.run(until_caught_up=True)
        assert monitor.stats.alerts == 0
        now[0] = T0 + 29_000 + 9_000  # 9 intervals: still fresh
        monitor.run(until_caught_up=True)
        assert monitor.stats.alerts == 0
        now[0] = T0 + 29_000 + 11_000  # 11 intervals: silent
        monitor.run(until_caught_up=True)
        clicks(T0 + 60_000, 5)
        now[0] = T0 + 64_500
        monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        server.shutdown()
    got = alerts(log, app, 2)
    assert [(a.alert, a.state, a.scope) for a in got] == [
        ("freshness", "opened", src),
        ("freshness", "resolved", src),
    ]
    assert got[0].value == 11.0 and got[0].baseline == 1000.0 and got[0].high == 10.0
    assert [body for _, body in Hook.received] == [msgspec.to_builtins(a) for a in got]
    assert {kind for kind, _ in Hook.received} == {"application/json"}


def test_declared_rules_an_auc_below_the_test_auc_opens_and_few_labels_are_not_judged(log) -> None:
    rules = [Alert("auc_drop", "auc", below="training", by=0.05, min_rows=60)]
    app = App(unique("shop"), alerts=rules)  # declared: the defaults are off
    decisions = make_decisions(2000, step=150, model="m")  # 5 minutes
    labelled = make_labelled(decisions)
    test_auc = {1: 0.95, 2: 0.60}  # labels follow the scores: a served AUC near 0.75
    monitor = Monitor(
        log, app, test_auc=lambda m, v: test_auc[v], windows=["1m"],
        clock=lambda: T0 + 60 * MINUTE,
    )  # fmt: skip
    produce(log, monitor.labelled_topic, labelled)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
    got = alerts(log, app, stats.alerts, timeout=10)
    records = [r for r in monitor_records(log, app.name, stats.windows) if r.source == "labelled"]
    judged = [r for r in records if r.scored >= 60 and r.model_version == 1]
    assert judged and all(r.auc < 0.90 for r in judged)
    assert {(a.alert, a.scope.split(":")[1]) for a in got} == {("auc_drop", "1")}
    opened = [a for a in got if a.state == "opened"]
    assert {a.scope for a in opened} == {r.key for r in judged}
    assert all(a.baseline == 0.95 and a.low == 0.95 - 0.05 and a.rows >= 60 for a in opened)


def test_an_app_declaring_something_else_as_alerts_is_told_what_to_write() -> None:
    with pytest.raises(AppError, match=r"Alert\('psi_high', 'psi', above=0.2\)"):
        App("shop", alerts=[{"metric": "psi"}])
    with pytest.raises(ValueError, match="needs a threshold"):
        Alert("psi", "psi")


def test_an_open_alert_whose_scope_stops_having_windows_resolves_after_three(log) -> None:
    # a canary rolled back: arm b's coverage alert is open when its traffic stops; no window
    # of arm b judges it again, so after three windows of the others it is resolved, saying why
    app = App(unique("shop"))
    models, model = publish_v1(log, training_profile())
    broken_from, b_stops = T0 + 4 * MINUTE, T0 + 6 * MINUTE
    decisions = [
        (d, at)
        for d, at in make_decisions(
            7800, step=100, broken=(broken_from, T0 + 14 * MINUTE), model=model
        )
        if not (d["arm"] == "b" and at >= b_stops)
    ]
    monitor = Monitor(
        log, app, profiles_from(models), windows=["1m"], clock=lambda: T0 + 60 * MINUTE
    )
    produce(log, monitor.decisions_topic, decisions)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        models.close()
    got = [a for a in alerts(log, app, stats.alerts, timeout=10) if a.alert == "coverage_drop"]
    b = [a for a in got if a.scope == f"{model}:1:b:"]
    assert [(a.state, a.start, a.end) for a in b] == [
        ("opened", broken_from, broken_from + MINUTE),
        ("updated", broken_from + MINUTE, b_stops),
        ("resolved", b_stops, b_stops + 3 * MINUTE),
    ], b
    assert b[-1].value is None and b[-1].rows == 0 and "no window" in b[-1].reason
    a = [x for x in got if x.scope == f"{model}:1:a:"]
    assert a[0].state == "opened" and {x.state for x in a[1:]} == {"updated"}, a  # still broken
