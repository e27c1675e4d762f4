"""Judging closed windows against the alert rules: what opens, updates and resolves.

`observations` turns a `MonitorRecord` into what each rule looks at
(`Observation`: the rule, the scope, the value, the limits and the rows it
was computed from); `Judge.observe` keeps, per alert id, how many
consecutive windows breached and whether the alert is open (`AlertStatus`,
kept in the monitor's changelog), and returns the `AlertRecord` to write.

>>> from loopline.monitor.alerts import Alert
>>> judge, rule = Judge({}), Alert("psi", "psi", above=0.25)
>>> seen = Observation(rule, "m:1::", "x", 0.4, None, None, 0.25, 100)
>>> judge.observe(seen, "1m", 0, 60_000).state
'opened'
>>> judge.observe(seen._replace(value=0.1), "1m", 60_000, 120_000).state
'resolved'

An alert no window judges any more resolves once its source has closed
`UNSEEN_WINDOWS` windows of the judged size without it (`Judge.unseen`):

>>> judge.observe(seen, "1m", 0, 60_000, source="decisions", size=60_000).state
'opened'
>>> judge.unseen("decisions", "1m", 180_000)
[]
>>> [(a.state, a.start, a.end, a.reason[:30]) for a in judge.unseen("decisions", "1m", 240_000)]
[('resolved', 60000, 240000, 'no window of its scope judged ')]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import msgspec

from loopline.monitor.alerts import Alert, AlertRecord
from loopline.monitor.records import MonitorRecord

__all__ = ["UNSEEN_WINDOWS", "AlertStatus", "Judge", "Observation", "observations"]

UNSEEN_WINDOWS = 3
"""Windows of its source without one that judges an alert before it resolves as unseen: one
quiet window is chance, three in a row while the other scopes' windows close is a scope gone."""


class AlertStatus(msgspec.Struct):
    """One alert id's standing: consecutive breached windows, and since when it is open (0: not);
    the source and window size that judged it last, and the end of that window (`seen`)."""

    breaches: int = 0
    opened_at: int = 0
    source: str = ""
    size: int = 0
    seen: int = 0
    metric: str = ""
    scope: str = ""
    feature: str = ""


class Observation(NamedTuple):
    rule: Alert
    scope: str
    feature: str
    value: float | None
    baseline: float | None
    low: float | None
    high: float | None
    rows: int


def _ranged(rule: Alert, scope: str, value, low, high, rows: int) -> Observation:
    """A mean judged against the profile's 99% range ("training") or fixed limits."""
    fixed_low, fixed_high = rule.limits(None)
    return Observation(
        rule, scope, "", value, None,
        low if rule.below == "training" else fixed_low,
        high if rule.above == "training" else fixed_high,
        rows,
    )  # fmt: skip


def observations(
    record: MonitorRecord, rules: Sequence[Alert], test_auc: float | None
) -> Iterator[Observation]:
    """What each rule of `rules` sees in `record` (windows with too few rows are not judged)."""
    scope = record.key
    for rule in rules:
        m = rule.metric
        if record.source == "decisions":
            if m in ("coverage", "psi"):
                for f in record.features:
                    rows = f.rows if m == "coverage" else f.present
                    if rows < rule.min_rows:
                        continue
                    if m == "coverage" and f.training_coverage is not None:
                        low, high = rule.limits(f.training_coverage)
                        yield Observation(
                            rule, scope, f.name, f.coverage, f.training_coverage, low, high, rows
                        )
                    elif m == "psi" and f.psi is not None:
                        low, high = rule.limits(None)
                        yield Observation(rule, scope, f.name, f.psi, None, low, high, rows)
            elif m in ("error_rate", "unknown_rate") and record.decisions >= rule.min_rows:
                low, high = rule.limits(None)
                rate = record.error_rate if m == "error_rate" else record.unknown_rate
                yield Observation(rule, scope, "", rate, None, low, high, record.decisions)
            elif m == "score_mean" and record.score_count >= rule.min_rows:
                yield _ranged(
                    rule,
                    scope,
                    record.score_mean,
                    record.score_low,
                    record.score_high,
                    record.score_count,
                )
        elif m == "label_rate" and record.labels >= rule.min_rows:
            yield _ranged(
                rule, scope, record.label_mean, record.label_low, record.label_high, record.labels
            )
        elif m == "auc" and record.scored >= rule.min_rows and record.auc is not None:
            low, high = rule.limits(test_auc)
            yield Observation(rule, scope, "", record.auc, test_auc, low, high, record.scored)


class Judge:
    """Alert standings by id (`statuses`, restored from the changelog); `changed` ids to write."""

    def __init__(self, statuses: dict[str, AlertStatus]) -> None:
        self.statuses = statuses
        self.changed: set[str] = set()

    def observe(
        self, o: Observation, window: str, start: int, end: int, *, source: str = "", size: int = 0
    ) -> AlertRecord | None:
        """Count observation `o` of the window [start, end) of `source`'s windows of `size` ms
        (none for a judgment on the clock, which `unseen` never resolves); the alert's change."""
        rule = o.rule
        id = f"{rule.name}:{o.scope}" + (f":{o.feature}" if o.feature else "")
        status = self.statuses.get(id) or AlertStatus()
        status.source, status.size, status.seen = source, size, end if size else 0
        status.metric, status.scope, status.feature = rule.metric, o.scope, o.feature
        breached = o.value is not None and (
            (o.low is not None and o.value < o.low) or (o.high is not None and o.value > o.high)
        )
        state = None
        if breached:
            status.breaches += 1
            if status.opened_at:
                state = "updated"
            elif status.breaches >= rule.windows:
                status.opened_at, state = end, "opened"
        elif status.opened_at:
            state = "resolved"
        if not breached and not status.breaches and id not in self.statuses:
            return None
        evidence = AlertRecord(
            id=id, alert=rule.name, state=state or "updated", metric=rule.metric, scope=o.scope,
            feature=o.feature, window=window, start=start, end=end, value=o.value,
            baseline=o.baseline, low=o.low, high=o.high, rows=o.rows, breaches=status.breaches,
            opened_at=status.opened_at, at=end,
        )  # fmt: skip
        if breached:
            self.statuses[id] = status
        else:
            self.statuses.pop(id, None)
        self.changed.add(id)
        return evidence if state is not None else None

    def unseen(self, source: str, window: str, now: int) -> list[AlertRecord]:
        """`resolved` for every open alert of `source` that no window has judged for
        `UNSEEN_WINDOWS` of its windows by `now` (the end of the window just closed); a
        standing that is not open is forgotten then without a record."""
        gone = []
        for id, status in list(self.statuses.items()):
            if status.source != source or not status.seen:
                continue
            if status.seen + UNSEEN_WINDOWS * status.size > now:
                continue
            del self.statuses[id]
            self.changed.add(id)
            if not status.opened_at:
                continue
            gone.append(
                AlertRecord(
                    id=id, alert=id.partition(":")[0], state="resolved", metric=status.metric,
                    scope=status.scope, feature=status.feature, window=window, start=status.seen, end=now,
                    breaches=status.breaches, opened_at=status.opened_at, at=now,
                    reason=(
                        f"no window of its scope judged for {UNSEEN_WINDOWS} windows of "
                        f"{source}: its traffic stopped or fell below the rule's min_rows "
                        "(a version no longer served, a segment gone quiet)"
                    ),
                )
            )  # fmt: skip
        return gone

    def open(self) -> Mapping[str, AlertStatus]:
        return {k: s for k, s in self.statuses.items() if s.opened_at}
