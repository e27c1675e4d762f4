"""The default score-mean and label-rate alerts: silent on a clean stream, open on a shifted one."""

from __future__ import annotations

from loopline.app import App
from loopline.monitor.baselines import profiles_from
from loopline.monitor.task import Monitor
from monitor.helpers import MINUTE, T0, make_decisions, make_labelled, produce, training_profile
from monitor.test_alerts import alerts
from monitor.test_monitor import publish_v1
from support import unique


def _shifted(decisions, start: int, until: int):
    """The same decisions, with every score between `start` and `until` cut to 30%: a model
    that suddenly scores low (its labels, drawn from the scores, fall with them)."""
    out = []
    for d, at in decisions:
        if start <= at < until:
            d = {**d, "candidates": [{**c, "score": c["score"] * 0.3} for c in d["candidates"]]}
        out.append((d, at))
    return out


def _run(log, shift: tuple[int, int] | None) -> list:
    app = App(unique("shop"))  # no rules declared: the defaults
    models, model = publish_v1(log, training_profile())
    decisions = make_decisions(3000, step=100, model=model)  # 5 minutes
    if shift is not None:
        decisions = _shifted(decisions, *shift)
    labelled = make_labelled(decisions, delay=5_000)
    monitor = Monitor(
        log, app, profiles_from(models), windows=["1m"], clock=lambda: T0 + 60 * MINUTE
    )
    produce(log, monitor.decisions_topic, decisions)
    produce(log, monitor.labelled_topic, labelled)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        models.close()
    assert stats.decisions == 3000 and stats.labelled == 3000
    return alerts(log, app, stats.alerts, timeout=10) if stats.alerts else []


def test_the_default_score_and_label_rules_stay_silent_on_a_clean_stream(log) -> None:
    assert _run(log, None) == []


def test_a_score_mean_and_label_rate_outside_the_training_range_open_and_resolve(log) -> None:
    shift = (T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    got = _run(log, shift)
    changes = {(a.alert, a.state, a.scope.split(":", 1)[1], a.start) for a in got}
    for rule in ("score_mean", "label_rate"):
        for arm in ("a", "b"):  # version 1 has the profile; version 2 has none: no range
            # (a label's window is its closed_at's, 5 s after the decision: the first minute
            # of the shift is mostly shifted labels, the next one mostly not)
            assert (rule, "opened", f"1:{arm}:", shift[0]) in changes, got
            assert (rule, "resolved", f"1:{arm}:", shift[1]) in changes, got
    assert {a.alert for a in got} == {"score_mean", "label_rate"}, got
    assert not [a for a in got if a.scope.split(":")[1] == "2"], got
    opened = [a for a in got if a.alert == "score_mean" and a.state == "opened"]
    assert all(a.value < a.low and a.rows >= 30 for a in opened), opened


def test_an_error_rate_rule_opens_on_a_version_that_fails_requests(log) -> None:
    from loopline.monitor.alerts import Alert

    rule = Alert("errors", "error_rate", above=0.05, min_rows=20)
    app = App(unique("shop"), alerts=[rule])
    models, model = publish_v1(log, training_profile())
    clean = make_decisions(1200, step=100, model=model)  # 2 minutes
    failing = make_decisions(1200, step=100, start=T0 + 2 * MINUTE, model=model, errors_every=10)
    monitor = Monitor(
        log, app, profiles_from(models), windows=["1m"], clock=lambda: T0 + 60 * MINUTE
    )
    produce(log, monitor.decisions_topic, clean + failing)
    try:
        stats = monitor.run(until_caught_up=True)
    finally:
        monitor.close()
        models.close()
    got = alerts(log, app, stats.alerts, timeout=10) if stats.alerts else []
    opened = {(a.scope, a.start) for a in got if a.state == "opened"}
    # every version and arm opens at the first failing minute, none before it
    assert {start for _, start in opened} == {T0 + 2 * MINUTE}, got
    assert len(opened) == 4, got  # 2 versions x 2 arms
    assert all(0.05 < a.value < 0.2 and a.rows >= 20 for a in got if a.state == "opened"), got
