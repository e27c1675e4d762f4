"""The demo's instruments: the monitor as one more stage of the loop, and what it saw.

`demo_monitor` is ``loopline monitor <app>`` for the demo's application,
with windows short enough for a demo (10 s, judged for alerts, and 1 min)
and a lateness of 2 s. Its alerts reach the demo's `DemoStats` through the
monitor's hook (`AlertBoard`: called once each alert is committed to
``<app>.alerts``), so the live view shows the alerts open now.

What the served features are compared with is `reference_profile`: the
features of random (member, candidate) pairs read from the online store
once the feature processor has caught up, the population every ranking
request scores (20 random candidates). It is the heuristic's profile
(version 1 learned from nothing, so it has none of its own), and the
monitor's baseline for every version. Not the learned versions' own
training profiles: they learn from the suggestions earlier versions chose
to show (a feedback loop), so their training rows are a selected sample
(the heuristic shows same-city members first: ``same_city`` is far more
often 1 there than among all candidates), and their held-out scores, label
rate and test AUC describe that sample too, not what they serve; a better
version would "breach" its own label range. So the demo's monitor judges
features (coverage, PSI) against the candidate population and source
freshness, and no score, label or AUC baseline (decision 0028).

Its rules (`ALERTS`) are the default coverage, PSI and freshness rules,
judged only on windows of at least 1,000 candidates: a canary's 10 s
window can hold a handful of decisions, whose coverage or PSI says nothing
(PSI over 12 bins is above 0.25 by chance alone with 50 values).

>>> board = AlertBoard(DemoStats("demo-1", "embedded:/tmp/x", 60.0))
>>> board(AlertRecord(id="coverage_drop:m:1::x", alert="coverage_drop", state="opened",
...     metric="coverage", scope="m:1::", feature="x", value=0.3, baseline=0.8, at=5_000))
>>> [a.feature for a in board.stats.alerts.values()], board.stats.alert_lines
(['x'], ['     0s  opened coverage_drop x of m:1:: (0.30, training 0.80)'])
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pyarrow as pa

from loopline.app import App
from loopline.contracts import SchemaRegistry
from loopline.demo.stats import DemoStats
from loopline.features.store import FeatureStore
from loopline.log import Log
from loopline.models.profiles import Profile, profile_features
from loopline.monitor.alerts import Alert, AlertRecord
from loopline.monitor.task import Monitor

__all__ = ["ALERTS", "WINDOWS", "AlertBoard", "demo_monitor", "reference_profile"]

WINDOWS = ("10s", "1m")  # the first is the one alerts judge
LATENESS = "2s"
MIN_ROWS = 1_000  # candidates in a window before it is judged
ALERTS = (
    Alert("coverage_drop", "coverage", below="training", by=0.10, min_rows=MIN_ROWS),
    Alert("psi", "psi", above=0.25, min_rows=MIN_ROWS),
    Alert("freshness", "freshness", above=10.0),
)
PAIRS = 4_000  # (member, candidate) pairs in the heuristic's reference profile


class AlertBoard:
    """The monitor's alert hook: keeps `stats.alerts` (the alerts open now, by id) and a
    line per change in `stats.alert_lines`."""

    def __init__(self, stats: DemoStats) -> None:
        self.stats = stats

    def __call__(self, alert: AlertRecord) -> None:
        stats = self.stats
        if alert.state == "resolved":
            stats.alerts.pop(alert.id, None)
        else:
            stats.alerts[alert.id] = alert
        if alert.state != "updated":
            seen = time.time_ns() // 1_000_000  # when the demo learned of it, after its commit
            stats.alert_log.append((seen, alert))
            what = f"{alert.feature} of {alert.scope}" if alert.feature else alert.scope
            value = "-" if alert.value is None else f"{alert.value:.2f}"
            base = "" if alert.baseline is None else f", training {alert.baseline:.2f}"
            stats.alert_lines.append(
                f"{stats.elapsed:6.0f}s  {alert.state} {alert.alert} {what} ({value}{base})"
            )


def reference_profile(
    log: Log, app: App, ids: Sequence[str], features: Sequence[str], rng: random.Random
) -> Profile:
    """The features of `PAIRS` random (member, candidate) pairs of `ids`, as the service
    would serve them (a missing value becomes the feature's declared default)."""
    store = FeatureStore(log, app)
    try:
        store.catch_up()
        pairs = []
        for _ in range(PAIRS):
            member, candidate = rng.sample(list(ids), 2)
            pairs.append({"member": member, "candidate": candidate})
        rows = store.vectors(pairs, list(features))
    finally:
        store.close()
    defaults = {name: app.features[name].default for name in features}
    columns = {
        name: [defaults[name] if row.get(name) is None else row[name] for row in rows]
        for name in features
    }
    table = pa.table({name: pa.array(values, pa.float64()) for name, values in columns.items()})
    return Profile(rows=len(rows), features=profile_features(table, list(features), defaults))


def demo_monitor(
    log: Log, app: App, schemas: SchemaRegistry, reference: Profile, stats: DemoStats
) -> Monitor:
    """``loopline monitor`` of the demo's application, every version compared with
    `reference` (see the module), telling `stats` of its alerts.

    Freshness is judged on the activity topic only: the profiles table changes
    when members edit their profiles, and a quiet table is not a stale one.
    """
    return Monitor(
        log,
        app,
        lambda model, version: reference,
        schemas,
        on_alert=[AlertBoard(stats)],
        alerts=ALERTS,
        sources=[f"{app.name}.activity"],
        windows=WINDOWS,
        lateness=LATENESS,
        commit_interval=0.2,
    )
